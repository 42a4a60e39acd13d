//! The document templates: handlebars files a team can restyle without
//! rebuilding quench. The built-in ones are compiled in from `templates/`;
//! a templates directory overrides them file by file, and `report
//! --template FILE` renders one report with any file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};

use super::Report;

pub const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/incident.md.hbs");
pub const HTML_TEMPLATE: &str = include_str!("../../templates/incident.html.hbs");

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
    #[error("the template `{origin}` is not valid handlebars: {message}")]
    Invalid { origin: String, message: String },
    #[error("the template `{origin}` failed to render: {message}")]
    Render { origin: String, message: String },
}

/// One registry per kind: Markdown is written verbatim, HTML is escaped.
///
/// Compiling the built-in templates takes tens of milliseconds (the HTML one
/// is large), and nothing needs them before the first step has settled, so
/// they are compiled on first use ([`Templates::warm`] does it ahead of time,
/// off the path to the first request). A team's own templates are compiled
/// when they are loaded, so a broken one is refused before anything runs.
#[derive(Debug, Clone)]
pub struct Templates {
    markdown: Arc<OnceLock<Handlebars<'static>>>,
    markdown_origin: String,
    html: Arc<OnceLock<Handlebars<'static>>>,
    html_origin: String,
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
        }
    }

    /// Compiles the templates not compiled yet.
    pub fn warm(&self) {
        self.registry(Kind::Markdown);
        self.registry(Kind::Html);
    }

    fn registry(&self, kind: Kind) -> &Handlebars<'static> {
        let cell = match kind {
            Kind::Markdown => &self.markdown,
            Kind::Html => &self.html,
        };
        // Only the built-in templates are left uncompiled by `with_file`.
        cell.get_or_init(|| {
            registry(kind, kind.builtin(), "built-in")
                .expect("the built-in templates are valid handlebars")
        })
    }

    /// The built-in templates, with those `dir` holds in their place.
    pub fn from_dir(dir: &Path) -> Result<Self, TemplateError> {
        let mut t = Self::builtin();
        for kind in [Kind::Markdown, Kind::Html] {
            let path = dir.join(kind.file_name());
            if path.is_file() {
                t = t.with_file(kind, &path)?;
            }
        }
        Ok(t)
    }

    /// These templates, with `path` rendering the `kind` document.
    pub fn with_file(mut self, kind: Kind, path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let hb = Arc::new(OnceLock::from(registry(kind, &text, &origin)?));
        match kind {
            Kind::Markdown => (self.markdown, self.markdown_origin) = (hb, origin),
            Kind::Html => (self.html, self.html_origin) = (hb, origin),
        }
        Ok(self)
    }

    pub fn render(&self, kind: Kind, report: &Report) -> Result<String, TemplateError> {
        let origin = match kind {
            Kind::Markdown => &self.markdown_origin,
            Kind::Html => &self.html_origin,
        };
        self.registry(kind)
            .render("incident", report)
            .map_err(|e| TemplateError::Render {
                origin: origin.clone(),
                message: e.to_string(),
            })
    }

    /// The Markdown document; a template that fails still leaves a document
    /// that says why, because an incident's record must never be lost.
    pub fn markdown(&self, report: &Report) -> String {
        self.render(Kind::Markdown, report).unwrap_or_else(|e| {
            format!(
                "# {}\n\n{e}\n\nThe facts are in incident.json.\n",
                report.id
            )
        })
    }

    pub fn html(&self, report: &Report) -> String {
        self.render(Kind::Html, report).unwrap_or_else(|e| {
            let e = handlebars::html_escape(&e.to_string());
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>{}</title><p>{e}</p><p>The facts are in incident.json.</p>\n",
                report.id
            )
        })
    }
}

fn registry(kind: Kind, text: &str, origin: &str) -> Result<Handlebars<'static>, TemplateError> {
    let mut hb = Handlebars::new();
    if kind == Kind::Markdown {
        hb.register_escape_fn(handlebars::no_escape);
    }
    hb.register_helper("code", Box::new(code));
    hb.register_template_string("incident", text)
        .map_err(|e| TemplateError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
    Ok(hb)
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
