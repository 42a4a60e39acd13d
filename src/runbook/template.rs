//! Templates: finding what a template reads (for validation) and rendering
//! it in handlebars' strict mode (for plan and run).

use std::sync::{LazyLock, RwLock};

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Context, Handlebars, Path, PathSeg};
use serde_json::Value;

/// What a template reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Input(String),
    Secret(String),
    StepOutput {
        step: String,
        output: String,
    },
    /// `steps.<id>` read without `.outputs.<name>`.
    StepOther {
        step: String,
    },
    Incident(String),
    Unknown,
    /// A read quench cannot follow, and so refuses: why.
    Refused(String),
}

/// One path a template reads, with its byte offset in the template source.
#[derive(Debug, Clone)]
pub struct Reference {
    pub raw: String,
    pub offset: usize,
    pub target: Ref,
}

/// The longest template string a runbook may hold: compiling one takes time
/// that grows with the square of its length.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

pub const INCIDENT_FIELDS: &[&str] = &[
    "id",
    "mode",
    "runbook",
    "started_at",
    "detected_at",
    "leaked_at",
    "leaked_ago",
];

/// Helpers whose arguments are read as data and whose result is a plain
/// value, not a path into the context.
const VALUE_HELPERS: &[&str] = &[
    "if", "unless", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len", "raw",
];

/// The value helpers quench registers itself (see [`registry`]).
const OWN_HELPERS: &[&str] = &["starts_with"];

/// Stands for "any member" in a path that `#each` or a computed `lookup`
/// reads.
const ANY: &str = "*";

/// The paths a template reads, every one resolved from the context's root:
/// inside `{{#with}}` and `{{#each}}` blocks, and through `@root`, `../`
/// and `lookup`. A read that cannot be resolved is a [`Ref::Refused`], so
/// that nothing a template reads goes unchecked.
///
/// The template compiled to find them is kept for rendering it: validating
/// a runbook compiles each of its strings, and running it then compiles
/// none.
pub fn references(source: &str) -> Result<Vec<Reference>, String> {
    let mut walker = Walker {
        scopes: vec![Some(Vec::new())],
        found: Vec::new(),
    };
    let known = {
        let hb = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        hb.get_template(source)
            .map(|t| walker.template(t))
            .is_some()
    };
    if !known {
        // Compiled as `render_in` would register it.
        let template = compile(source)?;
        walker.template(&template);
        let mut hb = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        hb.register_template(source, template);
    }
    let mut search_from = 0;
    let refs = walker.found.into_iter().map(|(raw, target)| {
        let offset = source[search_from..]
            .find(&raw)
            .map(|o| o + search_from)
            .or_else(|| source.find(&raw))
            .unwrap_or(0);
        search_from = offset;
        Reference {
            raw,
            offset,
            target,
        }
    });
    Ok(refs.collect())
}

/// Walks a template, keeping the stack of block contexts: each is the path
/// from the root that `this` stands for, or `None` when it is a value no
/// path names (a helper's result).
struct Walker {
    scopes: Vec<Option<Vec<String>>>,
    found: Vec<(String, Ref)>,
}

impl Walker {
    fn template(&mut self, t: &Template) {
        for e in &t.elements {
            self.element(e);
        }
    }

    fn element(&mut self, e: &TemplateElement) {
        match e {
            TemplateElement::Expression(ht)
            | TemplateElement::HtmlExpression(ht)
            | TemplateElement::HelperBlock(ht) => {
                self.expression(ht);
            }
            TemplateElement::DecoratorExpression(d)
            | TemplateElement::DecoratorBlock(d)
            | TemplateElement::PartialExpression(d)
            | TemplateElement::PartialBlock(d) => {
                let raw = match &d.name {
                    Parameter::Name(n) => n.clone(),
                    Parameter::Path(p) => path_raw(p).to_string(),
                    _ => String::new(),
                };
                self.refuse(
                    raw,
                    "partials and decorators are not available in a runbook",
                );
            }
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            _ => self.refuse(String::new(), "is a construct quench cannot follow"),
        }
    }

