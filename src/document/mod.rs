//! The incident document, built by replaying the journal: `incident.json`
//! (the facts, and the object every template receives), `incident.md` and
//! `incident.html` (rendered from the templates in `templates/`).
//!
//! - `report`    — the facts: `Report::from_records`
//! - `timeline`  — the geometry of the HTML document's timeline picture
//! - `templates` — the built-in and a team's own handlebars templates

mod builtin;
mod report;
mod templates;
mod timeline;

use std::path::Path;

pub use report::*;
pub use templates::{
    Facts, HTML_TEMPLATE, Kind, MARKDOWN_TEMPLATE, SharedRender, TemplateError, Templates,
};
pub use timeline::{Bar, Chart, Marker, Row, Tick, Wait};

use crate::journal::Record;

/// Which pages a rewrite writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// `incident.json` and `incident.md`: the rewrites while the incident
    /// runs, so a crash leaves a current document.
    Progress,
    /// Those and `incident.html`, which is heavier to render: when the
    /// incident ends, and whenever its journal grows after that.
    All,
}

/// Rewrites `incident.json`, `incident.md` and, with [`Pages::All`],
/// `incident.html` from the records, each atomically (a crash leaves the
/// previous version, never half a file). Returns the Markdown, for whoever
/// publishes it.
pub fn write(
    dir: &Path,
    records: &[Record],
    templates: &Templates,
    pages: Pages,
) -> std::io::Result<String> {
    let report = Report::from_records(records).map_err(std::io::Error::other)?;
    let facts = Facts::of(&report);
    let html = (pages == Pages::All).then(|| SharedRender::html(templates, &report, &facts));
    let markdown = std::thread::scope(|s| {
        // The HTML page, the slowest to render, on a thread of its own
        // meanwhile: at the end of an incident, its exit waits for it.
        // This thread helps once the other pages are written. (Out of
        // threads, this one renders it all.)
        let helper = html.as_ref().and_then(|html| {
            std::thread::Builder::new()
                .name("quench-html".into())
                .spawn_scoped(s, || html.work())
                .ok()
        });
        let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        write_atomic(&dir.join("incident.json"), json.as_bytes())?;
        let markdown = templates.markdown_with(&report, &facts);
        write_atomic(&dir.join("incident.md"), markdown.as_bytes())?;
        if let Some(html) = &html {
            html.work();
        }
        if let Some(helper) = helper {
            helper
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
        Ok::<_, std::io::Error>(markdown)
    })?;
    if let Some(html) = html {
        write_atomic(&dir.join("incident.html"), html.finish().as_bytes())?;
    }
    Ok(markdown)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A name of its own per write: two writers never share a temporary file.
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("document");
    let tmp = path.with_file_name(format!(".{name}.{:08x}.tmp", rand::random::<u32>()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    #[test]
    fn offsets_read_like_a_stopwatch() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T23:10:01.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        assert_eq!(offset(t0, at(1234)), "T+1.234s");
        assert_eq!(offset(t0, at(125_123)), "T+2m05.123s");
        assert_eq!(offset(t0, at(3_725_000)), "T+1h02m05.000s");
        assert_eq!(offset(t0, at(-500)), "T-0.500s");
    }
}
