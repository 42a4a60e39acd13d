//! JSON Schemas for runbooks and scenarios, generated from the very types
//! the loader reads (`RawRunbook`, `RawScenario`), then given the closed
//! sets an editor should offer: every action, phase and fault.

use serde_json::{Value, json};

use crate::providers::{self, ParamType};
use crate::runbook::Phase;
use crate::runbook::raw::RawRunbook;
use crate::scenario::RawScenario;

pub const RUNBOOK_ID: &str = "https://quench.dev/schemas/runbook.schema.json";
pub const SCENARIO_ID: &str = "https://quench.dev/schemas/scenario.schema.json";

fn actions() -> Vec<&'static str> {
    providers::all_actions().map(|a| a.name).collect()
}

/// Sets `enum` on the property `name` of definition `def`.
fn constrain(schema: &mut Value, def: &str, name: &str, values: Value, doc: &str) {
    let target = if def.is_empty() {
        schema.pointer_mut(&format!("/properties/{name}"))
    } else {
        schema.pointer_mut(&format!("/$defs/{def}/properties/{name}"))
    };
    if let Some(Value::Object(prop)) = target {
        prop.insert("enum".into(), values);
        prop.insert("description".into(), Value::String(doc.into()));
    }
}

pub fn runbook() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawRunbook)).unwrap_or_default();
    schema["$id"] = json!(RUNBOOK_ID);
    schema["title"] = json!("quench runbook");
    let phases: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
    constrain(
        &mut schema,
        "RawStep",
        "action",
        json!(actions()),
        "the action (`quench providers` lists each with its parameters)",
    );
    constrain(
        &mut schema,
        "RawStep",
        "phase",
        json!(phases),
        "the phase of the compromise response",
    );
    constrain(
        &mut schema,
        "RawStep",
        "on_failure",
        json!(["abort", "continue"]),
        "abort: start nothing new; continue (default): carry on with what does not depend on this step",
    );
    if let Some(Value::Object(step)) = schema.pointer_mut("/$defs/RawStep") {
        step.insert("allOf".into(), Value::Array(with_by_action()));
    }
    constrain(
        &mut schema,
        "",
        "kind",
        json!(["compromise", "procedure", "rotation"]),
        "compromise runbooks are checked for all eight phases; a rotation has no SLO",
    );
    schema
}

/// For each action, what its step's `with:` holds: the parameters its
/// declaration names, with their types and whether each is required, so an
/// editor completes them and flags one that is missing or misspelt. A
/// value may always be a template string instead (`{{inputs.n}}`).
fn with_by_action() -> Vec<Value> {
    providers::all_actions()
        .map(|a| {
            let properties: serde_json::Map<String, Value> = a
                .params
                .iter()
                .map(|p| {
                    let secret = if p.secret { " (secret-capable)" } else { "" };
                    let mut prop = param_type(p.ty);
                    prop["description"] = json!(format!("{}{secret}", p.doc));
                    (p.name.to_string(), prop)
                })
                .collect();
            let required: Vec<&str> = a
                .params
                .iter()
                .filter(|p| p.required)
                .map(|p| p.name)
                .collect();
            json!({
                "if": { "properties": { "action": { "const": a.name } }, "required": ["action"] },
                "then": { "properties": { "with": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                } } },
            })
        })
        .collect()
}

/// The JSON Schema of a parameter's value: its type, or a template string.
fn param_type(ty: ParamType) -> Value {
    let string = json!({ "type": "string" });
    let one_of = |t: Value| json!({ "anyOf": [t, string.clone()] });
    match ty {
        ParamType::String => string.clone(),
        ParamType::Int => one_of(json!({ "type": "integer" })),
        ParamType::Bool => one_of(json!({ "type": "boolean" })),
        ParamType::StringList => one_of(json!({ "type": "array", "items": { "type": "string" } })),
        ParamType::IntList => one_of(
            json!({ "type": "array", "items": { "anyOf": [{ "type": "integer" }, string] } }),
        ),
        ParamType::StringMap => {
            one_of(json!({ "type": "object", "additionalProperties": { "type": "string" } }))
        }
        ParamType::Any => json!({}),
    }
}

pub fn scenario() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawScenario)).unwrap_or_default();
    schema["$id"] = json!(SCENARIO_ID);
    schema["title"] = json!("quench rehearsal scenario");
    constrain(
        &mut schema,
        "",
        "clock",
        json!(["virtual", "realtime"]),
        "virtual (default) finishes at once and reports simulated times",
    );
    constrain(
        &mut schema,
        "RawFault",
        "error",
        json!(["throttled", "server_error", "timeout", "permanent"]),
        "how the attempts fail",
    );
    // `actions` is keyed by action name.
    if let Some(Value::Object(actions_prop)) = schema.pointer_mut("/properties/actions") {
        actions_prop.insert("propertyNames".into(), json!({ "enum": actions() }));
    }
    schema
}

/// Pretty JSON with a final newline, as committed under `schemas/`.
pub fn to_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
