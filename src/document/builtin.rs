//! The built-in document templates, and the pieces their pages are cut
//! into. Shared, as plain data and pure functions, by quench and by its
//! build script (`build.rs`), which compiles the pieces ahead of time so
//! that no run of quench parses them (issue 7). Nothing here may name
//! anything else in the crate.

pub const MARKDOWN_PAGE: &str = include_str!("../../templates/incident.md.hbs");
pub const HTML_PAGE: &str = include_str!("../../templates/incident.html.hbs");

/// The built-in documents' sections: `templates/md/NAME.hbs` and
/// `templates/html/NAME.hbs`, included by `incident.md.hbs` and
/// `incident.html.hbs` as `{{> NAME}}`.
///
/// They are partials rather than one file each because handlebars-rust
/// finds every element's line and column by rescanning the template from
/// its start, so compiling grows with the square of a template's length:
/// the 18 KB HTML page as one template took ~20 ms of CPU to compile, as
/// fourteen sections ~5 ms. A team can replace any one section, the HTML
/// style say, without copying the rest; the built-in ones are compiled
/// when quench is built.
pub const MARKDOWN_PARTIALS: &[(&str, &str)] = &[
    ("header", include_str!("../../templates/md/header.hbs")),
    ("summary", include_str!("../../templates/md/summary.hbs")),
    ("impact", include_str!("../../templates/md/impact.hbs")),
    (
        "detection",
        include_str!("../../templates/md/detection.hbs"),
    ),
    (
        "time-to-revoke",
        include_str!("../../templates/md/time-to-revoke.hbs"),
    ),
    (
        "resolution",
        include_str!("../../templates/md/resolution.hbs"),
    ),
    ("findings", include_str!("../../templates/md/findings.hbs")),
    ("people", include_str!("../../templates/md/people.hbs")),
    (
        "postmortem",
        include_str!("../../templates/md/postmortem.hbs"),
    ),
    ("pending", include_str!("../../templates/md/pending.hbs")),
    ("steps", include_str!("../../templates/md/steps.hbs")),
    ("events", include_str!("../../templates/md/events.hbs")),
];

pub const HTML_PARTIALS: &[(&str, &str)] = &[
    ("style", include_str!("../../templates/html/style.hbs")),
    ("header", include_str!("../../templates/html/header.hbs")),
    ("summary", include_str!("../../templates/html/summary.hbs")),
    ("chart", include_str!("../../templates/html/chart.hbs")),
    ("impact", include_str!("../../templates/html/impact.hbs")),
    (
        "detection",
        include_str!("../../templates/html/detection.hbs"),
    ),
    (
        "time-to-revoke",
        include_str!("../../templates/html/time-to-revoke.hbs"),
    ),
    (
        "resolution",
        include_str!("../../templates/html/resolution.hbs"),
    ),
    (
        "findings",
        include_str!("../../templates/html/findings.hbs"),
    ),
    ("people", include_str!("../../templates/html/people.hbs")),
    (
        "postmortem",
        include_str!("../../templates/html/postmortem.hbs"),
    ),
    ("pending", include_str!("../../templates/html/pending.hbs")),
    ("steps", include_str!("../../templates/html/steps.hbs")),
    ("events", include_str!("../../templates/html/events.hbs")),
];

/// A stretch of a page: its own text, or a line `{{> NAME}}` that includes
/// a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Text(&'static str),
    Section(&'static str),
}

/// A page as its own text and the sections it includes, in order.
pub fn parts(page: &'static str) -> Vec<Part> {
    let mut parts = Vec::new();
    let (mut start, mut at) = (0, 0);
    for line in page.split_inclusive('\n') {
        if let Some(name) = section(line) {
            parts.push(Part::Text(&page[start..at]));
            parts.push(Part::Section(name));
            start = at + line.len();
        }
        at += line.len();
    }
    parts.push(Part::Text(&page[start..]));
    parts
}

/// The built-in page with the built-in sections as the pieces it is
/// rendered from, one after another: its own text and each section's,
/// [`cut`] small. `build.rs` compiles them; piece `i` is registered as the
/// template `quench:i`.
#[allow(
    dead_code,
    reason = "build.rs and the tests use it; quench has its result from build.rs"
)]
pub fn pieces(page: &'static str, partials: &[(&str, &'static str)]) -> Vec<&'static str> {
    let mut pieces = Vec::new();
    for part in parts(page) {
        let text = match part {
            Part::Text(text) => text,
            Part::Section(name) => match partials.iter().find(|(n, _)| *n == name) {
                Some((_, text)) => text,
                None => {
                    panic!("the built-in page includes `{name}`, which is not a built-in section")
                }
            },
        };
        pieces.extend(cut(text));
    }
    pieces
}

/// How long a compiled piece of a built-in template may grow by taking in
/// the lines after it.
pub const PIECE_LEN: usize = 256;

/// A built-in template cut into pieces of whole lines, each outside every
/// block (`{{#…}}` … `{{/…}}`), so that each renders alone to what it
/// renders to in place: runs of lines with no handlebars in them, and the
/// rest in pieces of about [`PIECE_LEN`] bytes. The built-in templates open
/// and close blocks with `{{#` and `{{/`, and never strip whitespace across
/// lines (`~`); the test `the_built_in_pages_render_the_same_in_pieces`
/// holds them to it.
pub fn cut(text: &'static str) -> Vec<&'static str> {
    // The smallest pieces: a line outside every block, or a block's lines.
    let mut units = Vec::new();
    let (mut start, mut end, mut depth) = (0, 0, 0_i64);
    for line in text.split_inclusive('\n') {
        depth += line.matches("{{#").count() as i64 - line.matches("{{/").count() as i64;
        end += line.len();
        if depth == 0 {
            units.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        units.push(&text[start..]);
    }
    // Joined while they are alike, and a compiled piece is short.
    let mut pieces: Vec<&'static str> = Vec::new();
    let (mut start, mut end) = (0, 0);
    for unit in units {
        let plain = !unit.contains("{{");
        if end > start {
            let piece = &text[start..end];
            let same = plain != piece.contains("{{");
            if !same || (!plain && piece.len() >= PIECE_LEN) {
                pieces.push(piece);
                start = end;
            }
        }
        end += unit.len();
    }
    if end > start {
        pieces.push(&text[start..end]);
    }
    pieces
}

/// Whether a piece is a template to render, rather than text to write as
/// it is.
#[allow(
    dead_code,
    reason = "build.rs and the tests use it; quench has its result from build.rs"
)]
pub fn is_template(piece: &str) -> bool {
    piece.contains("{{")
}

/// The name of the section a line of a built-in page includes: `{{> NAME}}`
/// alone on it.
fn section(line: &'static str) -> Option<&'static str> {
    line.strip_suffix('\n')
        .and_then(|l| l.strip_prefix("{{> "))
        .and_then(|l| l.strip_suffix("}}"))
        .filter(|name| !name.contains(char::is_whitespace))
}
