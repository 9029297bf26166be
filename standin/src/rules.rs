//! Connect's rules that the model does not carry (from the service documentation summarised in
//! `../shared/connect/README.md`): attribute key characters and byte totals, the reference total
//! and the types a task may be created with, the scheduling window, and one flow per task.

use serde_json::Value;

pub const ATTRIBUTES_MAX_BYTES: usize = 32_768;
pub const REFERENCES_MAX_BYTES: usize = 4_096;
/// 90 days since May 2026 (Connect's service-quotas page; the model's prose still says 6).
pub const SCHEDULE_MAX_AHEAD_SECS: f64 = 90.0 * 24.0 * 3600.0;
const CREATABLE_REFERENCE_TYPES: [&str; 5] = ["URL", "NUMBER", "STRING", "DATE", "EMAIL"];

/// Every rule the request breaks, given the current time in epoch seconds.
pub fn violations(body: &Value, now_secs: f64) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(attrs) = body.get("Attributes").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in attrs {
            if !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                out.push(format!(
                    "Attributes: key '{k}' may hold only letters, digits, '-' and '_'"
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > ATTRIBUTES_MAX_BYTES {
            out.push(format!(
                "Attributes: {total} bytes in all, more than {ATTRIBUTES_MAX_BYTES}"
            ));
        }
    }
    if let Some(refs) = body.get("References").and_then(Value::as_object) {
        let mut total = 0;
        for (k, r) in refs {
            let kind = r.get("Type").and_then(Value::as_str).unwrap_or_default();
            let value = r.get("Value").and_then(Value::as_str).unwrap_or_default();
            total += k.len() + value.len();
            if !CREATABLE_REFERENCE_TYPES.contains(&kind) {
                out.push(format!(
                    "References.{k}: type {kind} cannot be set when a task is created"
                ));
            }
            if kind == "DATE" && value.parse::<i64>().is_err() {
                out.push(format!("References.{k}: a DATE is an epoch timestamp"));
            }
            if kind == "NUMBER" && value.parse::<f64>().is_err() {
                out.push(format!("References.{k}: a NUMBER must be numeric"));
            }
        }
        if total > REFERENCES_MAX_BYTES {
            out.push(format!(
                "References: {total} bytes in all, more than {REFERENCES_MAX_BYTES}"
            ));
        }
    }
    if let Some(at) = body.get("ScheduledTime").and_then(Value::as_f64) {
        if at < now_secs.floor() {
            out.push("ScheduledTime: must not be in the past".into());
        } else if at > now_secs + SCHEDULE_MAX_AHEAD_SECS {
            out.push("ScheduledTime: must be at most 90 days ahead".into());
        }
    }
    let flows = ["ContactFlowId", "QuickConnectId", "TaskTemplateId"]
        .into_iter()
        .filter(|m| {
            body.get(*m)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    if flows == 0 {
        out.push(
            "ContactFlowId: one of ContactFlowId, QuickConnectId or TaskTemplateId is required"
                .into(),
        );
    } else if flows > 1 {
        out.push("ContactFlowId: only one of ContactFlowId, QuickConnectId and TaskTemplateId may be set".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;

    #[test]
    fn a_plain_task_passes() {
        let body = json!({"InstanceId": "i", "Name": "n", "ContactFlowId": "f"});
        assert!(violations(&body, NOW).is_empty());
    }

    #[test]
    fn each_rule_is_reported() {
        let body = json!({
            "Attributes": {"bad key": "v", "big": "x".repeat(ATTRIBUTES_MAX_BYTES)},
            "References": {"a": {"Type": "ATTACHMENT", "Value": "x"}, "d": {"Type": "DATE", "Value": "today"}},
            "ScheduledTime": NOW + SCHEDULE_MAX_AHEAD_SECS + 1.0,
            "ContactFlowId": "f", "TaskTemplateId": "t"
        });
        let v = violations(&body, NOW).join("\n");
        for needle in [
            "key 'bad key'",
            "bytes in all, more than 32768",
            "type ATTACHMENT cannot be set",
            "a DATE is an epoch timestamp",
            "at most 90 days ahead",
            "only one of ContactFlowId",
        ] {
            assert!(v.contains(needle), "missing {needle} in\n{v}");
        }
        let past = json!({"ScheduledTime": NOW - 10.0, "QuickConnectId": "q"});
        assert_eq!(
            violations(&past, NOW),
            ["ScheduledTime: must not be in the past"]
        );
    }
}
