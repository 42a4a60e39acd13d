//! Slack's Web API: messages, channels, token revocation, approvals.
//! Declared here so runbooks validate, plan and rehearse; live calls arrive
//! with the Slack provider (`Provider::is_built`). Until then a `notify` step
//! on Slack is skipped with its reason rather than failing the incident.

use super::ParamType::*;
use super::{ActionSpec, Provider, opt, out, req, secret};

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "slack.post_message",
        provider: Provider::Slack,
        doc: "Post a message to a channel",
        params: &[
            req("channel", String, "channel name or id"),
            req("text", String, "message text (never a secret)"),
        ],
        outputs: &[out("ts", "message timestamp"), out("channel", "channel id")],
        dynamic_outputs: false,
        idempotent: false,
    },
    ActionSpec {
        name: "slack.update_message",
        provider: Provider::Slack,
        doc: "Replace a message's text",
        params: &[
            req("channel", String, "channel id"),
            req("ts", String, "message timestamp"),
            req("text", String, "new text"),
        ],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "slack.create_channel",
        provider: Provider::Slack,
        doc: "Create an incident channel",
        params: &[
            req("name", String, "channel name"),
            opt("private", Bool, "private channel"),
        ],
        outputs: &[out("channel", "channel id")],
        dynamic_outputs: false,
        idempotent: false,
    },
    ActionSpec {
        name: "slack.invite",
        provider: Provider::Slack,
        doc: "Invite users to a channel",
        params: &[
            req("channel", String, "channel id"),
            req("users", StringList, "user ids"),
        ],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "slack.revoke_token",
        provider: Provider::Slack,
        doc: "Revoke a leaked Slack token (auth.revoke)",
        params: &[secret(req("token", String, "the leaked token"))],
        outputs: &[out("revoked", "true when Slack revoked it")],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "slack.request_approval",
        provider: Provider::Slack,
        doc: "Ask for approval with buttons",
        params: &[
            req("channel", String, "channel"),
            req("text", String, "what is being approved"),
        ],
        outputs: &[out("approved_by", "who approved")],
        dynamic_outputs: false,
        idempotent: false,
    },
];
