//! Ending the sessions a leaked key made (`aws.revoke_older_sessions`), and
//! proving the key itself dead (`aws.verify_revoked`).

use std::collections::BTreeSet;

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::put_role_policy::{PutRolePolicyError, PutRolePolicyOutput};
use aws_sdk_iam::operation::put_user_policy::{PutUserPolicyError, PutUserPolicyOutput};
use aws_sdk_sts::config::Credentials;
use chrono::{DateTime, SubsecRound, Utc};

use super::policy::{self, REVOKE_POLICY_NAME};
use super::{Aws, classify};
use crate::action;
use crate::providers::ActionError;
use crate::providers::action::{Call, Perform};

action! {
    /// Refuse every call of the sessions issued before now, with an inline policy (`quench-revoke-older-sessions`) on the user and on each role: ends what the leaked key obtained with GetSessionToken, GetFederationToken or AssumeRole
    "aws.revoke_older_sessions" in Aws => RevokeOlderSessions [idempotent] {
        /// IAM user whose sessions end (its long-term keys are untouched)
        user: Option<String>,
        /// roles whose sessions end too, by name or ARN: every session of the role, legitimate ones included
        roles: Option<Vec<String>>,
    } -> RevokeOlderSessionsOutputs {
        /// sessions issued before this time (RFC 3339) are refused
        revoked_before: String,
        /// the inline policy's name
        policy: String,
        /// users it is on
        users: Vec<String>,
        /// roles it is on
        roles: Vec<String>,
    }
}

/// Puts the policy on the user, then on each role. Putting it again
/// replaces it, with a later time: a retry or a second step only moves the
/// cut-off forward.
impl Perform for RevokeOlderSessions {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<RevokeOlderSessionsOutputs, ActionError> {
        let users: Vec<String> = self.user.into_iter().filter(|u| !u.is_empty()).collect();
        let roles: BTreeSet<String> = self
            .roles
            .unwrap_or_default()
            .iter()
            .map(|r| role_name(r))
            .filter(|r| !r.is_empty())
            .collect();
        if users.is_empty() && roles.is_empty() {
            return Err(ActionError::permanent(
                "`aws.revoke_older_sessions` needs a `user` or some `roles`",
            ));
        }
        let before = cutoff(Utc::now());
        for user in &users {
            let r = aws.revoke_user_sessions(user, &before).await;
            r.map_err(|e| classify(e, "iam:PutUserPolicy"))?;
        }
        for role in &roles {
            let r = aws.revoke_role_sessions(role, &before).await;
            r.map_err(|e| classify(e, "iam:PutRolePolicy"))?;
        }
        Ok(RevokeOlderSessionsOutputs {
            revoked_before: before,
            policy: REVOKE_POLICY_NAME.into(),
            users,
            roles: roles.into_iter().collect(),
        })
    }
}

/// The cut-off: the next whole second after `now`. `aws:TokenIssueTime` is
/// compared to the second, so a session issued earlier in this second is
/// refused too.
pub(super) fn cutoff(now: DateTime<Utc>) -> String {
    let next = now.trunc_subsecs(0) + chrono::Duration::seconds(1);
    next.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `arn:aws:iam::1:role/path/deploy` → `deploy`; a name as it is.
fn role_name(role: &str) -> String {
    let role = role.trim();
    if role.starts_with("arn:") {
        role.rsplit('/').next().unwrap_or(role).to_string()
    } else {
        role.to_string()
    }
}

impl Aws {
    /// Puts the session-ending policy with cut-off `before` on `user`.
    pub(super) async fn revoke_user_sessions(
        &self,
        user: &str,
        before: &str,
    ) -> Result<PutUserPolicyOutput, SdkError<PutUserPolicyError, HttpResponse>> {
        self.iam
            .put_user_policy()
            .user_name(user)
            .policy_name(REVOKE_POLICY_NAME)
            .policy_document(policy::revoke_older_sessions(before))
            .send()
            .await
    }

    /// Puts the session-ending policy with cut-off `before` on `role`.
    pub(super) async fn revoke_role_sessions(
        &self,
        role: &str,
        before: &str,
    ) -> Result<PutRolePolicyOutput, SdkError<PutRolePolicyError, HttpResponse>> {
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(REVOKE_POLICY_NAME)
            .policy_document(policy::revoke_older_sessions(before))
            .send()
            .await
    }
}

action! {
    /// Prove the leaked key dead: STS GetCallerIdentity signed with it must be refused as InvalidClientTokenId. A key still accepted fails the attempt, and the step's retries poll through IAM's eventual consistency
    "aws.verify_revoked" in Aws => VerifyRevoked [idempotent, proves_dead] {
        /// the leaked key id
        access_key_id: String,
        /// the leaked secret access key: only a request signed with it can prove anything
        secret_access_key: String [secret],
        /// an ASIA… key's session token (without it AWS refuses any temporary key, which proves nothing)
        session_token: Option<String> [secret],
    } -> VerifyRevokedOutputs {
        /// the refusal that proves it: InvalidClientTokenId (or ExpiredToken for a temporary key)
        refused_with: String,
    }
}

/// One GetCallerIdentity signed with the leaked key, per attempt. It is
/// the engine's retries that poll, not a loop in here: each attempt is
/// journaled, so the document shows how long AWS went on accepting the
/// key. GetCallerIdentity needs no permission and no policy can deny it,
/// so only the key's death refuses it.
impl Perform for VerifyRevoked {
    async fn perform(self, aws: &Aws, _: Call<'_>) -> Result<VerifyRevokedOutputs, ActionError> {
        let id = self.access_key_id;
        let temporary = id.starts_with("ASIA");
        let token = self.session_token.filter(|t| !t.is_empty());
        if temporary && token.is_none() {
            return Err(ActionError::permanent(format!(
                "`{id}` is a temporary key: AWS refuses one without its session token whatever its state, so a refusal would prove nothing (give `session_token`)"
            )));
        }
        let creds = Credentials::new(
            &id,
            self.secret_access_key,
            token,
            None,
            "quench-leaked-key",
        );
        let e = match aws.caller_identity(creds).await {
            Ok(out) => {
                return Err(ActionError::transient(format!(
                    "AWS still accepts the leaked key `{id}` (GetCallerIdentity answered as `{}`): it is not proven dead",
                    out.arn().unwrap_or("an unnamed identity")
                )));
            }
            Err(e) => e,
        };
        match e.code() {
            Some(code @ "InvalidClientTokenId") => Ok(VerifyRevokedOutputs {
                refused_with: code.into(),
            }),
            Some(code @ "ExpiredToken") if temporary => Ok(VerifyRevokedOutputs {
                refused_with: code.into(),
            }),
            Some("SignatureDoesNotMatch") => Err(ActionError::permanent(format!(
                "the secret access key given is not the one of `{id}` (AWS answered SignatureDoesNotMatch), so the key's death is unproven"
            ))),
            _ => Err(classify(e, "sts:GetCallerIdentity")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_the_next_whole_second() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T23:10:01.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(cutoff(now), "2026-11-22T23:10:02Z");
    }

    #[test]
    fn roles_are_named_by_name_or_arn() {
        assert_eq!(role_name("arn:aws:iam::1:role/ci/deploy"), "deploy");
        assert_eq!(role_name(" deploy "), "deploy");
    }
}
