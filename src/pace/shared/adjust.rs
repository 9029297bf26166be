//! How the shared schedule moves (`SharedPace`'s writes besides the bookings): a throttle
//! takes its booking back and empties the burst, a congestion trims the interval by what
//! `adapt` decides, successes lower it again; a slot booked at an interval since raised books
//! again. The schedule's design and why: the parent module's doc.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{n, now_us, number, tolerance, SharedPace, Slot, LOWER_EVERY, QUIET};
use crate::error::Op;
use crate::pace::adapt;

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

    /// Sets the schedule's interval to `to` if it still is `seen` (one write per congestion,
    /// whichever environment sees it first). Failures only cost the adjustment.
    async fn set_interval(&self, seen: i64, to: i64, ceiling: Option<Option<i64>>) -> bool {
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
    /// turn from now, whatever burst the schedule thought was left. `mark`: the calls made so
    /// far, noted as the window's start unless a window is open. Failures cost only that.
    async fn empty_the_burst(&self, interval: i64, mark: Option<i64>) {
        let now = now_us();
        let empty = now + tolerance(interval, self.burst) + interval;
        let mut update = self
            .table
            .client
            .update_item()
            .table_name(&*self.table.name)
            .key("pk", AttributeValue::S(self.key.clone()))
            .condition_expression("tat < :empty")
            .expression_attribute_values(":empty", n(empty));
        update = match mark {
            Some(made) => update
                .update_expression(
                    "SET tat = :empty, mark_n = if_not_exists(mark_n, :mn), \
                     mark_at = if_not_exists(mark_at, :now)",
                )
                .expression_attribute_values(":mn", n(made))
                .expression_attribute_values(":now", n(now)),
            None => update.update_expression("SET tat = :empty"),
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
            .expression_attribute_values(":c", n(trim.ceiling));
        update = match (made, trim.remark) {
            (None, _) => update.update_expression("SET #i = :to, ceiling = :c"),
            (Some(made), true) => update
                .update_expression("SET #i = :to, ceiling = :c, mark_n = :mn, mark_at = :now")
                .expression_attribute_values(":mn", n(made))
                .expression_attribute_values(":now", n(now_us())),
            (Some(made), false) => update
                .update_expression(
                    "SET #i = :to, ceiling = :c, mark_n = if_not_exists(mark_n, :mn), \
                     mark_at = if_not_exists(mark_at, :now)",
                )
                .expression_attribute_values(":mn", n(made))
                .expression_attribute_values(":now", n(now_us())),
        };
        let made = !self.failing() && self.answered(update.send().await).is_some();
        if made {
            let mut s = self.seen();
            s.interval = trim.interval;
            s.ceiling = Some(trim.ceiling);
        }
        made
    }

    /// Whether `slot` was booked at an interval a throttle has since raised: its turn was
    /// given out too soon, and it books again (its turn is left empty: Connect's bucket is).
    pub fn rebook(&self, slot: Slot) -> bool {
        match slot.shared {
            Some(seen) => seen < self.seen().interval,
            None => self.fallback.rebook(slot),
        }
    }

    /// Connect accepted a call: every `LOWER_EVERY` successes, the interval comes down.
    pub async fn on_success(&self, slot: Slot) {
        let Some(seen) = slot.shared else {
            return self.fallback.on_success();
        };
        let (ceiling, quiet, floor) = {
            let mut s = self.seen();
            s.successes = s.successes.wrapping_add(1);
            s.since_throttle = s.since_throttle.saturating_add(1);
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
        // A lone throttle after a quiet run (`QUIET` successes) only empties the burst: a call
        // that arrived early (latency, a busy host) would otherwise cost the next 50 calls 15 %
        // of the quota; a second one within `QUIET` is a congestion, and so is one near the
        // ceiling (the congestion found before).
        let (lone, ceiling) = {
            let mut s = self.seen();
            s.stats.throttles += 1;
            let lone = s.since_throttle >= QUIET && !adapt::near_ceiling(seen, s.ceiling);
            s.since_throttle = 0;
            (lone, s.ceiling)
        };
        let item = self.take_back().await;
        let now = now_us();
        let field = |name: &str| item.as_ref().and_then(|i| number(i, name));
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
            return self.empty_the_burst(seen, made).await;
        }
        let window = match (interval, tat, booked, field("mark_n"), field("mark_at")) {
            (Some(i), Some(t), Some(b), Some(mn), Some(ma)) => {
                adapt::Window::at(b, mn, ma, t, i, tolerance(i, self.burst), now)
            }
            _ => None,
        };
        let ceiling = if item.is_some() {
            field("ceiling")
        } else {
            ceiling
        };
        let floor = self.seen().floor;
        let trim = adapt::trim(seen, floor, ceiling, window);
        // Calls booked at the old interval book again (`rebook`), inside the new window: the
        // window starts with every booking so far.
        if trim.interval > seen && self.set_trim(seen, trim, booked).await {
            self.empty_the_burst(trim.interval, None).await;
        }
    }
}
