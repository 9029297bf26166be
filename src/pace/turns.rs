//! Turns reserved for records handed back (issue #22): what keeps a slow operation from holding
//! a batch. A record of the function's own task queue (or priority queue) whose call's turn on
//! a shared pace lies further ahead than `FAR` does not wait for it: the turn stays booked, is
//! written to the pace table under the message's id (`turn#<operation>#<messageId>`), and the
//! record goes back to its queue, hidden until just before the turn. When it comes back
//! (`ApproximateReceiveCount` > 1) it takes its reservation and calls at that turn without
//! booking again. The batch it came in finishes as soon as its near turns are done, so the
//! event source mapping hands over the next batch, with the operations whose quota is wider
//! (a reschedule at 2/s no longer sets the pace of the stops at 10/s beside it).
//!
//! Only the first `RESERVING_DELIVERIES` deliveries are handed back this way, so a record never
//! loops on reservations (receive counts walk records to the dead-letter queue). Without a pace
//! table (the local pace), for StartTaskContact (not given a ticket: its priority lane relies
//! on the horizon), high-priority calls (they book ahead of normal ones) and records without a
//! message to hand back, nothing changes: the call waits for its turn within the invocation.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{Pace, PaceTable, SharedPace, Slot};
use crate::error::{BridgeError, Op};
use crate::plan::Priority;

/// A turn further ahead than this is reserved and its record handed back instead of waited for.
/// SQS hides a message for whole seconds (at least one): a turn within a second could not come
/// back any sooner than it is waited for, and waiting for it holds the batch at most a second.
pub const FAR: Duration = Duration::from_secs(1);
/// The furthest a turn is reserved: beyond it the call books as any other (waits within the
/// invocation, or goes back untried for the next turn). Ten minutes of a 2/s quota are 1,200
/// turns, more than a queue of this function's usual bursts holds.
pub const MAX_AHEAD: Duration = Duration::from_secs(600);
/// The deliveries on which a record may go back with a turn reserved: the first, and a few
/// more for a record that came back too late for its turn (every environment busy with a
/// batch) and would otherwise book behind every reserved turn, find none before its deadline
/// and come back every second. The template's maxReceiveCount (10) leaves the rest for faults.
pub const RESERVING_DELIVERIES: u32 = 4;
/// A turn less than this long past is still called on (see `long_past`).
const LATE: Duration = Duration::from_secs(5);
/// How long a reservation outlives its turn in the pace table (its `ttl`, DynamoDB's time to
/// live): a record that has not come back by then finds its moment long past anyway.
const KEEP: Duration = Duration::from_secs(300);

/// The record's task-queue message as a reservation names it: given to a call only for a
/// message the function may hand back (its own task or priority queue, no order to keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// SQS's messageId.
    pub message_id: String,
    /// SQS's ApproximateReceiveCount: 1 on the first delivery.
    pub receive_count: u32,
}

/// A turn as reserved: its moment (µs since the epoch) and the interval of the schedule it was
/// booked on (a throttle raising it since makes the call book again, as any booked call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reserved {
    pub at: i64,
    pub interval: i64,
}

/// The reservation's item key. A reservation cannot be forged or taken by another record: its
/// key is the SQS messageId of a message on the function's own queue, which SQS assigns and a
/// producer cannot choose.
pub fn key(op: Op, message_id: &str) -> String {
    format!("turn#{op:?}#{message_id}")
}

/// How long a record whose turn is `wait` away stays hidden: the whole seconds of the wait,
/// rounded down, so it comes back before its turn, never after (it then waits the rest).
pub fn comes_back_after(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs().max(1))
}

/// Whether a turn at `at` is long past at `now` (µs): more than a burst of turns and more than
/// `LATE` ago. A record comes back late when every environment is busy with a batch (each
/// holds one for its near turns, a second or two); its unused turn left a token in Connect's
/// bucket, which keeps at most the burst, so a late call spends that token rather than one
/// booked for another (more late ones than the burst holds are throttled and retried). Long
/// past, the record books again.
pub fn long_past(turn: Reserved, now: i64, burst: f64) -> bool {
    let late = ((burst * turn.interval as f64) as i64).max(LATE.as_micros() as i64);
    now - turn.at > late
}

