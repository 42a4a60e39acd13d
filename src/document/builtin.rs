//! The built-in document templates, included from `templates/`.

pub(super) const MARKDOWN_PAGE: &str = include_str!("../../templates/incident.md.hbs");
pub(super) const HTML_PAGE: &str = include_str!("../../templates/incident.html.hbs");

/// `(NAME, the text of templates/DIR/NAME.hbs)` for each name.
macro_rules! sections {
    ($dir:literal, $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $dir, "/", $name, ".hbs")))),*]
    };
}

/// The built-in documents' sections: `templates/md/NAME.hbs` and
/// `templates/html/NAME.hbs`, included by `incident.md.hbs` and
/// `incident.html.hbs` as `{{> NAME}}`.
///
/// A team can replace any one section, the HTML style say, without copying
/// the rest. (Sections also keep each template short: handlebars-rust
/// compiles in time that grows with the square of a template's length.)
pub(super) const MARKDOWN_PARTIALS: &[(&str, &str)] = sections![
    "md",
    "header",
    "summary",
    "impact",
    "detection",
    "time-to-revoke",
    "scorecard",
    "resolution",
    "findings",
    "leaks",
    "aws",
    "people",
    "postmortem",
    "pending",
    "steps",
    "events",
    "rotation",
];

pub(super) const HTML_PARTIALS: &[(&str, &str)] = sections![
    "html",
    "style",
    "header",
    "summary",
    "chart",
    "impact",
    "detection",
    "time-to-revoke",
    "scorecard",
    "resolution",
    "findings",
    "leaks",
    "aws",
    "rotation",
    "people",
    "postmortem",
    "pending",
    "steps",
    "events",
];
