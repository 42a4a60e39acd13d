//! The pace each host is sent requests at: at most
//! [`MAX_IN_FLIGHT_PER_HOST`] in flight, one at a time at a pace learned
//! from its 429s, and nothing while it says its quota is spent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// Every host's gate, shared by every step of an incident.
#[derive(Debug, Clone, Default)]
pub(super) struct Gates(Arc<Mutex<HashMap<String, Arc<Gate>>>>);

impl Gates {
    /// The gate of the host (scheme, host and port) `url` names.
    pub(super) fn of(&self, url: &str) -> Arc<Gate> {
        let host = match url.find("://") {
            Some(i) => {
                let rest = &url[i + 3..];
                &url[..i + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len())]
            }
            None => url,
        };
        let mut gates = self.0.lock().expect("gates lock poisoned");
        gates.entry(host.to_string()).or_default().clone()
    }
}

/// Requests in flight to one host at most: a bulk revocation of 1,000 keys
/// must not open 1,000 connections at once and have 990 of them refused.
pub const MAX_IN_FLIGHT_PER_HOST: usize = 32;

/// What one host is sent: at most [`MAX_IN_FLIGHT_PER_HOST`] requests at
/// once, leaving one at a time at the host's [`Pace`].
#[derive(Debug)]
pub(super) struct Gate {
    in_flight: tokio::sync::Semaphore,
    /// Taken in turn (tokio's mutex is fair) by the request that goes next,
    /// held until it leaves: each request takes its slot when its turn
    /// comes, at the pace known then. Slots handed out as requests arrived
    /// would follow a pace up to 32 slots old, 16 s of them at 2 req/s.
    turn: tokio::sync::Mutex<()>,
    /// Requests not yet sent: whether a faster pace would be any use.
    waiting: std::sync::atomic::AtomicUsize,
    pace: Mutex<Pace>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT_PER_HOST),
            turn: tokio::sync::Mutex::new(()),
            waiting: Default::default(),
            pace: Mutex::default(),
        }
    }
}

impl Gate {
    /// Waits for a permit, then for this request's turn and slot: returns
    /// when the request may be sent.
    pub(super) async fn enter(&self) -> Ticket<'_> {
        let waiting = Waiting::new(&self.waiting);
        let permit = self.in_flight.acquire().await.ok();
        let turn = self.turn.lock().await;
        let slot = self
            .pace
            .lock()
            .expect("pace lock poisoned")
            .slot(Instant::now());
        // From here the pace counts the request as sent: a request dropped
        // while it waits for its slot (its incident interrupted) drops the
        // ticket, which says so. Its step's timeout starts after the gate.
        let mut ticket = Ticket {
            gate: self,
            _permit: permit,
            sent: Instant::now(),
            answered: false,
        };
        if let Some(at) = slot {
            tokio::time::sleep_until(at.into()).await;
            ticket.sent = at;
        }
        drop(turn);
        drop(waiting);
        ticket
    }
}

/// Counts a request as waiting at its gate until dropped.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A request sent through a gate: holds its place in flight, and tells the
/// pace how it went, or, dropped unanswered, that it was lost.
pub(super) struct Ticket<'a> {
    gate: &'a Gate,
    _permit: Option<tokio::sync::SemaphorePermit<'a>>,
    sent: Instant,
    answered: bool,
}

impl Ticket<'_> {
    pub(super) fn answered(&mut self, status: reqwest::StatusCode, headers: &HeaderMap) {
        let now = Instant::now();
        let waiting = self.gate.waiting.load(std::sync::atomic::Ordering::Relaxed);
        let mut pace = self.gate.pace.lock().expect("pace lock poisoned");
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            pace.limited(self.sent, now);
        } else {
            pace.served(self.sent, now, waiting);
        }
        if let Some(reset) = quota_reset(headers).filter(|&d| d <= Pace::HOLD_MAX) {
            pace.hold(now + reset);
        }
        self.answered = true;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.answered
            && let Ok(mut pace) = self.gate.pace.lock()
        {
            pace.lost();
        }
    }
}

