//! The journal: versioned events, appended one JSON line at a time and
//! flushed to disk before the next side effect. It is the one truth: the
//! display, the document and `report` are all built from these records.

mod event;
mod view;
mod writer;

pub use event::*;
pub use view::{Approval, IncidentView, Proof, StepState, StepView, Task};
pub use writer::{Commit, Journal, ReadError, parse, read, read_for_append};
