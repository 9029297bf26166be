//! How the shared schedule answers Connect: a throttle empties the burst and, in a congestion,
//! trims the interval by what `adapt` decides; successes bring it back. The writes that notes,
//! trims and climbs take (every one conditional or harmless if lost: failures cost only the
//! adjustment, never a record).

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{n, now_us, number, tolerance, SharedPace, LOWER_EVERY, QUIET};
use crate::error::Op;
use crate::pace::{adapt, Slot};

impl SharedPace {
    /// A write's answer, noted: any failure but a refused condition is the table failing, and
    /// the environment paces alone for a while (`failed`) instead of waiting for the table's
    /// timeout again at each of the writes that follow.
    fn answered<T>(&self, answer: Result<T, SdkError<UpdateItemError, HttpResponse>>) -> Option<T> {
        match answer {
            Ok(out) => Some(out),
            Err(err) => {
                if !matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) {
                    self.failed(&Op::UpdateItem.error(err));
                }
                None
            }
        }
    }

    /// Whether `slot` was booked at an interval a throttle has since raised: its turn was
    /// given out too soon, and it books again (its turn is left empty: Connect's bucket is).
    pub fn rebook(&self, slot: Slot) -> bool {
        match slot.shared {
            Some(seen) => seen < self.seen().interval,
            None => self.fallback.rebook(slot),
        }
    }

    /// Sets the schedule's interval to `to` if it still is `seen` (one write per congestion,
    /// whichever environment sees it first). Failures only cost the adjustment.
    pub(super) async fn set_interval(
        &self,
        seen: i64,
        to: i64,
        ceiling: Option<Option<i64>>,
    ) -> bool {
        let mut update = self
            .table
            .client
            .update_item()
            .table_name(&*self.table.name)
            .key("pk", AttributeValue::S(self.key.clone()))
            .condition_expression("#i = :seen")
            .expression_attribute_names("#i", "interval")
            .expression_attribute_values(":seen", n(seen))
            .expression_attribute_values(":to", n(to));
        update = match ceiling {
            Some(Some(c)) => update
                .update_expression("SET #i = :to, ceiling = :c")
                .expression_attribute_values(":c", n(c)),
            Some(None) => update.update_expression("SET #i = :to REMOVE ceiling"),
            None => update.update_expression("SET #i = :to"),
        };
        let made = !self.failing() && self.answered(update.send().await).is_some();
        if made {
            let mut s = self.seen();
            s.interval = to;
            if let Some(c) = ceiling {
                s.ceiling = c;
            }
        }
        made
    }

    /// Connect's bucket is empty (a throttle): no call of the schedule goes before a full
    /// turn from now, whatever burst the schedule thought was left (if calls are booked
    /// further ahead than that already, the schedule stays). Failures cost only that.
    pub(super) async fn empty_the_burst(&self, interval: i64) {
        let empty = now_us() + tolerance(interval, self.burst) + interval;
        if self.failing() {
            return;
        }
        let answer = self
            .table
            .client
            .update_item()
            .table_name(&*self.table.name)
            .key("pk", AttributeValue::S(self.key.clone()))
            .update_expression("SET tat = :empty")
            .condition_expression("tat < :empty")
            .expression_attribute_values(":empty", n(empty))
            .send()
            .await;
        self.answered(answer);
    }

    /// Notes a lone throttle's empty bucket, whatever `tat` is: when and after how many calls
    /// (`emptied`, `emptied_n`: the throttles of calls booked before are this one's, and the
    /// next is judged by the calls since), and the window's start (`made` calls so far)
    /// unless a window is open. Failures cost only the note.
    async fn note_empty(&self, made: Option<i64>) {
        let now = now_us();
        let update = self
            .table
            .client
            .update_item()
            .table_name(&*self.table.name)
            .key("pk", AttributeValue::S(self.key.clone()))
            .condition_expression("attribute_exists(tat)")
            .expression_attribute_values(":now", n(now));
        let update = match made {
            Some(made) => update
                .update_expression(
                    "SET emptied = :now, emptied_n = n, \
                     mark_n = if_not_exists(mark_n, :mn), mark_at = if_not_exists(mark_at, :now)",
                )
                .expression_attribute_values(":mn", n(made)),
            None => update.update_expression("SET emptied = :now, emptied_n = n"),
        };
        if !self.failing() {
            self.answered(update.send().await);
        }
    }

    /// A throttled call got no token: its booking is taken back from the count of calls. The
    /// answer is the schedule as it is now (None: the table did not answer).
    async fn take_back(&self) -> Option<HashMap<String, AttributeValue>> {
        if self.failing() {
            return None;
        }
        let answer = self
            .table
            .client
            .update_item()
            .table_name(&*self.table.name)
            .key("pk", AttributeValue::S(self.key.clone()))
            .update_expression("ADD n :minus")
            .condition_expression("attribute_exists(tat)")
            .expression_attribute_values(":minus", n(-1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.answered(answer)?.attributes
    }

    /// A congestion's trim (`adapt::trim`), if the interval is still `seen` (once per
    /// congestion, whichever environment sees it first): the window's start moves to now
    /// (`made` calls so far) when the trim used the window, and is set if there is none.
    async fn set_trim(&self, seen: i64, trim: adapt::Trim, made: Option<i64>) -> bool {
        let mut update = self
            .table
            .client
            .update_item()
            .table_name(&*self.table.name)
            .key("pk", AttributeValue::S(self.key.clone()))
            .condition_expression("#i = :seen")
            .expression_attribute_names("#i", "interval")
            .expression_attribute_values(":seen", n(seen))
            .expression_attribute_values(":to", n(trim.interval))
            .expression_attribute_values(":c", n(trim.ceiling))
            .expression_attribute_values(":now", n(now_us()));
        update = match (made, trim.remark) {
            (None, _) => update
                .update_expression("SET #i = :to, ceiling = :c, emptied = :now, emptied_n = n"),
            (Some(made), true) => update
                .update_expression(
                    "SET #i = :to, ceiling = :c, emptied = :now, emptied_n = n, \
                     mark_n = :mn, mark_at = :now",
                )
                .expression_attribute_values(":mn", n(made)),
            (Some(made), false) => update
                .update_expression(
                    "SET #i = :to, ceiling = :c, emptied = :now, emptied_n = n, \
                     mark_n = if_not_exists(mark_n, :mn), mark_at = if_not_exists(mark_at, :now)",
                )
                .expression_attribute_values(":mn", n(made)),
        };
        let made = !self.failing() && self.answered(update.send().await).is_some();
        if made {
            let mut s = self.seen();
            s.interval = trim.interval;
            s.ceiling = Some(trim.ceiling);
        }
        made
    }

    /// Connect accepted a call: every `LOWER_EVERY` successes, the interval comes down.
    pub async fn on_success(&self, slot: Slot) {
        let Some(seen) = slot.shared else {
            return self.fallback.on_success();
        };
        let (ceiling, quiet, floor) = {
            let mut s = self.seen();
            s.successes = s.successes.wrapping_add(1);
            if s.successes % LOWER_EVERY != 0 || seen <= s.floor {
                return;
            }
            (s.ceiling, s.window_calls, s.floor)
        };
        let (lowered, forget) = adapt::climb(seen, floor, ceiling, quiet, LOWER_EVERY);
        if lowered < seen || forget {
            self.set_interval(seen, lowered, forget.then_some(None))
                .await;
        }
    }

    /// Connect throttled the call of `slot`: the schedule slows, once per congestion, by what
    /// the calls since the last empty bucket measured when they can tell (`adapt`).
    pub async fn on_throttle(&self, slot: Slot) {
        let Some(seen) = slot.shared else {
            return self.fallback.on_throttle(slot);
        };
        // A lone throttle at the configured rate after a quiet run (`QUIET` calls since the
        // burst was last emptied) only empties the burst: a call that arrived early (latency,
        // a busy host) would otherwise cost the next 50 calls 15 % of the quota; a second one
        // within `QUIET` is a congestion, and so is one near the ceiling (the congestion found
        // before) or below the configured rate.
        // Counted in calls of every environment since the burst was last emptied.
        let ceiling = {
            let mut s = self.seen();
            s.stats.throttles += 1;
            s.ceiling
        };
        let item = self.take_back().await;
        let now = now_us();
        let field = |name: &str| item.as_ref().and_then(|i| number(i, name));
        // Booked before the burst was emptied for an earlier throttle: the same empty bucket
        // (calls already in flight or booked then), nothing new to act on.
        if field("emptied").is_some_and(|e| (slot.number as i64) < e) {
            return;
        }
        let ceiling = if item.is_some() {
            field("ceiling")
        } else {
            ceiling
        };
        let quiet = match (field("n"), field("emptied_n")) {
            (Some(n), Some(e)) => n - e >= i64::from(QUIET),
            _ => true,
        };
        // Only at the configured rate: below it the quota is known to be shared (a congestion
        // trimmed it), and a throttle says the level is too high again, however long since.
        let floor = self.seen().floor;
        let lone = quiet && seen <= floor && !adapt::near_ceiling(seen, ceiling);
        let (interval, tat, booked) = (field("interval"), field("tat"), field("n"));
        // Calls booked for turns still ahead have not been made.
        let made = match (interval, tat, booked) {
            (Some(i), Some(t), Some(b)) => {
                let ahead = (t - tolerance(i, self.burst) - now).max(0) / i.max(1);
                Some(b - ahead)
            }
            _ => None,
        };
        if lone {
            self.note_empty(made).await;
            return self.empty_the_burst(seen).await;
        }
        let window = match (interval, tat, booked, field("mark_n"), field("mark_at")) {
            (Some(i), Some(t), Some(b), Some(mn), Some(ma)) => {
                adapt::Window::at(b, mn, ma, t, i, tolerance(i, self.burst), now)
            }
            _ => None,
        };
        let trim = adapt::trim(seen, floor, ceiling, window);
        // Calls booked at the old interval book again (`rebook`), inside the new window: the
        // window starts with every booking so far.
        if trim.interval > seen && self.set_trim(seen, trim, booked).await {
            self.empty_the_burst(trim.interval).await;
        }
    }
}