/// The pace a host is sent requests at, learned from its 429s.
///
/// A rate limit is taken to be a token bucket: `rate` tokens a second, up
/// to a burst, one per request, 429 when there is none. A host is unpaced
/// until it first answers 429; then it is sent one request per `interval`,
/// which is measured, not guessed, the way BBR measures bandwidth: from
/// what the host serves while it is limited.
///
/// A 429 means the bucket was empty. Between two 429s at `a` and `b` the
/// host refilled `rate · (b − a)` tokens and served every one of them, give
/// or take one (what was left at `a`, and at `b`), if it was kept busy in
/// between: so `served ± 1` over `b − a` brackets the rate, and the bracket
/// narrows as it lengthens. Hence two modes:
///
/// - **learning**, from a 429 (the first at [`Pace::FIRST`], later ones at
///   the pace of the moment): the pace is the bracket's upper bound,
///   `(served + 1 + pending) / (b − a)` at each new 429 (`pending`: sent and
///   not yet answered, which the host may have served already; `a` when the
///   first 429 was answered and `b` when the new one was sent, so that
///   answers that come late shorten the span, never stretch it). That is
///   never below the rate, so the bucket stays drained and 429s keep
///   closing the bracket, fewer and fewer: about 1 + `pending` per bracket
///   length. The pace only slows down while learning.
/// - **cruising**, once a bracket is [`Pace::LEARN`] long with
///   [`Pace::LEARN_SERVED`] served, or after a calm second (no 429 in
///   [`Pace::CALM`], [`Pace::CALM_SERVED`] served):
///   the pace is 1% under the lower bound, `(served − 1) / (now − a)`,
///   counting only requests sent after the 429 at `a` was answered (or
///   from the bracket's latest 429, if that says more). That is never
///   above the rate, so no 429 comes back: a 429 in the last second of a
///   bulk run costs its step a whole `Retry-After`, and the run that much.
///
/// Cruising under the rate leaves the bucket slack, so a calm host is
/// probed: after [`Pace::CALM`] without a 429 (at first; the wait doubles
/// each time probing ends in a 429, up to [`Pace::WAIT_MAX`]) the pace goes
/// up 1%, then 2%, 4%… up to 25% a second, which finds a raised limit again
/// in seconds. It probes only while the requests waiting would last at
/// least [`Pace::PROBE_BACKLOG`]: a faster pace is no use to the last few,
/// and a 429 costs them the most. Any 429 while cruising starts learning
/// again from it, at the pace of the moment.
///
/// The bounds hold for a bucket of 2 tokens or more. With 1 (a strict
/// spacing, like nginx's `limit_req` without `burst`), a pace between the
/// rate and twice it has every other request refused while the token that
/// would have served it overflows: `served` counts half the rate, learning
/// comes down too far, and the cruise relies on probing to climb back
/// (5 req/s in bench/bulk.py with `--burst 1`: +56% over the floor).
///
/// A host that says its quota is spent (`RateLimit-Remaining: 0` and the
/// like, see [`quota_reset`]) is sent nothing until it refills, if that is
/// within [`Pace::HOLD_MAX`].
///
/// Steps still honour each Retry-After; the pace keeps the other steps from
/// knocking in the meantime.
#[derive(Debug, Clone, PartialEq)]
struct Pace {
    /// One request per `interval`, or unpaced.
    interval: Option<Duration>,
    /// When the next request may leave, and when the last one given a slot
    /// does (it may still be waiting for it).
    next: Option<Instant>,
    last: Option<Instant>,
    /// Given a slot and not yet answered.
    pending: u32,
    /// The host said its quota is spent until then: no slot before it.
    held: Option<Instant>,
    /// Opened by the 429 that started learning; each later 429 while
    /// learning closes it, and it goes on, longer.
    bracket: Option<Bracket>,
    /// Whether the host is cruised, and the last slot handed out at the
    /// pace learning ended with.
    cruising: Option<Instant>,
    /// The last 429, probe or change of mode: what "calm for" counts from,
    /// and the requests served since.
    calm: Option<Instant>,
    quiet: u32,
    /// The current probe's step (0.01 is 1%), 0 when not probing.
    probe: f64,
    /// How long a cruise must be calm before it probes.
    wait: Duration,
    /// The pace learning ended at (req/s): the rate or above, as far as it
    /// knows. A probe well above it without a 429 found a raised limit.
    ceiling: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bracket {
    /// When the 429 that opened it was sent, and answered: the host was out
    /// of tokens in between.
    sent: Instant,
    answered: Instant,
    /// Answers other than 429 since `answered`, to any request: tokens spent
    /// in the span, and maybe one or two before it, which only loosens the
    /// bound (a host may take requests out of the order they were sent).
    served: u32,
    /// Of those, to requests sent after `answered`: spent after the 429.
    served_after: u32,
    /// The same of the bracket's latest 429: the bucket was empty then too,
    /// and what was served since bounds the rate from below without the
    /// slow start of the bracket.
    latest_sent: Instant,
    latest_answered: Instant,
    served_after_latest: u32,
    /// The host went unasked for more than an interval: its bucket may have
    /// refilled, so the next 429 opens a new bracket instead of closing it.
    idle: bool,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            interval: None,
            next: None,
            last: None,
            pending: 0,
            held: None,
            bracket: None,
            cruising: None,
            calm: None,
            quiet: 0,
            probe: 0.0,
            wait: Self::CALM,
            ceiling: 0.0,
        }
    }
}

