//! What a schedule item of the pace table may hold, and the repair of one that holds anything
//! else: the bounds every booking's condition checks (`Bounds`), and the write that puts a bad
//! item back within them (`Repair`).
//!
//! **Why.** Anybody with write access to the table (a script, an old version of the function, a
//! stack configured with another quota) can leave an item the arithmetic never expected: an
//! `interval` of 0 or below books every call at once (Connect hammered past its quota, the
//! pace defeated for as long as the item lasts), a huge one or a `tat` years ahead refuses
//! every call (every queue stalled and walked to its DLQ), a `tat`, `interval` or `n` that is
//! not a number fails every write (DynamoDB refuses the arithmetic; moto answers 500), so every
//! environment falls back to its local share for good. The bookings' conditions check the types
//! and bounds (`attribute_type` first, so that a comparison never meets a string), a refused
//! booking's item (`ALL_OLD`) is checked here, and a bad one is rewritten once, conditional on
//! the bad values, whichever environment sees it first.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::error::{BridgeError, Op};

/// How far ahead of now a schedule's `tat` may lie: Lambda's longest invocation (15 minutes)
/// bounds every latest start, and a turn reserved for a record handed back lies within it.
pub(super) const MAX_AHEAD_US: i64 = 15 * 60 * 1_000_000;

/// How long a stack's quota counts after its last booking: a stack gone (deleted, idle, its
/// quota raised) stops holding the others back.
pub(super) const QUOTA_MEMORY_US: i64 = 10 * 60 * 1_000_000;
/// The most another stack's quota may slow this one's: a writer of the table can hold the
/// schedule to 1/20 of the configured quota at worst, never stall it.
pub(super) const QUOTA_SPREAD: i64 = 20;

/// The attribute a booking of a stack configured at `base` (µs per call) stamps with its time:
/// every configuration sharing the table is seen by the others.
pub(super) fn quota_name(base: i64) -> String {
    format!("quota_{base}")
}

/// The strictest quota (µs per call) of the stacks that booked on `item` within
/// `QUOTA_MEMORY_US` of `now`, this one's (`base`) included, and whether another configuration
/// was among them. Connect's quota is one per account and Region, so one table is one quota:
/// two stacks configured differently both run at the stricter, the faster one held back rather
/// than throttled into finding it.
pub(super) fn strictest(
    item: &HashMap<String, AttributeValue>,
    base: i64,
    now: i64,
) -> (i64, bool) {
    let mut floor = base;
    let mut other = false;
    for (name, at) in item {
        let Some(quota) = name
            .strip_prefix("quota_")
            .and_then(|q| q.parse::<i64>().ok())
        else {
            continue;
        };
        let recent = number(item, name)
            .is_some_and(|t| t > now - QUOTA_MEMORY_US && t < now + QUOTA_MEMORY_US / 10);
        if !recent || quota <= 0 || !matches!(at, AttributeValue::N(_)) {
            continue;
        }
        other |= quota != base;
        floor = floor.max(quota.min(base.saturating_mul(QUOTA_SPREAD)));
    }
    (floor, other)
}

/// The intervals (µs per call) a schedule may run at: `lo`, the strictest quota it serves, to
/// `hi`, its slowest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Bounds {
    pub lo: i64,
    pub hi: i64,
}

/// A bad item's rewrite: the attributes as they were (None: absent), for the condition, and
/// what they become.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Repair {
    pub old: Vec<(&'static str, Option<AttributeValue>)>,
    pub tat: i64,
    pub interval: i64,
    /// The count of calls restarts at 0 (it was not a number); the window's mark goes with it.
    pub reset_count: bool,
    /// The ceiling is dropped (not a positive number).
    pub drop_ceiling: bool,
    /// What was wrong, for the log line: attribute names only.
    pub what: Vec<&'static str>,
}

/// A number of the item as the schedule's arithmetic may use it: an integer well within i64
/// (µs until the year 5000), so that sums and differences of a few never overflow.
pub(super) fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name)? {
        AttributeValue::N(n) => n
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && v.abs() < 1e17)
            .map(|v| v as i64),
        _ => None,
    }
}

