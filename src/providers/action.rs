//! How an action is declared and performed. [`action!`] declares one: its
//! typed parameters and outputs, from which its [`ActionSpec`] (read by
//! `validate`, `plan`, `sim`, the schema and the docs) is made; [`Perform`]
//! is its one implementation. The spec points at that implementation, so a
//! declaration without one does not compile.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{ActionError, ActionSpec, OutputSpec, OutputValue, Outputs, ParamType, within};
use crate::secret::Secret;

/// What an attempt knows besides its parameters.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    /// The step's id, which names the secrets it outputs.
    pub step: &'a str,
    /// How long the attempt has to be answered.
    pub timeout: Duration,
    /// Where the attempt notes the effect it had, for the step's next one.
    pub notes: &'a dyn Notes,
    /// The incident clock's now (`quench tick --now` sets it; a rehearsal's
    /// is virtual).
    pub now: DateTime<Utc>,
    /// When the step first started, in whichever run: where the window of
    /// an action that watches begins.
    pub since: DateTime<Utc>,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("step", &self.step)
            .field("timeout", &self.timeout)
            .field("now", &self.now)
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl Call<'_> {
    /// A secret output of this step, named `step.output`.
    pub fn secret(&self, output: &str, value: impl Into<String>) -> Secret {
        Secret::new(format!("{}.{output}", self.step), value)
    }

    /// What an earlier attempt of this step noted, if it noted a `T`.
    pub fn noted<T: DeserializeOwned>(&self) -> Option<T> {
        self.notes
            .noted()
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// Journals `note` before the attempt goes on. Never a secret: the
    /// journal keeps it as it is (after the redactor's sweep).
    pub async fn note(&self, note: &impl serde::Serialize) -> Result<(), ActionError> {
        let value = serde_json::to_value(note).map_err(|e| {
            ActionError::permanent(format!(
                "failed to note the attempt's effect (internal error: please report it): {e}"
            ))
        })?;
        self.notes.note(value).await
    }
}

/// Where an attempt notes the effect it had that must not be repeated (the
/// deployment it started), before it waits on it. The note is journaled, so
/// the step's next attempt, in this run or after a resume, reads it and
/// carries on from it.
pub trait Notes: Sync {
    /// The last note of this step's earlier attempts.
    fn noted(&self) -> Option<Value>;
    /// Journals `note`, durably, and keeps it for the next attempt.
    fn note(
        &self,
        note: Value,
    ) -> Pin<Box<dyn Future<Output = Result<(), ActionError>> + Send + '_>>;
}

/// The client an action is performed with, as the incident built it.
pub trait Client: Sync + 'static {
    /// This provider's client in `live`, if the runbook's use of it built one.
    fn of(live: &super::Live) -> Option<&Self>;
}

/// What [`action!`] declares of an action besides its spec; `Self` is its
/// parameters.
pub trait Declared {
    /// Its provider's client.
    type Client;
    type Outputs: IntoOutputs;
}

/// An action's implementation; `Self` is its parameters.
pub trait Perform: Declared<Client: Client> + DeserializeOwned + Send + 'static {
    /// The action waits for its own turn before its timeout starts
    /// (`http.request` queues at its host's gate); others are timed whole.
    const TIMES_ITSELF: bool = false;

    fn perform(
        self,
        client: &Self::Client,
        call: Call<'_>,
    ) -> impl Future<Output = Result<Self::Outputs, ActionError>> + Send;
}

/// An action that watches for a condition over a window (an old key going
/// quiet): it answers [`ActionError::not_yet`] until the window has passed.
/// A rehearsal has no real condition to watch, so its virtual clock waits
/// out the window and the action is met.
pub trait Watches: Perform {
    fn window(&self) -> Duration;
}

/// How long a rehearsal waits before a watching action is met, from its
/// rendered parameters; `None` when they do not parse.
pub type Window = fn(&ActionSpec, &Map<String, Value>) -> Option<Duration>;

