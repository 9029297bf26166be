//! The pace of calls to Connect: one per operation quota (`Paces` in `connect`), so that every
//! caller of an account's quota — the environments of one function, and every stack that names
//! the same pace table — share it instead of discovering it by being throttled.
//!
//! Two kinds (`Pace`):
//! - **shared** (`shared`, with a pace table, `PACE_TABLE`): one schedule per operation in
//!   DynamoDB, booked by a single conditional UpdateItem per call (GCRA); a lone burst uses the
//!   whole quota, N environments or stacks split it without a fixed share, high-priority calls
//!   take turns first, and a throttle (another caller outside our stacks) trims the schedule for
//!   everyone at once;
//! - **local** (`local`, without a pace table: tests, `send`, an opt-out): a token bucket per
//!   environment holding a fixed share (`CONNECT_CALLERS`) of the quota, finding the rest by
//!   being throttled. A shared pace falls back to it while the table does not answer.
//!
//! Waiting counts against the invocation: `reserve` refuses a wait that would end past the
//! latest moment a call may start, and the record goes back to its queue untried.

mod adapt;
mod item;
mod local;
pub mod shared;
pub mod turns;

use std::time::{Duration, Instant};

pub use local::Pacer;
pub use shared::{PaceTable, SharedPace};

use crate::error::Op;
use crate::plan::Priority;

/// Connect's quota and how many environments share it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceSetting {
    /// Calls per second for the whole account (Connect's default quota: 2).
    pub rate: f64,
    /// Connect's burst for the whole account (default 5).
    pub burst: f64,
    /// How many environments call at once (the queue's maximum concurrency): the local pace's
    /// share.
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

/// What the pace did since the last `take_stats`: for the invocation's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PaceStats {
    /// Calls Connect throttled (retried ones included).
    pub throttles: u64,
    /// Time calls waited for their turn, summed.
    pub waited: Duration,
}

impl PaceStats {
    fn add(&mut self, other: PaceStats) {
        self.throttles += other.throttles;
        self.waited += other.waited;
    }
}

/// A granted call: wait `wait`, then call. `number` tells an answer's news from old news (the
/// local pace's count of bookings; the shared pace's turn, µs since the epoch);
/// `shared`: the interval (µs) of the shared schedule the call was booked on (None: booked
/// on the local pace).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    pub wait: Duration,
    pub number: u64,
    pub shared: Option<i64>,
}

/// One operation's pace, local or shared.
pub enum Pace {
    Local(Pacer),
    /// Boxed: a schedule is built once per operation at cold start, and the local pace is
    /// the one tests and `send` move around.
    Shared(Box<SharedPace>),
}

impl Pace {
    /// The local pace of `setting`.
    pub fn local(setting: PaceSetting) -> Pace {
        Pace::Local(Pacer::new(setting))
    }

    /// Books the next call (see `Pacer::reserve`, `SharedPace::reserve`); None, booking
    /// nothing, when its turn would come after `latest`.
    pub async fn reserve(&self, latest: Option<Instant>, priority: Priority) -> Option<Slot> {
        match self {
            Pace::Local(p) => p.reserve(latest),
            Pace::Shared(s) => s.reserve(latest, priority).await,
        }
    }

    /// Whether `slot` should be booked again (the local pace's trims); the shared schedule is
    /// trimmed for calls not yet booked only.
    pub fn rebook(&self, slot: Slot) -> bool {
        match self {
            Pace::Local(p) => p.rebook(slot),
            Pace::Shared(s) => s.rebook(slot),
        }
    }

    /// Connect accepted the call of `slot`.
    pub async fn on_success(&self, slot: Slot) {
        match self {
            Pace::Local(p) => p.on_success(),
            Pace::Shared(s) => s.on_success(slot).await,
        }
    }

    /// Connect throttled the call of `slot`.
    pub async fn on_throttle(&self, slot: Slot) {
        match self {
            Pace::Local(p) => p.on_throttle(slot),
            Pace::Shared(s) => s.on_throttle(slot).await,
        }
    }

    /// How long from now until `calls` more calls would have had their turn.
    pub fn time_for(&self, calls: usize) -> Duration {
        match self {
            Pace::Local(p) => p.time_for(calls),
            Pace::Shared(s) => s.time_for(calls),
        }
    }

