//! `aws.lookup_events`: what the leaked key did, in every region searched.

use std::collections::BTreeSet;

use aws_sdk_cloudtrail::primitives::DateTime;
use aws_sdk_cloudtrail::types::{Event, LookupAttribute, LookupAttributeKey};
use aws_sdk_iam::error::ProvideErrorMetadata;
use serde_json::Value;

use super::trail::{self, Call, Class, Finding};
use super::{Aws, DEFAULT_LOOKBACK, classify};
use crate::action;
use crate::providers::ActionError;
use crate::providers::action::{Call as Attempt, Perform};

/// Most write findings an output keeps (persistence is always kept whole):
/// a busy key's 90 days of `PutObject` would swamp the journal and the
/// document, and their count is kept.
const MAX_WRITE_FINDINGS: usize = 200;

/// Error codes a region answers with when the account has not enabled it
/// (an opt-in region): nothing can have happened there.
const REGION_NOT_ENABLED: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "OptInRequired",
];

action! {
    /// CloudTrail events made with an access key, in every configured region: each call classed as recon, a write or persistence, with what it touched
    "aws.lookup_events" in Aws => LookupEvents [idempotent] {
        /// the key id
        access_key_id: String,
        /// how far back (e.g. 7d), default 90d
        since: Option<String>,
    } -> LookupEventsOutputs {
        /// number of events
        events: u64,
        /// distinct API calls
        event_names: Vec<String>,
        /// distinct source IP addresses
        source_ips: Vec<String>,
        /// distinct user agents
        user_agents: Vec<String>,
        /// first event time
        first_seen: String,
        /// last event time
        last_seen: String,
        /// one line: source IPs, first and last use
        summary: String,
        /// regions searched (`[providers.aws] regions`)
        regions: Vec<String>,
        /// regions not searched, each with why (not enabled in the account)
        regions_not_searched: Vec<String>,
        /// number of read-only calls (recon)
        recon: u64,
        /// number of calls that changed something
        writes: u64,
        /// number of calls that may leave a way back in (new users, keys, passwords, policies, roles, functions, instances, sessions)
        persistence: u64,
        /// the writes and persistence, oldest first: {time, region, event, class, source_ip, user_agent, resource, error?, target?}
        findings: Vec<Value>,
        /// writes left out of `findings` past its limit of 200
        findings_left_out: u64,
        /// number of findings that `aws.contain_persistence` can undo
        to_contain: u64,
        /// roles the key holds sessions of: those it assumed, and the one a temporary key belongs to
        assumed_roles: Vec<String>,
        /// number of `assumed_roles`
        assumed_role_count: u64,
    }
}

/// Every CloudTrail event made with the key in the window, all pages, in
/// every region at once. A region the account has not enabled is listed
/// as not searched; any other refusal fails the step, since a region
/// unsearched is evidence missing.
impl Perform for LookupEvents {
    async fn perform(self, aws: &Aws, _: Attempt<'_>) -> Result<LookupEventsOutputs, ActionError> {
        let lookback = match self.since.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_LOOKBACK,
            Some(since) => crate::time::parse_duration(since).map_err(ActionError::permanent)?,
        };
        let end = chrono::Utc::now();
        let start = end - chrono::Duration::from_std(lookback).unwrap_or_default();
        let window = (start.timestamp(), end.timestamp());
        let mut searches = tokio::task::JoinSet::new();
        for region in &aws.regions {
            let client = aws.cloudtrail_in(region);
            let (region, key) = (region.clone(), self.access_key_id.clone());
            searches.spawn(async move {
                let found = search(&client, &region, &key, window).await;
                (region, found)
            });
        }
        let mut seen = Seen::default();
        while let Some(joined) = searches.join_next().await {
            let (region, found) = joined
                .map_err(|e| ActionError::transient(format!("a region's search stopped: {e}")))?;
            match found {
                Ok(calls) => {
                    seen.regions.insert(region);
                    calls.iter().for_each(|c| seen.add(c));
                }
                Err(Search::NotEnabled(why)) => {
                    seen.not_searched.insert(format!("{region} ({why})"));
                }
                Err(Search::Failed(e)) => {
                    let call = "CloudTrail LookupEvents";
                    let message = e.message.replacen(call, &format!("{call} in {region}"), 1);
                    return Err(ActionError { message, ..e });
                }
            }
        }
        if seen.regions.is_empty() {
            return Err(ActionError::permanent(format!(
                "CloudTrail LookupEvents: no region could be searched: {}",
                seen.not_searched.into_iter().collect::<Vec<_>>().join("; ")
            )));
        }
        Ok(seen.outputs())
    }
}

enum Search {
    NotEnabled(String),
    Failed(ActionError),
}

