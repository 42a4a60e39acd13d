//! The document templates: handlebars files a team can restyle without
//! rebuilding quench. The built-in ones are compiled in from `templates/`;
//! a templates directory overrides them file by file, and `report
//! --template FILE` renders one report with any file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};

use super::Report;

use super::builtin::{HTML_PAGE, HTML_PARTIALS, MARKDOWN_PAGE, MARKDOWN_PARTIALS};

/// The documents quench renders from a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Markdown,
    Html,
}

impl Kind {
    /// The file a templates directory may hold to override the built-in one.
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Markdown => "incident.md.hbs",
            Kind::Html => "incident.html.hbs",
        }
    }

    /// The folder of a templates directory that may hold this document's
    /// sections.
    pub fn partials_dir(self) -> &'static str {
        match self {
            Kind::Markdown => "md",
            Kind::Html => "html",
        }
    }

    fn partials(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Markdown => MARKDOWN_PARTIALS,
            Kind::Html => HTML_PARTIALS,
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            Kind::Markdown => MARKDOWN_PAGE,
            Kind::Html => HTML_PAGE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("failed to read the template `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the template `{path}` is {size} bytes, over the {MAX_TEMPLATE_BYTES} bytes a document template may have: split it into sections (`{{{{> NAME}}}}`)"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("the template `{origin}` is not valid handlebars: {message}")]
    Invalid { origin: String, message: String },
    #[error("the template `{origin}` failed to render: {message}")]
    Render { origin: String, message: String },
}

/// A template's text and where it came from, for error messages.
#[derive(Debug, Clone)]
struct Source {
    text: String,
    origin: String,
}

/// One registry per kind: Markdown is written verbatim, HTML is escaped.
///
/// The built-in templates are compiled on first use, and the sections only
/// some incidents have ([`OCCASIONAL`]) the first time a document has one.
/// A team's own are compiled when they are loaded, so a broken one is
/// refused before anything runs.
#[derive(Debug, Clone)]
pub struct Templates {
    markdown: Page,
    html: Page,
}

/// One document's templates: its page, the sections it includes, and the
/// registry they are compiled into.
#[derive(Debug, Clone)]
struct Page {
    /// The page's template, when a team's replaces the built-in one.
    main: Option<Source>,
    /// A team's sections, in place of the built-in ones of their name.
    partials: Vec<(String, Source)>,
    compiled: Arc<Mutex<Option<Handlebars<'static>>>>,
}

/// Built-in sections that only some incidents have: compiled when a
/// document first needs one, since handlebars' compile time grows with the
/// square of a section's length and most incidents have none of them. The
/// built-in pages include each one only when the report has it.
const OCCASIONAL: &[&str] = &["rotation", "aws", "leaks", "scorecard"];

/// The occasional sections `report` shows.
fn occasional(report: &Report) -> impl Iterator<Item = &'static str> {
    [
        ("rotation", report.rotation.is_some()),
        ("aws", report.aws.present),
        ("leaks", !report.leaks.is_empty()),
        ("scorecard", report.scorecard.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, shown)| shown.then_some(name))
}

impl Page {
    fn builtin() -> Page {
        Page {
            main: None,
            partials: Vec::new(),
            compiled: Arc::default(),
        }
    }

    /// Where the page's template came from, for error messages.
    fn origin(&self, kind: Kind) -> String {
        match &self.main {
            Some(main) => main.origin.clone(),
            None => format!("<built-in>/{}", kind.file_name()),
        }
    }

    /// Compiles a team's templates now, so that a broken one is refused
    /// before anything runs.
    fn compile_now(mut self, kind: Kind) -> Result<Page, TemplateError> {
        self.compiled = Arc::new(Mutex::new(Some(self.compile(kind)?)));
        Ok(self)
    }

    /// Renders `report` with this page, compiling what it needs first.
    fn render(&self, kind: Kind, report: &Report) -> Result<String, handlebars::RenderError> {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        let hb = self.compiled_in(kind, &mut compiled);
        for name in occasional(report) {
            if !hb.has_template(name) {
                let text = builtin_partial(kind, name);
                hb.register_partial(name, text)
                    .expect("the built-in templates are valid handlebars");
            }
        }
        hb.render("incident", report)
    }

