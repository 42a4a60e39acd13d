//! CloudTrail records read as findings: what each call was (recon, a write,
//! or persistence: a way back in that outlives the leaked key), what it
//! touched, and what of it containment can undo.
//!
//! Only named fields of a record are read. A record holds more than a
//! finding may show: `responseElements` of `AssumeRole` and
//! `GetSessionToken` carry the session token they issued.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Calls that leave the attacker a way back in, by their CloudTrail names
/// (Lambda's carry an API date, `CreateFunction20150331`, cut off first).
const PERSISTENCE: &[&str] = &[
    "CreateUser",
    "CreateAccessKey",
    "UpdateAccessKey",
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "AttachUserPolicy",
    "PutUserPolicy",
    "AddUserToGroup",
    "AttachGroupPolicy",
    "PutGroupPolicy",
    "AttachRolePolicy",
    "PutRolePolicy",
    "CreateRole",
    "UpdateAssumeRolePolicy",
    "CreatePolicyVersion",
    "SetDefaultPolicyVersion",
    "CreateInstanceProfile",
    "AddRoleToInstanceProfile",
    "CreateFunction",
    "UpdateFunctionCode",
    "AddPermission",
    "RunInstances",
    "CreateSAMLProvider",
    "CreateOpenIDConnectProvider",
    "CreateVirtualMFADevice",
    "EnableMFADevice",
    "UploadSSHPublicKey",
    "CreateServiceSpecificCredential",
    "ImportKeyPair",
    "CreateKeyPair",
    "AuthorizeSecurityGroupIngress",
    // Credentials derived from the key: they live on after it.
    "AssumeRole",
    "GetSessionToken",
    "GetFederationToken",
];

/// Calls that read and change nothing, when a record does not say.
const READ_PREFIXES: &[&str] = &["Get", "List", "Describe", "Head", "Lookup", "Search"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Recon,
    Write,
    Persistence,
}

/// One call the leaked key made, as LookupEvents returns it.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub name: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// The region searched when it was found.
    pub region: String,
    /// LookupEvents' own `ReadOnly`, when it gives one.
    pub read_only: Option<bool>,
    /// `type name` of each of the event's `Resources`.
    pub resources: Vec<String>,
    /// The record itself (`CloudTrailEvent`), `Null` when absent.
    pub detail: Value,
}

/// Something persistence left that containment can undo.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    User {
        user: String,
    },
    AccessKey {
        user: String,
        access_key_id: String,
    },
    LoginProfile {
        user: String,
    },
    UserPolicyAttachment {
        user: String,
        policy_arn: String,
    },
    UserInlinePolicy {
        user: String,
        policy_name: String,
    },
    GroupMembership {
        user: String,
        group: String,
    },
    Role {
        role: String,
    },
    RolePolicyAttachment {
        role: String,
        policy_arn: String,
    },
    RoleInlinePolicy {
        role: String,
        policy_name: String,
    },
    /// Sessions the key took of a role (`AssumeRole`).
    RoleSessions {
        role: String,
    },
    /// Sessions the key took of its user (`GetSessionToken`, …).
    UserSessions {
        user: String,
    },
}

impl Target {
    /// What it is, for a reader.
    pub fn describe(&self) -> String {
        match self {
            Target::User { user } => format!("user `{user}`"),
            Target::AccessKey {
                user,
                access_key_id,
            } => format!("access key `{access_key_id}` of user `{user}`"),
            Target::LoginProfile { user } => format!("console password of user `{user}`"),
            Target::UserPolicyAttachment { user, policy_arn } => {
                format!("policy `{policy_arn}` attached to user `{user}`")
            }
            Target::UserInlinePolicy { user, policy_name } => {
                format!("inline policy `{policy_name}` of user `{user}`")
            }
            Target::GroupMembership { user, group } => {
                format!("user `{user}` in group `{group}`")
            }
            Target::Role { role } => format!("role `{role}`"),
            Target::RolePolicyAttachment { role, policy_arn } => {
                format!("policy `{policy_arn}` attached to role `{role}`")
            }
            Target::RoleInlinePolicy { role, policy_name } => {
                format!("inline policy `{policy_name}` of role `{role}`")
            }
            Target::RoleSessions { role } => format!("sessions of role `{role}`"),
            Target::UserSessions { user } => format!("sessions of user `{user}`"),
        }
    }
}