    /// Records what an expression reads, walks its blocks, and returns the
    /// path its value has, when it has one.
    fn expression(&mut self, ht: &HelperTemplate) -> Option<Vec<String>> {
        let helper_like = !ht.params.is_empty() || !ht.hash.is_empty() || ht.block;
        let name = match &ht.name {
            Parameter::Name(n) if helper_like => n.as_str(),
            Parameter::Subexpression(sub) => return self.element_path(&sub.element),
            name if !helper_like => return self.param(name),
            name => {
                let raw = match name {
                    Parameter::Path(p) => path_raw(p).to_string(),
                    _ => String::new(),
                };
                self.refuse(raw, "is not a helper a runbook can use");
                return None;
            }
        };
        if ht.block_param.is_some() {
            self.refuse(
                name.to_string(),
                "block parameters (`as |x|`) are not available in a runbook: read the path itself",
            );
            return None;
        }
        let args: Vec<Option<Vec<String>>> = ht.params.iter().map(|p| self.param(p)).collect();
        for p in ht.hash.values() {
            self.param(p);
        }
        let value = match name {
            "with" => args.first().cloned().flatten(),
            "each" => args.first().cloned().flatten().map(|mut p| {
                p.push(ANY.into());
                p
            }),
            "lookup" => self.lookup(ht),
            n if VALUE_HELPERS.contains(&n) || OWN_HELPERS.contains(&n) => None,
            "log" => {
                self.refuse(
                    name.to_string(),
                    "`log` writes to quench's own log: leave it out",
                );
                None
            }
            other => {
                self.refuse(other.to_string(), "is not a helper a runbook can use");
                None
            }
        };
        if let Some(t) = &ht.template {
            let scoped = matches!(name, "with" | "each");
            if scoped {
                self.scopes.push(value.clone());
            }
            self.template(t);
            if scoped {
                self.scopes.pop();
            }
        }
        if let Some(t) = &ht.inverse {
            self.template(t);
        }
        value
    }

    fn element_path(&mut self, e: &TemplateElement) -> Option<Vec<String>> {
        match e {
            TemplateElement::Expression(ht) => self.expression(ht),
            other => {
                self.element(other);
                None
            }
        }
    }

    /// `lookup X KEY`: the member KEY of X, a read of X's own member when KEY
    /// is a literal, and of any of them when it is computed.
    fn lookup(&mut self, ht: &HelperTemplate) -> Option<Vec<String>> {
        let Some(Parameter::Path(base)) = ht.params.first() else {
            return None;
        };
        let raw = path_raw(base).to_string();
        let mut path = self.resolve(base).ok()?;
        match ht.params.get(1) {
            Some(Parameter::Literal(Value::String(key))) => path.push(key.clone()),
            Some(Parameter::Literal(Value::Number(n))) => path.push(n.to_string()),
            _ => path.push(ANY.into()),
        }
        self.found.push((raw, classify(&path)));
        Some(path)
    }

    /// Records a parameter's read; returns the path it names.
    fn param(&mut self, p: &Parameter) -> Option<Vec<String>> {
        match p {
            Parameter::Path(path @ Path::Relative(_)) => {
                let raw = path_raw(path).to_string();
                match self.resolve(path) {
                    Ok(resolved) => {
                        self.found.push((raw, classify(&resolved)));
                        Some(resolved)
                    }
                    Err(why) => {
                        self.refuse(raw, &why);
                        None
                    }
                }
            }
            Parameter::Name(n) => {
                let segs = if n == "this" {
                    Vec::new()
                } else {
                    vec![PathSeg::Named(n.clone())]
                };
                self.param(&Parameter::Path(Path::Relative((segs, n.clone()))))
            }
            Parameter::Subexpression(sub) => self.element_path(&sub.element),
            // `@index`, `@key`, `@first`, `@last`: where a block is, not data.
            Parameter::Path(Path::Local(_)) | Parameter::Literal(_) => None,
            _ => {
                self.refuse(String::new(), "is a construct quench cannot follow");
                None
            }
        }
    }

