//! Slack's request signing: `v0=` and the hex HMAC-SHA256, keyed with the
//! app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`.
//! A request older (or newer) than five minutes is refused, and one seen
//! already within those five minutes too, so a captured request cannot be
//! replayed, later or at once.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// How far a request's timestamp may be from our clock.
pub const MAX_AGE_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no `X-Slack-Request-Timestamp` or `X-Slack-Signature`")]
    Missing,
    #[error("`X-Slack-Request-Timestamp` is not a number of seconds")]
    BadTimestamp,
    #[error("the request is more than five minutes old (or in the future)")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the same signed request was received before: a replay")]
    Replayed,
}

/// The signed requests of the last five minutes, by (timestamp,
/// signature): each is accepted once. Only requests whose signature
/// verified are kept, so nobody without the signing secret can fill it.
#[derive(Debug, Default)]
pub struct Replays {
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl Replays {
    /// Whether a verified request is new; it is remembered until it would
    /// be refused as stale anyway.
    pub fn first_time(&self, timestamp: &str, signature: &str, now: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| (now - *at).abs() <= MAX_AGE_SECS);
        let at = timestamp.trim().parse().unwrap_or(now);
        seen.insert((timestamp.to_string(), signature.to_string()), at)
            .is_none()
    }
}

/// Checks one request against the signing secret, as of `now` (Unix
/// seconds: injected, so the check is testable against Slack's example).
pub fn verify(
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
    let parts: [&[u8]; 4] = [b"v0:", timestamp.as_bytes(), b":", body];
    if hmac_matches(secret, signature, "v0=", &parts) {
        Ok(())
    } else {
        Err(Refused::Mismatch)
    }
}

/// How a signed request's timestamp stands against our clock.
pub(crate) enum Age {
    Fresh,
    NotANumber,
    /// More than [`MAX_AGE_SECS`] away, either way.
    Stale,
}

/// How `timestamp` (Unix seconds) stands as of `now`.
pub(crate) fn age(timestamp: &str, now: i64) -> Age {
    match timestamp.trim().parse::<i64>() {
        Err(_) => Age::NotANumber,
        Ok(ts) if (now - ts).abs() > MAX_AGE_SECS => Age::Stale,
        Ok(_) => Age::Fresh,
    }
}

/// Whether `signature` is `prefix` and the hex HMAC-SHA256 of `parts`
/// keyed with `secret`. `verify_slice` compares in constant time: how long
/// it takes says nothing about how much of a forged signature was right.
pub(crate) fn hmac_matches(
    secret: &Secret,
    signature: &str,
    prefix: &str,
    parts: &[&[u8]],
) -> bool {
    let Some(given) = signature.strip_prefix(prefix).and_then(unhex) else {
        return false;
    };
    mac(secret.expose(), parts).verify_slice(&given).is_ok()
}

/// The HMAC-SHA256 of `parts`, keyed with `secret`.
fn mac(secret: &str, parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// `prefix` and the hex HMAC of `parts`: what a signer sends.
pub(crate) fn hex_signature(prefix: &str, secret: &str, parts: &[&[u8]]) -> String {
    let digest = mac(secret, parts).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// What Slack sends: `v0=` and the hex HMAC. For tests and the benchmark.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    hex_signature("v0=", secret, &[b"v0:", timestamp.as_bytes(), b":", body])
}

/// The bytes of a hex string, or `None` if it is not one.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_accepted_once_within_the_window() {
        let replays = Replays::default();
        assert!(replays.first_time("1000", "v0=aa", 1000));
        assert!(!replays.first_time("1000", "v0=aa", 1002));
        assert!(replays.first_time("1000", "v0=bb", 1002));
        assert!(replays.first_time("1001", "v0=aa", 1002));
        // Forgotten once it is stale, when `verify` refuses it anyway.
        assert!(replays.first_time("1000", "v0=aa", 1000 + MAX_AGE_SECS + 1));
    }

    // Slack's worked example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn secret() -> Secret {
        Secret::new("slack_signing_secret", SECRET)
    }

    /// Slack's example request, its signature replaced by `signature`,
    /// checked at `now`.
    fn check(signature: &str, body: &str, now: i64) -> Result<(), Refused> {
        verify(&secret(), Some(TS), Some(signature), body.as_bytes(), now)
    }

    #[test]
    fn slacks_worked_example_verifies() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIGNATURE);
        let now = 1_531_420_618;
        assert_eq!(check(SIGNATURE, BODY, now), Ok(()));
        // Still fine at the edge of the window.
        assert_eq!(check(SIGNATURE, BODY, now + MAX_AGE_SECS), Ok(()));
    }

    #[test]
    fn a_stale_request_is_refused_even_when_signed() {
        let later = 1_531_420_618 + MAX_AGE_SECS + 1;
        assert_eq!(check(SIGNATURE, BODY, later), Err(Refused::Stale));
    }

    #[test]
    fn a_changed_body_or_wrong_secret_is_refused() {
        let now = 1_531_420_618;
        let tampered = BODY.replace("text=", "text=run");
        assert_eq!(check(SIGNATURE, &tampered, now), Err(Refused::Mismatch));
        let other = Secret::new("s", "not-the-secret");
        assert_eq!(
            verify(&other, Some(TS), Some(SIGNATURE), BODY.as_bytes(), now),
            Err(Refused::Mismatch)
        );
        for bad in ["", "v0=", "v0=zz", "v1=a2114d57", "a2114d57b48e"] {
            assert_eq!(check(bad, BODY, now), Err(Refused::Mismatch), "{bad}");
        }
        let unsigned = |ts, sig| verify(&secret(), ts, sig, BODY.as_bytes(), now);
        assert_eq!(unsigned(None, Some(SIGNATURE)), Err(Refused::Missing));
        assert_eq!(
            unsigned(Some("yesterday"), Some(SIGNATURE)),
            Err(Refused::BadTimestamp)
        );
    }
}