impl Pace {
    /// The pace from a host's first 429 until a second one measures it:
    /// 1,000 req/s, which the first bracket then brings down to size.
    const FIRST: Duration = Duration::from_millis(1);
    /// The slowest pace: one request every 10 s.
    const MAX: Duration = Duration::from_secs(10);
    /// Probed faster than 10,000 req/s, a host is no longer paced.
    const MIN: Duration = Duration::from_micros(100);
    /// A bracket at least 1 s long with at least 20 requests served ends
    /// learning: the rate is then known within 1/20 (1% at 100 req/s), and
    /// 429s have thinned to about one a second.
    const LEARN: Duration = Duration::from_secs(1);
    const LEARN_SERVED: u32 = 20;
    /// A cruise goes 1% under the lower bound: learning leaves the bucket
    /// empty, and a bound as tight as 0.1% would leave it no slack for a
    /// request that leaves a millisecond early.
    const MARGIN: f64 = 0.99;
    /// A second without a 429 is calm: it starts probing, and, with at
    /// least 5 requests served in it, ends learning (a second at 1 req/s
    /// says little).
    const CALM: Duration = Duration::from_secs(1);
    const CALM_SERVED: u32 = 5;
    /// A probe's first step, and its largest.
    const PROBE_FIRST: f64 = 0.01;
    const PROBE_MAX: f64 = 0.25;
    /// Probing only while the requests waiting would last this long at the
    /// current pace.
    const PROBE_BACKLOG: Duration = Duration::from_secs(2);
    /// A host that says its quota is spent is sent nothing until it is
    /// refilled, if that is this soon: a longer wait is the host's to say,
    /// with a 429 and a `Retry-After` that each step honours (and reports).
    const HOLD_MAX: Duration = Duration::from_secs(10);
    /// The longest calm wait before probing again, once probes keep ending
    /// in a 429 at the same rate.
    const WAIT_MAX: Duration = Duration::from_secs(16);

    /// When a request may leave, and reserves that slot: the caller sends
    /// it then, and tells [`Pace::limited`], [`Pace::served`] or
    /// [`Pace::lost`] how it went.
    fn slot(&mut self, now: Instant) -> Option<Instant> {
        self.pending += 1;
        let held = self.held.filter(|&until| until > now);
        let Some(interval) = self.interval else {
            self.last = held.or(self.last);
            return held;
        };
        if let (Some(next), Some(b)) = (self.next, self.bracket.as_mut())
            && self.cruising.is_none()
            && now > next + interval
        {
            b.idle = true;
        }
        let at = self
            .next
            .map_or(now, |n| n.max(now))
            .max(held.unwrap_or(now));
        self.next = Some(at + interval);
        self.last = Some(at);
        Some(at)
    }