    /// The path from the root that `path` names where it stands.
    fn resolve(&self, path: &Path) -> Result<Vec<String>, String> {
        let Path::Relative((segs, raw)) = path else {
            return Err(format!(
                "`{}` is not a path quench can follow",
                path_raw(path)
            ));
        };
        let mut rest = segs.as_slice();
        let (root, up_seg) = &*RULED;
        let mut resolved = if let Some((seg, tail)) = rest.split_first()
            && seg == root
        {
            rest = tail;
            Vec::new()
        } else {
            let mut up = 0;
            while let Some((seg, tail)) = rest.split_first()
                && seg == up_seg
            {
                up += 1;
                rest = tail;
            }
            let scope = self
                .scopes
                .len()
                .checked_sub(up + 1)
                .and_then(|i| self.scopes.get(i))
                .ok_or_else(|| format!("`{raw}` climbs above the template's root"))?;
            scope.clone().ok_or_else(|| {
                format!(
                    "`{raw}` is read from a block whose value is no path of the runbook's: write it from the root, as `@root.…`"
                )
            })?
        };
        for seg in rest {
            match seg {
                PathSeg::Named(n) => resolved.push(n.clone()),
                _ => return Err(format!("`{raw}` is not a path quench can follow")),
            }
        }
        Ok(resolved)
    }

    fn refuse(&mut self, raw: String, why: &str) {
        self.found.push((raw, Ref::Refused(why.to_string())));
    }
}

/// The segments `@root` and `../` parse to: handlebars does not export the
/// grammar's rules they carry, so they are taken from paths it parses.
static RULED: LazyLock<(PathSeg, PathSeg)> = LazyLock::new(|| {
    let first = |raw: &str| match Path::parse(raw) {
        Ok(Path::Relative((segs, _))) => segs.into_iter().next(),
        _ => None,
    };
    let root = first("@root.a").expect("`@root.a` parses");
    let up = first("../a").expect("`../a` parses");
    (root, up)
});

fn path_raw(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

/// What a path from the root reads. A member that `each` or a computed
/// `lookup` chooses (`*`) is refused where it would name an input, a
/// secret, a step or an output: which one is read cannot be known.
fn classify(path: &[String]) -> Ref {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let any = |what: &str| {
        Ref::Refused(format!(
            "reads {what} chosen as the template runs, so quench cannot tell which: name it"
        ))
    };
    match parts.as_slice() {
        ["inputs", ANY, ..] => any("an input"),
        ["secrets", ANY, ..] => any("a secret"),
        ["steps", ANY, ..] => any("a step"),
        ["steps", _, "outputs", ANY, ..] => any("an output"),
        ["incident", ANY, ..] => any("an incident field"),
        ["inputs", name, ..] => Ref::Input(name.to_string()),
        ["secrets", name, ..] => Ref::Secret(name.to_string()),
        ["steps", step, "outputs", output, ..] => Ref::StepOutput {
            step: step.to_string(),
            output: output.to_string(),
        },
        ["steps", step, ..] => Ref::StepOther {
            step: step.to_string(),
        },
        ["incident", field] => Ref::Incident(field.to_string()),
        _ => Ref::Unknown,
    }
}

/// Whether a string holds a template at all.
pub fn is_template(s: &str) -> bool {
    s.contains("{{")
}

/// How what a template interpolates is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As it is.
    None,
    /// For Slack mrkdwn ([`crate::mrkdwn::escape`]).
    Mrkdwn,
}

/// Every template string rendered so far, compiled once, under its own
/// text as its name: a step's strings are rendered twice (with the secrets,
/// and with their markers for the journal), a bulk step's for every key,
/// and compiling is most of rendering one.
static REGISTRY: LazyLock<RwLock<Handlebars<'static>>> =
    LazyLock::new(|| RwLock::new(registry(handlebars::no_escape)));

/// The same, for strings Slack reads as mrkdwn.
static MRKDWN: LazyLock<RwLock<Handlebars<'static>>> =
    LazyLock::new(|| RwLock::new(registry(crate::mrkdwn::escape)));

// `(starts_with inputs.access_key_id "ASIA")`: whether a value is of a
// kind its prefix names (a temporary AWS key, a GitHub token's type).
handlebars::handlebars_helper!(starts_with: |s: str, prefix: str| s.starts_with(prefix));

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(escape);
    hb.register_helper("starts_with", Box::new(starts_with));
    hb
}

