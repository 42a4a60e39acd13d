//! The built-in document templates, included from `templates/`.

pub(super) const MARKDOWN_PAGE: &str = include_str!("../../templates/incident.md.hbs");
pub(super) const HTML_PAGE: &str = include_str!("../../templates/incident.html.hbs");

/// The built-in documents' sections: `templates/md/NAME.hbs` and
/// `templates/html/NAME.hbs`, included by `incident.md.hbs` and
/// `incident.html.hbs` as `{{> NAME}}`.
///
/// A team can replace any one section, the HTML style say, without copying
/// the rest. (Sections also keep each template short: handlebars-rust
/// compiles in time that grows with the square of a template's length.)
pub(super) const MARKDOWN_PARTIALS: &[(&str, &str)] = &[
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
        "scorecard",
        include_str!("../../templates/md/scorecard.hbs"),
    ),
    (
        "resolution",
        include_str!("../../templates/md/resolution.hbs"),
    ),
    ("findings", include_str!("../../templates/md/findings.hbs")),
    ("leaks", include_str!("../../templates/md/leaks.hbs")),
    ("aws", include_str!("../../templates/md/aws.hbs")),
    ("people", include_str!("../../templates/md/people.hbs")),
    (
        "postmortem",
        include_str!("../../templates/md/postmortem.hbs"),
    ),
    ("pending", include_str!("../../templates/md/pending.hbs")),
    ("steps", include_str!("../../templates/md/steps.hbs")),
    ("events", include_str!("../../templates/md/events.hbs")),
    ("rotation", include_str!("../../templates/md/rotation.hbs")),
];

pub(super) const HTML_PARTIALS: &[(&str, &str)] = &[
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
        "scorecard",
        include_str!("../../templates/html/scorecard.hbs"),
    ),
    (
        "resolution",
        include_str!("../../templates/html/resolution.hbs"),
    ),
    (
        "findings",
        include_str!("../../templates/html/findings.hbs"),
    ),
    ("leaks", include_str!("../../templates/html/leaks.hbs")),
    ("aws", include_str!("../../templates/html/aws.hbs")),
    (
        "rotation",
        include_str!("../../templates/html/rotation.hbs"),
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
