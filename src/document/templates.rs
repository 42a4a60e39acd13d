//! The document templates: handlebars files a team can restyle without
//! rebuilding quench. The built-in ones are compiled in from `templates/`;
//! a templates directory overrides them file by file, and `report
//! --template FILE` renders one report with any file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};

use super::Report;

use super::builtin::{self, HTML_PARTIALS, MARKDOWN_PARTIALS};

pub use super::builtin::{HTML_PAGE as HTML_TEMPLATE, MARKDOWN_PAGE as MARKDOWN_TEMPLATE};

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
            Kind::Markdown => MARKDOWN_TEMPLATE,
            Kind::Html => HTML_TEMPLATE,
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
/// The built-in templates were compiled when quench was built (`build.rs`);
/// they are registered on first use. A team's own templates are compiled
/// when they are loaded, so a broken one is refused before anything runs.
#[derive(Debug, Clone)]
pub struct Templates {
    markdown: Arc<OnceLock<Compiled>>,
    markdown_origin: String,
    html: Arc<OnceLock<Compiled>>,
    html_origin: String,
    /// A team's sections, in place of the built-in ones of their name.
    markdown_partials: Vec<(String, Source)>,
    html_partials: Vec<(String, Source)>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Templates {
    pub fn builtin() -> Self {
        Self {
            markdown: Arc::default(),
            markdown_origin: format!("<built-in>/{}", Kind::Markdown.file_name()),
            html: Arc::default(),
            html_origin: format!("<built-in>/{}", Kind::Html.file_name()),
            markdown_partials: Vec::new(),
            html_partials: Vec::new(),
        }
    }

    /// Registers the built-in templates not registered yet (~0.2 ms of CPU
    /// for the HTML page's), ahead of their first use.
    pub fn warm(&self) {
        self.registry(Kind::Markdown);
        self.registry(Kind::Html);
    }

    fn cell(&self, kind: Kind) -> &Arc<OnceLock<Compiled>> {
        match kind {
            Kind::Markdown => &self.markdown,
            Kind::Html => &self.html,
        }
    }

    fn partials(&self, kind: Kind) -> &[(String, Source)] {
        match kind {
            Kind::Markdown => &self.markdown_partials,
            Kind::Html => &self.html_partials,
        }
    }

    fn registry(&self, kind: Kind) -> &Compiled {
        // Only the built-in templates are left uncompiled by `from_dir`
        // and `with_file`.
        self.cell(kind).get_or_init(|| {
            let main = Source {
                text: kind.builtin().to_string(),
                origin: "built-in".into(),
            };
            registry(kind, &main, &[]).expect("the built-in templates are valid handlebars")
        })
    }

    /// The built-in templates, with those `dir` holds in their place: the
    /// documents, and their sections in `dir/md/` and `dir/html/`.
    ///
    /// A file that is the built-in one to the byte (a copy of `templates/`,
    /// or quench run from its own repository) replaces nothing: the
    /// built-in ones were compiled when quench was built, and compiling a
    /// copy of them all took ~3 ms before the first request (issue 7).
    pub fn from_dir(dir: &Path) -> Result<Self, TemplateError> {
        let mut t = Self::builtin();
        t.markdown_partials = changed_partials(Kind::Markdown, dir)?;
        t.html_partials = changed_partials(Kind::Html, dir)?;
        for kind in [Kind::Markdown, Kind::Html] {
            let path = dir.join(kind.file_name());
            let main = if path.is_file() {
                Some(read(&path)?).filter(|main| main.text != kind.builtin())
            } else {
                None
            };
            if let Some(main) = main {
                t = t.with_source(kind, main)?;
            } else if !t.partials(kind).is_empty() {
                // The built-in document with a team's sections: compiled
                // now, so a broken section is refused before anything runs.
                let main = Source {
                    text: kind.builtin().to_string(),
                    origin: "built-in".into(),
                };
                let hb = registry(kind, &main, t.partials(kind))?;
                match kind {
                    Kind::Markdown => t.markdown = Arc::new(OnceLock::from(hb)),
                    Kind::Html => t.html = Arc::new(OnceLock::from(hb)),
                }
            }
        }
        Ok(t)
    }

    /// These templates, with `path` rendering the `kind` document.
    pub fn with_file(self, kind: Kind, path: &Path) -> Result<Self, TemplateError> {
        self.with_source(kind, read(path)?)
    }

    fn with_source(mut self, kind: Kind, main: Source) -> Result<Self, TemplateError> {
        let hb = Arc::new(OnceLock::from(registry(kind, &main, self.partials(kind))?));
        match kind {
            Kind::Markdown => (self.markdown, self.markdown_origin) = (hb, main.origin),
            Kind::Html => (self.html, self.html_origin) = (hb, main.origin),
        }
        Ok(self)
    }

    pub fn render(&self, kind: Kind, report: &Report) -> Result<String, TemplateError> {
        self.render_in(kind, &Facts::of(report))
    }

    /// Renders a document from the report as its templates read it.
    fn failed(&self, kind: Kind, e: &handlebars::RenderError) -> TemplateError {
        let origin = match kind {
            Kind::Markdown => &self.markdown_origin,
            Kind::Html => &self.html_origin,
        };
        TemplateError::Render {
            origin: origin.clone(),
            message: e.to_string(),
        }
    }

    fn render_in(&self, kind: Kind, facts: &Facts) -> Result<String, TemplateError> {
        let ctx = facts.0.as_ref().map_err(|e| self.failed(kind, e))?;
        let compiled = self.registry(kind);
        match &compiled.pieces {
            None => compiled.hb.render_with_context("incident", ctx),
            Some(pieces) => render_pieces(&compiled.hb, pieces, ctx),
        }
        .map_err(|e| self.failed(kind, &e))
    }

    /// A rendered page, or one that says why it could not be: an
    /// incident's record must never be lost.
    fn page_or_why(
        &self,
        kind: Kind,
        report: &Report,
        page: Result<String, TemplateError>,
    ) -> String {
        page.unwrap_or_else(|e| match kind {
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
        self.markdown_with(report, &Facts::of(report))
    }

    pub fn html(&self, report: &Report) -> String {
        self.html_with(report, &Facts::of(report))
    }

    /// [`Templates::markdown`] from the report's facts made already.
    pub fn markdown_with(&self, report: &Report, facts: &Facts) -> String {
        self.page_or_why(
            Kind::Markdown,
            report,
            self.render_in(Kind::Markdown, facts),
        )
    }

    /// [`Templates::html`] from the report's facts made already.
    pub fn html_with(&self, report: &Report, facts: &Facts) -> String {
        self.page_or_why(Kind::Html, report, self.render_in(Kind::Html, facts))
    }
}

/// The HTML page rendered by any number of threads at once: each takes the
/// next piece of the built-in page that no thread has taken. When an incident
/// ends, its exit waits for the HTML page, the slowest document to render;
/// the thread that wrote the other documents then helps render it
/// (issue 7). A team's own page is rendered whole by the first thread.
pub struct SharedRender<'a> {
    templates: &'a Templates,
    report: &'a Report,
    facts: &'a Facts,
    next: AtomicUsize,
    rendered: Mutex<Vec<(usize, Result<String, handlebars::RenderError>)>>,
}

impl<'a> SharedRender<'a> {
    pub fn html(templates: &'a Templates, report: &'a Report, facts: &'a Facts) -> Self {
        SharedRender {
            templates,
            report,
            facts,
            next: AtomicUsize::new(0),
            rendered: Mutex::default(),
        }
    }

    /// Renders pieces until none is left to take.
    pub fn work(&self) {
        let Ok(ctx) = &self.facts.0 else {
            return;
        };
        let compiled = self.templates.registry(Kind::Html);
        let count = compiled.pieces.as_ref().map_or(1, Vec::len);
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                return;
            }
            let text = match &compiled.pieces {
                None => compiled.hb.render_with_context("incident", ctx),
                Some(pieces) => {
                    let mut text = String::new();
                    render_piece(&compiled.hb, &pieces[i], ctx, &mut text).map(|()| text)
                }
            };
            self.rendered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, text));
        }
    }

    /// The page, once every thread that worked on it has returned from
    /// [`SharedRender::work`]: what [`Templates::html_with`] renders.
    pub fn finish(self) -> String {
        self.work();
        let mut rendered = self
            .rendered
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        rendered.sort_unstable_by_key(|(i, _)| *i);
        let page = match &self.facts.0 {
            Err(e) => Err(e),
            Ok(_) => rendered
                .iter()
                .try_fold(String::new(), |page, (_, text)| match text {
                    Ok(text) => Ok(page + text),
                    Err(e) => Err(e),
                }),
        };
        let page = page.map_err(|e| self.templates.failed(Kind::Html, e));
        self.templates.page_or_why(Kind::Html, self.report, page)
    }
}

