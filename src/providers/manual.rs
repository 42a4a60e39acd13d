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
        opt("assignee", String, "who should answer"),
    ],
    outputs: &[out("answer", "the human's answer")],
    dynamic_outputs: false,
    idempotent: true,
}];