    /// The registry in `slot`, the built-in templates compiled into it
    /// first if they are not yet (a team's were compiled when they were
    /// loaded).
    fn compiled_in<'a>(
        &self,
        kind: Kind,
        slot: &'a mut Option<Handlebars<'static>>,
    ) -> &'a mut Handlebars<'static> {
        slot.get_or_insert_with(|| {
            self.compile(kind)
                .expect("the built-in templates are valid handlebars")
        })
    }

    fn compile(&self, kind: Kind) -> Result<Handlebars<'static>, TemplateError> {
        let invalid = |origin: &str, e: handlebars::TemplateError| TemplateError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        let mut hb = Handlebars::new();
        if kind == Kind::Markdown {
            hb.register_escape_fn(handlebars::no_escape);
        }
        hb.register_helper("code", Box::new(code));
        // A team's page may include any section: it gets them all now.
        let eager = |name: &&str| self.main.is_some() || !OCCASIONAL.contains(name);
        for (name, text) in kind.partials() {
            if eager(name) && !self.partials.iter().any(|(n, _)| n == name) {
                hb.register_partial(name, *text).map_err(|e| {
                    invalid(&format!("<built-in>/{}/{name}.hbs", kind.partials_dir()), e)
                })?;
            }
        }
        for (name, source) in &self.partials {
            hb.register_partial(name, source.text.as_str())
                .map_err(|e| invalid(&source.origin, e))?;
        }
        let main = self
            .main
            .as_ref()
            .map_or(kind.builtin(), |m| m.text.as_str());
        hb.register_template_string("incident", main)
            .map_err(|e| invalid(&self.origin(kind), e))?;
        Ok(hb)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Templates {
    pub fn builtin() -> Self {
        Self {
            markdown: Page::builtin(),
            html: Page::builtin(),
        }
    }

    fn page(&self, kind: Kind) -> &Page {
        match kind {
            Kind::Markdown => &self.markdown,
            Kind::Html => &self.html,
        }
    }

    fn page_mut(&mut self, kind: Kind) -> &mut Page {
        match kind {
            Kind::Markdown => &mut self.markdown,
            Kind::Html => &mut self.html,
        }
    }

    /// The built-in templates, with those `dir` holds in their place: the
    /// documents, and their sections in `dir/md/` and `dir/html/`.
    pub fn from_dir(dir: &Path) -> Result<Self, TemplateError> {
        let mut t = Self::builtin();
        for kind in [Kind::Markdown, Kind::Html] {
            let path = dir.join(kind.file_name());
            let page = Page {
                main: if path.is_file() {
                    Some(read(&path)?)
                } else {
                    None
                },
                partials: read_partials(&dir.join(kind.partials_dir()))?,
                compiled: Arc::default(),
            };
            if page.main.is_some() || !page.partials.is_empty() {
                *t.page_mut(kind) = page.compile_now(kind)?;
            }
        }
        Ok(t)
    }

    /// These templates, with `path` rendering the `kind` document.
    pub fn with_file(mut self, kind: Kind, path: &Path) -> Result<Self, TemplateError> {
        let page = Page {
            main: Some(read(path)?),
            partials: self.page(kind).partials.clone(),
            compiled: Arc::default(),
        };
        *self.page_mut(kind) = page.compile_now(kind)?;
        Ok(self)
    }

    /// Compiles both documents' templates now, if they are not yet: the
    /// thread that rewrites an incident's documents does it while the first
    /// requests are out, not on the way to the exit.
    pub fn prepare(&self) {
        for kind in [Kind::Markdown, Kind::Html] {
            let page = self.page(kind);
            let mut compiled = page.compiled.lock().unwrap_or_else(PoisonError::into_inner);
            page.compiled_in(kind, &mut compiled);
        }
    }

    /// Renders a document from the report as its templates read it (the
    /// JSON of `incident.json`).
    pub fn render(&self, kind: Kind, report: &Report) -> Result<String, TemplateError> {
        let page = self.page(kind);
        page.render(kind, report)
            .map_err(|e| TemplateError::Render {
                origin: page.origin(kind),
                message: e.to_string(),
            })
    }

    /// A rendered page, or one that says why it could not be: an
    /// incident's record must never be lost.
    fn page_or_why(&self, kind: Kind, report: &Report) -> String {
        self.render(kind, report).unwrap_or_else(|e| match kind {
            Kind::Markdown => format!(
                "# {}\n\n{e}\n\nThe facts are in incident.json.\n",
                report.id
            ),
            Kind::Html => {
                let e = handlebars::html_escape(&e.to_string());
                format!(
                    "<!doctype html><meta charset=\"utf-8\"><title>{}</title><p>{e}</p><p>The facts are in incident.json.</p>\n",
                    report.id
                )
            }
        })
    }

    /// The Markdown document; a template that fails still leaves a document
    /// that says why, because an incident's record must never be lost.
    pub fn markdown(&self, report: &Report) -> String {
        self.page_or_why(Kind::Markdown, report)
    }

    pub fn html(&self, report: &Report) -> String {
        self.page_or_why(Kind::Html, report)
    }
}

