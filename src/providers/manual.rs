//! Manual tasks: a human answers, at the terminal (or later in Slack). With
//! nobody at a terminal the task stays open and the document lists it.

use crate::action;

pub const ACTIONS: &[super::ActionSpec] = &[Task::SPEC];

action! {
    /// A task a human completes; the answer goes in the document
    "manual.task" in Manual => Task [idempotent, engine] {
        /// the question or instruction
        prompt: String,
        /// who should answer (an action item's owner)
        assignee: Option<String>,
        /// where the answer goes in the postmortem: `root_cause`, `went_well`,
        /// `went_wrong`, `lucky`, `action_item` (default: by phase)
        section: Option<String>,
        /// when an action item is due (a date, or a duration after detection:
        /// `14d`)
        due: Option<String>,
    } -> TaskOutputs {
        /// the human's answer
        answer: String,
    }
}

/// The postmortem sections a task's answer can fill.
pub const SECTIONS: &[&str] = &[
    "root_cause",
    "went_well",
    "went_wrong",
    "lucky",
    "action_item",
];
