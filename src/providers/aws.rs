//! AWS: IAM access keys, Secrets Manager, CloudTrail and STS. Declared here so
//! runbooks validate, plan and rehearse; live calls arrive with the AWS SDK
//! (`Provider::is_built`).

use super::ParamType::*;
use super::{ActionSpec, Provider, opt, out, req, secret, secret_out};

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "aws.deactivate_access_key",
        provider: Provider::Aws,
        doc: "Set an IAM access key to Inactive: it stops working at once",
        params: &[
            req("user", String, "IAM user that owns the key"),
            req("access_key_id", String, "the key id (AKIA…/ASIA…)"),
        ],
        outputs: &[out("status", "the key's status afterwards (Inactive)")],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "aws.create_access_key",
        provider: Provider::Aws,
        doc: "Create a new access key for an IAM user",
        params: &[req("user", String, "IAM user")],
        outputs: &[
            out("access_key_id", "the new key id"),
            secret_out("secret_access_key", "the new secret access key"),
        ],
        dynamic_outputs: false,
        idempotent: false,
    },
    ActionSpec {
        name: "aws.delete_access_key",
        provider: Provider::Aws,
        doc: "Delete an IAM access key for good",
        params: &[
            req("user", String, "IAM user that owns the key"),
            req("access_key_id", String, "the key id"),
        ],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "aws.list_access_keys",
        provider: Provider::Aws,
        doc: "List an IAM user's access keys and their status",
        params: &[req("user", String, "IAM user")],
        outputs: &[
            out("keys", "list of {access_key_id, status, created}"),
            out("active", "number of Active keys"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "aws.get_access_key_last_used",
        provider: Provider::Aws,
        doc: "When and where an access key was last used",
        params: &[req("access_key_id", String, "the key id")],
        outputs: &[
            out("last_used", "RFC 3339 time of last use, or empty"),
            out("service", "service it was last used with"),
            out("region", "region it was last used in"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "aws.put_secret_value",
        provider: Provider::Aws,
        doc: "Store a new value in Secrets Manager (consumers read it there)",
        params: &[
            req("secret_id", String, "secret name or ARN"),
            secret(req("value", Any, "string, or a mapping stored as JSON")),
        ],
        outputs: &[out("version_id", "the new version id")],
        dynamic_outputs: false,
        idempotent: false,
    },
    ActionSpec {
        name: "aws.get_secret_value",
        provider: Provider::Aws,
        doc: "Read a value from Secrets Manager",
        params: &[
            req("secret_id", String, "secret name or ARN"),
            opt("field", String, "a JSON field of the value"),
        ],
        outputs: &[secret_out("value", "the value (or the field)")],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "aws.lookup_events",
        provider: Provider::Aws,
        doc: "CloudTrail events made with an access key, summarised",
        params: &[
            req("access_key_id", String, "the key id"),
            opt("since", String, "how far back (e.g. 7d), default 90d"),
        ],
        outputs: &[
            out("events", "number of events"),
            out("event_names", "distinct API calls"),
            out("source_ips", "distinct source IP addresses"),
            out("user_agents", "distinct user agents"),
            out("first_seen", "first event time"),
            out("last_seen", "last event time"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "aws.verify_credentials",
        provider: Provider::Aws,
        doc: "STS GetCallerIdentity with a key: proves the new key works",
        params: &[
            req("access_key_id", String, "the key id"),
            secret(req("secret_access_key", String, "its secret")),
        ],
        outputs: &[out("account", "AWS account id"), out("arn", "caller ARN")],
        dynamic_outputs: false,
        idempotent: true,
    },
];
