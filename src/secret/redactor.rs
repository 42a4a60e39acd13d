//! The `Redactor`: replaces every known secret, in every common encoding,
//! with its marker, in each string value quench writes or sends. It works
//! on values, not on serialised lines, so a redaction can never break the
//! structure that holds it, and escaping added by serialisation is not in
//! the way.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock, RwLock, RwLockReadGuard};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use regex::Regex;
use serde_json::Value;

use super::{MIN_SECRET_LEN, Secret, dotenv_value, marker};

/// RFC 3986's unreserved characters are never percent-encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How many times a value is JSON-escaped at most: a body echoed inside an
/// error inside a JSON record is escaped three times.
const JSON_DEPTH: usize = 3;

/// The longest value swept with a pattern for any depth of JSON escaping;
/// a longer one (a leaked `.env` file) is swept to depth [`JSON_DEPTH`].
const MAX_PATTERN: usize = 1024;

/// What a truncated text ends with.
const ELLIPSIS: &str = "…";

/// Replaces every known secret with its marker. Cloning shares the set, so a
/// secret learned mid-incident (a new key from a provider) is swept from
/// everything written afterwards.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Needles>>,
    /// A secret with characters JSON escapes, escaped any number of times.
    escaped: Arc<RwLock<Vec<(Regex, String)>>>,
}

/// One form of one secret, and the marker that replaces it.
struct Needle {
    form: String,
    marker: String,
}

/// Every known form, and what finds them in one pass over a text however
/// many there are: a leaked `.env` of thousands of tokens is tens of
/// thousands of forms, and every string quench writes is swept for them.
#[derive(Default)]
struct Needles {
    forms: Vec<Needle>,
    /// All the forms at once, the longest where they overlap: built when
    /// first needed after forms were added, so that adding many secrets
    /// one by one builds it once.
    finder: OnceLock<Option<AhoCorasick>>,
    /// The forms by their first and by their last [`MIN_SECRET_LEN`] bytes,
    /// to find the part of one that a cut left at a text's end or start.
    starts: HashMap<[u8; MIN_SECRET_LEN], Vec<usize>>,
    ends: HashMap<[u8; MIN_SECRET_LEN], Vec<usize>>,
    longest: usize,
}

impl Needles {
    fn add(&mut self, new: &[Needle]) {
        let mut known: HashSet<&str> = self.forms.iter().map(|n| n.form.as_str()).collect();
        let fresh: Vec<Needle> = new
            .iter()
            .filter(|n| known.insert(n.form.as_str()))
            .map(|n| Needle {
                form: n.form.clone(),
                marker: n.marker.clone(),
            })
            .collect();
        for n in fresh {
            let i = self.forms.len();
            let bytes = n.form.as_bytes();
            if let (Some(start), Some(end)) = (
                bytes.first_chunk::<MIN_SECRET_LEN>(),
                bytes.last_chunk::<MIN_SECRET_LEN>(),
            ) {
                self.starts.entry(*start).or_default().push(i);
                self.ends.entry(*end).or_default().push(i);
            }
            self.longest = self.longest.max(bytes.len());
            self.forms.push(n);
        }
        self.finder = OnceLock::new();
    }

    /// `text` with every whole form replaced, or `None` when it holds none.
    fn whole_forms(&self, text: &str) -> Option<String> {
        let finder = self.finder.get_or_init(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(self.forms.iter().map(|n| n.form.as_str()))
                .ok()
        });
        // Should the automaton not build (too large), every form is still
        // swept, one at a time, longest first.
        let Some(finder) = finder else {
            return self.one_by_one(text);
        };
        if !finder.is_match(text) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in finder.find_iter(text) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&self.forms[m.pattern().as_usize()].marker);
            last = m.end();
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    fn one_by_one(&self, text: &str) -> Option<String> {
        let mut forms: Vec<&Needle> = self.forms.iter().collect();
        forms.sort_by_key(|n| std::cmp::Reverse(n.form.len()));
        let mut out: Option<String> = None;
        for n in forms {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(n.form.as_str()) {
                out = Some(current.replace(n.form.as_str(), &n.marker));
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} needles)", self.needles().forms.len())
    }
}

