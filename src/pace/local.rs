//! The local pace: a token bucket per execution environment, used without a pace table (tests,
//! `send`, a deployment that opts out) and while the pace table does not answer. The
//! environments a queue runs at once share an operation's account quota (StartTaskContact: about
//! 2 calls per second, burst 5, per account and Region) by a fixed share each.
//!
//! Each environment takes `rate / environments` calls per second (`CONNECT_REQUESTS_PER_SECOND`
//! over `CONNECT_CALLERS`, which the template sets to the queue's maximum concurrency) with a
//! burst of `burst / environments` (at least one). The pace adapts to other callers of the same
//! quota, additive-increase/multiplicative-decrease as TCP does, counted in calls rather than
//! seconds so that it behaves the same at any quota:
//! - a throttle trims the rate by `TRIM`, once per congestion: calls booked before the last trim
//!   were booked at the old rate, so they are booked again at the new one (`rebook`) and their
//!   throttles say nothing new (as TCP reduces once per window); a throttle within `QUICK`
//!   successes of the last trim means the trim was not enough, and trims by `TRIM_AGAIN`;
//! - every success raises it by `INCREASE` of itself, up to the share, and by a quarter of that
//!   near the rate that was last throttled (it probes the level that throttled slowly, and
//!   forgets it once well past it: the other caller has gone).
//!
//! A slow climb makes few throttles: from a trim back to the level that throttled takes about
//! 45 successful calls, and Connect's burst, refilled while we run below the level, absorbs
//! the overshoot for a while longer; on average the rate stays within 10 % of what is left.
//! Contention that takes half the quota costs three trims per environment.
//!
//! Waiting counts against the invocation: `reserve` refuses a wait that would end past the
//! latest moment a call may start, and the record goes back to its queue untried.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{PaceSetting, PaceStats, Slot};

/// Multiplier on a throttle.
pub(super) const TRIM: f64 = 0.85;
/// Multiplier on a throttle within `QUICK` successes of the last trim.
const TRIM_AGAIN: f64 = 0.5;
const QUICK: u32 = 5;
/// Within this share of the last throttled rate, the climb slows to a quarter.
pub(super) const NEAR: f64 = 0.98;
/// Share of a turn a call may be delayed by, at random.
const JITTER: f64 = 0.2;
/// This far past the last throttled rate, it is forgotten.
pub(super) const PAST: f64 = 1.05;
/// Share of the current rate added per successful call.
pub(super) const INCREASE: f64 = 0.004;
/// The rate never drops below this share of the configured one: at 40 % a batch of 10 still
/// fits the default 30 s timeout at one call per second per environment, and two
/// environments at the floor leave a fifth of the quota to other callers. Another caller that
/// takes more than that gets throttles, retried at our next turns, but the queue never stalls.
pub(super) const FLOOR: f64 = 0.4;

/// One environment's bucket.
#[derive(Debug)]
pub struct Pacer {
    max_rate: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Tokens at `at`; negative when calls are booked ahead (they wait their turn).
    tokens: f64,
    at: Instant,
    rate: f64,
    stats: PaceStats,
    /// Calls booked so far, and how many had been when the rate was last trimmed.
    booked: u64,
    booked_at_trim: u64,
    /// Calls that succeeded since the last trim.
    succeeded_since_trim: u32,
    /// The rate that was last throttled, until the rate is well past it.
    ceiling: Option<f64>,
}

impl Pacer {
    pub fn new(setting: PaceSetting) -> Pacer {
        Pacer::starting_at(setting, Instant::now())
    }

