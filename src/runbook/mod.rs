//! Runbooks: read strictly (`raw`), validated into the model the engine runs
//! (`validate` → `model`), with located diagnostics and template analysis.

pub mod diagnostic;
pub mod model;
pub mod raw;
pub mod template;
pub mod validate;

pub use crate::time::{human, parse_duration};
pub use diagnostic::{Diagnostic, Diagnostics, SourceFile};
pub use model::*;
pub use validate::{LoadError, Loaded, load, parse, read};
