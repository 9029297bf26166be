//! How the shared schedule adapts to callers outside our stacks: what a congestion does to its
//! interval, how successes bring it back, and what the calls since the last empty bucket say
//! about the rate left to us. Pure arithmetic on intervals (µs per call), kept apart from the
//! table's writes (`shared`) so that each rule is pinned by a unit test.
//!
//! **Why measure rather than only trim.** Trimming by a fixed factor and climbing back (AIMD)
//! finds another caller's share by trial: from the full quota to half of it takes four or five
//! congestions, and the climb then overshoots the level again and again, about one congestion
//! per hundred calls: 3 to 5 % of calls throttled in the surge simulation. But a throttle tells
//! more than "slower": Connect's bucket is empty at that moment. Between two moments the bucket
//! was empty, and with our schedule busy all along (every turn taken, so no token was left to
//! pile up), the calls we made are exactly the tokens Connect gave us: `calls / seconds` is the
//! rate left to us, measured. The pace table counts the calls (the booking's write adds one,
//! a throttle takes its booking back) and notes the mark (the count and the moment) at the
//! first empty bucket; an idle booking drops the mark (the bucket refills while idle).
//!
//! So: the first congestion of a schedule that knows no ceiling halves the rate (TCP leaving
//! slow start: nothing is known yet but that the quota is shared); a congestion with a window
//! of at least `MIN_WINDOW` calls sets the rate to `MARGIN` of the measured one and holds it
//! there (a plateau); without such a window, the usual trim. A schedule on its plateau probes
//! again only after `PROBE_AFTER` calls of every environment since that congestion (the other
//! caller may have gone), slowly: counted in the shared schedule, so that environments do not
//! each probe in turn.

use super::local::{FLOOR, INCREASE, PAST, TRIM};

/// The first congestion of a schedule with no ceiling: the rate is halved.
pub(super) const FIRST_TRIM: f64 = 0.5;
/// Share of the measured rate the schedule holds.
pub(super) const MARGIN: f64 = 0.97;
/// Calls a window needs before its rate is believed: one call more or less in a window of
/// twelve is 8 %.
pub(super) const MIN_WINDOW: f64 = 12.0;
/// Within this share of the ceiling's rate a throttle is the congestion found before, never a
/// lone early arrival: the plateau sits at `MARGIN` of it.
pub(super) const NEAR_CEILING: f64 = 0.95;
/// Calls of every environment since the last measured congestion after which a plateau probes
/// upwards again (the other caller may have gone). A probe costs a throttle or two, so this
/// bounds what probing costs to about 0.3 % of calls; the price is the time a plateau takes to
/// notice the other caller has gone: about 8 minutes at half the default quota (4 at the whole).
pub(super) const PROBE_AFTER: u32 = 512;
/// Share of the schedule's own rate a window too short to measure must have been given for a
/// throttle at the configured rate to be an early arrival, not another caller: another caller
/// taking half the quota leaves half, two early arrivals leave all of it.
pub(super) const GIVEN_IN_FULL: f64 = 0.75;
/// Turns a short window must span before its share is believed: over fewer, one call more or
/// less decides it, and another caller's throttles come that close together.
pub(super) const JUDGE_TURNS: f64 = 4.0;
/// Rise per call below the plateau: back from a halving in about 45 calls. The plateau is
/// where the next throttle, if any, is measured, so reaching it sooner only brings that
/// measurement sooner; at `INCREASE` the climb took 170 calls, a third of a 300-call surge's
/// speed after one halving that two early arrivals too close together to judge had caused.
pub(super) const RECOVER: f64 = 4.0 * INCREASE;

/// The calls made and seconds passed since Connect's bucket was last seen empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    pub calls: f64,
    pub secs: f64,
}

impl Window {
    /// The window from the schedule's counters: `n` calls booked (throttled ones taken back),
    /// `mark_n` of them at the mark `mark_at` (µs), `now` (µs); calls booked for turns still
    /// ahead (`tat` past `now` by more than the tolerance `tau`) were not made yet.
    pub fn at(
        n: i64,
        mark_n: i64,
        mark_at: i64,
        tat: i64,
        interval: i64,
        tau: i64,
        now: i64,
    ) -> Option<Window> {
        let ahead = ((tat - tau - now).max(0) as f64 / interval.max(1) as f64).floor();
        let calls = (n - mark_n) as f64 - ahead;
        let secs = (now - mark_at) as f64 / 1e6;
        (secs > 0.0 && calls >= 0.0).then_some(Window { calls, secs })
    }

