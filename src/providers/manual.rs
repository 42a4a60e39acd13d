//! Manual tasks: a human answers, at the terminal (or later in Slack). With
//! nobody at a terminal the task stays open and the document lists it.

use super::ParamType::*;
use super::{ActionSpec, Provider, opt, out, req};

pub const ACTIONS: &[ActionSpec] = &[ActionSpec {
    name: "manual.task",
    provider: Provider::Manual,
    doc: "A task a human completes; the answer goes in the document",
    params: &[
        req("prompt", String, "the question or instruction"),
        opt(
            "assignee",
            String,
            "who should answer (an action item's owner)",
        ),
        opt(
            "section",
            String,
            "where the answer goes in the postmortem: `root_cause`, `went_well`, `went_wrong`, `lucky`, `action_item` (default: by phase)",
        ),
        opt(
            "due",
            String,
            "when an action item is due (a date, or a duration after detection: `14d`)",
        ),
    ],
    outputs: &[out("answer", "the human's answer")],
    dynamic_outputs: false,
    idempotent: true,
}];

/// The postmortem sections a task's answer can fill.
pub const SECTIONS: &[&str] = &[
    "root_cause",
    "went_well",
    "went_wrong",
    "lucky",
    "action_item",
];
