//! How each detector proves a request is its own: GitHub's
//! `X-Hub-Signature-256` (HMAC-SHA256 of the raw body), an EventBridge
//! connection's API-key header, and the generic hook's HMAC-SHA256 of
//! `{timestamp}.{body}` with a five-minute window. Every comparison takes
//! the same time however much of a forgery was right.

use crate::secret::Secret;
use crate::server::verify::{Age, age, hex_signature, hmac_matches};

/// How far a generic hook's timestamp may be from our clock: as far as a
/// Slack request's.
pub use crate::server::verify::MAX_AGE_SECS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no signature")]
    Missing,
    #[error("the signature does not match")]
    Mismatch,
    #[error("`X-Quench-Timestamp` is not a number of seconds")]
    BadTimestamp,
    #[error("the request is more than five minutes old (or in the future)")]
    Stale,
    #[error("the same signed request was received before: a replay")]
    Replayed,
}

/// GitHub's `X-Hub-Signature-256: sha256=<hex>` over the raw body.
pub fn github(secret: &Secret, signature: Option<&str>, body: &[u8]) -> Result<(), Refused> {
    let given = signature.ok_or(Refused::Missing)?;
    check(secret, given, &[body])
}

/// A generic hook's `X-Quench-Signature: sha256=<hex>` over
/// `{timestamp}.{body}`, as of `now` (Unix seconds).
pub fn generic(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Missing);
    };
    match age(timestamp, now) {
        Age::Fresh => {}
        Age::NotANumber => return Err(Refused::BadTimestamp),
        Age::Stale => return Err(Refused::Stale),
    }
    check(secret, signature, &[timestamp.as_bytes(), b".", body])
}

/// An API key header against the configured value.
pub fn api_key(expected: &Secret, given: Option<&str>) -> Result<(), Refused> {
    let given = given.ok_or(Refused::Missing)?;
    if constant_time_eq(expected.expose().as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

fn check(secret: &Secret, signature: &str, parts: &[&[u8]]) -> Result<(), Refused> {
    if hmac_matches(secret, signature, "sha256=", parts) {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// `sha256=` and the hex HMAC of `parts`: what a detector sends. For
/// tests and the benchmark.
pub fn sign(secret: &str, parts: &[&[u8]]) -> String {
    hex_signature("sha256=", secret, parts)
}

/// Equal bytes, compared in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented example ("Validating webhook deliveries").
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &str = "Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secret() -> Secret {
        Secret::new("github_webhook_secret", SECRET)
    }

    #[test]
    fn githubs_documented_vector_verifies() {
        assert_eq!(sign(SECRET, &[BODY.as_bytes()]), SIGNATURE);
        assert_eq!(github(&secret(), Some(SIGNATURE), BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn a_forged_or_missing_github_signature_is_refused() {
        let check = |sig, body: &[u8]| github(&secret(), sig, body);
        assert_eq!(check(None, BODY.as_bytes()), Err(Refused::Missing));
        assert_eq!(
            check(Some(SIGNATURE), b"Hello, World?"),
            Err(Refused::Mismatch)
        );
        let other = Secret::new("s", "not the secret");
        assert_eq!(
            github(&other, Some(SIGNATURE), BODY.as_bytes()),
            Err(Refused::Mismatch)
        );
        for bad in ["", "sha256=", "sha256=zz", "sha1=757107ea", &SIGNATURE[7..]] {
            let refused = check(Some(bad), BODY.as_bytes());
            assert_eq!(refused, Err(Refused::Mismatch), "{bad}");
        }
    }

    #[test]
    fn a_generic_signature_covers_the_timestamp_and_goes_stale() {
        let body = br#"{"key":"k"}"#;
        let sig = sign(SECRET, &[b"1000", b".", body]);
        let check = |ts, now| generic(&secret(), ts, Some(&sig), body, now);
        assert_eq!(check(Some("1000"), 1000), Ok(()));
        assert_eq!(check(Some("1000"), 1000 + MAX_AGE_SECS), Ok(()));
        assert_eq!(
            check(Some("1000"), 1001 + MAX_AGE_SECS),
            Err(Refused::Stale)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(check(Some("1001"), 1000), Err(Refused::Mismatch));
        assert_eq!(check(Some("soon"), 1000), Err(Refused::BadTimestamp));
        assert_eq!(check(None, 1000), Err(Refused::Missing));
    }

    #[test]
    fn an_api_key_must_match_whole() {
        let key = Secret::new("aws_hook_key", "k3y-of-the-connection");
        assert_eq!(api_key(&key, Some("k3y-of-the-connection")), Ok(()));
        assert_eq!(
            api_key(&key, Some("k3y-of-the-connectio")),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            api_key(&key, Some("k3y-of-the-connectioN")),
            Err(Refused::Mismatch)
        );
        assert_eq!(api_key(&key, None), Err(Refused::Missing));
    }
}
