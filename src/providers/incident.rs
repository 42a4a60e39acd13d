//! quench's own actions on the incident itself.

use crate::action;

pub const ACTIONS: &[super::ActionSpec] = &[Document::SPEC];

action! {
    /// Write the incident document now (incident.md and incident.json)
    "incident.document" in Incident => Document [idempotent, engine] {
        /// a line added to the document's summary
        note: Option<String>,
    } -> DocumentOutputs {
        /// path of incident.md
        path: String,
        /// the document as Markdown, to publish (a GitHub issue's `body`); the
        /// journal keeps only its size
        markdown: String,
    }
}
