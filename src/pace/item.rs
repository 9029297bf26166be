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

/// Writes `repair` to `key` if the item still holds what was seen: Ok(false) when somebody
/// changed it first (the next booking sees what they wrote).
pub(super) async fn rewrite(
    client: &Client,
    table: &str,
    key: &str,
    repair: &Repair,
) -> Result<bool, BridgeError> {
    let mut set = String::from("SET #t = :t, #i = :i");
    let mut remove = Vec::new();
    if repair.reset_count {
        set.push_str(", #n = :zero");
        remove.extend(["mark_n", "mark_at"]);
    }
    if repair.drop_ceiling {
        remove.push("ceiling");
    }
    if !remove.is_empty() {
        set = format!("{set} REMOVE {}", remove.join(", "));
    }
    let mut update = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_string()))
        .expression_attribute_names("#t", "tat")
        .expression_attribute_names("#i", "interval")
        .expression_attribute_names("#n", "n")
        .expression_attribute_values(":t", AttributeValue::N(repair.tat.to_string()))
        .expression_attribute_values(":i", AttributeValue::N(repair.interval.to_string()));
    if repair.reset_count {
        update = update.expression_attribute_values(":zero", AttributeValue::N("0".into()));
    }
    let mut conditions = Vec::new();
    for (name, old) in &repair.old {
        let alias = match *name {
            "tat" => "#t",
            "interval" => "#i",
            _ => "#n",
        };
        match old {
            Some(value) => {
                let placeholder = format!(":old_{name}");
                conditions.push(format!("{alias} = {placeholder}"));
                update = update.expression_attribute_values(placeholder, value.clone());
            }
            None => conditions.push(format!("attribute_not_exists({alias})")),
        }
    }
    let answer = update
        .update_expression(set)
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