/// The [`Window`] of action `A`.
pub fn window<A: Watches>(spec: &ActionSpec, params: &Map<String, Value>) -> Option<Duration> {
    parse::<A>(spec, params).ok().map(|a| a.window())
}

/// What a spec points at: parse the parameters, find the client, perform.
pub type Run =
    for<'a> fn(
        &'a super::Live,
        &'a ActionSpec,
        Call<'a>,
        &'a Map<String, Value>,
    ) -> Pin<Box<dyn Future<Output = Result<Outputs, ActionError>> + Send + 'a>>;

/// The [`Run`] of action `A`.
pub fn run<'a, A: Perform>(
    live: &'a super::Live,
    spec: &'a ActionSpec,
    call: Call<'a>,
    params: &'a Map<String, Value>,
) -> Pin<Box<dyn Future<Output = Result<Outputs, ActionError>> + Send + 'a>> {
    Box::pin(async move {
        let client = A::Client::of(live).ok_or_else(|| {
            ActionError::permanent(format!(
                "`{}` needs the `{}` provider, which was not set up (internal error: please report it)",
                spec.name, spec.provider
            ))
        })?;
        let params: A = parse(spec, params)?;
        let outputs = if A::TIMES_ITSELF {
            params.perform(client, call).await
        } else {
            within(call.timeout, params.perform(client, call)).await
        };
        outputs.map(IntoOutputs::into_outputs)
    })
}

/// Rendered parameters as `A`. A template renders to a string, so a typed
/// parameter is read from one (`"3"` for an integer); validation has
/// already refused values of the wrong shape.
pub(crate) fn parse<A: DeserializeOwned>(
    spec: &ActionSpec,
    params: &Map<String, Value>,
) -> Result<A, ActionError> {
    let mut typed = Map::new();
    for (name, value) in params {
        let ty = spec.param(name).map_or(ParamType::Any, |p| p.ty);
        typed.insert(name.clone(), coerce(ty, value.clone()));
    }
    // serde's message may quote the value, so it is left out where a
    // parameter may hold a secret.
    serde_json::from_value(Value::Object(typed)).map_err(|e| {
        let why = if spec.params.iter().any(|p| p.secret) {
            String::new()
        } else {
            format!(": {e}")
        };
        ActionError::permanent(format!("`{}` has bad parameters{why}", spec.name))
    })
}

fn coerce(ty: ParamType, value: Value) -> Value {
    let int = |v: Value| match &v {
        Value::String(s) => s.trim().parse::<i64>().map_or(v, Value::from),
        _ => v,
    };
    let string = |v: Value| match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        v => v,
    };
    match (ty, value) {
        (ParamType::Int, v) => int(v),
        (ParamType::Bool, Value::String(s)) if s.trim() == "true" => Value::Bool(true),
        (ParamType::Bool, Value::String(s)) if s.trim() == "false" => Value::Bool(false),
        (ParamType::String, v) => string(v),
        (ParamType::IntList, Value::Array(items)) => items.into_iter().map(int).collect(),
        (ParamType::StringList, Value::Array(items)) => items.into_iter().map(string).collect(),
        // A whole list templated from one string (a leaked `.env` secret).
        (ParamType::StringList, Value::String(s)) => Value::Array(vec![Value::String(s)]),
        (ParamType::StringMap, Value::Object(map)) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, Value::String(super::text_of(&v))))
                .collect(),
        ),
        (_, v) => v,
    }
}

/// A parameter's shape, read off its Rust type.
pub trait ParamKind {
    const TY: ParamType;
    const REQUIRED: bool = true;
}

