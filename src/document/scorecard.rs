//! A drill's scorecard: how soon its people acted (each approval, each
//! answer) against the runbook's targets, how long they took to deal with
//! each inject, and how this drill compares with the earlier drills of the
//! same runbook.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::journal::{Event, Mode, Record, pace_name};
use crate::time::{human_ms, ms_between};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Scorecard {
    /// `real`, or `20x`.
    pub pace: String,
    /// When it started: `2026-12-07 23:25`.
    pub date: String,
    /// The first thing anyone did: the first acknowledgement.
    pub first_action: Option<HumanAction>,
    /// Each approval, refusal and answer, in order.
    pub actions: Vec<HumanAction>,
    pub injects: Vec<InjectScore>,
    pub time_to_revoke_ms: Option<u64>,
    pub time_to_revoke: Option<String>,
    /// The earlier drills of the runbook and this one, oldest first:
    /// time to revoke and to each human action.
    pub history: History,
}

/// One thing a person did, timed from the drill's start.
#[derive(Debug, Clone, Serialize)]
pub struct HumanAction {
    /// `approval`, `refusal` or `answer`.
    pub kind: String,
    pub step: String,
    /// `approval of \`revoke\``: the column it heads in the comparison.
    pub what: String,
    pub by: String,
    pub at_ms: u64,
    pub at: String,
    /// The runbook's target for it, if it sets one, and whether it was met.
    pub target: Option<String>,
    pub met: Option<bool>,
}

/// An inject, and how long the team took to deal with it: from when it
/// fired to the next thing anyone did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InjectScore {
    pub name: String,
    pub message: String,
    pub by: String,
    pub at_ms: u64,
    pub at: String,
    pub dealt_in_ms: Option<u64>,
    pub dealt_in: Option<String>,
    pub ended_at: Option<String>,
}

/// The comparison with the earlier drills of the same runbook.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// The human actions compared, as this drill did them.
    pub columns: Vec<String>,
    pub rows: Vec<HistoryRow>,
    /// The time to revoke across the rows, as an SVG polyline's points
    /// (120 × 24); none with fewer than two.
    pub sparkline: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: String,
    pub date: String,
    pub time_to_revoke: String,
    pub time_to_revoke_ms: Option<u64>,
    /// One per column: the time to that action, or `—`.
    pub cells: Vec<String>,
    /// This drill's own row.
    pub current: bool,
}

impl Scorecard {
    /// The scorecard of a drill's records; none for any other incident.
    pub fn from_records(records: &[Record]) -> Option<Scorecard> {
        let Some(Event::IncidentStarted {
            mode: Mode::Drill,
            started_at,
            ..
        }) = records.first().map(|r| &r.event)
        else {
            return None;
        };
        let start = *started_at;
        let mut card = Scorecard {
            date: start.format("%Y-%m-%d %H:%M").to_string(),
            ..Scorecard::default()
        };
        let (mut approve_within, mut answer_within) = (None, None);
        for r in records {
            let at_ms = ms_between(start, r.ts);
            match &r.event {
                Event::DrillStarted {
                    pace,
                    approve_within_ms,
                    answer_within_ms,
                    ..
                } => {
                    card.pace = pace_name(*pace);
                    (approve_within, answer_within) = (*approve_within_ms, *answer_within_ms);
                }
                Event::InjectFired {
                    name, message, by, ..
                } => card.injects.push(InjectScore {
                    name: name.clone(),
                    message: message.clone(),
                    by: by.clone(),
                    at_ms,
                    at: human_ms(at_ms),
                    ..InjectScore::default()
                }),
                Event::InjectEnded { name } => {
                    if let Some(i) = card.injects.iter_mut().rev().find(|i| i.name == *name) {
                        i.ended_at = Some(human_ms(at_ms));
                    }
                }
                Event::IncidentFinished(crate::journal::Finished {
                    time_to_revoke_ms, ..
                }) => {
                    card.time_to_revoke_ms = *time_to_revoke_ms;
                    card.time_to_revoke = time_to_revoke_ms.map(human_ms);
                }
                event => {
                    let targets = (approve_within, answer_within);
                    if let Some(a) = human_action(event, at_ms, targets) {
                        card.actions.push(a);
                    }
                }
            }
        }
        card.first_action = card.actions.first().cloned();
        for inject in &mut card.injects {
            let next = card.actions.iter().find(|a| a.at_ms >= inject.at_ms);
            inject.dealt_in_ms = next.map(|a| a.at_ms - inject.at_ms);
            inject.dealt_in = inject.dealt_in_ms.map(human_ms);
        }
        Some(card)
    }