    /// A request sent at `sent` (its slot) was answered 429 at `now`.
    fn limited(&mut self, sent: Instant, now: Instant) {
        self.pending = self.pending.saturating_sub(1);
        if self.cruising.is_some_and(|since| sent <= since) {
            // Sent at the pace learning ended with: says nothing of the cruise.
            return;
        }
        self.calm = Some(now);
        self.quiet = 0;
        let Some(b) = self.bracket.filter(|b| self.cruising.is_none() && !b.idle) else {
            // A host's first 429, or the first since it was calm: open a
            // bracket, and learn from the pace of the moment.
            if self.cruising.is_some() && self.probe > 0.0 {
                self.wait = (self.wait * 2).min(Self::WAIT_MAX);
            }
            self.bracket = Some(Bracket {
                sent,
                answered: now,
                served: 0,
                served_after: 0,
                latest_sent: sent,
                latest_answered: now,
                served_after_latest: 0,
                idle: false,
            });
            self.cruising = None;
            self.probe = 0.0;
            let interval = *self.interval.get_or_insert(Self::FIRST);
            tracing::debug!(target: "quench::pace", rate = per_second(interval), "429: learning");
            return;
        };
        // From the first 429's answer to this one's sending, not its answer,
        // which may come late and would stretch the span: 429s sent before
        // the first was answered span nothing.
        let span = sent.saturating_duration_since(b.answered);
        if span >= Self::LEARN && b.served_after >= Self::LEARN_SERVED {
            self.cruise(now);
            return;
        }
        if span.is_zero() {
            return;
        }
        // Sent and unanswered: all pending but one still waiting for its slot.
        let in_flight = self
            .pending
            .saturating_sub(u32::from(self.last.is_some_and(|at| at > now)));
        let upper = f64::from(b.served + 1 + in_flight) / span.as_secs_f64();
        let interval = Duration::from_secs_f64(1.0 / upper);
        self.interval = self.interval.max(Some(interval.min(Self::MAX)));
        if let Some(b) = self.bracket.as_mut() {
            b.latest_sent = sent;
            b.latest_answered = now;
            b.served_after_latest = 0;
        }
        tracing::debug!(
            target: "quench::pace",
            upper,
            served = b.served,
            in_flight,
            span_ms = span.as_millis() as u64,
            "429: at most this rate"
        );
    }

    /// A request sent at `sent` was answered at `now`, other than 429, with
    /// `waiting` requests still to send.
    fn served(&mut self, sent: Instant, now: Instant, waiting: usize) {
        self.pending = self.pending.saturating_sub(1);
        self.quiet += 1;
        if let Some(b) = self.bracket.as_mut() {
            b.served += 1;
            if sent >= b.answered {
                b.served_after += 1;
            }
            if sent >= b.latest_answered {
                b.served_after_latest += 1;
            }
        }
        let (Some(interval), Some(calm)) = (self.interval, self.calm) else {
            return;
        };
        let wait = match self.cruising {
            Some(_) if self.probe == 0.0 => self.wait,
            _ => Self::CALM,
        };
        if now.saturating_duration_since(calm) < wait || self.quiet < Self::CALM_SERVED {
            return;
        }
        if self.cruising.is_none() {
            self.cruise(now);
            return;
        }
        self.calm = Some(now);
        self.quiet = 0;
        if interval.saturating_mul(waiting.try_into().unwrap_or(u32::MAX)) < Self::PROBE_BACKLOG {
            self.probe = 0.0;
            return;
        }
        self.probe = if self.probe > 0.0 {
            (self.probe * 2.0).min(Self::PROBE_MAX)
        } else {
            Self::PROBE_FIRST
        };
        let interval = interval.div_f64(1.0 + self.probe);
        if interval.as_secs_f64() * self.ceiling < 1.0 / 1.1 {
            // 10% above where learning ended without a 429: the limit was
            // raised, and is worth probing for again without waiting.
            self.wait = Self::CALM;
        }
        self.interval = (interval >= Self::MIN).then_some(interval);
        tracing::debug!(target: "quench::pace", rate = per_second(interval), step = self.probe, "calm: probing");
    }

    /// A request sent got no answer: the connection failed, or the step
    /// gave up on it.
    fn lost(&mut self) {
        self.pending = self.pending.saturating_sub(1);
    }

    /// The host said its quota is spent until `until`.
    fn hold(&mut self, until: Instant) {
        self.held = Some(self.held.map_or(until, |h| h.max(until)));
        tracing::debug!(target: "quench::pace", "quota spent: held");
    }

    /// Cruises just under the lower bound of the rate (the better of the
    /// bracket's and its latest 429's), or at the pace of the moment when
    /// the bracket says nothing yet.
    fn cruise(&mut self, now: Instant) {
        self.ceiling = self.interval.map_or(0.0, |d| 1.0 / d.as_secs_f64());
        if let Some(b) = &self.bracket {
            let lower = |served: u32, since: Instant| {
                let span = now.saturating_duration_since(since).as_secs_f64();
                if served >= 2 && span > 0.0 {
                    f64::from(served - 1) / span
                } else {
                    0.0
                }
            };
            let lower =
                lower(b.served_after, b.sent).max(lower(b.served_after_latest, b.latest_sent));
            if lower > 0.0 {
                let rate = lower * Self::MARGIN;
                self.interval = Some(Duration::from_secs_f64(1.0 / rate).min(Self::MAX));
            }
        }
        self.cruising = Some(self.last.map_or(now, |at| at.max(now)));
        self.calm = Some(now);
        self.quiet = 0;
        self.probe = 0.0;
        tracing::debug!(
            target: "quench::pace",
            rate = self.interval.map_or(0.0, per_second),
            ceiling = self.ceiling,
            "cruising"
        );
    }
}