    /// Whether a window too short to measure (fewer than `MIN_WINDOW` calls) still shows
    /// Connect giving the schedule, running at `seen` µs per call, its whole rate: the throttle
    /// that ends it is an early arrival (latency, a busy host), not a congestion. Halving the
    /// quota for two such arrivals cost a surge a third of its speed.
    pub fn given_in_full(self, seen: i64) -> bool {
        let turns = self.secs * 1e6 / seen.max(1) as f64;
        self.calls < MIN_WINDOW && turns >= JUDGE_TURNS && self.calls >= GIVEN_IN_FULL * turns
    }

    /// µs per call left to us, if the window is long enough to tell.
    fn available(self) -> Option<f64> {
        (self.calls >= MIN_WINDOW).then(|| self.secs * 1e6 / self.calls)
    }
}

/// What a congestion does: the new interval, the ceiling (µs per call: the rate found too
/// fast, or measured), and whether the mark moves to now (a window was used up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Trim {
    pub interval: i64,
    pub ceiling: i64,
    pub remark: bool,
}

/// A congestion of the schedule running at `seen` (µs per call), its quota's interval `base`.
pub(super) fn trim(seen: i64, base: i64, ceiling: Option<i64>, window: Option<Window>) -> Trim {
    let slowest = (base as f64 / FLOOR) as i64;
    let seen_f = seen as f64;
    if let Some(available) = window.and_then(Window::available) {
        // Below the measured rate by the margin; always some trim (the throttle says the rate
        // is too fast, whatever the window says), never deeper than a halving at once.
        let interval = (available / MARGIN)
            .max(seen_f / MARGIN)
            .min(seen_f / FIRST_TRIM)
            .min(slowest as f64)
            .max(base as f64) as i64;
        return Trim {
            interval,
            ceiling: available.max(base as f64) as i64,
            remark: true,
        };
    }
    let factor = if ceiling.is_none() { FIRST_TRIM } else { TRIM };
    Trim {
        interval: ((seen_f / factor) as i64).min(slowest).max(seen),
        ceiling: seen,
        remark: false,
    }
}

/// Whether a throttle of a call booked at `seen` is the congestion known as `ceiling`.
pub(super) fn near_ceiling(seen: i64, ceiling: Option<i64>) -> bool {
    ceiling.is_some_and(|c| seen as f64 <= c as f64 / NEAR_CEILING)
}