    /// Compares this drill (`id`) with `earlier` drills of the same
    /// runbook, oldest first.
    pub fn compare(&mut self, id: &str, earlier: &[(String, Scorecard)]) {
        let columns: Vec<String> = self.actions.iter().map(|a| a.what.clone()).collect();
        let row = |id: &str, card: &Scorecard, current: bool| HistoryRow {
            id: id.to_string(),
            date: card.date.clone(),
            time_to_revoke: card.time_to_revoke.clone().unwrap_or_else(|| "—".into()),
            time_to_revoke_ms: card.time_to_revoke_ms,
            cells: columns
                .iter()
                .map(|c| {
                    let done = card.actions.iter().find(|a| a.what == *c);
                    done.map_or_else(|| "—".into(), |a| a.at.clone())
                })
                .collect(),
            current,
        };
        let mut rows: Vec<HistoryRow> = earlier
            .iter()
            .map(|(id, card)| row(id, card, false))
            .collect();
        rows.push(row(id, self, true));
        let revokes: Vec<u64> = rows.iter().filter_map(|r| r.time_to_revoke_ms).collect();
        self.history = History {
            sparkline: sparkline(&revokes),
            columns,
            rows,
        };
    }
}

/// A person's approval, refusal or answer, against its target.
fn human_action(
    event: &Event,
    at_ms: u64,
    targets: (Option<u64>, Option<u64>),
) -> Option<HumanAction> {
    let (kind, noun, step, by, target) = match event {
        Event::ApprovalGranted { step, by } => ("approval", "approval of", step, by, targets.0),
        Event::ApprovalDenied { step, by, .. } if by != "nobody" => {
            ("refusal", "approval of", step, by, targets.0)
        }
        Event::TaskAnswered { step, by, .. } => ("answer", "answer to", step, by, targets.1),
        _ => return None,
    };
    Some(HumanAction {
        kind: kind.into(),
        step: step.clone(),
        what: format!("{noun} `{step}`"),
        by: by.clone(),
        at_ms,
        at: human_ms(at_ms),
        target: target.map(human_ms),
        met: target.map(|t| at_ms <= t),
    })
}

/// The points of a 120 × 24 polyline through `values`, the largest at the
/// top; none with fewer than two.
fn sparkline(values: &[u64]) -> Option<String> {
    if values.len() < 2 {
        return None;
    }
    let max = values.iter().copied().max().unwrap_or(1).max(1) as f64;
    let step = 120.0 / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                22.0 - 20.0 * *v as f64 / max
            )
        })
        .collect();
    Some(points.join(" "))
}

/// The drills of `runbook` in the store directory `root` that started
/// before `before`, oldest first, each with its id. Only each journal's
/// first line is read for those of other runbooks.
pub fn earlier_drills(
    root: &Path,
    runbook: &str,
    before: DateTime<Utc>,
) -> Vec<(String, Scorecard)> {
    let mut found: Vec<(DateTime<Utc>, String, Scorecard)> = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let path = entry.path().join("journal.jsonl");
        let Some(first) = first_record(&path) else {
            continue;
        };
        let Event::IncidentStarted {
            incident,
            runbook: rb,
            mode: Mode::Drill,
            started_at,
            ..
        } = &first.event
        else {
            continue;
        };
        if rb != runbook || *started_at >= before {
            continue;
        }
        let Ok(records) = crate::journal::read(&path) else {
            continue;
        };
        if let Some(card) = Scorecard::from_records(&records) {
            found.push((*started_at, incident.clone(), card));
        }
    }
    found.sort_by_key(|(t, _, _)| *t);
    found.into_iter().map(|(_, id, c)| (id, c)).collect()
}