fn per_second(interval: Duration) -> f64 {
    1.0 / interval.as_secs_f64()
}

/// How long until a host that says its quota is spent refills it: with
/// `RateLimit-Remaining: 0` and `RateLimit-Reset` (seconds), as the IETF
/// draft has it, or `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset`,
/// seconds or, as GitHub sends it, a Unix time (a value past 10⁹, which as
/// seconds would be 30 years). `None` while there is quota left, or when
/// the host does not say.
fn quota_reset(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let n = headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()?;
        (n.is_finite() && n >= 0.0).then_some(n)
    };
    let (remaining, reset) = [
        ("ratelimit-remaining", "ratelimit-reset"),
        ("x-ratelimit-remaining", "x-ratelimit-reset"),
    ]
    .into_iter()
    .find_map(|(remaining, reset)| Some((number(remaining)?, number(reset)?)))?;
    if remaining >= 1.0 {
        return None;
    }
    let secs = if reset >= 1e9 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        (reset - now).max(0.0)
    } else {
        reset
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn a_host_is_paced_only_after_a_429_and_the_pace_follows_its_brackets() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Pace::default();
        assert_eq!(p.slot(t0), None, "unpaced until refused");
        p.limited(t0, t0 + ms(1));
        assert_eq!(p.interval, Some(Pace::FIRST));
        // Slots are handed out one interval apart, never in the past.
        assert_eq!(p.slot(t0), Some(t0));
        assert_eq!(p.slot(t0), Some(t0 + ms(1)));
        assert_eq!(p.slot(t0 + ms(5)), Some(t0 + ms(5)));
        for _ in 0..3 {
            p.lost();
        }
        assert_eq!(p.pending, 0);
        // At a pace of 10 ms, 4 served 15 ms apart, then a 429 closes the
        // bracket opened at 1 ms: 4 served (and 1 more the host may have
        // had) in 60 ms is at most 83 req/s, so the pace slows to 12 ms.
        let mut p = Pace::default();
        p.slot(t0);
        p.limited(t0, t0 + ms(1));
        p.interval = Some(ms(10));
        let mut now = t0 + ms(1);
        for _ in 0..4 {
            let at = p.slot(now).unwrap();
            p.served(at, at + ms(1), 100);
            now = at + ms(15);
        }
        let second = p.slot(now).unwrap();
        p.limited(second, t0 + ms(61));
        assert_eq!(p.interval, Some(Duration::from_secs_f64(0.060 / 5.0)));
        assert!(p.cruising.is_none());
        // Then 80 more served at that pace and a 429 (a second after the
        // first, not yet after the last): the bracket is long enough, and
        // the host is cruised 1% under its lower bound, the better of 84
        // served since the first 429 was sent and 80 since the second, less
        // 1.
        for _ in 0..80 {
            let at = p.slot(now).unwrap();
            p.served(at, at + ms(1), 100);
            now = at + ms(1);
        }
        let at = p.slot(now).unwrap();
        let end = at + ms(1);
        p.limited(at, end);
        assert!(p.cruising.is_some());
        let lower = f64::max(
            83.0 / end.duration_since(t0).as_secs_f64(),
            79.0 / end.duration_since(second).as_secs_f64(),
        );
        let rate = lower * Pace::MARGIN;
        assert_eq!(p.interval, Some(Duration::from_secs_f64(1.0 / rate)));
    }

    /// A host with a token bucket of `rate(t)` tokens a second (`t` in
    /// seconds from the start), `burst` at most, and a client that sends it
    /// `jobs` requests (a 429 goes back in the queue), 32 at most in flight,
    /// each at the slot the pace gives it when the one before has left.
    /// Answers come 1 to 3 ms after the request (a fixed pseudo-random
    /// jitter). Returns each answer: when (s) and whether it was served.
    fn drive(rate: impl Fn(f64) -> f64, burst: f64, jobs: usize, secs: f64) -> Vec<(f64, bool)> {
        drive_late(rate, burst, jobs, secs, (0.0, 0.0), 0.0)
    }

    /// [`drive`], against a host whose threads take their time (like
    /// Python's `ThreadingHTTPServer`): each request is taken up to
    /// `late.0` seconds late (its token taken or refused then, so requests
    /// are served out of order) and answered up to `late.1` seconds later
    /// still; and with a client that sends nothing after its first requests
    /// until `busy` (an engine journaling the start of 1,000 steps).
    fn drive_late(
        rate: impl Fn(f64) -> f64,
        burst: f64,
        jobs: usize,
        secs: f64,
        late: (f64, f64),
        busy: f64,
    ) -> Vec<(f64, bool)> {
        struct Flight {
            taken: f64,
            answered: f64,
            sent: f64,
            served: Option<bool>,
        }
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut pace = Pace::default();
        let (mut tokens, mut filled) = (burst, 0.0);
        let mut seed = 0x9e37_79b9_u32;
        let mut jitter = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            0.001 + f64::from(seed % 2000) / 1e6
        };
        let mut flight: Vec<Flight> = Vec::new();
        let mut answers = Vec::new();
        let (mut now, mut done) = (0.0, 0);
        while now < secs && done < jobs {
            // Every request the host takes by now, in the order it takes them.
            flight.sort_by(|a, b| a.taken.total_cmp(&b.taken));
            for f in flight
                .iter_mut()
                .filter(|f| f.served.is_none() && f.taken <= now)
            {
                tokens = (tokens + (f.taken - filled) * rate(f.taken)).min(burst);
                filled = f.taken;
                let served = tokens >= 1.0;
                if served {
                    tokens -= 1.0;
                }
                f.served = Some(served);
            }
            // Every answer due by now, in order.
            flight.sort_by(|a, b| b.answered.total_cmp(&a.answered));
            while flight
                .last()
                .is_some_and(|f| f.answered <= now && f.served.is_some())
            {
                let f = flight.pop().unwrap();
                let waiting = jobs - done - flight.len();
                if f.served == Some(true) {
                    done += 1;
                    pace.served(at(f.sent), at(f.answered), waiting);
                } else {
                    pace.limited(at(f.sent), at(f.answered));
                }
                answers.push((f.answered, f.served == Some(true)));
            }
            let next = flight
                .iter()
                .map(|f| {
                    if f.served.is_none() {
                        f.taken
                    } else {
                        f.answered
                    }
                })
                .min_by(f64::total_cmp);
            if flight.len() == MAX_IN_FLIGHT_PER_HOST || flight.len() == jobs - done {
                // Nothing to send until the host takes or answers one.
                now = next.unwrap_or(now);
                continue;
            }
            if now > 0.0 && now < busy {
                now = next.map_or(busy, |n| n.min(busy));
                continue;
            }
            let sent = pace
                .slot(at(now))
                .map_or(now, |s| s.duration_since(t0).as_secs_f64());
            let d = jitter();
            let taken = sent + d / 2.0 + late.0 * (jitter() - 0.001) / 0.002;
            flight.push(Flight {
                taken,
                answered: taken + d / 2.0 + late.1 * (jitter() - 0.001) / 0.002,
                sent,
                served: None,
            });
            now = sent;
        }
        answers
    }

    fn served_between(answers: &[(f64, bool)], from: f64, to: f64) -> usize {
        answers
            .iter()
            .filter(|&&(t, served)| served && t >= from && t < to)
            .count()
    }

    fn limited_between(answers: &[(f64, bool)], from: f64, to: f64) -> Vec<f64> {
        answers
            .iter()
            .filter(|&&(t, served)| !served && t >= from && t < to)
            .map(|a| a.0)
            .collect()
    }

    #[test]
    fn the_pace_keeps_a_rate_limit_drained_and_stops_knocking_once_it_knows_it() {
        // 1,000 requests against 100/s, burst 10: the floor is 9.9 s.
        let answers = drive(|_| 100.0, 10.0, 1000, 60.0);
        let end = answers.last().unwrap().0;
        assert_eq!(served_between(&answers, 0.0, end + 1.0), 1000);
        assert!(end < 9.9 * 1.02, "all served in {end:.2} s");
        let late = limited_between(&answers, end - 2.0, end + 1.0);
        assert!(late.is_empty(), "429s in the last 2 s: {late:?}");
        let all = limited_between(&answers, 0.0, end + 1.0);
        assert!(all.len() < 100, "{} 429s", all.len());
        // An endless queue for 10 s: at least 95/s.
        let answers = drive(|_| 100.0, 10.0, usize::MAX, 10.0);
        let served = served_between(&answers, 0.0, 10.0);
        assert!(served >= 950, "{served} served in 10 s");
        let late = limited_between(&answers, 8.0, 10.0);
        assert!(late.is_empty(), "429s in the last 2 s: {late:?}");
    }

    /// A host that answers up to 20 ms late: the first requests, all sent
    /// at once before the first 429, come back refused over those 20 ms.
    /// They say when the bucket was empty, not how fast it refills, and the
    /// pace does not come down for them.
    #[test]
    fn refusals_that_come_back_late_do_not_slow_the_pace_below_the_rate() {
        const LATE: (f64, f64) = (0.0, 0.020);
        const BUSY: f64 = 0.030;
        let answers = drive_late(|_| 100.0, 10.0, 1000, 60.0, LATE, BUSY);
        let end = answers.last().unwrap().0;
        assert_eq!(served_between(&answers, 0.0, end + 1.0), 1000);
        assert!(end < 9.9 * 1.03, "all served in {end:.2} s");
    }

    #[test]
    fn a_raised_limit_is_found_again() {
        let answers = drive(
            |t| if t < 5.0 { 100.0 } else { 200.0 },
            10.0,
            usize::MAX,
            30.0,
        );
        let served = served_between(&answers, 25.0, 30.0);
        assert!(served >= 5 * 180, "{served} served in the last 5 s");
    }

    #[test]
    fn a_lowered_limit_is_learnt_again() {
        let answers = drive(
            |t| if t < 5.0 { 100.0 } else { 50.0 },
            10.0,
            usize::MAX,
            20.0,
        );
        let served = served_between(&answers, 10.0, 20.0);
        assert!(served >= 10 * 45, "{served} served in 10 s");
        let limited = limited_between(&answers, 10.0, 20.0);
        assert!(limited.len() <= 10, "429s: {limited:?}");
    }

    #[test]
    fn a_very_slow_limit_is_learnt_without_a_storm() {
        let answers = drive(|_| 1.0, 2.0, usize::MAX, 60.0);
        let limited = limited_between(&answers, 0.0, 60.0);
        // The first 32 at once, then a handful while the pace comes down.
        assert!(limited.len() <= 60, "{} 429s", limited.len());
        let late = limited_between(&answers, 10.0, 60.0);
        assert!(late.len() <= 10, "429s after 10 s: {late:?}");
        let served = served_between(&answers, 0.0, 60.0);
        assert!(served >= 45, "{served} served in 60 s");
    }

    #[test]
    fn a_spent_quota_holds_the_host_until_it_is_refilled() {
        let header = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let secs = Duration::from_secs;
        let draft = header(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "7")]);
        assert_eq!(quota_reset(&draft), Some(secs(7)));
        let left = header(&[("RateLimit-Remaining", "3"), ("RateLimit-Reset", "7")]);
        assert_eq!(quota_reset(&left), None);
        let unsaid = header(&[("X-RateLimit-Remaining", "0")]);
        assert_eq!(quota_reset(&unsaid), None);
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let github = header(&[
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", &(unix_now + 30).to_string()),
        ]);
        let wait = quota_reset(&github).unwrap();
        assert!(wait > secs(28) && wait <= secs(30), "{wait:?}");
        let past = header(&[
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", "1700000000"),
        ]);
        assert_eq!(quota_reset(&past), Some(Duration::ZERO));

        // Unpaced or paced, no slot before the quota is refilled.
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Pace::default();
        p.hold(t0 + ms(500));
        assert_eq!(p.slot(t0), Some(t0 + ms(500)));
        assert_eq!(p.slot(t0 + ms(600)), None);
        p.limited(t0 + ms(600), t0 + ms(601));
        p.hold(t0 + ms(900));
        assert_eq!(p.slot(t0 + ms(700)), Some(t0 + ms(900)));
        assert_eq!(p.slot(t0 + ms(700)), Some(t0 + ms(901)));
    }
}