    /// The rate this pace uses now (calls per second).
    pub fn rate(&self) -> f64 {
        match self {
            Pace::Local(p) => p.rate(),
            Pace::Shared(s) => s.rate(),
        }
    }

    /// What the pace did since the last call of this.
    pub fn take_stats(&self) -> PaceStats {
        match self {
            Pace::Local(p) => p.take_stats(),
            Pace::Shared(s) => s.take_stats(),
        }
    }
}

/// Connect's quotas per operation beyond StartTaskContact's (`PaceSetting`), as the deployment
/// states them for accounts with raised quotas, and the shared pace's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    /// UpdateContactSchedule (`CONNECT_SCHEDULE_RATE`, `CONNECT_SCHEDULE_BURST`).
    pub schedule: (f64, f64),
    /// Each of StopContact, UpdateContact, UpdateContactAttributes, GetContactAttributes and
    /// DescribeContact (`CONNECT_CONTACT_RATE`, `CONNECT_CONTACT_BURST`).
    pub contact: (f64, f64),
    /// TagContact (`CONNECT_TAG_RATE`, `CONNECT_TAG_BURST`).
    pub tag: (f64, f64),
    /// The share of each quota normal calls keep whatever high-priority calls ask
    /// (`CONNECT_NORMAL_SHARE`).
    pub normal_share: f64,
    /// The pace table (`PACE_TABLE`); None: each environment paces alone.
    pub table: Option<String>,
}

impl Default for Quotas {
    fn default() -> Self {
        let quota = |op: Op| op.connect_quota().unwrap_or((2.0, 5.0));
        Quotas {
            schedule: quota(Op::UpdateContactSchedule),
            contact: quota(Op::StopContact),
            tag: quota(Op::TagContact),
            normal_share: 0.25,
            table: None,
        }
    }
}

impl Quotas {
    /// The quota `op` is paced at: `start` for StartTaskContact, Connect's documented one for
    /// operations not configured here (GetTaskTemplate); None outside Connect.
    pub fn setting(&self, start: PaceSetting, op: Op) -> Option<PaceSetting> {
        let (rate, burst) = match op {
            Op::StartTaskContact => return Some(start),
            Op::UpdateContactSchedule => self.schedule,
            Op::StopContact
            | Op::UpdateContact
            | Op::UpdateContactAttributes
            | Op::GetContactAttributes
            | Op::DescribeContact => self.contact,
            Op::TagContact => self.tag,
            other => other.connect_quota()?,
        };
        Some(PaceSetting {
            rate,
            burst,
            callers: start.callers,
        })
    }

    /// `op`'s pace: shared through `table` when there is one, else local.
    pub fn pace(&self, start: PaceSetting, op: Op, table: Option<&PaceTable>) -> Option<Pace> {
        let setting = self.setting(start, op)?;
        Some(match table {
            Some(table) => Pace::Shared(Box::new(SharedPace::new(
                table.clone(),
                op,
                setting,
                self.normal_share,
            ))),
            None => Pace::local(setting),
        })
    }
}

/// One pace per Connect operation the lifecycle calls, each at the operation's own quota:
/// shared through the pace table when there is one, else this environment's share.
pub struct Paces {
    paces: Vec<(Op, Pace)>,
}

impl Paces {
    /// Local paces at Connect's default quotas shared by `callers` environments.
    pub fn new(callers: u32) -> Paces {
        let start = PaceSetting {
            callers,
            ..PaceSetting::default()
        };
        Paces::of_quotas(start, &Quotas::default(), None)
    }

    /// The paces of `quotas` (`start`: StartTaskContact's, for the environments' share), shared
    /// through `table` when given.
    pub fn of_quotas(start: PaceSetting, quotas: &Quotas, table: Option<&PaceTable>) -> Paces {
        let paces = Op::ALL
            .iter()
            .filter(|op| !matches!(**op, Op::StartTaskContact | Op::GetTaskTemplate))
            .filter_map(|op| Some((*op, quotas.pace(start, *op, table)?)))
            .collect();
        Paces { paces }
    }

    /// The pace `op` draws from.
    pub fn of(&self, op: Op) -> &Pace {
        &self
            .paces
            .iter()
            .find(|(o, _)| *o == op)
            .expect("every lifecycle operation has a pace")
            .1
    }
}
