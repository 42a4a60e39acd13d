//! Diagnostics: an error or warning with a file, line and column, rendered
//! with the source line, a caret under the culprit and a hint.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
use serde_saphyr::Location;

use super::raw::S;

/// A YAML source file: its display path and text, shared by every
/// diagnostic that points into it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(path: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The byte range a location covers, clamped to its line; `len` is in
    /// characters (what the parser reports).
    fn range(&self, line: u64, column: u64, len: u64) -> Range<usize> {
        let mut lines = self.text.split_inclusive('\n');
        let before = lines.by_ref().take(line.saturating_sub(1) as usize);
        let start: usize = before.map(str::len).sum();
        let Some(l) = lines.next() else {
            return self.text.len()..self.text.len();
        };
        // The byte where the `n`th character starts, or the end.
        let byte = |s: &str, n: u64| s.char_indices().nth(n as usize).map_or(s.len(), |(b, _)| b);
        let content = l.trim_end_matches(['\n', '\r']);
        let col = byte(content, column.saturating_sub(1));
        let rest = &content[col..];
        let len = byte(rest, len.max(1)).max(rest.is_empty().into());
        start + col..start + col + len
    }
}

/// Where a value is written.
pub fn pos<T>(s: &S<T>) -> Pos {
    Pos::from_location(&s.referenced)
}

/// A position in a source: 1-based line and column, and a length in chars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
    pub len: u64,
}

impl Pos {
    pub const START: Pos = Pos {
        line: 1,
        column: 1,
        len: 1,
    };

    pub fn from_location(loc: &Location) -> Self {
        if loc.line() == 0 {
            return Self::START;
        }
        Self {
            line: loc.line(),
            column: loc.column().max(1),
            len: loc.span().len().max(1),
        }
    }

    /// A position `offset` characters into a scalar that starts here.
    pub fn shifted(self, offset: u64, len: u64) -> Self {
        Self {
            line: self.line,
            column: self.column + offset,
            len: len.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub source: SourceFile,
    pub pos: Pos,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(source: &SourceFile, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            source: source.clone(),
            pos,
            label: None,
            help: None,
        }
    }

    pub fn warning(source: &SourceFile, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(source, pos, message)
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn render(&self) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let range = self
            .source
            .range(self.pos.line, self.pos.column, self.pos.len);
        let mut annotation = AnnotationKind::Primary.span(range);
        if let Some(label) = &self.label {
            annotation = annotation.label(label.as_str());
        }
        let mut group = level.primary_title(self.message.as_str()).element(
            Snippet::source(&*self.source.text)
                .path(self.source.path.as_str())
                .annotation(annotation),
        );
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        Renderer::plain().render(&[group])
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// A list of diagnostics, at least one of them an error.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rendered: Vec<String> = self.0.iter().map(Diagnostic::render).collect();
        f.write_str(&rendered.join("\n\n"))
    }
}

impl std::error::Error for Diagnostics {}

/// The diagnostics found so far in one source file.
pub struct Findings<'a> {
    pub source: &'a SourceFile,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Findings<'a> {
    pub fn new(source: &'a SourceFile) -> Self {
        Self {
            source,
            diags: Vec::new(),
        }
    }

    /// Records an error, whose help may then be set.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::error(self.source, pos, message));
        self.diags.last_mut().expect("just pushed")
    }

    pub fn warning(&mut self, pos: Pos, message: impl Into<String>, help: impl Into<String>) {
        let d = Diagnostic::warning(self.source, pos, message).help(help);
        self.diags.push(d);
    }

    /// What `s` names in `table`; else an error (`unknown WHAT`) whose help
    /// is the closest name, or `otherwise`.
    pub fn one_of<T: Copy>(
        &mut self,
        s: &S<String>,
        what: &str,
        table: &[(&str, T)],
        otherwise: &str,
    ) -> Option<T> {
        if let Some(&(_, found)) = table.iter().find(|(name, _)| *name == s.value) {
            return Some(found);
        }
        let help = did_you_mean(&s.value, table.iter().map(|(name, _)| *name));
        self.error(pos(s), format!("unknown {what} `{}`", s.value))
            .help = help.or_else(|| Some(otherwise.into()));
        None
    }

    /// The diagnostics, if any was found.
    pub fn finish(self) -> Result<(), Diagnostics> {
        match self.diags.is_empty() {
            true => Ok(()),
            false => Err(Diagnostics(self.diags)),
        }
    }
}

/// Names in backticks, in a list: "`a`, `b`".
pub fn ticked<T: fmt::Display>(names: impl IntoIterator<Item = T>) -> String {
    let ticked: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    ticked.join(", ")
}

/// "did you mean `x`?" for the closest candidate, if any is close enough.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(given, candidates).map(|c| format!("did you mean `{c}`?"))
}

pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_source_line_caret_and_help() {
        let src = SourceFile::new("rb.yaml", "name: x\nsteps:\n  - action: aws.deactivate\n");
        let d = Diagnostic::error(
            &src,
            Pos {
                line: 3,
                column: 13,
                len: 14,
            },
            "unknown action `aws.deactivate`",
        )
        .label("not an action")
        .help("did you mean `aws.deactivate_access_key`?");
        let text = d.render();
        assert!(text.contains("rb.yaml:3:13"), "{text}");
        assert!(text.contains("^^^^^^^^^^^^^^ not an action"), "{text}");
        assert!(
            text.contains("did you mean `aws.deactivate_access_key`?"),
            "{text}"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        let c = ["slack.post_message", "aws.deactivate_access_key"];
        assert_eq!(closest("slack.post_mesage", c), Some("slack.post_message"));
        assert_eq!(closest("zzz", c), None);
    }
}