/// Every secret this process has learned, for sweeping what is not tied to
/// one incident (log lines).
static PROCESS: LazyLock<Redactor> = LazyLock::new(Redactor::default);

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A redactor that knows `secrets`.
    pub fn of(secrets: impl IntoIterator<Item = impl std::borrow::Borrow<Secret>>) -> Self {
        let redactor = Self::default();
        for s in secrets {
            redactor.add(s.borrow());
        }
        redactor
    }

    /// The process-wide set: every secret any redactor learned.
    pub fn process() -> &'static Redactor {
        &PROCESS
    }

    pub fn add(&self, secret: &Secret) {
        let value = secret.expose();
        if value.is_empty() {
            return;
        }
        let mut needles = Vec::new();
        push_forms(&mut needles, value, &secret.marker());
        // A secret of several lines (a list of leaked tokens, a leaked
        // `.env` file) is swept line by line too, and value by value: a
        // provider acts on each token alone.
        if value.contains('\n') {
            for line in value.lines().map(str::trim) {
                let part = dotenv_value(line).unwrap_or(line);
                if part.len() >= MIN_SECRET_LEN && part != value {
                    push_forms(&mut needles, part, &marker(secret.name(), part));
                }
            }
        }
        let escaped = json_escaped_pattern(value);
        if !Arc::ptr_eq(&self.needles, &PROCESS.needles) {
            PROCESS.insert(&needles, escaped.clone(), &secret.marker());
        }
        self.insert(&needles, escaped, &secret.marker());
    }

    /// The needles, even from a lock a panic poisoned: a sweep that skipped
    /// them would let every secret through.
    fn needles(&self) -> RwLockReadGuard<'_, Needles> {
        self.needles.read().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, new: &[Needle], escaped: Option<Regex>, marker: &str) {
        if let Some(pattern) = escaped {
            let mut all = self.escaped.write().unwrap_or_else(|e| e.into_inner());
            if !all.iter().any(|(p, _)| p.as_str() == pattern.as_str()) {
                all.push((pattern, marker.to_string()));
            }
        }
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        needles.add(new);
    }

    pub fn redact(&self, text: &str) -> String {
        self.redacted(text).unwrap_or_else(|| text.to_string())
    }

    /// `text` redacted, or `None` when it holds no known secret. Besides
    /// whole forms, a text that a cut left with part of one (at least
    /// [`MIN_SECRET_LEN`] characters, at its start or end) loses that part.
    pub fn redacted(&self, text: &str) -> Option<String> {
        let needles = self.needles();
        let mut out = needles.whole_forms(text);
        for (pattern, marker) in self
            .escaped
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let current = out.as_deref().unwrap_or(text);
            if let std::borrow::Cow::Owned(clean) = pattern.replace_all(current, marker.as_str()) {
                out = Some(clean);
            }
        }
        let current = out.as_deref().unwrap_or(text);
        cut_parts(current, &needles).or(out)
    }

    /// Redacts every string in `value`, object keys included. Returns
    /// whether anything changed.
    pub fn redact_value(&self, value: &mut Value) -> bool {
        if self.is_empty() {
            return false;
        }
        match value {
            Value::String(s) => match self.redacted(s) {
                Some(clean) => {
                    *s = clean;
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_value(v) | changed),
            Value::Object(map) => {
                // A key is a name: only a whole form is taken out of it, not
                // a piece that may be an ordinary word.
                let needles = self.needles();
                let dirty: Vec<(String, String)> = map
                    .keys()
                    .filter_map(|k| Some((k.clone(), needles.whole_forms(k)?)))
                    .collect();
                drop(needles);
                let mut changed = !dirty.is_empty();
                for (key, clean) in dirty {
                    if let Some(v) = map.remove(&key) {
                        map.insert(clean, v);
                    }
                }
                for v in map.values_mut() {
                    changed |= self.redact_value(v);
                }
                changed
            }
            _ => false,
        }
    }

    /// At most `max` characters of `text`, redacted before it is cut (a cut
    /// first could split a secret so that no whole form is left to find),
    /// ending with `…` when it was cut.
    pub fn excerpt(&self, text: &str, max: usize) -> String {
        let clean = self.redact(text);
        if clean.chars().count() <= max {
            return clean;
        }
        let cut: String = clean.chars().take(max).collect();
        self.redact(&format!("{cut}{ELLIPSIS}"))
    }

    pub fn is_empty(&self) -> bool {
        self.needles().forms.is_empty()
    }

    /// The marker of `value` when it is a known secret, or one line or
    /// `.env` value of a known secret of several lines.
    pub fn marker_of(&self, value: &str) -> Option<String> {
        let needles = self.needles();
        let found = needles.forms.iter().find(|n| n.form == value);
        found.map(|n| n.marker.clone())
    }
}