/// The repair `item` needs at `now` within `bounds`, if any.
pub(super) fn repair(
    item: &HashMap<String, AttributeValue>,
    bounds: Bounds,
    now: i64,
) -> Option<Repair> {
    let mut what = Vec::new();
    let tat = match (item.get("tat"), number(item, "tat")) {
        (None, _) => now,
        (Some(_), Some(t)) if t <= now + MAX_AHEAD_US => t,
        (Some(_), _) => {
            what.push("tat");
            now
        }
    };
    let interval = match (item.get("interval"), number(item, "interval")) {
        // No interval and no turn: the idle booking creates both.
        (None, _) if item.get("tat").is_none() => bounds.lo,
        (Some(_), Some(i)) if (bounds.lo..=bounds.hi).contains(&i) => i,
        (_, i) => {
            what.push("interval");
            i.unwrap_or(bounds.lo).clamp(bounds.lo, bounds.hi)
        }
    };
    let reset_count = item.get("n").is_some() && number(item, "n").is_none();
    if reset_count {
        what.push("n");
    }
    let drop_ceiling =
        item.get("ceiling").is_some() && number(item, "ceiling").is_none_or(|c| c <= 0);
    if drop_ceiling {
        what.push("ceiling");
    }
    if what.is_empty() {
        return None;
    }
    let old = ["tat", "interval", "n"]
        .into_iter()
        .map(|name| (name, item.get(name).cloned()))
        .collect();
    Some(Repair {
        old,
        tat,
        interval,
        reset_count,
        drop_ceiling,
        what,
    })
}

