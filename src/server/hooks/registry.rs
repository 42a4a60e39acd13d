//! One response per credential, one processing per delivery.
//!
//! A credential is known by its fingerprint (the SHA-256 of the secret, or
//! `aws:` and the access key id): a second location or detector within
//! [`JOIN_WINDOW`] joins the incident the first one started. A delivery
//! (GitHub's `X-GitHub-Delivery`, an event's id) is processed once: a
//! redelivery of one that started or joined an incident, or is still being
//! processed, is a duplicate; one whose processing failed is taken again.
//! Both are rebuilt from `hooks.jsonl` when the server starts, so a restart
//! does not forget them.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// How long a credential's incident takes in later detections of it.
pub const JOIN_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Being processed now.
    Processing,
    /// Started or joined this incident.
    Done(String),
    /// Nothing runs for it (no trigger, an unmanaged key): answered the same.
    Settled(String),
}

/// What becomes of a credential's detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No incident responds to it yet: this id is now its incident's.
    New(String),
    /// This incident responds to it already.
    Join(String),
}

#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    credentials: HashMap<String, (String, DateTime<Utc>)>,
    deliveries: HashMap<String, Delivery>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a delivery for processing, or says what became of it before.
    pub fn begin(&self, delivery: &str) -> Result<(), Delivery> {
        let mut inner = self.lock();
        match inner.deliveries.get(delivery) {
            Some(before) => Err(before.clone()),
            None => {
                inner
                    .deliveries
                    .insert(delivery.to_string(), Delivery::Processing);
                Ok(())
            }
        }
    }

    /// The delivery started or joined `incident`.
    pub fn done(&self, delivery: &str, incident: &str) {
        self.lock()
            .deliveries
            .insert(delivery.to_string(), Delivery::Done(incident.to_string()));
    }

    /// The delivery was answered and needs nothing more (`why`).
    pub fn settled(&self, delivery: &str, why: &str) {
        self.lock()
            .deliveries
            .insert(delivery.to_string(), Delivery::Settled(why.to_string()));
    }

    /// Its processing failed: a redelivery is processed again.
    pub fn failed(&self, delivery: &str) {
        self.lock().deliveries.remove(delivery);
    }

    /// The incident responding to `fingerprint`, or a new one (`new_id`).
    pub fn claim(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
        new_id: impl FnOnce() -> String,
    ) -> Claim {
        let mut inner = self.lock();
        inner
            .credentials
            .retain(|_, (_, at)| now - *at <= JOIN_WINDOW);
        if let Some((id, _)) = inner.credentials.get(fingerprint) {
            return Claim::Join(id.clone());
        }
        let id = new_id();
        inner
            .credentials
            .insert(fingerprint.to_string(), (id.clone(), now));
        Claim::New(id)
    }

    /// The incident claimed for `fingerprint` did not start after all.
    pub fn release(&self, fingerprint: &str, id: &str) {
        let mut inner = self.lock();
        if inner
            .credentials
            .get(fingerprint)
            .is_some_and(|(i, _)| i == id)
        {
            inner.credentials.remove(fingerprint);
        }
    }

    /// Rebuilt from the lines of `hooks.jsonl`, as of `now`.
    pub fn restore(&self, log: &str, now: DateTime<Utc>) {
        let mut inner = self.lock();
        for line in log.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let field = |k: &str| entry[k].as_str().map(str::to_string);
            let (Some(decision), Some(delivery)) = (field("decision"), field("delivery")) else {
                continue;
            };
            match (decision.as_str(), field("incident")) {
                ("started" | "joined", Some(id)) => {
                    inner
                        .deliveries
                        .insert(delivery, Delivery::Done(id.clone()));
                    let at = field("ts")
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    if let (Some(fp), Some(at)) = (field("fingerprint"), at)
                        && decision == "started"
                        && now - at <= JOIN_WINDOW
                    {
                        inner.credentials.insert(fp, (id, at));
                    }
                }
                ("failed", _) => {
                    inner.deliveries.remove(&delivery);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_processed_once_unless_it_failed() {
        let r = Registry::default();
        assert_eq!(r.begin("d1"), Ok(()));
        assert_eq!(r.begin("d1"), Err(Delivery::Processing));
        r.failed("d1");
        assert_eq!(r.begin("d1"), Ok(()));
        r.done("d1", "INC-1");
        assert_eq!(r.begin("d1"), Err(Delivery::Done("INC-1".into())));
    }

    #[test]
    fn a_credential_has_one_incident_for_a_day() {
        let r = Registry::default();
        let t0 = Utc::now();
        let claim = |hours, id: &str| r.claim("fp", t0 + Duration::hours(hours), || id.into());
        assert_eq!(claim(0, "INC-1"), Claim::New("INC-1".into()));
        assert_eq!(claim(23, "INC-2"), Claim::Join("INC-1".into()));
        assert_eq!(claim(25, "INC-3"), Claim::New("INC-3".into()));
        r.release("fp", "INC-3");
        assert_eq!(claim(25, "INC-4"), Claim::New("INC-4".into()));
    }

    #[test]
    fn the_log_rebuilds_both() {
        let now = Utc::now();
        let ts = crate::journal::format_ts(&(now - Duration::hours(1)));
        let log = format!(
            "{{\"decision\":\"started\",\"delivery\":\"d1\",\"incident\":\"INC-1\",\"fingerprint\":\"fp\",\"ts\":\"{ts}\"}}\n\
             {{\"decision\":\"accepted\",\"delivery\":\"d2\"}}\n\
             {{\"decision\":\"failed\",\"delivery\":\"d2\"}}\n"
        );
        let r = Registry::default();
        r.restore(&log, now);
        assert_eq!(r.begin("d1"), Err(Delivery::Done("INC-1".into())));
        assert_eq!(r.begin("d2"), Ok(()));
        assert_eq!(
            r.claim("fp", now, || "INC-2".into()),
            Claim::Join("INC-1".into())
        );
    }
}