/// `text` without the part of a secret's form that a cut left at its end
/// (before a trailing `…`) or at its start; `None` when it has none.
fn cut_parts(text: &str, needles: &Needles) -> Option<String> {
    let (body, ellipsis) = match text.strip_suffix(ELLIPSIS) {
        Some(body) => (body, ELLIPSIS),
        None => (text, ""),
    };
    let tail = begun_at_end(body, needles);
    let out = tail.map(|(i, n)| format!("{}{}{ellipsis}", &body[..i], needles.forms[n].marker));
    let current = out.as_deref().unwrap_or(text);
    match ended_at_start(current, needles) {
        Some((i, n)) => Some(format!("{}{}", needles.forms[n].marker, &current[i..])),
        None => out,
    }
}

/// Where the longest tail of `text` that begins a form (shorter than the
/// form, at least [`MIN_SECRET_LEN`] long) starts, and which form.
fn begun_at_end(text: &str, needles: &Needles) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let from = bytes.len().saturating_sub(needles.longest);
    (from..=bytes.len().checked_sub(MIN_SECRET_LEN)?)
        .filter(|&i| text.is_char_boundary(i))
        .find_map(|i| {
            let start = bytes[i..].first_chunk::<MIN_SECRET_LEN>()?;
            let tail = &bytes[i..];
            needles.starts.get(start)?.iter().find_map(|&n| {
                let form = needles.forms[n].form.as_bytes();
                (form.len() > tail.len() && form.starts_with(tail)).then_some((i, n))
            })
        })
}

/// Where the longest head of `text` that ends a form (shorter than the
/// form, at least [`MIN_SECRET_LEN`] long) ends, and which form.
fn ended_at_start(text: &str, needles: &Needles) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let to = bytes.len().min(needles.longest.saturating_sub(1));
    (MIN_SECRET_LEN..=to)
        .rev()
        .filter(|&j| text.is_char_boundary(j))
        .find_map(|j| {
            let end = bytes[..j].last_chunk::<MIN_SECRET_LEN>()?;
            let head = &bytes[..j];
            needles.ends.get(end)?.iter().find_map(|&n| {
                let form = needles.forms[n].form.as_bytes();
                (form.len() > head.len() && form.ends_with(head)).then_some((j, n))
            })
        })
}

/// `value` raw and in every common encoding, each with `marker`.
fn push_forms(needles: &mut Vec<Needle>, value: &str, marker: &str) {
    for (_, form) in encoded_forms(value) {
        needles.push(Needle {
            form,
            marker: marker.to_string(),
        });
    }
}