/// Renders one template string against a context.
pub fn render_str(source: &str, ctx: &Value) -> Result<String, String> {
    render_in(source, &wrap(ctx)?, Escape::None)
}

/// [`render_str`] against a context made already: the engine keeps its
/// contexts made, so that a step copies none of the outputs before it.
pub fn render_str_in(source: &str, ctx: &Context) -> Result<String, String> {
    render_in(source, ctx, Escape::None)
}

fn wrap(ctx: &Value) -> Result<Context, String> {
    Context::wraps(ctx).map_err(|e| e.to_string())
}

fn render_in(source: &str, ctx: &Context, escape: Escape) -> Result<String, String> {
    if !is_template(source) {
        return Ok(source.to_string());
    }
    let registry = match escape {
        Escape::None => &REGISTRY,
        Escape::Mrkdwn => &MRKDWN,
    };
    let message = |e: handlebars::RenderError| match e.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(path)) => {
            format!("`{path}` has no value")
        }
        _ => e.to_string(),
    };
    {
        let hb = registry.read().unwrap_or_else(|e| e.into_inner());
        if hb.has_template(source) {
            return hb.render_with_context(source, ctx).map_err(message);
        }
    }
    let mut hb = registry.write().unwrap_or_else(|e| e.into_inner());
    if !hb.has_template(source) {
        hb.register_template(source, compile(source)?);
    }
    hb.render_with_context(source, ctx).map_err(message)
}

/// Compiles a template string, named by its own text.
fn compile(source: &str) -> Result<Template, String> {
    Template::compile_with_name(source, source.to_owned()).map_err(|e| e.to_string())
}

/// Renders every string inside a value. A string that is exactly one
/// `{{path}}` takes the path's value whole, so lists and numbers pass through
/// with their type.
pub fn render_value(value: &Value, ctx: &Value) -> Result<Value, String> {
    render_value_in(value, &wrap(ctx)?)
}

/// [`render_value`] against a context made already.
pub fn render_value_in(value: &Value, ctx: &Context) -> Result<Value, String> {
    render_value_escaped(value, ctx, Escape::None)
}

/// [`render_value_in`], with what each template interpolates escaped.
pub fn render_value_escaped(value: &Value, ctx: &Context, escape: Escape) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => {
            if let Some(path) = sole_path(s)
                && let Some(found) = lookup(ctx.data(), path)
                && !found.is_string()
            {
                return Ok(found.clone());
            }
            Value::String(render_in(s, ctx, escape)?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value_escaped(v, ctx, escape))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value_escaped(v, ctx, escape)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn sole_path(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    inner
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        .then_some(inner)
}

fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, seg| v.get(seg))
}

