//! The pace of calls to Connect: a token bucket per execution environment, so that the
//! environments a queue runs at once share StartTaskContact's account quota (about 2 calls per
//! second, burst 5, per account and Region) instead of discovering it by being throttled.
//!
//! Each environment takes `rate / environments` calls per second (`CONNECT_REQUESTS_PER_SECOND`
//! over `CONNECT_CALLERS`, which the template sets to the queue's maximum concurrency) with a
//! burst of `burst / environments` (at least one). The pace adapts to other callers of the same
//! quota: a throttle means Connect's bucket is empty, so the rate drops to what this
//! environment actually got over the last few seconds (at most 0.8, at least half of what it
//! asked), and
//! creeps back up by a small share per success (a slow climb makes few throttles: Connect's
//! own burst absorbs an overshoot for a while before the next one).
//!
//! Waiting counts against the invocation: `reserve` refuses a wait that would end past the
//! latest moment a call may start, and the record goes back to its queue untried.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Multiplier applied to the rate on a throttle, when the observed rate is higher.
const DECREASE: f64 = 0.8;
/// Share of the current rate added per successful call.
const INCREASE: f64 = 0.01;
/// How far back successes are counted to estimate the rate that Connect granted.
const WINDOW: Duration = Duration::from_secs(10);
/// The rate never drops below this share of the configured one (one throttle too many must not
/// stall the queue).
const FLOOR: f64 = 0.05;

/// Connect's quota and how many environments share it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceSetting {
    /// Calls per second for the whole account (Connect's default quota: 2).
    pub rate: f64,
    /// Connect's burst for the whole account (default 5).
    pub burst: f64,
    /// How many environments call at once (the queue's maximum concurrency).
    pub callers: u32,
}

impl Default for PaceSetting {
    fn default() -> Self {
        PaceSetting {
            rate: 2.0,
            burst: 5.0,
            callers: 2,
        }
    }
}

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
    /// When recent calls succeeded (within `WINDOW`), for the rate Connect granted.
    successes: VecDeque<Instant>,
    started: Instant,
    stats: PaceStats,
}

/// What the pace did since the last `take_stats`: for the invocation's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PaceStats {
    /// Calls Connect throttled (retried ones included).
    pub throttles: u64,
    /// Time calls waited for their turn, summed.
    pub waited: Duration,
}

/// A granted call: wait `wait`, then call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    pub wait: Duration,
}

impl Pacer {
    pub fn new(setting: PaceSetting) -> Pacer {
        Pacer::starting_at(setting, Instant::now())
    }

    fn starting_at(setting: PaceSetting, now: Instant) -> Pacer {
        let callers = f64::from(setting.callers.max(1));
        let max_rate = (setting.rate / callers).max(f64::MIN_POSITIVE);
        let burst = (setting.burst / callers).floor().max(1.0);
        Pacer {
            max_rate,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: now,
                rate: max_rate,
                successes: VecDeque::new(),
                started: now,
                stats: PaceStats::default(),
            }),
        }
    }

    /// The rate this environment uses now (calls per second).
    pub fn rate(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).rate
    }

    /// Books the next call. `latest`: the last moment the call may start (None: no limit).
    /// Returns None, booking nothing, when the call's turn comes after `latest`.
    pub fn reserve(&self, latest: Option<Instant>) -> Option<Slot> {
        self.reserve_at(Instant::now(), latest)
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
        Some(Slot { wait })
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
        s.successes.push_back(now);
        s.forget_before(now);
        let rate = s.rate * (1.0 + INCREASE);
        s.refill(now, self.burst);
        s.rate = rate.min(self.max_rate);
    }

    /// Connect throttled a call: its bucket is empty, others share the quota.
    pub fn on_throttle(&self) {
        self.on_throttle_at(Instant::now());
    }

    fn on_throttle_at(&self, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.stats.throttles += 1;
        s.refill(now, self.burst);
        s.forget_before(now);
        let span = now.duration_since(s.started).min(WINDOW).as_secs_f64();
        let granted = if span >= 1.0 {
            s.successes.len() as f64 / span
        } else {
            f64::INFINITY
        };
        // Never more than half per throttle: a window with few calls says little.
        let rate = (s.rate * DECREASE)
            .min(granted)
            .max(s.rate * 0.5)
            .max(self.max_rate * FLOOR);
        s.rate = rate;
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

    fn forget_before(&mut self, now: Instant) {
        while self
            .successes
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.successes.pop_front();
        }
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
        // 1 call/s each, burst floor(5/2) = 2.
        let waits = book(&p, t0, 5);
        let expected = [0.0, 0.0, 1.0, 2.0, 3.0];
        for (w, e) in waits.iter().zip(expected) {
            assert!((w - e).abs() < 1e-6, "{waits:?}");
        }
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
    fn a_throttle_drops_to_the_rate_granted_and_successes_climb_back_slowly() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(1.0, 2.0, 1), t0);
        // Connect granted 0.5 call/s over the last 10 s (another caller took the rest).
        for i in 0..5 {
            p.on_success_at(t0 + Duration::from_secs(2 * i));
        }
        p.on_throttle_at(t0 + Duration::from_secs(10));
        let rate = p.rate();
        assert!((rate - 0.5).abs() < 1e-9, "{rate}");
        // An empty bucket after a throttle: the next call waits its full turn.
        let w = p
            .reserve_at(t0 + Duration::from_secs(10), None)
            .unwrap()
            .wait;
        assert!((w.as_secs_f64() - 2.0).abs() < 1e-6, "{w:?}");
        for i in 0..10 {
            p.on_success_at(t0 + Duration::from_secs(12 + i));
        }
        let climbed = p.rate();
        assert!(climbed > 0.5 && climbed < 0.56, "{climbed}");
    }

    #[test]
    fn throttles_never_stall_the_pace_and_successes_never_exceed_the_share() {
        let t0 = Instant::now();
        let p = Pacer::starting_at(setting(2.0, 5.0, 2), t0);
        for i in 0..100 {
            p.on_throttle_at(t0 + Duration::from_millis(i));
        }
        assert!((p.rate() - 0.05).abs() < 1e-9, "{}", p.rate());
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