/// `value` raw (first) and in every common encoding the redactor sweeps,
/// each with the name of its encoding: `raw`, `json-escaped`,
/// `url-encoded`, `base64` (also the part that any alignment inside a
/// longer base64 text keeps) and `hex`. A form may repeat another.
pub fn encoded_forms(value: &str) -> Vec<(&'static str, String)> {
    let mut forms = vec![("raw", value.to_string())];
    let mut escaped = value.to_string();
    for _ in 0..JSON_DEPTH {
        escaped = json_escaped(&escaped);
        forms.push(("json-escaped", escaped.clone()));
    }
    for set in [NON_ALPHANUMERIC, RFC3986] {
        let encoded = utf8_percent_encode(value, set).to_string();
        let url = |form: String| ("url-encoded", form);
        forms.push(url(encoded.replace("%20", "+")));
        forms.push(url(lowercase_hex(&encoded.replace("%20", "+"))));
        forms.push(url(lowercase_hex(&encoded)));
        forms.push(url(encoded));
    }
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    forms.push(("url-encoded", lowercase_hex(&form)));
    forms.push(("url-encoded", form));
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(("base64", engine.encode(value)));
    }
    forms.extend(
        base64_cores(value.as_bytes())
            .into_iter()
            .map(|c| ("base64", c)),
    );
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    forms.push(("hex", hex.to_uppercase()));
    forms.push(("hex", hex));
    forms.retain(|(_, form)| !form.is_empty());
    forms
}

