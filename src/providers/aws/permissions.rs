//! `aws.describe_permissions`: what the leaked key could do, read from its
//! user's policies.

use serde_json::Value;

use super::policy::{self, Statement};
use super::{Aws, classify};
use crate::action;
use crate::providers::ActionError;
use crate::providers::action::{Call, Perform};

action! {
    /// What the leaked key could do: its user's inline, attached and group policies as statements, flagged for admin, IAM writes, allows on every resource and data reads
    "aws.describe_permissions" in Aws => DescribePermissions [idempotent] {
        /// IAM user that owns the key
        user: String,
    } -> DescribePermissionsOutputs {
        /// the policies read, each by where it comes from
        policies: Vec<String>,
        /// every statement: {source, effect, actions, resources, not_action?, conditional?}
        statements: Vec<Value>,
        /// what the allows expose, a line each: admin, IAM writes, every resource, data reads
        flags: Vec<String>,
        /// some statement allows every action on every resource
        admin: bool,
    }
}

impl Perform for DescribePermissions {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<DescribePermissionsOutputs, ActionError> {
        let mut read = Read::default();
        aws.policies(&self.user, &mut read).await?;
        let flags = policy::flags(&read.statements);
        Ok(DescribePermissionsOutputs {
            admin: flags.iter().any(|f| f.starts_with("admin:")),
            flags,
            policies: read.policies,
            statements: read
                .statements
                .iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect(),
        })
    }
}

/// The policies read so far, and their statements.
#[derive(Default)]
pub(super) struct Read {
    policies: Vec<String>,
    pub(super) statements: Vec<Statement>,
}

impl Read {
    fn add(&mut self, source: String, document: &str) {
        self.statements
            .extend(policy::statements(&source, document));
        self.policies.push(source);
    }
}

impl Aws {
    /// The user's inline and attached policies, and those of each group it
    /// is in.
    pub(super) async fn policies(&self, user: &str, read: &mut Read) -> Result<(), ActionError> {
        let names = all_pages!(
            self.iam.list_user_policies().user_name(user),
            "iam:ListUserPolicies"
        )?;
        for name in names {
            let doc = self
                .iam
                .get_user_policy()
                .user_name(user)
                .policy_name(&name)
                .send()
                .await
                .map_err(|e| classify(e, "iam:GetUserPolicy"))?;
            read.add(
                format!("inline policy `{name}` of user `{user}`"),
                doc.policy_document(),
            );
        }
        let attached = all_pages!(
            self.iam.list_attached_user_policies().user_name(user),
            "iam:ListAttachedUserPolicies"
        )?;
        for p in attached {
            let arn = p.policy_arn().unwrap_or_default();
            let doc = self.managed_policy(arn).await?;
            read.add(format!("policy `{arn}` attached to user `{user}`"), &doc);
        }
        let groups = all_pages!(
            self.iam.list_groups_for_user().user_name(user),
            "iam:ListGroupsForUser"
        )?;
        for g in groups {
            let group = g.group_name();
            let names = all_pages!(
                self.iam.list_group_policies().group_name(group),
                "iam:ListGroupPolicies"
            )?;
            for name in names {
                let doc = self
                    .iam
                    .get_group_policy()
                    .group_name(group)
                    .policy_name(&name)
                    .send()
                    .await
                    .map_err(|e| classify(e, "iam:GetGroupPolicy"))?;
                read.add(
                    format!("inline policy `{name}` of group `{group}` (user `{user}` is in it)"),
                    doc.policy_document(),
                );
            }
            let attached = all_pages!(
                self.iam.list_attached_group_policies().group_name(group),
                "iam:ListAttachedGroupPolicies"
            )?;
            for p in attached {
                let arn = p.policy_arn().unwrap_or_default();
                let doc = self.managed_policy(arn).await?;
                read.add(
                    format!("policy `{arn}` attached to group `{group}` (user `{user}` is in it)"),
                    &doc,
                );
            }
        }
        Ok(())
    }

    /// A managed policy's default version's document.
    async fn managed_policy(&self, arn: &str) -> Result<String, ActionError> {
        let got = self
            .iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| classify(e, "iam:GetPolicy"))?;
        let version = got
            .policy()
            .and_then(|p| p.default_version_id())
            .unwrap_or("v1")
            .to_string();
        let out = self
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .map_err(|e| classify(e, "iam:GetPolicyVersion"))?;
        Ok(out
            .policy_version()
            .and_then(|v| v.document())
            .unwrap_or_default()
            .to_string())
    }
}