/// One call worth a responder's eye: a write, or persistence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub time: String,
    pub region: String,
    pub event: String,
    pub class: Class,
    pub source_ip: String,
    pub user_agent: String,
    /// What it touched, for a reader.
    pub resource: String,
    /// AWS refused the call (`AccessDenied`, …): it changed nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What containment can undo, when the call succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// `CreateFunction20150331` → `CreateFunction`; other names as they are.
fn base_name(name: &str) -> &str {
    let Some(at) = name.find(|c: char| c.is_ascii_digit()) else {
        return name;
    };
    let tail = &name[at..];
    let digits = tail.chars().take_while(char::is_ascii_digit).count();
    let rest = &tail[digits..];
    let versioned = rest.is_empty()
        || rest
            .strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
    if digits >= 8 && versioned {
        &name[..at]
    } else {
        name
    }
}

/// Recon, a write, or persistence.
pub fn class_of(call: &Call) -> Class {
    let base = base_name(&call.name);
    if PERSISTENCE.contains(&base) {
        return Class::Persistence;
    }
    let read_only = call
        .read_only
        .or_else(|| call.detail.get("readOnly").and_then(Value::as_bool))
        .unwrap_or_else(|| READ_PREFIXES.iter().any(|p| base.starts_with(p)));
    if read_only {
        Class::Recon
    } else {
        Class::Write
    }
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The last segment of an ARN's resource path: a role's name.
fn name_of_arn(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// The user a call names, else the caller's own (IAM calls without
/// `UserName` act on the caller).
fn user_of(detail: &Value) -> Option<String> {
    text(detail, "/requestParameters/userName").or_else(|| caller_user(detail))
}

fn caller_user(detail: &Value) -> Option<String> {
    match text(detail, "/userIdentity/type").as_deref() {
        Some("IAMUser") | None => text(detail, "/userIdentity/userName"),
        _ => None,
    }
}

/// What containment can undo of a call that succeeded.
fn target_of(base: &str, d: &Value) -> Option<Target> {
    let req = |k: &str| text(d, &format!("/requestParameters/{k}"));
    Some(match base {
        "CreateUser" => Target::User {
            user: req("userName")?,
        },
        "CreateAccessKey" => Target::AccessKey {
            user: text(d, "/responseElements/accessKey/userName").or_else(|| user_of(d))?,
            access_key_id: text(d, "/responseElements/accessKey/accessKeyId")?,
        },
        "CreateLoginProfile" | "UpdateLoginProfile" => Target::LoginProfile { user: user_of(d)? },
        "AttachUserPolicy" => Target::UserPolicyAttachment {
            user: req("userName")?,
            policy_arn: req("policyArn")?,
        },
        "PutUserPolicy" => Target::UserInlinePolicy {
            user: req("userName")?,
            policy_name: req("policyName")?,
        },
        "AddUserToGroup" => Target::GroupMembership {
            user: req("userName")?,
            group: req("groupName")?,
        },
        "CreateRole" => Target::Role {
            role: req("roleName")?,
        },
        "AttachRolePolicy" => Target::RolePolicyAttachment {
            role: req("roleName")?,
            policy_arn: req("policyArn")?,
        },
        "PutRolePolicy" => Target::RoleInlinePolicy {
            role: req("roleName")?,
            policy_name: req("policyName")?,
        },
        "AssumeRole" => Target::RoleSessions {
            role: name_of_arn(&req("roleArn")?),
        },
        "GetSessionToken" | "GetFederationToken" => Target::UserSessions {
            user: caller_user(d)?,
        },
        _ => return None,
    })
}

/// What a call touched, for a reader: its target, else the names its
/// request gives, else the event's `Resources`.
fn resource_of(call: &Call, target: Option<&Target>) -> String {
    if let Some(t) = target {
        let mut shown = t.describe();
        // The key id of a session the call issued; never its token or secret.
        if let Some(key) = text(&call.detail, "/responseElements/credentials/accessKeyId") {
            shown.push_str(&format!(" (session key `{key}`)"));
        }
        return shown;
    }
    const NAMED: &[&str] = &[
        "userName",
        "roleName",
        "groupName",
        "policyArn",
        "policyName",
        "instanceProfileName",
        "functionName",
        "bucketName",
        "key",
        "keyName",
        "groupId",
        "secretId",
        "name",
    ];
    let mut parts: Vec<String> = NAMED
        .iter()
        .filter_map(|k| {
            text(&call.detail, &format!("/requestParameters/{k}")).map(|v| format!("{k} `{v}`"))
        })
        .collect();
    if let Some(items) = call
        .detail
        .pointer("/responseElements/instancesSet/items")
        .and_then(Value::as_array)
    {
        parts.extend(
            items
                .iter()
                .filter_map(|i| i.get("instanceId").and_then(Value::as_str))
                .map(|id| format!("instance `{id}`")),
        );
    }
    if parts.is_empty() {
        parts.extend(call.resources.iter().cloned());
    }
    parts.join(", ")
}

/// The call as a finding, or `None` for recon.
pub fn finding(call: &Call) -> Option<Finding> {
    let class = class_of(call);
    if class == Class::Recon {
        return None;
    }
    let d = &call.detail;
    let error = text(d, "/errorCode");
    let target = match class {
        Class::Persistence => target_of(base_name(&call.name), d),
        _ => None,
    };
    let resource = resource_of(call, target.as_ref());
    // A refused call made nothing to undo.
    let target = target.filter(|_| error.is_none());
    Some(Finding {
        time: crate::time::format_ts(
            &chrono::DateTime::from_timestamp(call.time, 0).unwrap_or_default(),
        ),
        region: text(d, "/awsRegion").unwrap_or_else(|| call.region.clone()),
        event: call.name.clone(),
        class,
        source_ip: text(d, "/sourceIPAddress").unwrap_or_default(),
        user_agent: text(d, "/userAgent").unwrap_or_default(),
        resource,
        error,
        target,
    })
}

/// Roles the key's calls show it holds sessions of: those it assumed, and
/// the role a temporary key (`ASIA…`) is itself a session of.
pub fn roles_of(call: &Call) -> Vec<String> {
    let d = &call.detail;
    let mut roles = Vec::new();
    if text(d, "/userIdentity/type").as_deref() == Some("AssumedRole")
        && let Some(role) =
            text(d, "/userIdentity/sessionContext/sessionIssuer/userName").or_else(|| {
                text(d, "/userIdentity/sessionContext/sessionIssuer/arn").map(|a| name_of_arn(&a))
            })
    {
        roles.push(role);
    }
    if base_name(&call.name) == "AssumeRole"
        && text(d, "/errorCode").is_none()
        && let Some(arn) = text(d, "/requestParameters/roleArn")
    {
        roles.push(name_of_arn(&arn));
    }
    roles
}

/// The persistence findings' targets, once each, in the order containment
/// undoes them: keys first (they work at once), then passwords, policies
/// and memberships, then the sessions of what the key created or took.
pub fn to_contain(findings: &[Finding]) -> Vec<Target> {
    let set: BTreeSet<Target> = findings
        .iter()
        .filter(|f| f.class == Class::Persistence)
        .filter_map(|f| f.target.clone())
        .collect();
    let rank = |t: &Target| match t {
        Target::AccessKey { .. } => 0,
        Target::LoginProfile { .. } => 1,
        Target::UserPolicyAttachment { .. }
        | Target::UserInlinePolicy { .. }
        | Target::RolePolicyAttachment { .. }
        | Target::RoleInlinePolicy { .. }
        | Target::GroupMembership { .. } => 2,
        Target::User { .. }
        | Target::Role { .. }
        | Target::RoleSessions { .. }
        | Target::UserSessions { .. } => 3,
    };
    let mut out: Vec<Target> = set.into_iter().collect();
    out.sort_by_key(rank);
    out
}

/// Persistence findings that containment cannot undo (a function, an
/// instance, a changed trust policy): left for a human, as a line each.
pub fn left_for_a_human(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.class == Class::Persistence && f.error.is_none() && f.target.is_none())
        .map(|f| {
            let what = if f.resource.is_empty() {
                String::new()
            } else {
                format!(": {}", f.resource)
            };
            format!("{} in {} at {}{what}", f.event, f.region, f.time)
        })
        .collect()
}

/// A finding as the step's output holds it.
pub fn to_value(f: &Finding) -> Value {
    serde_json::to_value(f).unwrap_or_else(|_| json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, detail: Value) -> Call {
        Call {
            name: name.into(),
            time: 1_700_000_000,
            region: "us-east-1".into(),
            read_only: None,
            resources: vec![],
            detail,
        }
    }

    #[test]
    fn calls_are_recon_writes_or_persistence() {
        assert_eq!(class_of(&call("ListBuckets", Value::Null)), Class::Recon);
        assert_eq!(class_of(&call("PutObject", Value::Null)), Class::Write);
        assert_eq!(
            class_of(&call("CreateAccessKey", Value::Null)),
            Class::Persistence
        );
        assert_eq!(
            class_of(&call("CreateFunction20150331", Value::Null)),
            Class::Persistence
        );
        assert_eq!(
            class_of(&call("UpdateFunctionCode20150331v2", Value::Null)),
            Class::Persistence
        );
        assert_eq!(class_of(&call("ListObjectsV2", Value::Null)), Class::Recon);
        let mut said = call("GetObject", Value::Null);
        said.read_only = Some(false);
        assert_eq!(class_of(&said), Class::Write, "the record's word wins");
    }

    #[test]
    fn a_created_key_is_a_target_and_a_refused_call_is_not() {
        let d = json!({
            "userIdentity": {"type": "IAMUser", "userName": "ci-bot"},
            "requestParameters": {"userName": "backdoor"},
            "responseElements": {"accessKey": {"userName": "backdoor", "accessKeyId": "AKIAB", "status": "Active"}},
            "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2"
        });
        let f = finding(&call("CreateAccessKey", d.clone())).unwrap();
        assert_eq!(
            f.target,
            Some(Target::AccessKey {
                user: "backdoor".into(),
                access_key_id: "AKIAB".into()
            })
        );
        assert_eq!(f.resource, "access key `AKIAB` of user `backdoor`");
        let mut refused = d;
        refused["errorCode"] = json!("AccessDenied");
        let f = finding(&call("CreateAccessKey", refused)).unwrap();
        assert_eq!((f.target, f.error.as_deref()), (None, Some("AccessDenied")));
        assert_eq!(f.resource, "access key `AKIAB` of user `backdoor`");
    }

    #[test]
    fn a_session_token_never_reaches_a_finding() {
        let d = json!({
            "requestParameters": {"roleArn": "arn:aws:iam::1:role/path/deploy", "roleSessionName": "x"},
            "responseElements": {"credentials": {"accessKeyId": "ASIAX", "sessionToken": "FQoSECRETTOKEN", "expiration": "…"}}
        });
        let c = call("AssumeRole", d);
        let f = finding(&c).unwrap();
        assert_eq!(
            f.resource,
            "sessions of role `deploy` (session key `ASIAX`)"
        );
        assert!(
            !serde_json::to_string(&f)
                .unwrap()
                .contains("FQoSECRETTOKEN")
        );
        assert_eq!(roles_of(&c), ["deploy"]);
    }

    #[test]
    fn a_temporary_key_names_the_role_it_is_a_session_of() {
        let d = json!({"userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "deploy"}}}});
        assert_eq!(roles_of(&call("ListBuckets", d)), ["deploy"]);
    }

    #[test]
    fn containment_undoes_keys_first_and_leaves_what_it_cannot() {
        let f = |name: &str, d: Value| finding(&call(name, d)).unwrap();
        let findings = vec![
            f(
                "CreateRole",
                json!({"requestParameters": {"roleName": "r"}}),
            ),
            f(
                "CreateLoginProfile",
                json!({"requestParameters": {"userName": "b"}}),
            ),
            f(
                "UpdateLoginProfile",
                json!({"requestParameters": {"userName": "b"}}),
            ),
            f(
                "CreateAccessKey",
                json!({"responseElements": {"accessKey": {"userName": "b", "accessKeyId": "AKIAB"}}}),
            ),
            f(
                "CreateFunction20150331",
                json!({"requestParameters": {"functionName": "miner"}}),
            ),
        ];
        let plan = to_contain(&findings);
        assert_eq!(
            plan,
            [
                Target::AccessKey {
                    user: "b".into(),
                    access_key_id: "AKIAB".into()
                },
                Target::LoginProfile { user: "b".into() },
                Target::Role { role: "r".into() },
            ]
        );
        assert_eq!(
            left_for_a_human(&findings),
            [
                "CreateFunction20150331 in us-east-1 at 2023-11-14T22:13:20.000Z: functionName `miner`"
            ]
        );
    }
}
