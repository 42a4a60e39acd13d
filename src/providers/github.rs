//! GitHub's REST API: credential revocation, audit log, secret scanning,
//! Actions secrets, issues. Declared here so runbooks validate, plan and
//! rehearse; live calls arrive with the GitHub provider (`Provider::is_built`).

use super::ParamType::*;
use super::{ActionSpec, Provider, opt, out, req, secret};

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "github.revoke_credentials",
        provider: Provider::Github,
        doc: "Revoke leaked tokens through POST /credentials/revoke (up to 1,000 a request)",
        params: &[secret(req("credentials", StringList, "the leaked tokens"))],
        outputs: &[out("submitted", "number of credentials submitted")],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "github.revoke_installation_token",
        provider: Provider::Github,
        doc: "A GitHub App installation token revokes itself",
        params: &[secret(req("token", String, "the installation token"))],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "github.revoke_fine_grained_pat",
        provider: Provider::Github,
        doc: "An organization owner revokes members' fine-grained tokens",
        params: &[
            req("org", String, "organization"),
            req("pat_ids", IntList, "ids of the fine-grained tokens"),
        ],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "github.audit_log",
        provider: Provider::Github,
        doc: "The organization audit log for a token or actor, summarised",
        params: &[
            req("org", String, "organization"),
            opt("phrase", String, "audit log search phrase"),
            opt("since", String, "how far back (e.g. 7d)"),
        ],
        outputs: &[
            out("events", "number of events"),
            out("actions", "distinct actions"),
            out("actors", "distinct actors"),
            out("first_seen", "first event time"),
            out("last_seen", "last event time"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "github.secret_scanning_alerts",
        provider: Provider::Github,
        doc: "List secret-scanning alerts for the leaked secret and resolve them",
        params: &[
            req("repo", String, "owner/name"),
            secret(opt("secret", String, "only alerts for this secret")),
            opt(
                "resolve",
                String,
                "false_positive | wont_fix | revoked | used_in_tests",
            ),
        ],
        outputs: &[
            out("alerts", "number of alerts"),
            out("resolved", "number resolved"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "github.set_actions_secret",
        provider: Provider::Github,
        doc: "Set a repository Actions secret (sealed with the repository's public key)",
        params: &[
            req("repo", String, "owner/name"),
            req("name", String, "secret name"),
            secret(req("value", String, "the new value")),
        ],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "github.create_issue",
        provider: Provider::Github,
        doc: "Open an issue (prevention follow-ups)",
        params: &[
            req("repo", String, "owner/name"),
            req("title", String, "issue title"),
            opt("body", String, "issue body (Markdown)"),
            opt("labels", StringList, "labels"),
        ],
        outputs: &[out("number", "issue number"), out("url", "issue URL")],
        dynamic_outputs: false,
        idempotent: false,
    },
];
