//! The shared pace: one schedule per operation quota in the pace table (`PACE_TABLE`,
//! DynamoDB), booked by every environment of every stack that names the table.
//!
//! **Why GCRA in one item, conditional writes and no read.** The generic cell rate algorithm
//! (the "virtual scheduling" form of a token bucket) keeps one number per quota: `tat`, the
//! theoretical arrival time of the next call (µs since the epoch), with `interval`, the µs per
//! call (the adaptive rate). A call books its turn with one conditional UpdateItem and no read:
//! - busy (`tat` ahead of now): `SET tat = tat + interval` if `tat BETWEEN now AND limit`
//!   (`limit`: the latest start plus the tolerance, so a call that could not go in time books
//!   nothing); it goes at `max(now, tat_new - interval - tolerance)`;
//! - idle (`tat` past, or no item): `SET tat = now + interval` if `attribute_not_exists(tat) OR
//!   tat < now`; it goes at once (the item's absence creates it).
//!
//! The tolerance is `(burst - 1.5) × interval`: a lone burst takes all but one and a half of
//! Connect's burst at once and the rest at the quota's rate, and half a token stays in
//! Connect's bucket so that a call arriving a little early (latency, scheduling) is not
//! throttled. The last `tat` seen picks the variant tried first; a failed condition answers
//! with the item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`, which moto honours too), so
//! a wrong guess costs one more round trip and never a read. Atomic counters alone cannot
//! refuse a booking past a deadline, and leases would be held by an environment that dies;
//! here a dead environment holds nothing, and N environments and stacks split the quota by
//! booking from one schedule. Clocks: Lambda hosts keep time through the Amazon Time Sync
//! Service (well within a millisecond), far below a turn (500 ms at the default quota).
//!
//! **Other callers.** A throttle empties the schedule's burst (Connect's bucket is empty: no
//! call before a full turn from now), notes in the same write that turn and after how many
//! calls (`emptied`, `emptied_n`), and takes its booking back from the count of calls the item
//! keeps (`n`, one `ADD` in the booking's own write). Throttles of calls whose turns came
//! before that turn are the same empty bucket's news. At the configured rate, one `QUIET` calls or more after the last empty
//! bucket is lone (an early arrival), and so is a second one when the calls since the window
//! began show Connect gave the schedule its whole rate (`adapt::Window::given_in_full`), once
//! per window: a pair let off is noted (`early_n`, `early_at`: the count and the window's
//! mark), and a fresh window lets no pair off again before `PROBE_AFTER` calls have passed
//! (bursts of calls, idle between, each begin a window). Any other is a congestion and raises `interval` once (the
//! write is conditional on the interval the throttled call saw, so the environments throttled
//! by one congestion trim once), by what `adapt` decides: the calls made since Connect's bucket
//! was last seen empty (the mark, noted in the item), over the seconds since, are the rate left
//! to us; with too few calls to tell, a halving the first time and `TRIM` after. Calls booked
//! at the old interval book again instead of spending turns given out too soon. Successes
//! lower the interval again, one write per `LOWER_EVERY` successes of an environment, up to a
//! plateau below the ceiling, held until enough calls have passed to probe: another caller
//! outside our stacks is found once for all environments, and not found again and again.
//!
//! **Priority.** A normal call books at most `HORIZON` turns ahead, one call of an environment
//! at a time (`line`); refused, it sleeps until its turn would fall within the horizon and books
//! again. A high-priority call skips the line and books without the horizon, so at most
//! `HORIZON` normal turns are ahead of it. It first books on a second item, `<key>#high`, at
//! `1 - NORMAL_SHARE` of the quota (`CONNECT_NORMAL_SHARE`), so normal traffic keeps its share.
//!
//! **Failures.** A pace table that fails (unreachable, throttled, denied) never loses a record
//! and never stops delivery: the environment paces alone on its local share (`Pacer`) for
//! `FALLBACK_FOR` and then tries the table again. Handing records back instead would stall
//! every queue for as long as DynamoDB fails and walk records towards the DLQ; the local pace is
//! what ran before the table existed, and Connect's throttles bound it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