/// The interval after `calls` more successes at `seen`, and whether the ceiling is forgotten:
/// up by `RECOVER` per call to the plateau (`MARGIN` of the ceiling) and held there until
/// `quiet` (calls since the window began) reaches `PROBE_AFTER`; then up by a quarter of `INCREASE`,
/// the ceiling forgotten once well past it; never faster than `base`.
pub(super) fn climb(
    seen: i64,
    base: i64,
    ceiling: Option<i64>,
    quiet: u32,
    calls: u32,
) -> (i64, bool) {
    if seen <= base {
        return (seen, false);
    }
    let up = |step: f64| seen as f64 / (1.0 + step).powi(calls as i32);
    let (lowered, forget) = match ceiling {
        Some(c) => {
            let plateau = c as f64 / MARGIN;
            if (seen as f64) > plateau {
                (up(RECOVER).max(plateau), false)
            } else if quiet < PROBE_AFTER {
                (seen as f64, false)
            } else {
                let l = up(INCREASE / 4.0);
                (l, l < c as f64 / PAST)
            }
        }
        None => (up(INCREASE), false),
    };
    ((lowered as i64).max(base), forget)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 500_000; // 2 calls a second

    #[test]
    fn the_first_congestion_halves_the_rate() {
        let t = trim(BASE, BASE, None, None);
        assert_eq!(
            t,
            Trim {
                interval: 2 * BASE,
                ceiling: BASE,
                remark: false
            }
        );
    }

    #[test]
    fn a_congestion_with_a_known_ceiling_trims_by_trim() {
        let t = trim(BASE, BASE, Some(BASE), None);
        assert_eq!(t.interval, (BASE as f64 / TRIM) as i64);
        assert!(!t.remark);
    }

    #[test]
    fn a_long_window_sets_the_rate_to_the_margin_of_the_measured_one() {
        // 40 calls in 40 s: 1 call a second left to us, running at 1.1.
        let seen = (1e6 / 1.1) as i64;
        let t = trim(
            seen,
            BASE,
            Some(BASE),
            Some(Window {
                calls: 40.0,
                secs: 40.0,
            }),
        );
        assert_eq!(t.ceiling, 1_000_000);
        assert_eq!(t.interval, (1e6 / MARGIN) as i64);
        assert!(t.remark);
    }

    #[test]
    fn a_short_window_is_not_believed() {
        let t = trim(
            BASE,
            BASE,
            Some(BASE),
            Some(Window {
                calls: 3.0,
                secs: 1.0,
            }),
        );
        assert_eq!(t.interval, (BASE as f64 / TRIM) as i64);
        assert!(!t.remark);
    }

    #[test]
    fn a_window_never_speeds_up_nor_more_than_halves_nor_drops_below_the_floor() {
        // The window says 4 calls a second, but the throttle says 2 was too fast.
        let faster = trim(
            BASE,
            BASE / 2,
            Some(BASE),
            Some(Window {
                calls: 40.0,
                secs: 10.0,
            }),
        );
        assert_eq!(faster.interval, (BASE as f64 / MARGIN) as i64);
        // The window says a tenth of the rate: halved at most.
        let slower = trim(
            BASE,
            BASE,
            None,
            Some(Window {
                calls: 20.0,
                secs: 100.0,
            }),
        );
        assert_eq!(slower.interval, 2 * BASE);
        // Never below FLOOR of the quota.
        let floor = trim(
            2 * BASE,
            BASE,
            None,
            Some(Window {
                calls: 20.0,
                secs: 200.0,
            }),
        );
        assert_eq!(floor.interval, (BASE as f64 / FLOOR) as i64);
    }

    #[test]
    fn the_window_leaves_out_calls_booked_ahead() {
        // 30 booked since the mark 10 s ago, tat 2 turns past a tolerance of 3 turns: 28 made
        // (the tolerance's turns go at once: they were made).
        let now = 100_000_000;
        let w = Window::at(
            130,
            100,
            now - 10_000_000,
            now + 3 * BASE + 2 * BASE,
            BASE,
            3 * BASE,
            now,
        )
        .unwrap();
        assert_eq!(
            w,
            Window {
                calls: 28.0,
                secs: 10.0
            }
        );
        assert_eq!(
            Window::at(130, 100, now, now, BASE, 0, now),
            None,
            "no time passed"
        );
    }

    #[test]
    fn successes_climb_to_the_plateau_and_hold_until_they_probe() {
        let ceiling = 1_000_000;
        let plateau = (ceiling as f64 / MARGIN) as i64;
        // Below the plateau: up by RECOVER per call, never past it.
        let (l, _) = climb(2 * ceiling, BASE, Some(ceiling), 0, 8);
        assert_eq!(l, (2e6 / (1.0 + RECOVER).powi(8)) as i64);
        assert_eq!(climb(plateau + 10, BASE, Some(ceiling), 0, 8).0, plateau);
        // On it: held while quiet is short.
        assert_eq!(
            climb(plateau, BASE, Some(ceiling), PROBE_AFTER - 1, 8),
            (plateau, false)
        );
        // Then probing, slowly; the ceiling forgotten once well past it.
        let (probe, forget) = climb(plateau, BASE, Some(ceiling), PROBE_AFTER, 8);
        assert!(probe < plateau && !forget);
        let (_, forget) = climb(
            (ceiling as f64 / PAST) as i64,
            BASE,
            Some(ceiling),
            PROBE_AFTER,
            8,
        );
        assert!(forget);
        // Without a ceiling: the usual climb, never faster than the quota.
        assert_eq!(climb(BASE + 1, BASE, None, 0, 8).0, BASE);
        assert_eq!(climb(BASE, BASE, None, 0, 8), (BASE, false));
    }

    #[test]
    fn a_short_window_given_the_whole_rate_ends_in_an_early_arrival() {
        let w = |calls: f64, secs: f64| Window { calls, secs };
        // 2 calls a second: 5 calls in 3 s is 5 of 6 turns, 4 is 4 of 6 (below 0.75).
        assert!(w(5.0, 3.0).given_in_full(BASE));
        assert!(!w(4.0, 3.0).given_in_full(BASE), "another caller's share");
        // Too short to judge (under JUDGE_TURNS turns), or long enough to measure.
        assert!(!w(3.0, 1.5).given_in_full(BASE));
        assert!(!w(12.0, 6.0).given_in_full(BASE), "measured instead");
        // Judged against the rate the schedule ran at, not the quota.
        assert!(w(5.0, 6.0).given_in_full(2 * BASE));
    }

    #[test]
    fn a_throttle_near_the_ceiling_is_that_congestion() {
        assert!(near_ceiling((1e6 / MARGIN) as i64, Some(1_000_000)));
        assert!(!near_ceiling(1_100_000, Some(1_000_000)));
        assert!(!near_ceiling(1_000_000, None));
    }
}
