//! How the shared schedule answers Connect: a throttle empties the burst and, in a congestion,
//! trims the interval by what `adapt` decides; successes bring it back. The writes that notes,
//! trims and climbs take (every one conditional or harmless if lost: failures cost only the
//! adjustment, never a record).

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{n, now_us, number, tolerance, SharedPace, FLOOR, LOWER_EVERY, QUIET};
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
            .update(&self.key)
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

    /// Notes a lone throttle's empty bucket, in the write that empties the burst (`Empty`):
    /// after how many calls (`emptied_n`: the next throttle is judged by the calls since), and
    /// the window's start (`made` calls so far) unless a window is open; `early`: the throttle
    /// was let off as the second of two early arrivals by the window that began at that mark
    /// (µs), noted with the count (`early_at`, `early_n`) so that no fresh window lets a pair
    /// off again soon. Failures cost only the note.
    async fn note_empty(&self, made: Option<i64>, empty: Empty, early: Option<i64>) {
        let mut set = String::from("emptied_n = n");
        if made.is_some() {
            set.push_str(
                ", mark_n = if_not_exists(mark_n, :mn), mark_at = if_not_exists(mark_at, :now)",
            );
        }
        if early.is_some() {
            set.push_str(", early_n = n, early_at = :ea");
        }
        self.empty_with(&set, "attribute_exists(tat)", empty, |update| {
            let update = update.expression_attribute_values(":now", n(empty.now));
            let update = match made {
                Some(made) => update.expression_attribute_values(":mn", n(made)),
                None => update,
            };
            match early {
                Some(at) => update.expression_attribute_values(":ea", n(at)),
                None => update,
            }
        })
        .await;
    }

    /// A throttled call got no token: its booking is taken back from the count of calls. The
    /// answer is the schedule as it is now (None: the table did not answer).
    async fn take_back(&self) -> Option<HashMap<String, AttributeValue>> {
        if self.failing() {
            return None;
        }
        let answer = self
            .table
            .update(&self.key)
            .update_expression("ADD n :minus")
            .condition_expression("attribute_exists(tat)")
            .expression_attribute_values(":minus", n(-1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.answered(answer)?.attributes
    }

    /// A congestion's trim (`adapt::trim`), in the write that empties the burst at the new
    /// interval (`Empty`), if the interval is still `seen` (once per congestion, whichever
    /// environment sees it first): the window's start moves to now (`made` calls so far) when
    /// the trim used the window, and is set if there is none.
    async fn set_trim(
        &self,
        seen: i64,
        trim: adapt::Trim,
        made: Option<i64>,
        empty: Empty,
    ) -> bool {
        let set = match (made, trim.remark) {
            (None, _) => "#i = :to, ceiling = :c, emptied_n = n",
            (Some(_), true) => {
                "#i = :to, ceiling = :c, emptied_n = n, mark_n = :mn, mark_at = :now"
            }
            (Some(_), false) => {
                "#i = :to, ceiling = :c, emptied_n = n, \
                 mark_n = if_not_exists(mark_n, :mn), mark_at = if_not_exists(mark_at, :now)"
            }
        };
        let made = self
            .empty_with(set, "#i = :seen", empty, |update| {
                let update = update
                    .expression_attribute_names("#i", "interval")
                    .expression_attribute_values(":seen", n(seen))
                    .expression_attribute_values(":to", n(trim.interval))
                    .expression_attribute_values(":c", n(trim.ceiling))
                    .expression_attribute_values(":now", n(empty.now));
                match made {
                    Some(made) => update.expression_attribute_values(":mn", n(made)),
                    None => update,
                }
            })
            .await;
        if made {
            let mut s = self.seen();
            s.interval = trim.interval;
            s.ceiling = Some(trim.ceiling);
        }
        made
    }

    /// Connect's bucket is empty (a throttle): one write sets `set` (under `condition`) with
    /// `emptied`, the first turn after the empty bucket (throttles of calls whose turns came
    /// before are its news), and empties the burst: no call goes before that turn, whatever
    /// burst the schedule thought was left. One write, so that no call is booked between the
    /// note and the emptied burst: such a call went into the empty bucket and its throttle,
    /// judged as news, halved the rate. If calls are booked further ahead already (`tat` past
    /// the empty burst: a reserved turn), the schedule stays and the note is written alone.
    /// Whether the write was made; failures cost only the note.
    async fn empty_with(
        &self,
        set: &str,
        condition: &str,
        empty: Empty,
        values: impl Fn(UpdateItemFluentBuilder) -> UpdateItemFluentBuilder,
    ) -> bool {
        let write = |with_tat: bool| {
            let update = self
                .table
                .update(&self.key)
                .expression_attribute_values(":emptied", n(empty.first_turn()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let update = if with_tat {
                update
                    .update_expression(format!("SET {set}, emptied = :emptied, tat = :empty"))
                    .condition_expression(format!("{condition} AND tat < :empty"))
                    .expression_attribute_values(":empty", n(empty.tat(self.burst)))
            } else {
                update
                    .update_expression(format!("SET {set}, emptied = :emptied"))
                    .condition_expression(condition)
            };
            values(update)
        };
        if self.failing() {
            return false;
        }
        let with_tat = empty.behind.unwrap_or(true);
        match write(with_tat).send().await {
            Ok(_) => true,
            // Refused for `tat` alone (the rest of the condition held: `set` is still due).
            Err(err)
                if with_tat
                    && matches!(
                        err.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(refused))
                            if refused.item.as_ref().and_then(|i| number(i, "tat"))
                                .is_some_and(|t| t >= empty.tat(self.burst))
                    ) =>
            {
                self.answered(write(false).send().await).is_some()
            }
            Err(err) => self.answered(Err::<(), _>(err)).is_some(),
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
        // a busy host) would otherwise cost the next 50 calls 15 % of the quota; so does one
        // within `QUIET` when the calls since the bucket was empty show Connect gave the
        // schedule its whole rate (two early arrivals, not another caller). Any other second
        // one is a congestion, and so is one near the ceiling (the congestion found before) or
        // below the configured rate.
        // Counted in calls of every environment since the burst was last emptied.
        let ceiling = {
            let mut s = self.seen();
            s.stats.throttles += 1;
            s.ceiling
        };
        let item = self.take_back().await;
        let now = now_us();
        let field = |name: &str| item.as_ref().and_then(|i| number(i, name));
        // The first turn after an empty bucket lies at most a turn of the slowest schedule
        // ahead of the moment it was noted; two (clocks of environments apart) is the most
        // believed. Further (a writer's clock, a hostile item), every turn would come before it
        // and no throttle would ever write it again: the note is ignored and the next replaces it.
        let slowest = (self.seen().floor as f64 / FLOOR) as i64;
        let emptied = field("emptied").filter(|e| *e <= now.saturating_add(2 * slowest));
        // Its turn came before the first turn after the bucket was last found empty: the same
        // empty bucket (calls already in flight or booked then), nothing new to act on.
        if emptied.is_some_and(|e| (slot.number as i64) < e) {
            return;
        }
        let ceiling = if item.is_some() {
            field("ceiling")
        } else {
            ceiling
        };
        let (interval, tat, booked) = (field("interval"), field("tat"), field("n"));
        let window = match (interval, tat, booked, field("mark_n"), field("mark_at")) {
            (Some(i), Some(t), Some(b), Some(mn), Some(ma)) => {
                adapt::Window::at(b, mn, ma, t, i, tolerance(i, self.burst), now)
            }
            _ => None,
        };
        let by_count = match (booked, field("emptied_n")) {
            (Some(n), Some(e)) => n - e >= i64::from(QUIET),
            _ => true,
        };
        // Two early arrivals are let off by the window they fall in; a window that begins
        // afresh (an idle booking drops the mark: bursts of calls) does not let a pair off
        // again before `PROBE_AFTER` calls have passed. Otherwise another caller taking a tenth
        // of the quota beside bursts of calls was let off burst after burst: the first throttle
        // of each lone by count, the next by a window too short to measure, never a trim.
        let mark_at = field("mark_at");
        let let_off_lately = match (field("early_at"), field("early_n"), mark_at, booked) {
            (Some(at), Some(en), Some(ma), Some(n)) => {
                at != ma && n - en < i64::from(adapt::PROBE_AFTER)
            }
            _ => false,
        };
        let early = (!by_count && !let_off_lately && window.is_some_and(|w| w.given_in_full(seen)))
            .then_some(mark_at)
            .flatten();
        let quiet = by_count || early.is_some();
        // Only at the configured rate: below it the quota is known to be shared (a congestion
        // trimmed it), and a throttle says the level is too high again, however long since.
        let floor = self.seen().floor;
        let lone = quiet && seen <= floor && !adapt::near_ceiling(seen, ceiling);
        if lone {
            // Calls booked for turns still ahead have not been made.
            let made = match (interval, tat, booked) {
                (Some(i), Some(t), Some(b)) => {
                    let ahead = (t - tolerance(i, self.burst) - now).max(0) / i.max(1);
                    Some(b - ahead)
                }
                _ => None,
            };
            tracing::info!(
                pace = %self.key,
                rate = 1e6 / seen as f64,
                by_window = early.is_some(),
                "a lone throttle (an early arrival): the burst emptied, the rate kept"
            );
            let empty = Empty::at(now, interval.unwrap_or(seen), tat, self.burst);
            return self.note_empty(made, empty, early).await;
        }
        let trim = adapt::trim(seen, floor, ceiling, window);
        // Calls booked at the old interval book again (`rebook`), inside the new window: the
        // window starts with every booking so far.
        let empty = Empty::at(now, trim.interval, tat, self.burst);
        if trim.interval > seen && self.set_trim(seen, trim, booked, empty).await {
            // One line per congestion (the environment whose write made the trim): why the
            // rate of every stack on the schedule dropped.
            tracing::info!(
                pace = %self.key,
                from_rate = 1e6 / seen as f64,
                rate = 1e6 / trim.interval as f64,
                measured = trim.remark,
                window_calls = window.map(|w| w.calls),
                window_secs = window.map(|w| w.secs),
                "a congestion (Connect's quota is shared or was exceeded): the shared schedule slowed"
            );
        }
    }
}

/// The empty bucket a throttle found: at `now` (µs), the schedule's turns `interval` apart
/// from then on; `behind`: whether `tat` (as the take-back answered) is behind the emptied
/// burst (None: not known).
#[derive(Debug, Clone, Copy)]
struct Empty {
    now: i64,
    interval: i64,
    behind: Option<bool>,
}

impl Empty {
    fn at(now: i64, interval: i64, tat: Option<i64>, burst: f64) -> Empty {
        let mut empty = Empty {
            now,
            interval,
            behind: None,
        };
        empty.behind = tat.map(|t| t < empty.tat(burst));
        empty
    }

    /// The first turn after the empty bucket.
    fn first_turn(self) -> i64 {
        self.now + self.interval
    }

    /// The schedule's `tat` that gives out that turn first (a booking starts at `tat` less the
    /// tolerance).
    fn tat(self, burst: f64) -> i64 {
        self.first_turn() + tolerance(self.interval, burst)
    }
}