/// A journal's first record, read without the rest.
fn first_record(path: &Path) -> Option<Record> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Outcome;

    const T0: i64 = 1_796_000_000_000;

    /// A drill's journal on a scripted timeline: an inject at 45 s, the
    /// approval at 1m 30s, the revocation at 1m 50s, the answer at 11m.
    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(T0).unwrap()
    }

    fn scripted(time_to_revoke_ms: u64) -> Vec<Record> {
        let events = [
            (0, crate::document::tests::started(Mode::Drill, t0(), t0())),
            (
                0,
                Event::DrillStarted {
                    pace: 20,
                    channel: None,
                    approve_within_ms: Some(120_000),
                    answer_within_ms: Some(600_000),
                },
            ),
            (
                45_000,
                Event::InjectFired {
                    name: "trail-down".into(),
                    message: "CloudTrail is unavailable".into(),
                    by: "scenario".into(),
                    linked: None,
                },
            ),
            (
                90_000,
                Event::ApprovalGranted {
                    step: "revoke".into(),
                    by: "slack:U1".into(),
                },
            ),
            (
                100_000,
                Event::InjectEnded {
                    name: "trail-down".into(),
                },
            ),
            (
                660_000,
                Event::TaskAnswered {
                    step: "exposure".into(),
                    prompt: "how?".into(),
                    answer: "a gist".into(),
                    by: "slack:U2".into(),
                    task: Default::default(),
                },
            ),
            (
                661_000,
                Event::IncidentFinished(crate::journal::Finished {
                    outcome: Outcome::Succeeded,
                    revoked_at: None,
                    time_to_revoke_ms: Some(time_to_revoke_ms),
                    slo_met: true,
                    credential_dead_at: None,
                    time_to_dead_ms: None,
                }),
            ),
        ];
        (1..)
            .zip(events)
            .map(|(seq, (after_ms, event))| Record {
                v: 1,
                seq,
                ts: t0() + chrono::Duration::milliseconds(after_ms),
                event,
            })
            .collect()
    }

    #[test]
    fn the_scorecard_times_each_human_action_and_inject_from_the_start() {
        let card = Scorecard::from_records(&scripted(110_000)).unwrap();
        assert_eq!(card.pace, "20x");
        let first = card.first_action.as_ref().unwrap();
        assert_eq!(
            (first.what.as_str(), first.at_ms),
            ("approval of `revoke`", 90_000)
        );
        let got: Vec<(&str, u64, Option<&str>, Option<bool>)> = card
            .actions
            .iter()
            .map(|a| (a.kind.as_str(), a.at_ms, a.target.as_deref(), a.met))
            .collect();
        assert_eq!(
            got,
            [
                ("approval", 90_000, Some("2m 00s"), Some(true)),
                ("answer", 660_000, Some("10m 00s"), Some(false)),
            ]
        );
        let inject = &card.injects[0];
        assert_eq!(inject.at_ms, 45_000);
        assert_eq!(inject.dealt_in_ms, Some(45_000));
        assert_eq!(inject.ended_at.as_deref(), Some("1m 40s"));
        assert_eq!(card.time_to_revoke.as_deref(), Some("1m 50s"));
    }

    #[test]
    fn the_document_shows_the_scorecard_as_scripted() {
        let mut report = crate::document::Report::from_records(&scripted(110_000)).unwrap();
        let earlier = Scorecard::from_records(&scripted(220_000)).unwrap();
        report
            .scorecard
            .as_mut()
            .unwrap()
            .compare("INC-1", &[("INC-0".into(), earlier)]);
        let md = crate::document::Templates::builtin().markdown(&report);
        assert!(md.starts_with("> **DRILL**"), "{md}");
        let start = md.find("## Drill scorecard").expect("a scorecard");
        let end = start
            + md[start..]
                .find("\n## Resolution")
                .unwrap_or(md.len() - start);
        assert_eq!(
            &md[start..end],
            "## Drill scorecard

Played at 20x pace. First acknowledgement: **1m 30s** after the start (approval of `revoke`, by slack:U1). Revoked **1m 50s** after detection.

| Human action | By | After the start | Target | |
|---|---|---|---|---|
| approval of `revoke` | slack:U1 | 1m 30s | 2m 00s | met |
| answer to `exposure` | slack:U2 | 11m 00s | 10m 00s | **missed** |

| Inject | Fired | By | Dealt with in | Ended |
|---|---|---|---|---|
| `trail-down`: CloudTrail is unavailable | 45.0s | scenario | 45.0s | 1m 40s |

Compared with the earlier drills of this runbook:

| Drill | Date | Time to revoke | approval of `revoke` | answer to `exposure` |
|---|---|---|---|---|
| INC-0 | 2026-11-30 00:53 | 3m 40s | 1m 30s | 11m 00s |
| **INC-1** (this drill) | 2026-11-30 00:53 | 1m 50s | 1m 30s | 11m 00s |
"
        );
        let html = crate::document::Templates::builtin().html(&report);
        assert!(html.contains("points=\"0.0,2.0 120.0,12.0\""), "{html}");
    }

    #[test]
    fn the_comparison_holds_each_earlier_drill_and_a_sparkline() {
        let earlier = Scorecard::from_records(&scripted(220_000)).unwrap();
        let mut card = Scorecard::from_records(&scripted(110_000)).unwrap();
        card.compare("INC-2", &[("INC-1".into(), earlier)]);
        let h = &card.history;
        assert_eq!(h.columns, ["approval of `revoke`", "answer to `exposure`"]);
        let rows: Vec<(&str, &str, bool)> = h
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.time_to_revoke.as_str(), r.current))
            .collect();
        assert_eq!(
            rows,
            [("INC-1", "3m 40s", false), ("INC-2", "1m 50s", true)]
        );
        assert_eq!(h.rows[1].cells, ["1m 30s", "11m 00s"]);
        // The slower drill at the top left, the faster at the right, lower.
        assert_eq!(h.sparkline.as_deref(), Some("0.0,2.0 120.0,12.0"));
        let mut rehearsal = scripted(1);
        rehearsal[0].event = crate::document::tests::started(Mode::Rehearsal, t0(), t0());
        assert!(
            Scorecard::from_records(&rehearsal[..1]).is_none(),
            "a rehearsal has none"
        );
    }
}