    fn starting_at(setting: PaceSetting, now: Instant) -> Pacer {
        let callers = f64::from(setting.callers.max(1));
        let max_rate = (setting.rate / callers).max(f64::MIN_POSITIVE);
        // One token of Connect's burst is left unused as headroom: at the full rate nothing
        // else refills it, and calls that arrive close together (jitter, latency) would
        // otherwise find it empty. The rest is shared, fractions kept: two environments with a
        // burst of 5 hold 2 each.
        let burst = ((setting.burst - 1.0) / callers).max(1.0);
        Pacer {
            max_rate,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: now,
                rate: max_rate,
                stats: PaceStats::default(),
                booked: 0,
                booked_at_trim: 0,
                succeeded_since_trim: u32::MAX,
                ceiling: None,
            }),
        }
    }

    /// The rate this environment uses now (calls per second).
    pub fn rate(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rate
    }

    /// Books the next call. `latest`: the last moment the call may start (None: no limit).
    /// A call that finds a token goes at once. A call that waits carries a jitter of up to a
    /// fifth of a turn: environments that started together would otherwise call at the same
    /// instants, and the one whose calls arrive first would never be throttled while the other
    /// takes every throttle (and every trim). (A jitter on every call once cost an idle
    /// environment's first event about 100 ms.)
    /// Returns None, booking nothing, when the call's turn comes after `latest`.
    pub fn reserve(&self, latest: Option<Instant>) -> Option<Slot> {
        let now = Instant::now();
        let slot = self.reserve_at(now, latest)?;
        if slot.wait.is_zero() {
            return Some(slot);
        }
        let turn = 1.0 / self.rate();
        let jittered = slot.wait + Duration::from_secs_f64(turn * JITTER * fastrand::f64());
        let wait = match latest {
            Some(latest) => jittered.min(latest.saturating_duration_since(now)),
            None => jittered,
        };
        Some(Slot { wait, ..slot })
    }

    fn reserve_at(&self, now: Instant, latest: Option<Instant>) -> Option<Slot> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.refill(now, self.burst);
        let wait = if s.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - s.tokens) / s.rate)
        };
        if latest.is_some_and(|latest| now + wait > latest) {
            return None;
        }
        s.tokens -= 1.0;
        s.stats.waited += wait;
        s.booked += 1;
        Some(Slot {
            wait,
            number: s.booked,
            shared: None,
        })
    }

    /// How long from now until `calls` more calls would have had their turn: when records
    /// handed back to their queue should come back.
    pub fn time_for(&self, calls: usize) -> Duration {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.refill(now, self.burst);
        // Calls booked ahead (negative tokens) come first; tokens in hand serve some at once.
        let owed = calls as f64 - s.tokens;
        Duration::from_secs_f64(owed.max(0.0) / s.rate)
    }

    /// What the pace did since the last call of this.
    pub fn take_stats(&self) -> PaceStats {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut s.stats)
    }

    /// Connect accepted a call.
    pub fn on_success(&self) {
        self.on_success_at(Instant::now());
    }

    fn on_success_at(&self, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.succeeded_since_trim = s.succeeded_since_trim.saturating_add(1);
        s.refill(now, self.burst);
        let step = match s.ceiling {
            Some(c) if s.rate >= c * NEAR => INCREASE / 4.0,
            _ => INCREASE,
        };
        s.rate = (s.rate * (1.0 + step)).min(self.max_rate);
        if s.ceiling.is_some_and(|c| s.rate > c * PAST) {
            s.ceiling = None;
        }
    }

    /// Whether `slot` was booked before the rate was last trimmed: its call should be booked
    /// again (its token is given back) rather than made at the old rate.
    pub fn rebook(&self, slot: Slot) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if slot.number > s.booked_at_trim {
            return false;
        }
        s.tokens += 1.0;
        true
    }

    /// Connect throttled the call of `slot`: its bucket is empty, others share the quota.
    pub fn on_throttle(&self, slot: Slot) {
        self.on_throttle_at(Instant::now(), slot);
    }

    fn on_throttle_at(&self, now: Instant, slot: Slot) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.stats.throttles += 1;
        if slot.number <= s.booked_at_trim {
            return;
        }
        s.refill(now, self.burst);
        let factor = if s.succeeded_since_trim >= QUICK {
            TRIM
        } else {
            TRIM_AGAIN
        };
        s.ceiling = Some(s.rate);
        s.rate = (s.rate * factor).max(self.max_rate * FLOOR);
        s.booked_at_trim = s.booked;
        s.succeeded_since_trim = 0;
        // Connect's bucket is empty: nothing is left of ours either.
        s.tokens = s.tokens.min(0.0);
    }
}

impl State {
    fn refill(&mut self, now: Instant, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(burst);
        self.at = self.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(rate: f64, burst: f64, callers: u32) -> PaceSetting {
        PaceSetting {
            rate,
            burst,
            callers,
        }
    }

    /// Books `n` calls at `now` and returns when each may start, in seconds after `now`.
    fn book(p: &Pacer, now: Instant, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| p.reserve_at(now, None).unwrap().wait.as_secs_f64())
            .collect()
    }

