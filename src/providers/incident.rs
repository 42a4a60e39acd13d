//! quench's own actions on the incident itself.

use super::ParamType::*;
use super::{ActionSpec, Provider, opt, out};

pub const ACTIONS: &[ActionSpec] = &[ActionSpec {
    name: "incident.document",
    provider: Provider::Incident,
    doc: "Write the incident document now (incident.md and incident.json)",
    params: &[opt(
        "note",
        String,
        "a line added to the document's summary",
    )],
    outputs: &[
        out("path", "path of incident.md"),
        out(
            "markdown",
            "the document as Markdown, to publish (a GitHub issue's `body`); the journal keeps only its size",
        ),
    ],
    dynamic_outputs: false,
    idempotent: true,
}];