/// Whether a rendered `when` says to run the step.
pub fn truthy(rendered: &str) -> bool {
    matches!(rendered.trim(), "true" | "yes" | "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references_with_offsets() {
        let refs = references("Revoking {{inputs.key}} for {{steps.a.outputs.id}}").unwrap();
        assert_eq!(refs[0].target, Ref::Input("key".into()));
        assert_eq!(refs[0].offset, 11);
        assert_eq!(
            refs[1].target,
            Ref::StepOutput {
                step: "a".into(),
                output: "id".into()
            }
        );
    }

    fn targets(source: &str) -> Vec<(String, Ref)> {
        references(source)
            .unwrap()
            .into_iter()
            .map(|r| (r.raw, r.target))
            .collect()
    }

    #[test]
    fn looks_inside_helpers_and_resolves_block_scopes() {
        let refs = targets(
            "{{#if (eq inputs.a \"x\")}}{{#each inputs.list}}{{this}}{{name}}{{@index}}{{/each}}{{/if}}",
        );
        let input = |n: &str| Ref::Input(n.into());
        let raws: Vec<_> = refs
            .iter()
            .map(|(raw, t)| (raw.as_str(), t.clone()))
            .collect();
        assert_eq!(
            raws,
            [
                ("inputs.a", input("a")),
                ("inputs.list", input("list")),
                ("this", input("list")),
                ("name", input("list")),
            ]
        );
    }

    /// Every way to reach a secret from inside a block is followed.
    #[test]
    fn block_scopes_cannot_hide_a_secret() {
        let secret = Ref::Secret("leaked".into());
        for source in [
            "id {{incident.id}} {{#with incident.id}}tok={{@root.secrets.leaked}}{{/with}}",
            "{{#with incident}}{{../secrets.leaked}}{{/with}}",
            "{{#with secrets}}{{leaked}}{{/with}}",
            "{{#each inputs.list}}{{#with ../secrets}}{{this.leaked}}{{/with}}{{/each}}",
            "{{lookup secrets \"leaked\"}}",
            "{{#with (lookup secrets \"leaked\")}}{{this}}{{/with}}",
            "{{#if (eq (lookup @root.secrets \"leaked\") \"x\")}}y{{/if}}",
            "{{#with incident}}{{else}}{{secrets.leaked}}{{/with}}",
        ] {
            let refs = targets(source);
            assert!(refs.iter().any(|(_, t)| t == &secret), "{source}: {refs:?}");
        }
        for source in [
            "{{lookup secrets inputs.which}}",
            "{{#each secrets}}{{this}}{{/each}}",
            "{{#with (eq 1 1)}}{{secrets.leaked}}{{/with}}",
            "{{#with incident}}{{../../secrets.leaked}}{{/with}}",
            "{{#each inputs.list as |x|}}{{x}}{{/each}}",
            "{{log secrets.leaked}}",
            "{{> partial}}",
            "{{shout secrets.leaked}}",
        ] {
            let refs = targets(source);
            assert!(
                refs.iter().any(|(_, t)| matches!(t, Ref::Refused(_))),
                "{source}: {refs:?}"
            );
        }
    }

    #[test]
    fn strict_rendering_names_the_missing_path() {
        let err = render_str("{{inputs.nope}}", &json!({"inputs": {}})).unwrap_err();
        assert!(err.contains("inputs.nope"), "{err}");
        assert_eq!(
            render_str("<{{inputs.a}}>", &json!({"inputs": {"a": "&"}})).unwrap(),
            "<&>"
        );
    }

    #[test]
    fn a_compiled_template_renders_each_context_afresh() {
        let with = |a: &str| {
            let ctx = json!({"inputs": {"a": a}});
            render_value(
                &json!({"url": "{{inputs.a}}/x", "n": ["{{inputs.a}}!"]}),
                &ctx,
            )
            .unwrap()
        };
        assert_eq!(with("one"), json!({"url": "one/x", "n": ["one!"]}));
        assert_eq!(with("two"), json!({"url": "two/x", "n": ["two!"]}));
        let err = render_str("{{inputs.a}}/x", &json!({"inputs": {}})).unwrap_err();
        assert!(err.contains("`inputs.a` has no value"), "{err}");
    }

    /// Validating a runbook leaves its strings compiled for running it.
    #[test]
    fn a_validated_template_is_rendered_without_compiling_it_again() {
        let source = "{{inputs.once}}-validated";
        assert_eq!(references(source).unwrap().len(), 1);
        assert!(
            REGISTRY
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .has_template(source)
        );
        assert_eq!(references(source).unwrap().len(), 1);
        let ctx = json!({"inputs": {"once": "x"}});
        assert_eq!(render_str(source, &ctx).unwrap(), "x-validated");
    }

    #[test]
    fn sole_paths_keep_their_type() {
        let ctx = json!({"inputs": {"n": [1, 2]}});
        assert_eq!(
            render_value(&json!("{{inputs.n}}"), &ctx).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn starts_with_tells_a_kind_by_its_prefix() {
        let when = r#"{{#if (starts_with inputs.key "ASIA")}}false{{else}}true{{/if}}"#;
        let refs = references(when).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].target, Ref::Input("key".into()));
        let render = |key: &str| render_str(when, &json!({"inputs": {"key": key}})).unwrap();
        assert_eq!(render("ASIAQUENCHTEST000001"), "false");
        assert_eq!(render("AKIAQUENCHTEST000001"), "true");
    }
}