mod adjust;
mod book;

use super::item::{self, number, Bounds};
use super::local::FLOOR;
use super::{PaceSetting, PaceStats, Pacer, Slot};
use crate::error::Op;
use crate::plan::Priority;

/// Tokens of Connect's burst never booked at once: half a token of headroom stays.
const HEADROOM: f64 = 1.5;
/// How long an environment paces alone after the pace table failed.
const FALLBACK_FOR: Duration = Duration::from_secs(10);
/// Successes of an environment per write that lowers the interval.
const LOWER_EVERY: u32 = 8;
/// Calls of every environment since the burst was last emptied after which a throttle is
/// taken for a lone early arrival rather than congestion.
const QUIET: u32 = 20;
/// How many turns ahead a normal call may book.
const HORIZON: f64 = 2.0;
/// Round trips one booking may take before the record goes back (contention flipping between
/// the idle and the busy variant).
const TRIES: usize = 6;

/// The pace table: where the shared schedules live (partition key `pk`, string).
#[derive(Clone)]
pub struct PaceTable {
    pub(super) client: Client,
    pub(super) name: Arc<str>,
}

impl PaceTable {
    pub fn new(client: Client, name: &str) -> PaceTable {
        PaceTable {
            client,
            name: name.into(),
        }
    }

    /// An UpdateItem of the item `key`: every write the pace makes is one (the one action its
    /// role has on the table).
    pub(super) fn update(
        &self,
        key: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&*self.name)
            .key("pk", AttributeValue::S(key.to_string()))
    }

    /// The table's client from the function's configuration, with tight timeouts: a pace that
    /// does not answer within a second is worse than the local one.
    pub fn from_config(sdk_config: &aws_config::SdkConfig, name: &str) -> PaceTable {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(Duration::from_secs(1))
            .build();
        let conf = aws_sdk_dynamodb::config::Builder::from(sdk_config)
            .timeout_config(timeouts)
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2),
            )
            .build();
        PaceTable::new(Client::from_conf(conf), name)
    }
}

/// The schedule as this environment last saw it.
#[derive(Debug)]
struct Seen {
    tat: i64,
    interval: i64,
    ceiling: Option<i64>,
    successes: u32,
    /// Successes since this environment's last throttle.
    /// Calls booked by every environment since the schedule's window began (the last
    /// measured congestion), as last seen; MAX without a window.
    window_calls: u32,
    stats: PaceStats,
    failing_until: Option<Instant>,
    /// This environment rewrote a bad item (`item`) and said so.
    repaired: bool,
    /// The interval the schedule never runs below: this stack's quota, or a stricter one of
    /// another stack booking on the table (`item::strictest`).
    floor: i64,
    /// This environment said that another configuration shares the table.
    other_quota_said: bool,
}

/// One operation's schedule in the pace table.
pub struct SharedPace {
    pub(super) table: PaceTable,
    /// The item's key: `pace#<operation>`.
    pub(super) key: String,
    /// The configured quota's interval, µs: the schedule never runs faster.
    base: i64,
    pub(super) burst: f64,
    /// High-priority calls' share of the quota.
    high_share: f64,
    fallback: Pacer,
    seen: Mutex<Seen>,
    /// One normal call of this environment books at a time.
    line: tokio::sync::Mutex<()>,
}