macro_rules! param_kinds {
    ($($t:ty => $ty:ident),*) => {$(
        impl ParamKind for $t {
            const TY: ParamType = ParamType::$ty;
        }
    )*};
}
param_kinds!(
    String => String,
    i64 => Int,
    bool => Bool,
    Vec<String> => StringList,
    Vec<i64> => IntList,
    BTreeMap<String, String> => StringMap,
    Value => Any
);
impl<T: ParamKind> ParamKind for Option<T> {
    const TY: ParamType = T::TY;
    const REQUIRED: bool = false;
}

/// An output's value: a [`Secret`] is a secret output, anything else plain.
pub trait OutputKind {
    const SECRET: bool = false;
    fn into_output(self) -> OutputValue;
}

impl OutputKind for Secret {
    const SECRET: bool = true;
    fn into_output(self) -> OutputValue {
        OutputValue::Secret(self)
    }
}

macro_rules! plain_outputs {
    ($($t:ty),*) => {$(
        impl OutputKind for $t {
            fn into_output(self) -> OutputValue {
                OutputValue::Plain(Value::from(self))
            }
        }
    )*};
}
plain_outputs!(Value, String, i64, u64, bool, Vec<Value>, Vec<String>);

/// An action's outputs, as the engine publishes them.
pub trait IntoOutputs: Send {
    const SPECS: &'static [OutputSpec];
    /// The step names its outputs itself (`http.request`'s `outputs`).
    const DYNAMIC: bool = false;
    fn into_outputs(self) -> Outputs;
}

impl IntoOutputs for () {
    const SPECS: &'static [OutputSpec] = &[];
    fn into_outputs(self) -> Outputs {
        Vec::new()
    }
}

/// Outputs named by the step, after those `D` declares (none by default).
pub struct Named<D = ()>(pub D, pub Outputs);

impl<D: IntoOutputs> IntoOutputs for Named<D> {
    const SPECS: &'static [OutputSpec] = D::SPECS;
    const DYNAMIC: bool = true;
    fn into_outputs(self) -> Outputs {
        let mut outputs = self.0.into_outputs();
        outputs.extend(self.1);
        outputs
    }
}

