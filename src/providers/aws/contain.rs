//! `aws.contain_persistence`: undoing what the leaked key left behind.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use serde_json::{Value, json};

use super::sessions::cutoff;
use super::trail::{self, Finding, Target};
use super::{Aws, classify};
use crate::action;
use crate::providers::action::{Call, Perform};
use crate::providers::{ActionError, ErrorClass};

action! {
    /// Undo what the leaked key left: deactivate the access keys it created, delete the console passwords it set, detach or delete the policies it attached or put, take users out of the groups it added them to, and end the sessions of the users and roles it created or took. Each act is idempotent and listed
    "aws.contain_persistence" in Aws => ContainPersistence [idempotent] {
        /// the `findings` of an `aws.lookup_events` step
        findings: Value,
    } -> ContainPersistenceOutputs {
        /// what was done, in order: {target, did, result}; result is `done`, or `already gone` when there was nothing left to undo
        actions: Vec<Value>,
        /// persistence it cannot undo (functions, instances, trust policies, …), a line each, for a human
        left: Vec<String>,
        /// number of things undone
        contained: u64,
    }
}

/// Every target is tried, whatever happened to the one before; a failure
/// fails the step after the rest are done, naming what is not undone
/// (transient when a retry may help: every act is safe to repeat).
impl Perform for ContainPersistence {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<ContainPersistenceOutputs, ActionError> {
        let findings: Vec<Finding> = serde_json::from_value(self.findings).map_err(|e| {
            ActionError::permanent(format!(
                "`findings` is not a list of findings ({e}): give it `steps.<lookup>.outputs.findings`"
            ))
        })?;
        let plan = trail::to_contain(&findings);
        let before = cutoff(chrono::Utc::now());
        let mut actions = Vec::new();
        let mut failed: Vec<(String, ActionError)> = Vec::new();
        for target in &plan {
            match aws.undo(target, &before).await {
                Ok((did, result)) => actions.push(json!({
                    "target": target.describe(),
                    "did": did,
                    "result": result,
                })),
                Err(e) => failed.push((target.describe(), e)),
            }
        }
        if !failed.is_empty() {
            return Err(not_contained(actions.len(), plan.len(), failed));
        }
        Ok(ContainPersistenceOutputs {
            contained: actions.iter().filter(|a| a["result"] == "done").count() as u64,
            actions,
            left: trail::left_for_a_human(&findings),
        })
    }
}

/// One error for what could not be undone: transient if any of it may
/// succeed on a retry.
fn not_contained(done: usize, of: usize, failed: Vec<(String, ActionError)>) -> ActionError {
    let retry = failed.iter().any(|(_, e)| e.class.retryable());
    let list = failed
        .into_iter()
        .map(|(t, e)| format!("{t}: {}", e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let class = if retry {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    };
    ActionError::new(
        class,
        format!("contained {done} of {of}; not undone: {list}"),
    )
}

/// `done`, `already gone` when IAM says there is no such thing (a retry
/// after it was undone, or someone was quicker), else the error.
fn settle<T, E>(
    answer: Result<T, SdkError<E, HttpResponse>>,
    permission: &str,
) -> Result<&'static str, ActionError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match answer {
        Ok(_) => Ok("done"),
        Err(e) if e.code() == Some("NoSuchEntity") => Ok("already gone"),
        Err(e) => Err(classify(e, permission)),
    }
}

impl Aws {
    /// Undoes one target: (what was done, its result).
    async fn undo(
        &self,
        target: &Target,
        before: &str,
    ) -> Result<(&'static str, &'static str), ActionError> {
        let iam = &self.iam;
        Ok(match target {
            Target::AccessKey {
                user,
                access_key_id,
            } => {
                let r = iam
                    .update_access_key()
                    .user_name(user)
                    .access_key_id(access_key_id)
                    .status(StatusType::Inactive)
                    .send()
                    .await;
                ("deactivated it", settle(r, "iam:UpdateAccessKey")?)
            }
            Target::LoginProfile { user } => {
                let r = iam.delete_login_profile().user_name(user).send().await;
                ("deleted it", settle(r, "iam:DeleteLoginProfile")?)
            }
            Target::UserPolicyAttachment { user, policy_arn } => {
                let r = iam
                    .detach_user_policy()
                    .user_name(user)
                    .policy_arn(policy_arn)
                    .send()
                    .await;
                ("detached it", settle(r, "iam:DetachUserPolicy")?)
            }
            Target::UserInlinePolicy { user, policy_name } => {
                let r = iam
                    .delete_user_policy()
                    .user_name(user)
                    .policy_name(policy_name)
                    .send()
                    .await;
                ("deleted it", settle(r, "iam:DeleteUserPolicy")?)
            }
            Target::GroupMembership { user, group } => {
                let r = iam
                    .remove_user_from_group()
                    .user_name(user)
                    .group_name(group)
                    .send()
                    .await;
                (
                    "removed the user from the group",
                    settle(r, "iam:RemoveUserFromGroup")?,
                )
            }
            Target::RolePolicyAttachment { role, policy_arn } => {
                let r = iam
                    .detach_role_policy()
                    .role_name(role)
                    .policy_arn(policy_arn)
                    .send()
                    .await;
                ("detached it", settle(r, "iam:DetachRolePolicy")?)
            }
            Target::RoleInlinePolicy { role, policy_name } => {
                let r = iam
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(policy_name)
                    .send()
                    .await;
                ("deleted it", settle(r, "iam:DeleteRolePolicy")?)
            }
            Target::User { user } | Target::UserSessions { user } => {
                let r = self.revoke_user_sessions(user, before).await;
                ("ended its sessions", settle(r, "iam:PutUserPolicy")?)
            }
            Target::Role { role } | Target::RoleSessions { role } => {
                let r = self.revoke_role_sessions(role, before).await;
                ("ended its sessions", settle(r, "iam:PutRolePolicy")?)
            }
        })
    }
}