/// The built-in section `name` of the `kind` document.
fn builtin_partial(kind: Kind, name: &str) -> &'static str {
    kind.partials()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .expect("an occasional section is a built-in one")
}

/// The largest team template: handlebars' compile time grows with the
/// square of a template's length (the built-in HTML page is 18 KB).
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

fn read(path: &Path) -> Result<Source, TemplateError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Source {
        text,
        origin: path.display().to_string(),
    })
}

/// A team's sections: every `NAME.hbs` in `dir`, if there is one.
fn read_partials(dir: &Path) -> Result<Vec<(String, Source)>, TemplateError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let failed = |source| TemplateError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let path = entry.map_err(failed)?.path();
        if path.extension().is_some_and(|e| e == "hbs") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files
        .iter()
        .map(|path| {
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            Ok((name.to_string(), read(path)?))
        })
        .collect()
}

/// `{{code text}}` in HTML: escapes the text and shows its `backticked`
/// names (step ids, actions: how quench's sentences quote things) as code.
fn code(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("code", 0))?
        .value();
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut html = String::new();
    for (i, part) in text.split('`').enumerate() {
        let escaped = handlebars::html_escape(part);
        if i % 2 == 1 {
            html.push_str(&format!("<code>{escaped}</code>"));
        } else {
            html.push_str(&escaped);
        }
    }
    out.write(&html)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A team's section replaces the built-in one of its name, and only
    /// that one; the page and the other sections stay built in.
    #[test]
    fn a_teams_section_replaces_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("md")).unwrap();
        std::fs::write(dir.path().join("md/summary.hbs"), "## Ours\n").unwrap();
        let t = Templates::from_dir(dir.path()).unwrap();
        assert!(
            t.html.compiled.lock().unwrap().is_none(),
            "the HTML page stays built in"
        );
        let compiled = t.markdown.compiled.lock().unwrap();
        let page = compiled
            .as_ref()
            .unwrap()
            .render("incident", &serde_json::json!({"id": "INC-1"}))
            .unwrap();
        assert!(page.contains("INC-1") && page.contains("## Ours"), "{page}");
    }

    /// A section only some incidents have is compiled when a document
    /// first shows it; a document without it never compiles it.
    #[test]
    fn an_occasional_section_is_compiled_when_a_document_first_shows_it() {
        let t = Templates::builtin();
        let has = |name: &str| {
            let compiled = t.markdown.compiled.lock().unwrap();
            compiled.as_ref().unwrap().has_template(name)
        };
        let mut report = Report::from_records(&super::super::tests::two_step_records()).unwrap();
        let without = t.render(Kind::Markdown, &report).unwrap();
        assert!(without.contains(&report.id), "{without}");
        for name in OCCASIONAL {
            assert!(
                !has(name),
                "`{name}` was compiled for a document without it"
            );
        }
        assert!(
            has("summary"),
            "the sections every document has are compiled"
        );
        report.aws.present = true;
        t.render(Kind::Markdown, &report).unwrap();
        assert!(has("aws") && !has("leaks") && !has("rotation"));
    }

    /// A broken team template is refused when it is loaded, naming it.
    #[test]
    fn a_broken_team_template_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("html")).unwrap();
        std::fs::write(dir.path().join("html/style.hbs"), "{{#if x}}").unwrap();
        let e = Templates::from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&e, TemplateError::Invalid { origin, .. } if origin.ends_with("style.hbs")),
            "{e}"
        );
    }
}