/// A pattern for `value` JSON-escaped any number of times (each time
/// doubles the backslashes before a quote), with `/` and non-ASCII
/// characters escaped or not; `None` when escaping cannot change it, or
/// when the value is a whole file (whose lines are swept one by one).
fn json_escaped_pattern(value: &str) -> Option<Regex> {
    let changes = |c: char| matches!(c, '"' | '\\' | '/') || c.is_control() || !c.is_ascii();
    if value.len() > MAX_PATTERN || !value.chars().any(changes) {
        return None;
    }
    let mut pattern = String::new();
    for c in value.chars() {
        match c {
            '"' => pattern.push_str(r#"(?:\\*"|\\+u0022)"#),
            '\\' => pattern.push_str(r"\\+(?:u(?i:005c))?"),
            '/' => pattern.push_str(r"\\*/"),
            '\n' => pattern.push_str(r"\\+n"),
            '\r' => pattern.push_str(r"\\+r"),
            '\t' => pattern.push_str(r"\\+t"),
            c if c.is_control() || !c.is_ascii() => {
                let units: Vec<String> = c
                    .encode_utf16(&mut [0; 2])
                    .iter()
                    .map(|u| format!(r"\\+u(?i:{u:04x})"))
                    .collect();
                let literal = regex::escape(&c.to_string());
                pattern.push_str(&format!("(?:{literal}|{})", units.concat()));
            }
            c => pattern.push_str(&regex::escape(&c.to_string())),
        }
    }
    Regex::new(&pattern).ok()
}

fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// `%2F` as `%2f`: both are the same byte.
fn lowercase_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let end = (at + 3).min(rest.len());
        out.push_str(&rest[at..end].to_ascii_lowercase());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The characters of `bytes`' base64 that depend on nothing else, for each
/// of the three alignments it can have inside a longer encoded text (a
/// `user:secret` pair, a JSON document), in both alphabets.
fn base64_cores(bytes: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for shift in 0..3usize {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(bytes);
        let skip = (shift * 8).div_ceil(6);
        let whole = shifted.len() * 8 / 6;
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&shifted);
            if whole > skip && whole - skip >= MIN_SECRET_LEN {
                cores.push(encoded[skip..whole].to_string());
            }
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(value: &str) -> Redactor {
        let r = Redactor::new();
        r.add(&Secret::new("k", value));
        r
    }

    #[test]
    fn sweeps_raw_url_and_base64_forms() {
        let r = redactor("s3cr3t/+value=");
        let b64 = STANDARD.encode("s3cr3t/+value=");
        let text = format!("a s3cr3t/+value= b s3cr3t%2F%2Bvalue%3D c {b64}");
        let out = r.redact(&text);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains(&b64), "{out}");
        assert_eq!(out.matches("[REDACTED k sha256:").count(), 3);
    }

    #[test]
    fn sweeps_json_escaping_at_any_depth() {
        let r = redactor("Pa\"ss\\word-1234");
        for text in [
            r#"{"echo":"Pa\"ss\\word-1234"}"#,
            r#"{"error":"{\"echo\":\"Pa\\\"ss\\\\word-1234\"}"}"#,
            r#"Pa\\\\\\\\\\\\\\\"ss\\\\\\\\\\\\\\\\word-1234"#,
            r#"Pa\u0022ss\\word-1234"#,
        ] {
            let out = r.redact(text);
            assert!(!out.contains("word-1234"), "{out}");
        }
    }

    #[test]
    fn sweeps_rfc3986_form_and_hex_encodings() {
        let r = redactor("xoxp-1234-5678/abcd+efgh= ~x");
        for text in [
            "t=xoxp-1234-5678%2Fabcd%2Befgh%3D%20~x",
            "t=xoxp-1234-5678%2fabcd%2befgh%3d+~x",
            "t=xoxp-1234-5678%2Fabcd%2Befgh%3D+%7Ex",
            "t=787f78702d313233342d353637382f616263642b656667683d207e78",
            "t=787F78702D313233342D353637382F616263642B656667683D207E78",
        ] {
            let out = r.redact(text);
            assert!(!out.contains("5678"), "{text} -> {out}");
        }
    }

    #[test]
    fn sweeps_base64_inside_a_longer_encoding() {
        let secret = "ghp_SuperSecretTokenValue0123";
        let r = redactor(secret);
        for prefix in ["", "u", "us", "user:"] {
            let encoded = STANDARD.encode(format!("{prefix}{secret}!tail"));
            let out = r.redact(&encoded);
            assert!(
                !out.contains(&STANDARD_NO_PAD.encode(secret)[2..12]),
                "{prefix}: {out}"
            );
        }
    }

    #[test]
    fn a_cut_secret_loses_its_part_at_either_end() {
        let secret = "ghp_SuperSecretTokenValue0123";
        let r = redactor(secret);
        let text = format!("{} {secret} and more", "x".repeat(170));
        for max in [175, 178, 185, 195] {
            let out = r.excerpt(&text, max);
            assert!(!out.contains("ghp_Supe"), "{max}: {out}");
        }
        // A cut without an ellipsis, and one at the start.
        assert!(!r.redact("body: ghp_SuperSecre").contains("SuperSecre"));
        assert!(
            !r.redact("perSecretTokenValue0123 was echoed")
                .contains("Value0123")
        );
        // Shorter pieces are ordinary text.
        assert_eq!(r.redact("a ghp_Sup"), "a ghp_Sup");
    }

    /// The sweep without the automaton replaces what the automaton does.
    #[test]
    fn one_form_at_a_time_sweeps_the_same() {
        let r = redactor("s3cr3t/+value=");
        let needles = r.needles();
        let text = format!(
            "a s3cr3t/+value= b s3cr3t%2F%2Bvalue%3D c {}",
            STANDARD.encode("s3cr3t/+value=")
        );
        assert_eq!(needles.one_by_one(&text), needles.whole_forms(&text));
        assert!(needles.one_by_one(&text).is_some());
    }

    #[test]
    fn values_keep_their_structure() {
        let r = redactor("seq-value-1");
        let mut v = serde_json::json!({"seq": 1, "e": ["seq-value-1", {"seq-value-1": "x"}]});
        assert!(r.redact_value(&mut v));
        let text = v.to_string();
        assert!(!text.contains("seq-value-1"), "{text}");
        assert_eq!(v["seq"], 1);
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_swept_alone() {
        let r = redactor("ghp_first_token_aaaa\nexport GH=ghp_second_token_bbbb\nPORT=80\n");
        let out = r.redact("a ghp_first_token_aaaa b ghp_second_token_bbbb c PORT=80");
        assert!(!out.contains("ghp_"), "{out}");
        assert!(out.ends_with("c PORT=80"), "{out}");
    }
}