/// What a conditional booking came to.
enum Booked {
    /// Made: the item as it is now.
    Made(HashMap<String, AttributeValue>),
    /// The condition did not hold: the item as it was (None: no item).
    Refused(Option<HashMap<String, AttributeValue>>),
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The tolerance of a schedule at `interval`: how far ahead of now `tat` may be for a call to
/// go at once.
fn tolerance(interval: i64, burst: f64) -> i64 {
    ((burst - HEADROOM).max(0.0) * interval as f64) as i64
}

impl SharedPace {
    /// `op`'s schedule at `setting`'s quota; `normal_share`: the share of the quota normal
    /// calls keep whatever high-priority calls ask.
    pub fn new(table: PaceTable, op: Op, setting: PaceSetting, normal_share: f64) -> SharedPace {
        let base = (1e6 / setting.rate.max(f64::MIN_POSITIVE)).round().max(1.0) as i64;
        SharedPace {
            table,
            key: format!("pace#{op:?}"),
            base,
            burst: setting.burst,
            high_share: (1.0 - normal_share).clamp(0.0, 1.0),
            fallback: Pacer::new(setting),
            seen: Mutex::new(Seen {
                tat: 0,
                interval: base,
                ceiling: None,
                successes: 0,
                window_calls: u32::MAX,
                stats: PaceStats::default(),
                failing_until: None,
                repaired: false,
                floor: base,
                other_quota_said: false,
            }),
            line: tokio::sync::Mutex::new(()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn failing(&self) -> bool {
        let mut s = self.seen();
        match s.failing_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                s.failing_until = None;
                false
            }
            None => false,
        }
    }

    pub(super) fn failed(&self, error: &crate::error::BridgeError) {
        let mut s = self.seen();
        if s.failing_until.is_none() {
            tracing::warn!(
                code = error.code(),
                pace = %self.key,
                fallback_secs = FALLBACK_FOR.as_secs(),
                "the pace table failed: this environment paces alone on its share for a while"
            );
        }
        s.failing_until = Some(Instant::now() + FALLBACK_FOR);
    }

    /// A booking found the item out of bounds (`item`): said once per environment and
    /// schedule, with the attributes' names only.
    fn repairing(&self, key: &str, what: &[&'static str]) {
        let mut s = self.seen();
        if !s.repaired {
            s.repaired = true;
            tracing::warn!(
                pace = %key,
                attributes = ?what,
                "the pace table's schedule held values out of bounds: rewritten within them"
            );
        }
    }

    /// The strictest quota of the stacks booking on the schedule `item`, noted; said once per
    /// environment when another configuration is among them.
    fn learn_floor(&self, item: &HashMap<String, AttributeValue>, now: i64) -> i64 {
        let (floor, other) = item::strictest(item, self.base, now);
        let mut s = self.seen();
        s.floor = floor;
        if other && !s.other_quota_said {
            s.other_quota_said = true;
            tracing::warn!(
                pace = %self.key,
                configured_rate = 1e6 / self.base as f64,
                shared_rate = 1e6 / floor as f64,
                "stacks configured with different quotas share this pace table: the schedule \
                 runs at the strictest (one account and Region, one quota)"
            );
        }
        floor
    }

    /// Books the next call; None when its turn would come after `latest`. See the module doc.
    pub async fn reserve(&self, latest: Option<Instant>, priority: Priority) -> Option<Slot> {
        if self.failing() {
            return self.fallback.reserve(latest);
        }
        let booked = match priority {
            Priority::High => self.reserve_high(latest).await,
            Priority::Normal => {
                let _line = match latest {
                    Some(latest) => tokio::time::timeout_at(latest.into(), self.line.lock())
                        .await
                        .ok()?,
                    None => self.line.lock().await,
                };
                self.book_within(&self.key, latest, Some(HORIZON), None)
                    .await
            }
        };
        match booked {
            Ok(slot) => {
                if let Some(slot) = slot {
                    self.seen().stats.waited += slot.wait;
                }
                slot
            }
            Err(error) => {
                self.failed(&error);
                self.fallback.reserve(latest)
            }
        }
    }

    /// A high-priority call: its turn in the high lane (at most `high_share` of the quota),
    /// then the next turn of the schedule, with no horizon.
    async fn reserve_high(
        &self,
        latest: Option<Instant>,
    ) -> Result<Option<Slot>, crate::error::BridgeError> {
        if self.high_share <= 0.0 {
            return self
                .book_within(&self.key, latest, Some(HORIZON), None)
                .await;
        }
        let lane = format!("{}#high", self.key);
        // The schedule's rate as it is now, not the quota's: a congestion slows the lane with
        // it, or the lane's share of a slowed schedule would be all of it and more.
        let interval = {
            let s = self.seen();
            (s.interval.max(s.floor) as f64 / self.high_share).round() as i64
        };
        let Some(turn) = self
            .book_within(&lane, latest, None, Some(interval))
            .await?
        else {
            return Ok(None);
        };
        tokio::time::sleep(turn.wait).await;
        self.book_within(&self.key, latest, None, None).await
    }

    /// Books on `key`, coming back while the turn lies past `horizon` turns; `fixed`: the
    /// interval of a lane that does not adapt (the high lane).
    pub(super) async fn book_within(
        &self,
        key: &str,
        latest: Option<Instant>,
        horizon: Option<f64>,
        fixed: Option<i64>,
    ) -> Result<Option<Slot>, crate::error::BridgeError> {
        loop {
            match self.book(key, latest, horizon, fixed).await? {
                Ok(slot) => return Ok(slot),
                // Booked out past the horizon: come back when the turn would fall within it,
                // a random part of a turn later, so that the environments that were refused
                // together take the next turns in a random order, not always the same one
                // first. The horizon keeps a turn booked ahead: the delay costs no turn.
                Err(until) => {
                    let turn = self.seen().interval as f64;
                    let spread = Duration::from_micros((turn * fastrand::f64()) as u64);
                    tokio::time::sleep(until + spread).await
                }
            }
        }
    }

    /// One booking: Ok(Ok(slot)) booked (None: not before `latest`), Ok(Err(wait)): past the
    /// horizon, try again after `wait`.
    async fn book(
        &self,
        key: &str,
        latest: Option<Instant>,
        horizon: Option<f64>,
        fixed: Option<i64>,
    ) -> Result<Result<Option<Slot>, Duration>, crate::error::BridgeError> {
        let (now_i, now) = (Instant::now(), now_us());
        let (mut tat, mut interval) = {
            let s = self.seen();
            let tat = if fixed.is_some() { 0 } else { s.tat };
            (tat, fixed.unwrap_or(s.interval))
        };
        let latest_us = latest.map(|l| now + l.saturating_duration_since(now_i).as_micros() as i64);
        // (deadline, horizon, the booking's limit) at `interval`: a turn is at tat - tau.
        let limits = |interval: i64| {
            let tau = tolerance(interval, self.burst);
            let deadline = latest_us.map_or(i64::MAX / 4, |l| l + tau);
            let horizon =
                horizon.map_or(i64::MAX / 4, |h| now + tau + (h * interval as f64) as i64);
            (deadline, horizon, deadline.min(horizon))
        };
        let (mut deadline_limit, mut horizon_limit, mut limit) = limits(interval);
        let bounds_at = |lo: i64| Bounds {
            lo,
            hi: (lo as f64 / FLOOR) as i64,
        };
        // A lane books at the interval it is given (`step`), never at the item's.
        let mut bounds = match fixed {
            Some(_) => Bounds {
                lo: 1,
                hi: i64::MAX / 4,
            },
            None => bounds_at(self.seen().floor),
        };
        // The lane is this stack's own; the schedule carries every stack's quota.
        let quota = fixed.is_none().then(|| item::quota_name(self.base));
        let quota = quota.as_deref();
        for _ in 0..TRIES {
            let busy = tat >= now;
            let result = if busy {
                self.book_busy(key, now, limit, bounds, quota, fixed)
                    .await?
            } else {
                let first = fixed.unwrap_or(bounds.lo);
                self.book_idle(key, now, first, bounds, quota).await?
            };
            match result {
                Booked::Made(item) => {
                    let tat = number(&item, "tat").unwrap_or(now + interval);
                    let interval = match fixed {
                        Some(step) => step,
                        None => number(&item, "interval").unwrap_or(interval),
                    };
                    if fixed.is_none() {
                        self.learn_floor(&item, now);
                        let mut s = self.seen();
                        s.tat = tat;
                        s.interval = interval;
                        s.ceiling = number(&item, "ceiling");
                        s.window_calls = match (number(&item, "n"), number(&item, "mark_n")) {
                            (Some(n), Some(m)) => u32::try_from((n - m).max(0)).unwrap_or(u32::MAX),
                            _ => u32::MAX,
                        };
                    }
                    let start = (tat - interval - tolerance(interval, self.burst)).max(now);
                    // The turn is a moment, not a delay from the answer: a slow answer from
                    // the table must not push this call closer to the next one.
                    let wait =
                        Duration::from_micros((start - now) as u64).saturating_sub(now_i.elapsed());
                    return Ok(Ok(Some(Slot {
                        wait,
                        // Its turn: a throttle of a call whose turn came before the first
                        // turn after the bucket was last found empty is news of that empty
                        // bucket, not of a new one.
                        number: u64::try_from(start).unwrap_or(0),
                        shared: Some(interval),
                    })));
                }
                Booked::Refused(old) => {
                    if let (Some(old), None) = (&old, fixed) {
                        bounds = bounds_at(self.learn_floor(old, now));
                        // The schedule's interval as it is: a trim, or another stack's quota,
                        // moves every turn; judged at a stale one, a turn looks past the
                        // deadline or the horizon while it lies within them.
                        if let Some(i) =
                            number(old, "interval").filter(|i| (bounds.lo..=bounds.hi).contains(i))
                        {
                            interval = i;
                            self.seen().interval = i;
                            (deadline_limit, horizon_limit, limit) = limits(i);
                        }
                    }
                    // Refused for holding what no booking may use: rewritten, then booked.
                    if let Some(repair) = old.as_ref().and_then(|o| item::repair(o, bounds, now)) {
                        self.repairing(key, &repair.what);
                        let stamp = quota.map(|q| (q, now));
                        item::rewrite(&self.table.client, &self.table.name, key, &repair, stamp)
                            .await?;
                        tat = repair.tat;
                        continue;
                    }
                    let old_tat = old.as_ref().and_then(|o| number(o, "tat"));
                    if fixed.is_none() {
                        if let Some(t) = old_tat {
                            self.seen().tat = t;
                        }
                    }
                    match old_tat {
                        Some(t) if t >= now && t > limit => {
                            // Turn at t - tau: past the deadline, or past the horizon.
                            if t > deadline_limit {
                                return Ok(Ok(None));
                            }
                            let until = (t - horizon_limit).max(0) as u64;
                            return Ok(Err(Duration::from_micros(until)));
                        }
                        Some(t) => tat = t,
                        None => tat = now - 1,
                    }
                }
            }
        }
        Ok(Ok(None))
    }

    /// How long from now until `calls` more calls would have had their turn, as last seen.
    pub fn time_for(&self, calls: usize) -> Duration {
        if self.failing() {
            return self.fallback.time_for(calls);
        }
        let s = self.seen();
        let now = now_us();
        let ahead = (s.tat - now).max(0) - tolerance(s.interval, self.burst);
        let owed = ahead + calls as i64 * s.interval;
        Duration::from_micros(owed.max(0) as u64)
    }

    /// Calls per second the schedule runs at, as last seen.
    pub fn rate(&self) -> f64 {
        1e6 / self.seen().interval as f64
    }

    pub fn take_stats(&self) -> PaceStats {
        let mut stats = std::mem::take(&mut self.seen().stats);
        stats.add(self.fallback.take_stats());
        stats
    }
}