/// Writes `repair` to `key` if the attributes it rewrites still hold what was seen (the others
/// move on: another environment's bookings go on meanwhile), stamping `quota` (the repairing
/// stack's, `quota_name`) so that a stack whose faster interval was raised learns why at its
/// next booking instead of lowering it again. Ok(false) when somebody changed them first.
pub(super) async fn rewrite(
    client: &Client,
    table: &str,
    key: &str,
    repair: &Repair,
    quota: Option<(&str, i64)>,
) -> Result<bool, BridgeError> {
    let mut update = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_string()));
    let (mut set, mut remove, mut conditions) = (Vec::new(), Vec::new(), Vec::new());
    for (name, old) in &repair.old {
        if !repair.what.contains(name) {
            continue;
        }
        let alias = format!("#{name}");
        let value = match *name {
            "tat" => repair.tat,
            "interval" => repair.interval,
            _ => 0,
        };
        set.push(format!("{alias} = :new_{name}"));
        update = update
            .expression_attribute_names(&alias, *name)
            .expression_attribute_values(
                format!(":new_{name}"),
                AttributeValue::N(value.to_string()),
            );
        match old {
            Some(value) => {
                conditions.push(format!("{alias} = :old_{name}"));
                update = update.expression_attribute_values(format!(":old_{name}"), value.clone());
            }
            None => conditions.push(format!("attribute_not_exists({alias})")),
        }
    }
    if repair.reset_count {
        remove.extend(["mark_n", "mark_at"]);
    }
    if repair.drop_ceiling {
        remove.push("ceiling");
    }
    if let Some((name, now)) = quota {
        set.push("#q = :now".into());
        update = update
            .expression_attribute_names("#q", name)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
    }
    let mut expression = String::new();
    if !set.is_empty() {
        expression = format!("SET {}", set.join(", "));
    }
    if !remove.is_empty() {
        expression = format!("{expression} REMOVE {}", remove.join(", "));
    }
    if conditions.is_empty() {
        conditions.push("attribute_exists(pk)".into());
    }
    let answer = update
        .update_expression(expression.trim())
        .condition_expression(conditions.join(" AND "))
        .send()
        .await;
    match answer {
        Ok(_) => Ok(true),
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(Op::UpdateItem.error(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const B: Bounds = Bounds {
        lo: 500_000,
        hi: 1_250_000,
    };

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn a_sound_item_needs_nothing() {
        let sound = item(&[
            ("tat", n(&(NOW + 3_000_000).to_string())),
            ("interval", n("600000")),
            ("n", n("12")),
            ("ceiling", n("550000")),
        ]);
        assert_eq!(repair(&sound, B, NOW), None);
        assert_eq!(repair(&HashMap::new(), B, NOW), None);
    }

    #[test]
    fn every_bad_value_is_brought_within_bounds() {
        let case = |pairs: &[(&str, AttributeValue)]| repair(&item(pairs), B, NOW).unwrap();
        let tat = n(&NOW.to_string());
        let r = case(&[("tat", tat.clone()), ("interval", n("0"))]);
        assert_eq!(
            (r.tat, r.interval, r.what.clone()),
            (NOW, B.lo, vec!["interval"])
        );
        assert_eq!(
            case(&[("tat", tat.clone()), ("interval", n("-500000"))]).interval,
            B.lo
        );
        assert_eq!(
            case(&[("tat", tat.clone()), ("interval", n("1e15"))]).interval,
            B.hi
        );
        assert_eq!(
            case(&[("tat", tat.clone()), ("interval", n("1e300"))]).interval,
            B.lo
        );
        assert_eq!(
            case(&[
                ("tat", tat.clone()),
                ("interval", AttributeValue::S("x".into()))
            ])
            .interval,
            B.lo
        );
        let years = (NOW + 3 * 365 * 86_400_000_000).to_string();
        let r = case(&[("tat", n(&years)), ("interval", n("500000"))]);
        assert_eq!((r.tat, r.interval), (NOW, 500_000));
        assert_eq!(case(&[("tat", AttributeValue::S("x".into()))]).tat, NOW);
        let r = case(&[("tat", tat.clone()), ("n", AttributeValue::Bool(true))]);
        assert!(r.reset_count && !r.drop_ceiling);
        let r = case(&[("tat", tat), ("ceiling", n("0"))]);
        assert!(r.drop_ceiling && !r.reset_count);
        // The condition names what was there, absent attributes included.
        assert_eq!(r.old[1], ("interval", None));
        // A turn without an interval (an old version's item) gets one.
        assert_eq!(case(&[("tat", n(&NOW.to_string()))]).what, vec!["interval"]);
    }

    #[test]
    fn the_strictest_recent_quota_bounds_every_stack() {
        let at = |t: i64| n(&t.to_string());
        let fast = 50_000;
        let shared = item(&[
            ("quota_500000", at(NOW - 1_000_000)),
            ("quota_50000", at(NOW)),
            ("tat", at(NOW)),
        ]);
        assert_eq!(strictest(&shared, fast, NOW), (500_000, true));
        assert_eq!(strictest(&shared, 500_000, NOW), (500_000, true));
        // Gone for longer than the memory, or stamped in the future: not counted.
        let gone = item(&[
            ("quota_500000", at(NOW - QUOTA_MEMORY_US - 1)),
            ("quota_400000", at(NOW + QUOTA_MEMORY_US)),
            ("quota_x", at(NOW)),
            ("quota_300000", AttributeValue::S("now".into())),
        ]);
        assert_eq!(strictest(&gone, fast, NOW), (fast, false));
        // A hostile quota slows the schedule by QUOTA_SPREAD at most.
        let hostile = item(&[("quota_999999999999", at(NOW))]);
        assert_eq!(strictest(&hostile, fast, NOW), (fast * QUOTA_SPREAD, true));
    }

    #[test]
    fn numbers_past_the_arithmetic_are_not_numbers() {
        let it = item(&[
            ("a", n("1e18")),
            ("b", n("-1e30")),
            ("c", n("12.7")),
            ("d", n("x")),
        ]);
        assert_eq!(number(&it, "a"), None);
        assert_eq!(number(&it, "b"), None);
        assert_eq!(number(&it, "c"), Some(12));
        assert_eq!(number(&it, "d"), None);
    }
}