/// The reservation at `key`, taken, as the call's first turn; None: none, long past, or its
/// turn would come after `deadline`.
async fn reserved_slot(
    table: &PaceTable,
    key: &str,
    burst: f64,
    deadline: Option<Instant>,
) -> Option<Slot> {
    let turn = take(table, key).await?;
    let now = now_us();
    if long_past(turn, now, burst) {
        return None;
    }
    let wait = Duration::from_micros((turn.at - now).max(0) as u64);
    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
        return None;
    }
    Some(Slot {
        wait,
        // Its turn, as every shared slot's: booked on the schedule like any other, so a turn
        // after the bucket was last found empty is news. (0 made every throttle of a reserved
        // call old news: in a backlog of reserved turns another caller was never noticed.)
        number: u64::try_from(turn.at).unwrap_or(0),
        shared: Some(turn.interval),
    })
}

impl SharedPace {
    /// Books the next turn however far ahead it lies, up to `ahead` from now: no horizon and no
    /// line, for a call whose record goes back to its queue with the turn reserved rather than
    /// wait for it. None: no turn within `ahead`, or the table is failing (the call then books
    /// as any other).
    async fn book_ahead(&self, ahead: Duration) -> Option<Slot> {
        if self.failing() {
            return None;
        }
        let latest = Instant::now() + ahead;
        match self.book_within(&self.key, Some(latest), None, None).await {
            Ok(slot) => slot,
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// The first turn of a call of `op`: the reservation a record that comes back holds, or, when
/// no turn comes within `FAR`, a turn booked however far ahead, reserved and answered with
/// `TurnReserved` (the record goes back to its queue until just before it), on the first
/// `RESERVING_DELIVERIES` deliveries. Ok(None): the call books as any other (no ticket, a local
/// pace, a high-priority call, a later delivery without a usable reservation, the table
/// failing).
pub async fn first_turn(
    pace: &Pace,
    op: Op,
    ticket: Option<&Ticket>,
    deadline: Option<Instant>,
    priority: Priority,
) -> Result<Option<Slot>, BridgeError> {
    let (Some(ticket), Pace::Shared(shared), Priority::Normal) = (ticket, pace, priority) else {
        return Ok(None);
    };
    let (table, burst) = (&shared.table, shared.burst);
    let key = key(op, &ticket.message_id);
    if ticket.receive_count > 1 {
        if let Some(slot) = reserved_slot(table, &key, burst, deadline).await {
            return Ok(Some(slot));
        }
        // No reservation it can use (it came back late, every environment busy with a batch):
        // it may reserve again on its first deliveries; after them it books as any other.
        if ticket.receive_count > RESERVING_DELIVERIES {
            return Ok(None);
        }
    }
    // A turn within `FAR` is booked as any other (one booking per environment at a time,
    // within the horizon) and waited for in the batch. The horizon keeps the booked schedule
    // near: what is far is the time until a call may book, so a far turn is one the ordinary
    // booking cannot give within `FAR`. (Booking every call without the line let a batch's
    // slow calls all wait at once, each holding one of its `BATCH_CONCURRENCY` places.)
    let near = Instant::now() + FAR;
    let near = deadline.map_or(near, |d| d.min(near));
    // The schedule as last seen only lags behind (every booking moves it on): seen far, it is
    // far, and the attempt (a refused write) is spared.
    let seen_far = shared.time_for(1) > FAR;
    if !seen_far {
        if let Some(slot) = pace.reserve(Some(near), priority).await {
            return Ok(Some(slot));
        }
    }
    let Some(slot) = shared.book_ahead(MAX_AHEAD).await else {
        return Ok(None);
    };
    if slot.wait <= FAR {
        return Ok(Some(slot));
    }
    let turn = Reserved {
        at: now_us() + slot.wait.as_micros() as i64,
        interval: slot.shared.unwrap_or_default(),
    };
    match put(table, &key, turn).await {
        Ok(()) => Err(BridgeError::TurnReserved {
            after: comes_back_after(slot.wait),
        }),
        // Not written: the record waits for its turn here if the invocation allows, else it
        // goes back untried (the turn is left unused: Connect's bucket keeps its token).
        Err(_) if deadline.is_none_or(|d| Instant::now() + slot.wait < d) => Ok(Some(slot)),
        Err(_) => Err(BridgeError::Paced),
    }
}

/// Writes the reservation (UpdateItem, the one action the pace's role has on the table).
async fn put(table: &PaceTable, key: &str, turn: Reserved) -> Result<(), BridgeError> {
    let ttl = (turn.at / 1_000_000) + KEEP.as_secs() as i64;
    table
        .update(key)
        .update_expression("SET #at = :at, #i = :i, #ttl = :ttl")
        .expression_attribute_names("#at", "at")
        .expression_attribute_names("#i", "interval")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":at", AttributeValue::N(turn.at.to_string()))
        .expression_attribute_values(":i", AttributeValue::N(turn.interval.to_string()))
        .expression_attribute_values(":ttl", AttributeValue::N(ttl.to_string()))
        .send()
        .await
        .map(drop)
        .map_err(|e| Op::UpdateItem.error(e))
}

/// Takes the reservation at `key`, once: one UpdateItem removes its moment and answers with the
/// item as it was (the item itself goes with its `ttl`; UpdateItem is the one action the role
/// has on the pace table, no DeleteItem is granted for this). None: no reservation (never
/// made, taken already, or the table failed: the call books as any other).
async fn take(table: &PaceTable, key: &str) -> Option<Reserved> {
    let answer = table
        .update(key)
        .update_expression("REMOVE #at")
        .condition_expression("attribute_exists(#at)")
        .expression_attribute_names("#at", "at")
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .ok()?;
    reserved(&answer.attributes?)
}

fn reserved(item: &HashMap<String, AttributeValue>) -> Option<Reserved> {
    let number = |name: &str| match item.get(name)? {
        AttributeValue::N(n) => n.parse::<i64>().ok(),
        _ => None,
    };
    Some(Reserved {
        at: number("at")?,
        interval: number("interval")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_named_by_operation_and_message() {
        assert_eq!(
            key(Op::UpdateContactSchedule, "0f1e-42"),
            "turn#UpdateContactSchedule#0f1e-42"
        );
        assert_ne!(
            key(Op::StopContact, "m"),
            key(Op::UpdateContactSchedule, "m")
        );
    }

    #[test]
    fn a_record_comes_back_before_its_turn_in_whole_seconds() {
        assert_eq!(
            comes_back_after(Duration::from_millis(1_999)),
            Duration::from_secs(1)
        );
        assert_eq!(
            comes_back_after(Duration::from_millis(37_400)),
            Duration::from_secs(37)
        );
        // Never zero: SQS would show it at once, and it would come back for a turn still far.
        assert_eq!(
            comes_back_after(Duration::from_millis(1_001)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_reservation_long_past_is_ignored() {
        // 2/s burst 5: a turn more than 5 s ago (`LATE`; the burst's 2.5 s is less) is long past.
        let turn = Reserved {
            at: 10_000_000,
            interval: 500_000,
        };
        assert!(!long_past(turn, 9_000_000, 5.0), "ahead");
        assert!(!long_past(turn, 14_000_000, 5.0), "four seconds late");
        assert!(long_past(turn, 15_100_000, 5.0), "past LATE");
        // 0.1/s burst 5: a burst of turns is 50 s.
        let slow = Reserved {
            at: 10_000_000,
            interval: 10_000_000,
        };
        assert!(!long_past(slow, 50_000_000, 5.0));
        assert!(long_past(slow, 61_000_000, 5.0));
    }

    #[test]
    fn a_reservation_is_read_from_its_item() {
        let item = HashMap::from([
            (
                "pk".to_string(),
                AttributeValue::S("turn#StopContact#m".into()),
            ),
            (
                "at".to_string(),
                AttributeValue::N("1700000000000000".into()),
            ),
            ("interval".to_string(), AttributeValue::N("100000".into())),
            ("ttl".to_string(), AttributeValue::N("1700000300".into())),
        ]);
        assert_eq!(
            reserved(&item),
            Some(Reserved {
                at: 1_700_000_000_000_000,
                interval: 100_000
            })
        );
        let taken = HashMap::from([("interval".to_string(), AttributeValue::N("1".into()))]);
        assert_eq!(reserved(&taken), None);
    }

    #[tokio::test]
    async fn without_a_ticket_or_on_the_local_pace_nothing_is_reserved() {
        let local = Pace::local(super::super::PaceSetting::default());
        let ticket = Ticket {
            message_id: "m".into(),
            receive_count: 1,
        };
        let first = first_turn(
            &local,
            Op::StopContact,
            Some(&ticket),
            None,
            Priority::Normal,
        );
        assert_eq!(first.await.unwrap(), None);
    }
}
