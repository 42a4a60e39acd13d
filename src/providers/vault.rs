//! Vault and OpenBao over their HTTP API: KV v2 and token/lease revocation.
//! Declared here so runbooks validate, plan and rehearse; live calls arrive
//! with the vault provider (`Provider::is_built`).

use super::ParamType::*;
use super::{ActionSpec, Provider, opt, out, req, secret, secret_out};

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "vault.kv_put",
        provider: Provider::Vault,
        doc: "Write a KV v2 secret (consumers read the new credential here)",
        params: &[
            req(
                "path",
                String,
                "path under the mount, e.g. quench/aws/ci-bot",
            ),
            secret(req("data", StringMap, "field → value")),
            opt("mount", String, "KV v2 mount, default `secret`"),
        ],
        outputs: &[out("version", "the new version")],
        dynamic_outputs: false,
        idempotent: false,
    },
    ActionSpec {
        name: "vault.kv_get",
        provider: Provider::Vault,
        doc: "Read a field of a KV v2 secret",
        params: &[
            req("path", String, "path under the mount"),
            req("field", String, "the field to read"),
            opt("mount", String, "KV v2 mount, default `secret`"),
        ],
        outputs: &[
            secret_out("value", "the field's value"),
            out("version", "version read"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "vault.revoke_prefix",
        provider: Provider::Vault,
        doc: "Revoke every lease under a prefix",
        params: &[req("prefix", String, "lease prefix, e.g. aws/creds/ci")],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "vault.revoke_accessor",
        provider: Provider::Vault,
        doc: "Revoke a token by its accessor (the token itself is not needed)",
        params: &[req("accessor", String, "the token's accessor")],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "vault.lookup_accessor",
        provider: Provider::Vault,
        doc: "What a token accessor belongs to: display name, policies, expiry",
        params: &[req("accessor", String, "the token's accessor")],
        outputs: &[
            out("display_name", "token display name"),
            out("policies", "attached policies"),
            out("expire_time", "expiry, or empty"),
            out("creation_time", "creation time (Unix seconds)"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
];