    #[test]
    fn the_quota_is_shared_by_the_callers_burst_then_rate() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(2.0, 5.0, 2), t0);
        // 1 call/s each, burst (5 - 1) / 2 = 2: two at once, then one a second.
        let waits = book(&p, t0, 5);
        let expected = [0.0, 0.0, 1.0, 2.0, 3.0];
        for (w, e) in waits.iter().zip(expected) {
            assert!((w - e).abs() < 1e-6, "{waits:?}");
        }
    }

    /// A call that finds a token goes at once; only a call that waits is spread, by at most a
    /// fifth of a turn past its turn (pins the jitter, a cargo-mutants survivor).
    #[test]
    fn a_call_that_finds_a_token_goes_at_once_and_only_waiting_calls_are_spread() {
        let p = Pacer::new(setting(2.0, 5.0, 1));
        let waits: Vec<f64> = (0..12)
            .map(|_| p.reserve(None).unwrap().wait.as_secs_f64())
            .collect();
        // Burst 5 - 1: four calls at once.
        assert!(waits[..4].iter().all(|w| *w == 0.0), "{waits:?}");
        let turn = 0.5;
        let mut spread = false;
        for (n, w) in waits[4..].iter().enumerate() {
            let due = (n + 1) as f64 * turn;
            assert!(
                *w >= due - 0.01 && *w <= due + turn * JITTER + 0.01,
                "call {}: {w} s, due at {due} s: {waits:?}",
                n + 4
            );
            spread |= *w > due + 0.001;
        }
        assert!(spread, "waiting calls carry a jitter: {waits:?}");
    }

    #[test]
    fn a_wait_past_the_latest_start_books_nothing() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(1.0, 1.0, 1), t0);
        assert_eq!(p.reserve_at(t0, None).unwrap().wait, Duration::ZERO);
        let latest = Some(t0 + Duration::from_millis(500));
        assert_eq!(p.reserve_at(t0, latest), None);
        // Nothing was booked: the next call still waits one second, not two.
        let w = p.reserve_at(t0, None).unwrap().wait.as_secs_f64();
        assert!((w - 1.0).abs() < 1e-6, "{w}");
    }

    #[test]
    fn a_throttle_trims_once_per_congestion_and_deeper_when_the_trim_was_not_enough() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(2.0, 3.0, 1), t0);
        let first = p.reserve_at(t0, None).unwrap();
        let second = p.reserve_at(t0, None).unwrap();
        p.on_throttle_at(t0, first);
        assert!((p.rate() - 1.7).abs() < 1e-9, "{}", p.rate());
        // Booked before the trim: its throttle is old news...
        p.on_throttle_at(t0, second);
        assert!((p.rate() - 1.7).abs() < 1e-9, "{}", p.rate());
        // ...and it is booked again, with the token it held, at the new rate.
        assert!(p.rebook(second));
        let again = p.reserve_at(t0, None).unwrap();
        assert_eq!(again.wait, Duration::ZERO);
        assert!(!p.rebook(again));
        // The bucket is empty after a throttle: the next call waits its full turn.
        let third = p.reserve_at(t0, None).unwrap();
        assert!(
            (third.wait.as_secs_f64() - 1.0 / 1.7).abs() < 1e-6,
            "{third:?}"
        );
        // Throttled again within a few successes: the trim was not enough.
        p.on_success_at(t0);
        p.on_throttle_at(t0, again);
        let deeper = 1.7 * 1.004 * 0.5;
        assert!((p.rate() - deeper).abs() < 1e-9, "{}", p.rate());
        assert_eq!(p.take_stats().throttles, 3);
        // Climbing back: quickly to near the level that throttled, slowly there, quickly again
        // once well past it.
        let level = 1.7 * 1.004;
        let (mut rate, mut ceiling) = (deeper, Some(level));
        for _ in 0..300 {
            p.on_success_at(t0);
            rate *= match ceiling {
                Some(c) if rate >= c * 0.98 => 1.001,
                _ => 1.004,
            };
            rate = rate.min(2.0);
            if ceiling.is_some_and(|c| rate > c * 1.05) {
                ceiling = None;
            }
            assert!((p.rate() - rate).abs() < 1e-9, "{} {rate}", p.rate());
        }
        assert_eq!(ceiling, None);
    }

    #[test]
    fn throttles_never_stall_the_pace_and_successes_never_exceed_the_share() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(2.0, 5.0, 2), t0);
        for i in 0..100 {
            let slot = p.reserve_at(t0 + Duration::from_millis(i), None).unwrap();
            p.on_throttle_at(t0 + Duration::from_millis(i), slot);
        }
        assert!((p.rate() - 0.4).abs() < 1e-9, "{}", p.rate());
        for i in 0..2000 {
            p.on_success_at(t0 + Duration::from_secs(1 + i));
        }
        assert!((p.rate() - 1.0).abs() < 1e-9, "{}", p.rate());
    }

    #[test]
    fn time_for_counts_booked_calls_and_the_ones_handed_back() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(1.0, 1.0, 1), t0);
        book(&p, t0, 3); // one from the burst, two booked ahead (tokens = -2)
        let d = p.time_for(4).as_secs_f64();
        // 2 booked + 4 handed back at 1/s, measured from a moment just after t0.
        assert!(d > 5.9 && d <= 6.0, "{d}");
    }
}