/// One region's events made with `key` in `window` (epoch seconds).
async fn search(
    client: &aws_sdk_cloudtrail::Client,
    region: &str,
    key: &str,
    window: (i64, i64),
) -> Result<Vec<Call>, Search> {
    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::AccessKeyId)
        .attribute_value(key)
        .build()
        .map_err(|e| {
            Search::Failed(ActionError::permanent(format!(
                "failed to build the lookup: {e}"
            )))
        })?;
    let events = client
        .lookup_events()
        .lookup_attributes(attribute)
        .start_time(DateTime::from_secs(window.0))
        .end_time(DateTime::from_secs(window.1))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await;
    match events {
        Ok(events) => Ok(events.iter().map(|e| call_of(e, region)).collect()),
        Err(e) => match e.code().filter(|c| REGION_NOT_ENABLED.contains(c)) {
            Some(code) => Err(Search::NotEnabled(format!("not enabled: {code}"))),
            None => Err(Search::Failed(classify(e, "cloudtrail:LookupEvents"))),
        },
    }
}

/// An SDK event as [`trail`] reads it.
fn call_of(e: &Event, region: &str) -> Call {
    Call {
        name: e.event_name().unwrap_or_default().to_string(),
        time: e.event_time().map(|t| t.secs()).unwrap_or_default(),
        region: region.to_string(),
        read_only: e.read_only().map(|r| r.eq_ignore_ascii_case("true")),
        resources: e
            .resources()
            .iter()
            .map(|r| {
                format!(
                    "{} `{}`",
                    r.resource_type().unwrap_or("resource"),
                    r.resource_name().unwrap_or_default()
                )
            })
            .collect(),
        detail: e
            .cloud_trail_event()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null),
    }
}

/// What the events read so far add up to.
#[derive(Default)]
struct Seen {
    events: u64,
    names: BTreeSet<String>,
    ips: BTreeSet<String>,
    agents: BTreeSet<String>,
    first: Option<i64>,
    last: Option<i64>,
    regions: BTreeSet<String>,
    not_searched: BTreeSet<String>,
    classes: [u64; 3],
    findings: Vec<(i64, Finding)>,
    roles: BTreeSet<String>,
}

impl Seen {
    fn add(&mut self, c: &Call) {
        self.events += 1;
        if !c.name.is_empty() {
            self.names.insert(c.name.clone());
        }
        if c.time != 0 {
            self.first = Some(self.first.map_or(c.time, |f| f.min(c.time)));
            self.last = Some(self.last.map_or(c.time, |l| l.max(c.time)));
        }
        let text = |k: &str| c.detail.get(k).and_then(Value::as_str).map(str::to_string);
        self.ips.extend(text("sourceIPAddress"));
        self.agents.extend(text("userAgent"));
        self.roles.extend(trail::roles_of(c));
        self.classes[trail::class_of(c) as usize] += 1;
        if let Some(f) = trail::finding(c) {
            self.findings.push((c.time, f));
        }
    }

    fn outputs(mut self) -> LookupEventsOutputs {
        let when = |secs: Option<i64>| {
            secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|t| crate::time::format_ts(&t))
                .unwrap_or_default()
        };
        self.findings.sort_by_key(|(t, _)| *t);
        let mut writes_kept = 0;
        let mut left_out = 0;
        let findings: Vec<Finding> = self
            .findings
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| {
                let keep = f.class == Class::Persistence || writes_kept < MAX_WRITE_FINDINGS;
                if f.class == Class::Write {
                    if keep {
                        writes_kept += 1;
                    } else {
                        left_out += 1;
                    }
                }
                keep
            })
            .collect();
        let (first, last) = (when(self.first), when(self.last));
        LookupEventsOutputs {
            events: self.events,
            summary: summary(self.events, &self.ips, &first, &last),
            event_names: self.names.into_iter().collect(),
            source_ips: self.ips.into_iter().collect(),
            user_agents: self.agents.into_iter().collect(),
            first_seen: first,
            last_seen: last,
            regions: self.regions.into_iter().collect(),
            regions_not_searched: self.not_searched.into_iter().collect(),
            recon: self.classes[Class::Recon as usize],
            writes: self.classes[Class::Write as usize],
            persistence: self.classes[Class::Persistence as usize],
            to_contain: trail::to_contain(&findings).len() as u64,
            findings: findings.iter().map(trail::to_value).collect(),
            findings_left_out: left_out,
            assumed_role_count: self.roles.len() as u64,
            assumed_roles: self.roles.into_iter().collect(),
        }
    }
}

/// `5 calls from 2 source IPs (198.51.100.23, 203.0.113.7), first …, last …`.
fn summary(events: u64, ips: &BTreeSet<String>, first: &str, last: &str) -> String {
    if events == 0 {
        return "no calls made with the key in the window searched".into();
    }
    let plural = |n: usize, one: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("{one}s")
        }
    };
    let from = match ips.len() {
        0 => String::new(),
        n => format!(
            " from {n} {} ({})",
            plural(n, "source IP"),
            ips.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "{events} {}{from}; first used {first}, last used {last}",
        plural(events as usize, "call")
    )
}