/// A report as the templates read it (the JSON of `incident.json`), made
/// once for both documents.
pub struct Facts(Result<Context, handlebars::RenderError>);

impl Facts {
    pub fn of(report: &Report) -> Facts {
        Facts(Context::wraps(report))
    }
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

/// A team's sections of the `kind` document in `dir`, but for those that
/// are the built-in section of their name to the byte.
fn changed_partials(kind: Kind, dir: &Path) -> Result<Vec<(String, Source)>, TemplateError> {
    let mut partials = read_partials(&dir.join(kind.partials_dir()))?;
    partials.retain(|(name, source)| {
        !kind
            .partials()
            .iter()
            .any(|(builtin, text)| builtin == name && *text == source.text)
    });
    Ok(partials)
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

/// A document's registry, and how the built-in page is rendered.
#[derive(Debug)]
struct Compiled {
    hb: Handlebars<'static>,
    /// The built-in page as pieces rendered one after another with one
    /// context, to the text rendering it whole gives. Handlebars-rust
    /// clones the whole context for every partial it includes, which for
    /// 1,000 steps is most of a rewrite; and it compiles a template in time
    /// that grows with the square of its length (it finds every element's
    /// line and column by rescanning from the start), so small pieces
    /// compile several times faster than whole sections.
    pieces: Option<Vec<Piece>>,
}

/// A piece of a built-in page.
#[derive(Debug)]
enum Piece {
    /// Text with no handlebars in it, written as it is.
    Text(&'static str),
    /// A template of the registry, by name.
    Template(String),
}

fn render_pieces(
    hb: &Handlebars<'static>,
    pieces: &[Piece],
    ctx: &Context,
) -> Result<String, handlebars::RenderError> {
    let mut out = String::new();
    for piece in pieces {
        render_piece(hb, piece, ctx, &mut out)?;
    }
    Ok(out)
}

/// Appends one piece of a page to `out`.
fn render_piece(
    hb: &Handlebars<'static>,
    piece: &Piece,
    ctx: &Context,
    out: &mut String,
) -> Result<(), handlebars::RenderError> {
    match piece {
        Piece::Text(text) => out.push_str(text),
        Piece::Template(name) => out.push_str(&hb.render_with_context(name, ctx)?),
    }
    Ok(())
}

fn registry(
    kind: Kind,
    main: &Source,
    overrides: &[(String, Source)],
) -> Result<Compiled, TemplateError> {
    let invalid = |origin: &str, e: handlebars::TemplateError| TemplateError::Invalid {
        origin: origin.to_string(),
        message: e.to_string(),
    };
    let mut hb = Handlebars::new();
    if kind == Kind::Markdown {
        hb.register_escape_fn(handlebars::no_escape);
    }
    hb.register_helper("code", Box::new(code));
    let overridden = |name: &str| overrides.iter().any(|(n, _)| n == name);
    let builtin_page = main.text == kind.builtin();
    if builtin_page && overrides.is_empty() {
        // The built-in page with the built-in sections, the usual case, in
        // pieces compiled when quench was built: nothing is compiled.
        let compiled = match kind {
            Kind::Markdown => prebuilt::markdown(),
            Kind::Html => prebuilt::html(),
        };
        let mut pieces = Vec::with_capacity(compiled.len());
        for (i, (text, template)) in compiled.into_iter().enumerate() {
            match template {
                Some(template) => {
                    let name = format!("quench:{i}");
                    hb.register_template(&name, template);
                    pieces.push(Piece::Template(name));
                }
                None => pieces.push(Piece::Text(text)),
            }
        }
        return Ok(Compiled {
            hb,
            pieces: Some(pieces),
        });
    }
    // A team's page, or a team's section, may include any section: then
    // they are all registered as partials, the built-in ones made of the
    // pieces compiled when quench was built (compiling them here took 1–2
    // ms before the first request for a team that changed one section:
    // issue 7), the team's compiled now. The built-in page with a team's
    // sections is its own pieces, compiled when quench was built too, and
    // each section included whole.
    let mut pieces = Vec::new();
    for part in builtin_parts(kind) {
        match part {
            BuiltinPart::Section(name, template) => {
                if !overridden(name) {
                    hb.register_template(name, template);
                }
                pieces.push(Piece::Template(name.to_string()));
            }
            BuiltinPart::Text(texts) => {
                for (text, template) in texts {
                    match template {
                        Some(template) => {
                            let name = format!("quench:{}", pieces.len());
                            hb.register_template(&name, template);
                            pieces.push(Piece::Template(name));
                        }
                        None => pieces.push(Piece::Text(text)),
                    }
                }
            }
        }
    }
    for (name, source) in overrides {
        hb.register_partial(name, source.text.as_str())
            .map_err(|e| invalid(&source.origin, e))?;
    }
    if !builtin_page {
        hb.register_template_string("incident", main.text.as_str())
            .map_err(|e| invalid(&main.origin, e))?;
        return Ok(Compiled { hb, pieces: None });
    }
    Ok(Compiled {
        hb,
        pieces: Some(pieces),
    })
}

/// A part of a built-in page, from the pieces `build.rs` compiled.
enum BuiltinPart {
    /// The page's own text between two sections, in pieces: each one's
    /// text, and the text compiled (`None` for text written as it is).
    Text(Vec<(&'static str, Option<handlebars::template::Template>)>),
    /// A section, as one template.
    Section(&'static str, handlebars::template::Template),
}

/// The parts of `kind`'s built-in page, made of the pieces `build.rs`
/// compiled. Each section is one template: what registering its text as a
/// partial compiles (a section is cut into pieces the way the page is, and
/// its pieces compiled one by one are it compiled whole, but for where
/// their elements were in the text: `the_built_in_sections_are_their_pieces`).
fn builtin_parts(kind: Kind) -> Vec<BuiltinPart> {
    use handlebars::template::{Template, TemplateElement};
    let compiled = match kind {
        Kind::Markdown => prebuilt::markdown(),
        Kind::Html => prebuilt::html(),
    };
    let mut pieces = compiled.into_iter();
    let mut parts = Vec::new();
    for part in builtin::parts(kind.builtin()) {
        let (section, text) = match part {
            builtin::Part::Text(text) => (None, text),
            builtin::Part::Section(name) => {
                let text = kind.partials().iter().find(|(n, _)| *n == name);
                (Some(name), text.map_or("", |(_, text)| *text))
            }
        };
        let mine = pieces.by_ref().take(builtin::cut(text).len());
        let Some(name) = section else {
            parts.push(BuiltinPart::Text(mine.collect()));
            continue;
        };
        let mut whole = Template::new();
        for (text, template) in mine {
            let elements = match template {
                Some(template) => template.elements,
                None => vec![TemplateElement::RawString(text.to_owned())],
            };
            for element in elements {
                // Compiled whole, text that two pieces share is one element.
                match (whole.elements.last_mut(), element) {
                    (
                        Some(TemplateElement::RawString(before)),
                        TemplateElement::RawString(more),
                    ) => {
                        before.push_str(&more);
                    }
                    (_, element) => whole.elements.push(element),
                }
            }
        }
        whole.name = Some(name.to_owned());
        parts.push(BuiltinPart::Section(name, whole));
    }
    parts
}

/// The built-in pages' pieces, compiled by `build.rs`.
#[allow(clippy::all, unused_imports, reason = "generated")]
mod prebuilt {
    use std::collections::HashMap;

    use handlebars::template::{
        BlockParam, DecoratorTemplate, ExpressionSpecBuilder, HelperTemplate, Parameter,
        Subexpression, Template, TemplateElement,
    };
    use handlebars::{Path, PathSeg};
    use serde_json::Value as Json;

    include!(concat!(env!("OUT_DIR"), "/prebuilt.rs"));
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
    use handlebars::template::Template;

    use super::*;

    /// Issue 7: the built-in pages are rendered piece by piece, with one
    /// context, to exactly the text the whole page renders to.
    #[test]
    fn the_built_in_pages_render_the_same_in_pieces() {
        let facts = serde_json::json!({
            "id": "INC-1", "title": "Leaked key", "rehearsal": true, "status": "succeeded",
            "steps": [{"id": "revoke", "phase": "revoke", "status": "succeeded", "attempts": 1}],
            "timeline": [{"ts": "2026-11-22T23:10:01.000Z", "offset": "T+0.000s", "text": "started"}],
            "people": [{"who": "a@b", "did": "started `it`", "at": "23:10"}],
            "postmortem": {"unanswered": 1, "went_well": [{"answer": "fast", "by": "a@b"}]},
            "chart": {"width": 100, "ticks": [{"x": 1, "label": "0s"}]},
        });
        let ctx = Context::wraps(&facts).unwrap();
        let t = Templates::builtin();
        for kind in [Kind::Markdown, Kind::Html] {
            let mut whole = Handlebars::new();
            if kind == Kind::Markdown {
                whole.register_escape_fn(handlebars::no_escape);
            }
            whole.register_helper("code", Box::new(code));
            for (name, text) in kind.partials() {
                whole.register_partial(name, *text).unwrap();
            }
            whole
                .register_template_string("incident", kind.builtin())
                .unwrap();
            let expected = whole.render_with_context("incident", &ctx).unwrap();
            let compiled = t.registry(kind);
            let pieces = compiled
                .pieces
                .as_ref()
                .expect("the built-in page is in pieces");
            assert!(
                pieces.len() > kind.partials().len(),
                "{kind:?} is cut finer than by section"
            );
            assert!(pieces.iter().any(|p| matches!(p, Piece::Text(_))));
            let joined = render_pieces(&compiled.hb, pieces, &ctx).unwrap();
            assert_eq!(joined, expected);
            assert!(expected.contains("INC-1"));
        }
    }

    /// Issue 7: build.rs compiles the built-in pieces to what handlebars
    /// compiles them to at run time, all but the elements' lines and
    /// columns.
    #[test]
    fn the_prebuilt_templates_are_what_handlebars_compiles() {
        fn unmap(t: &mut Template) {
            use handlebars::template::TemplateElement::*;
            t.mapping.clear();
            for e in &mut t.elements {
                match e {
                    HtmlExpression(h) | Expression(h) | HelperBlock(h) => {
                        h.template.iter_mut().chain(&mut h.inverse).for_each(unmap);
                    }
                    DecoratorExpression(d)
                    | DecoratorBlock(d)
                    | PartialExpression(d)
                    | PartialBlock(d) => d.template.iter_mut().for_each(unmap),
                    _ => {}
                }
            }
        }
        for (kind, compiled) in [
            (Kind::Markdown, prebuilt::markdown()),
            (Kind::Html, prebuilt::html()),
        ] {
            let texts = builtin::pieces(kind.builtin(), kind.partials());
            assert_eq!(compiled.iter().map(|(t, _)| *t).collect::<Vec<_>>(), texts);
            let mut templates = 0;
            for (i, (text, prebuilt)) in compiled.into_iter().enumerate() {
                let Some(prebuilt) = prebuilt else {
                    assert!(!builtin::is_template(text), "{kind:?} piece {i}");
                    continue;
                };
                let mut now = Template::compile_with_name(text, format!("quench:{i}")).unwrap();
                unmap(&mut now);
                assert_eq!(prebuilt, now, "{kind:?} piece {i}:\n{text}");
                templates += 1;
            }
            assert!(templates > 10, "{kind:?} has {templates} compiled pieces");
        }
    }

    /// Issue 7: each built-in section made of its prebuilt pieces is what
    /// registering its text as a partial compiles, all but where its
    /// elements were in the text.
    #[test]
    fn the_built_in_sections_are_their_pieces() {
        for kind in [Kind::Markdown, Kind::Html] {
            let sections: Vec<_> = builtin_parts(kind)
                .into_iter()
                .filter_map(|part| match part {
                    BuiltinPart::Section(name, template) => Some((name, template)),
                    BuiltinPart::Text(_) => None,
                })
                .collect();
            let names: Vec<&str> = sections.iter().map(|(n, _)| *n).collect();
            let builtin: Vec<&str> = kind.partials().iter().map(|(n, _)| *n).collect();
            assert_eq!(names, builtin);
            for ((name, made), (_, text)) in sections.into_iter().zip(kind.partials()) {
                let mut hb = Handlebars::new();
                hb.register_partial(name, *text).unwrap();
                let mut compiled = hb.get_template(name).unwrap().clone();
                clear_mappings(&mut compiled);
                assert_eq!(made, compiled, "{kind:?} section {name}");
            }
        }
    }

    fn clear_mappings(t: &mut Template) {
        use handlebars::template::TemplateElement::*;
        t.mapping.clear();
        for e in &mut t.elements {
            match e {
                HtmlExpression(h) | Expression(h) | HelperBlock(h) => {
                    h.template
                        .iter_mut()
                        .chain(&mut h.inverse)
                        .for_each(clear_mappings);
                }
                DecoratorExpression(d)
                | DecoratorBlock(d)
                | PartialExpression(d)
                | PartialBlock(d) => d.template.iter_mut().for_each(clear_mappings),
                _ => {}
            }
        }
    }

    /// Issue 7: quench's own `templates/` (a copy of the built-in ones, as
    /// in its repository) compiles nothing when it is loaded; a copy with
    /// one section changed overrides that section only.
    #[test]
    fn a_copy_of_the_built_in_templates_replaces_nothing() {
        let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let t = Templates::from_dir(&ours).unwrap();
        assert!(t.markdown.get().is_none() && t.html.get().is_none());
        assert!(t.markdown_partials.is_empty() && t.html_partials.is_empty());

        let dir = tempfile::tempdir().unwrap();
        for kind in [Kind::Markdown, Kind::Html] {
            let sections = dir.path().join(kind.partials_dir());
            std::fs::create_dir(&sections).unwrap();
            std::fs::write(dir.path().join(kind.file_name()), kind.builtin()).unwrap();
            for (name, text) in kind.partials() {
                std::fs::write(sections.join(format!("{name}.hbs")), text).unwrap();
            }
        }
        std::fs::write(dir.path().join("md/summary.hbs"), "## Ours\n").unwrap();
        let t = Templates::from_dir(dir.path()).unwrap();
        let names: Vec<&str> = t
            .markdown_partials
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["summary"]);
        assert!(t.html.get().is_none() && t.html_partials.is_empty());
        let facts = Facts(Context::wraps(serde_json::json!({"id": "INC-1"})));
        let page = t.render_in(Kind::Markdown, &facts).unwrap();
        assert!(page.contains("INC-1") && page.contains("## Ours"), "{page}");
    }

    #[test]
    fn a_template_is_cut_outside_its_blocks() {
        let text: &'static str = Box::leak(
            format!(
                "{}\n{{{{#each a}}}}\n{}\n{{{{/each}}}}\ntail\n",
                "x".repeat(300),
                "y".repeat(300)
            )
            .into_boxed_str(),
        );
        let pieces = builtin::cut(text);
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        assert!(pieces[0].starts_with('x'));
        assert!(pieces[1].starts_with("{{#each a}}") && pieces[1].ends_with("{{/each}}\n"));
        assert_eq!(pieces[2], "tail\n");
    }
}