/// Declares an action: its parameters' struct (each field's doc is the
/// parameter's; `[secret]` lets a secret flow in, `[mrkdwn]` escapes what a
/// template puts in), its outputs (a struct declared here, `()` for none,
/// `Named` for outputs the step names), and `SPEC`. The action's flags:
/// `idempotent`, safe to repeat after a crash mid-flight; `proves_dead`,
/// its success proves the leaked credential dead (the provider refused it);
/// `engine`, the engine performs it itself (a human's task, the document)
/// and it has no [`Perform`]; `watches`, it watches for a condition over a
/// window ([`Watches`]).
#[macro_export]
macro_rules! action {
    (@run [] $Params:ident) => {
        Some($crate::providers::action::run::<$Params>)
    };
    (@run [engine $($rest:ident)*] $Params:ident) => { None };
    (@run [$first:ident $($rest:ident)*] $Params:ident) => {
        $crate::action!(@run [$($rest)*] $Params)
    };
    (@window [] $Params:ident) => { None };
    (@window [watches $($rest:ident)*] $Params:ident) => {
        Some($crate::providers::action::window::<$Params>)
    };
    (@window [$first:ident $($rest:ident)*] $Params:ident) => {
        $crate::action!(@window [$($rest)*] $Params)
    };
    // The client a provider's actions are performed with.
    (@client Aws) => { $crate::providers::aws::Aws };
    (@client Github) => { $crate::providers::github::Github };
    (@client Git) => { $crate::providers::git::Git };
    (@client Vault) => { $crate::providers::vault::Vault };
    (@client Kubernetes) => { $crate::providers::kubernetes::Kubernetes };
    (@client Slack) => { $crate::providers::slack::Slack };
    (@client Http) => { $crate::providers::http::Clients };
    (@client $engine:ident) => { () };
    // Whether a flag is the one asked about.
    (@is idempotent idempotent) => { true };
    (@is proves_dead proves_dead) => { true };
    (@is secret secret) => { true };
    (@is mrkdwn mrkdwn) => { true };
    (@is $want:ident $flag:ident) => { false };
    (
        $(#[doc = $doc:literal])+
        $name:literal in $provider:ident => $Params:ident $([$($flag:ident),*])? {
            $(
                $(#[doc = $pdoc:literal])+
                $param:ident : $pty:ty $([$($pflag:ident),*])?
            ),* $(,)?
        } -> $Outputs:ident {
            $(
                $(#[doc = $odoc:literal])+
                $output:ident : $oty:ty
            ),* $(,)?
        }
    ) => {
        #[derive(Debug)]
        pub struct $Outputs {
            $(pub $output: $oty,)*
        }

        impl $crate::providers::action::IntoOutputs for $Outputs {
            const SPECS: &'static [$crate::providers::OutputSpec] = &[$(
                $crate::providers::OutputSpec {
                    name: stringify!($output),
                    secret: <$oty as $crate::providers::action::OutputKind>::SECRET,
                    doc: concat!($($odoc),+).trim_ascii(),
                },
            )*];
            fn into_outputs(self) -> $crate::providers::Outputs {
                vec![$((
                    stringify!($output).to_string(),
                    $crate::providers::action::OutputKind::into_output(self.$output),
                ),)*]
            }
        }

        $crate::action! {
            $(#[doc = $doc])+
            $name in $provider => $Params $([$($flag),*])? {
                $($(#[doc = $pdoc])+ $param : $pty $([$($pflag),*])?,)*
            } -> $Outputs
        }
    };
    (
        $(#[doc = $doc:literal])+
        $name:literal in $provider:ident => $Params:ident $([$($flag:ident),*])? {
            $(
                $(#[doc = $pdoc:literal])+
                $param:ident : $pty:ty $([$($pflag:ident),*])?
            ),* $(,)?
        } -> $Outputs:ty
    ) => {
        // No `Debug`: a parameter may hold a secret.
        #[derive(serde::Deserialize)]
        pub struct $Params {
            $(pub $param: $pty,)*
        }

        impl $crate::providers::action::Declared for $Params {
            type Client = $crate::action!(@client $provider);
            type Outputs = $Outputs;
        }

        impl $Params {
            pub const SPEC: $crate::providers::ActionSpec = $crate::providers::ActionSpec {
                name: $name,
                provider: $crate::providers::Provider::$provider,
                doc: concat!($($doc),+).trim_ascii(),
                params: &[$(
                    $crate::providers::ParamSpec {
                        name: stringify!($param),
                        ty: <$pty as $crate::providers::action::ParamKind>::TY,
                        required: <$pty as $crate::providers::action::ParamKind>::REQUIRED,
                        secret: false $($(|| $crate::action!(@is secret $pflag))*)?,
                        mrkdwn: false $($(|| $crate::action!(@is mrkdwn $pflag))*)?,
                        doc: concat!($($pdoc),+).trim_ascii(),
                    },
                )*],
                outputs: <$Outputs as $crate::providers::action::IntoOutputs>::SPECS,
                dynamic_outputs: <$Outputs as $crate::providers::action::IntoOutputs>::DYNAMIC,
                idempotent: false $($(|| $crate::action!(@is idempotent $flag))*)?,
                proves_dead: false $($(|| $crate::action!(@is proves_dead $flag))*)?,
                run: $crate::action!(@run [$($($flag)*)?] $Params),
                window: $crate::action!(@window [$($($flag)*)?] $Params),
            };
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_rendered_as_one_string_is_a_list_of_that_string() {
        let leaked = json!("GITHUB_TOKEN=ghp_a\nDB=x");
        assert_eq!(
            coerce(ParamType::StringList, leaked.clone()),
            json!([leaked])
        );
        assert_eq!(coerce(ParamType::StringList, json!([1])), json!(["1"]));
    }
}
