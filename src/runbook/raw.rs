//! The runbook as written: plain serde shapes that keep every value's
//! location, read strictly (unknown fields are errors). Nothing here judges
//! meaning; `validate` turns these into the model.

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// A value and where it is written: serde-saphyr's `Spanned`, with the
/// schema of the value it holds (and, for a default in the schema, written
/// as that value).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "Spanned<T>", bound = "T: Deserialize<'de>")]
pub struct S<T> {
    pub value: T,
    pub referenced: Location,
    pub defined: Location,
}

impl<T> From<Spanned<T>> for S<T> {
    fn from(s: Spanned<T>) -> Self {
        Self {
            value: s.value,
            referenced: s.referenced,
            defined: s.defined,
        }
    }
}

impl<T: serde::Serialize> serde::Serialize for S<T> {
    fn serialize<Se: serde::Serializer>(&self, serializer: Se) -> Result<Se::Ok, Se::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for S<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRunbook {
    pub name: S<String>,
    pub title: Option<S<String>>,
    pub kind: Option<S<String>>,
    pub description: Option<S<String>>,
    pub slo: Option<RawSlo>,
    /// A drill's targets for the people playing it.
    pub drill: Option<RawDrillTargets>,
    #[serde(default)]
    pub inputs: SpannedMap<RawInput>,
    #[serde(default)]
    pub secrets: SpannedMap<RawSecret>,
    pub steps: S<Vec<RawStep>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    pub revoke_within: Option<S<String>>,
}

/// How soon a drill's people should act, from its start.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrillTargets {
    /// Each approval given within this of the drill's start (`2m`).
    pub approve_within: Option<S<String>>,
    /// Each manual task answered within this of the drill's start (`10m`).
    pub answer_within: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub description: Option<S<String>>,
    pub pattern: Option<S<String>>,
    pub default: Option<S<String>>,
    pub example: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub description: Option<S<String>>,
    /// The responder may not have it (the leaked half of a key pair): a run
    /// without it skips the steps that read it, saying so.
    pub optional: Option<S<bool>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub id: S<String>,
    pub name: Option<S<String>>,
    pub phase: S<String>,
    pub action: S<String>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub with: SpannedMap<S<RawValue>>,
    #[serde(default)]
    pub needs: Vec<S<String>>,
    /// Steps this one runs after whatever their result (succeeded, failed
    /// or skipped), where `needs` waits for their success.
    #[serde(default)]
    pub settled: Vec<S<String>>,
    pub when: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub retry: Option<RawRetry>,
    pub on_failure: Option<S<String>>,
    pub approval: Option<RawApproval>,
    pub after: Option<S<String>>,
    /// Running the step twice does no harm: `resume` may run it again when
    /// it was in flight at a crash.
    pub idempotent: Option<S<bool>>,
}

impl RawStep {
    /// The parameter `key` of `with:`, as written.
    pub fn param(&self, key: &str) -> Option<&S<RawValue>> {
        self.with
            .0
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<S<u32>>,
    pub initial: Option<S<String>>,
    pub max: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    #[serde(default)]
    pub approvers: Vec<S<String>>,
}

/// A mapping that keeps its keys' order and locations.
#[derive(Debug)]
pub struct SpannedMap<V>(pub Vec<(S<String>, V)>);

impl<V> Default for SpannedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V: JsonSchema> JsonSchema for SpannedMap<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <std::collections::BTreeMap<String, V>>::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(SpannedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<S<String>, V>()? {
                    out.push((k, v));
                }
                Ok(SpannedMap(out))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Any YAML value, with the location of every nested value kept, so a
/// template deep inside `with.json` can still be pointed at.
#[derive(Debug, Clone)]
pub enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<S<RawValue>>),
    Map(Vec<(S<String>, S<RawValue>)>),
}

impl RawValue {
    /// The plain JSON value, locations dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            RawValue::Null => Value::Null,
            RawValue::Bool(b) => Value::Bool(*b),
            RawValue::Int(i) => Value::from(*i),
            RawValue::Float(f) => Value::from(*f),
            RawValue::String(s) => Value::String(s.clone()),
            RawValue::Seq(items) => Value::Array(items.iter().map(|v| v.value.to_json()).collect()),
            RawValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            RawValue::Null => "null",
            RawValue::Bool(_) => "a boolean",
            RawValue::Int(_) | RawValue::Float(_) => "a number",
            RawValue::String(_) => "a string",
            RawValue::Seq(_) => "a list",
            RawValue::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<RawValue, E> {
                Ok(RawValue::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
                i64::try_from(v)
                    .map(RawValue::Int)
                    .or(Ok(RawValue::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue::String(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
                Ok(RawValue::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<S<RawValue>>()? {
                    out.push(v);
                }
                Ok(RawValue::Seq(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<S<String>, S<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(RawValue::Map(out))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}
