//! Connect's rules that the model does not carry (from the service documentation summarised in
//! `../shared/connect/README.md`): attribute key characters and byte totals, the reference total
//! and the types a task may be created with, the scheduling window, and one flow per task; and
//! what a task template asks of a task started from it (`template_violations`) and of itself
//! (`template_definition_violations`).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
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

/// At most this many fields per task template, and templates per instance (the service-quotas
/// page; not adjustable).
pub const MAX_TEMPLATE_FIELDS: usize = 50;
pub const MAX_TEMPLATES_PER_INSTANCE: usize = 50;
/// A TEXT field's reference is fewer than this many characters, a TEXT_AREA's fewer than
/// `TEXT_AREA_LIMIT` (UpdateContactTaskTemplate's API reference).
pub const TEXT_LIMIT: usize = 512;
pub const TEXT_AREA_LIMIT: usize = 4_096;

/// The reference type that fills a template field of this type (UpdateContactTaskTemplate's
/// API reference); None for the fields a reference does not fill (NAME, DESCRIPTION,
/// SCHEDULED_TIME, EXPIRY_DURATION are the request's own members; QUICK_CONNECT and SELF_ASSIGN
/// are not StartTaskContact's to fill).
pub fn reference_type_for(field_type: &str) -> Option<&'static str> {
    match field_type {
        "TEXT" | "TEXT_AREA" | "BOOLEAN" | "SINGLE_SELECT" => Some("STRING"),
        "NUMBER" => Some("NUMBER"),
        "DATE_TIME" => Some("DATE"),
        "URL" => Some("URL"),
        "EMAIL" => Some("EMAIL"),
        _ => None,
    }
}

/// A template's field: its type and, for SINGLE_SELECT, its options.
struct Field<'a> {
    kind: &'a str,
    options: Vec<&'a str>,
}

fn field_name(entry: &Value) -> Option<&str> {
    entry["Id"]["Name"].as_str()
}

fn fields(template: &Value) -> HashMap<&str, Field<'_>> {
    template["Fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let options = f["SingleSelectOptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let kind = f["Type"].as_str().unwrap_or_default();
            Some((field_name(f)?, Field { kind, options }))
        })
        .collect()
}

fn filled(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Every rule of the task template a StartTaskContact request breaks, as "member: rule" lines
/// that name the template's fields and never the request's values. `template` is in
/// GetTaskTemplate's answer shape. The request names the template (TaskTemplateId) and has
/// passed `violations` (so it names no other flow).
pub fn template_violations(template: &Value, request: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if template["Status"].as_str() == Some("INACTIVE") {
        out.push(
            "TaskTemplateId: the task template is INACTIVE; tasks are created only from ACTIVE templates"
                .to_string(),
        );
    }
    let flow_in_request = ["ContactFlowId", "QuickConnectId"]
        .iter()
        .any(|m| filled(request.get(*m)));
    if !filled(template.get("ContactFlowId")) && !flow_in_request {
        out.push(
            "TaskTemplateId: the task template has no flow (ContactFlowId) of its own, so it cannot start a task alone"
                .to_string(),
        );
    }
    let fields = fields(template);
    let defaulted: Vec<&str> = template["Defaults"]["DefaultFieldValues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| filled(d.get("DefaultValue")))
        .filter_map(field_name)
        .collect();
    let references = request.get("References").and_then(Value::as_object);
    let required = template["Constraints"]["RequiredFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(field_name)
        .filter(|name| !defaulted.contains(name));
    for name in required {
        let kind = fields.get(name).map_or("TEXT", |f| f.kind);
        let missing = |member: &str, how: &str| {
            format!("{member}: the task template requires field '{name}' ({kind}) and {how}")
        };
        let problem = match kind {
            "NAME" => (!filled(request.get("Name"))).then(|| missing("Name", "Name is empty")),
            "DESCRIPTION" => (!filled(request.get("Description")))
                .then(|| missing("Description", "Description is not set")),
            "SCHEDULED_TIME" => (!filled(request.get("ScheduledTime")))
                .then(|| missing("ScheduledTime", "ScheduledTime is not set")),
            "EXPIRY_DURATION" => {
                (!filled(request["SegmentAttributes"].get("connect:ContactExpiry"))).then(|| {
                    missing(
                        "SegmentAttributes",
                        "SegmentAttributes has no connect:ContactExpiry",
                    )
                })
            }
            "QUICK_CONNECT" | "SELF_ASSIGN" => Some(missing(
                "TaskTemplateId",
                "gives it no default; StartTaskContact cannot fill it",
            )),
            _ => (!references
                .and_then(|r| r.get(name))
                .is_some_and(|r| filled(r.get("Value"))))
            .then(|| {
                missing(
                    &format!("References.{name}"),
                    "no reference of that name has a value",
                )
            }),
        };
        out.extend(problem);
    }
    for (key, reference) in references.into_iter().flatten() {
        let Some(field) = fields.get(key.as_str()) else {
            continue;
        };
        let Some(expected) = reference_type_for(field.kind) else {
            continue;
        };
        if reference["Type"].as_str() != Some(expected) {
            out.push(format!(
                "References.{key}: field '{key}' of the task template is {}; its reference must be of type {expected}",
                field.kind
            ));
            continue;
        }
        let value = reference["Value"].as_str().unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        if let Some(rule) = value_rule_broken(field, value) {
            out.push(format!("References.{key}: {rule}"));
        }
    }
    out
}

/// The rule a field's value breaks, if any (without the value).
fn value_rule_broken(field: &Field<'_>, value: &str) -> Option<&'static str> {
    static EPOCH: OnceLock<Regex> = OnceLock::new();
    let epoch = EPOCH.get_or_init(|| Regex::new(r"^[0-9]+(\.[0-9]+)?$").expect("a regex"));
    let ok = match field.kind {
        "SINGLE_SELECT" => field.options.contains(&value),
        "BOOLEAN" => value == "true" || value == "false",
        "TEXT" => value.chars().count() < TEXT_LIMIT,
        "TEXT_AREA" => value.chars().count() < TEXT_AREA_LIMIT,
        // As the NUMBER reference rule above reads a number, finite.
        "NUMBER" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "DATE_TIME" => epoch.is_match(value),
        "EMAIL" => value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !value.chars().any(char::is_whitespace)
        }),
        "URL" => {
            let lower = value.to_ascii_lowercase();
            ["http://", "https://"].iter().any(|scheme| {
                lower
                    .strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
            })
        }
        _ => true,
    };
    (!ok).then_some(match field.kind {
        "SINGLE_SELECT" => {
            "the value of a SINGLE_SELECT field must be one of its SingleSelectOptions"
        }
        "BOOLEAN" => "the value of a BOOLEAN field must be true or false",
        "TEXT" => "the value of a TEXT field must be fewer than 512 characters",
        "TEXT_AREA" => "the value of a TEXT_AREA field must be fewer than 4,096 characters",
        "NUMBER" => "the value of a NUMBER field must be a number",
        "DATE_TIME" => "the value of a DATE_TIME field must be an epoch timestamp",
        "EMAIL" => "the value of an EMAIL field must be an email address (name@domain)",
        _ => "the value of a URL field must be an http:// or https:// URL",
    })
}

/// What is wrong with a template's own definition (CreateTaskTemplate's PropertyValidation
/// reasons): each problem's property path, reason and message.
pub fn template_definition_violations(template: &Value) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, field) in template["Fields"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("Fields[{i}]");
        match field_name(field) {
            None => out.push((
                format!("{at}.Id.Name"),
                "REQUIRED_PROPERTY_MISSING",
                "a field needs a name".to_string(),
            )),
            Some(name) if seen.contains(&name) => out.push((
                format!("{at}.Id.Name"),
                "UNIQUE_CONSTRAINT_VIOLATED",
                format!("field '{name}' is defined twice"),
            )),
            Some(name) => seen.push(name),
        }
        let kind = field["Type"].as_str();
        let options = field["SingleSelectOptions"].as_array().map_or(0, Vec::len);
        if kind.is_none() {
            out.push((
                format!("{at}.Type"),
                "REQUIRED_PROPERTY_MISSING",
                "a field needs a type".to_string(),
            ));
        } else if kind == Some("SINGLE_SELECT") && options == 0 {
            out.push((
                format!("{at}.SingleSelectOptions"),
                "REQUIRED_PROPERTY_MISSING",
                "a SINGLE_SELECT field needs its options".to_string(),
            ));
        } else if kind != Some("SINGLE_SELECT") && options > 0 {
            out.push((
                format!("{at}.SingleSelectOptions"),
                "NOT_SUPPORTED",
                "only a SINGLE_SELECT field has options".to_string(),
            ));
        }
    }
    let named = [
        ("Constraints", "RequiredFields"),
        ("Constraints", "ReadOnlyFields"),
        ("Constraints", "InvisibleFields"),
        ("Defaults", "DefaultFieldValues"),
    ];
    let defined = fields(template);
    for (group, list) in named {
        for (i, entry) in template[group][list]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{group}.{list}[{i}].Id.Name");
            match field_name(entry) {
                None => out.push((
                    at,
                    "REQUIRED_PROPERTY_MISSING",
                    "a field's name is missing".to_string(),
                )),
                Some(name) if !defined.contains_key(name) => out.push((
                    at,
                    "REFERENCED_RESOURCE_NOT_FOUND",
                    format!("'{name}' names no field of the template"),
                )),
                Some(name) => {
                    let field = &defined[name];
                    let value = entry["DefaultValue"].as_str().unwrap_or_default();
                    if list == "DefaultFieldValues"
                        && field.kind == "SINGLE_SELECT"
                        && !value.is_empty()
                        && !field.options.contains(&value)
                    {
                        out.push((
                            format!("{group}.{list}[{i}].DefaultValue"),
                            "INVALID_FORMAT",
                            format!("the default of '{name}' is not one of its options"),
                        ));
                    }
                }
            }
        }
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
    /// A template with one field of every type, the custom ones required.
    fn template() -> Value {
        let field = |name: &str, kind: &str| json!({"Id": {"Name": name}, "Type": kind});
        let mut pick = field("Pick", "SINGLE_SELECT");
        pick["SingleSelectOptions"] = json!(["red", "green"]);
        let custom = [
            "Link", "Count", "Note", "Body", "Due", "Urgent", "Pick", "Mail",
        ];
        json!({
            "Id": "tpl", "InstanceId": "i", "Arn": "a", "Name": "t", "Status": "ACTIVE",
            "ContactFlowId": "flow",
            "Fields": [
                field("Task name", "NAME"), field("Details", "DESCRIPTION"),
                field("When", "SCHEDULED_TIME"), field("Expiry", "EXPIRY_DURATION"),
                field("Transfer", "QUICK_CONNECT"), field("Mine", "SELF_ASSIGN"),
                field("Link", "URL"), field("Count", "NUMBER"), field("Note", "TEXT"),
                field("Body", "TEXT_AREA"), field("Due", "DATE_TIME"), field("Urgent", "BOOLEAN"),
                pick, field("Mail", "EMAIL"),
            ],
            "Constraints": {
                "RequiredFields": custom.iter().map(|n| json!({"Id": {"Name": n}})).collect::<Vec<_>>(),
                "ReadOnlyFields": [], "InvisibleFields": [],
            },
            "Defaults": {"DefaultFieldValues": []},
        })
    }

    fn reference(kind: &str, value: &str) -> Value {
        json!({"Type": kind, "Value": value})
    }

    /// A request that fills every required custom field of `template()`.
    fn request() -> Value {
        json!({
            "InstanceId": "i", "Name": "n", "TaskTemplateId": "tpl",
            "References": {
                "Link": reference("URL", "https://example.com/a"),
                "Count": reference("NUMBER", "-12.5"),
                "Note": reference("STRING", "short"),
                "Body": reference("STRING", "long"),
                "Due": reference("DATE", "1800000000"),
                "Urgent": reference("STRING", "true"),
                "Pick": reference("STRING", "green"),
                "Mail": reference("EMAIL", "a@example.com"),
                "Unrelated": reference("STRING", "anything at all"),
            }
        })
    }

    fn require(template: &mut Value, names: &[&str]) {
        template["Constraints"]["RequiredFields"] = json!(names
            .iter()
            .map(|n| json!({"Id": {"Name": n}}))
            .collect::<Vec<_>>());
    }

    #[test]
    fn a_request_that_fills_the_template_passes() {
        assert_eq!(
            template_violations(&template(), &request()),
            Vec::<String>::new()
        );
        assert!(template_definition_violations(&template()).is_empty());
    }

    #[test]
    fn an_inactive_template_is_refused() {
        let mut t = template();
        t["Status"] = json!("INACTIVE");
        assert_eq!(
            template_violations(&t, &request()),
            ["TaskTemplateId: the task template is INACTIVE; tasks are created only from ACTIVE templates"]
        );
    }

    #[test]
    fn a_template_without_a_flow_cannot_start_a_task_alone() {
        let mut t = template();
        t.as_object_mut().unwrap().remove("ContactFlowId");
        assert_eq!(
            template_violations(&t, &request()),
            ["TaskTemplateId: the task template has no flow (ContactFlowId) of its own, so it cannot start a task alone"]
        );
        t["ContactFlowId"] = json!("");
        assert_eq!(template_violations(&t, &request()).len(), 1);
        // Naming a flow as well is the one-flow rule's to refuse (`violations`).
        let mut both = request();
        both["ContactFlowId"] = json!("f");
        assert!(template_violations(&t, &both).is_empty());
        assert!(violations(&both, NOW)
            .iter()
            .any(|v| v.contains("only one of ContactFlowId")));
    }

    #[test]
    fn each_required_custom_field_must_have_a_reference_with_a_value() {
        let custom = [
            ("Link", "URL"),
            ("Count", "NUMBER"),
            ("Note", "TEXT"),
            ("Body", "TEXT_AREA"),
            ("Due", "DATE_TIME"),
            ("Urgent", "BOOLEAN"),
            ("Pick", "SINGLE_SELECT"),
            ("Mail", "EMAIL"),
        ];
        for (name, kind) in custom {
            let mut r = request();
            r["References"].as_object_mut().unwrap().remove(name);
            assert_eq!(
                template_violations(&template(), &r),
                [format!("References.{name}: the task template requires field '{name}' ({kind}) and no reference of that name has a value")],
            );
            r["References"][name] = json!({"Type": reference_type_for(kind).unwrap(), "Value": ""});
            assert_eq!(
                template_violations(&template(), &r).len(),
                1,
                "{name}: an empty value"
            );
        }
        let bare = json!({"InstanceId": "i", "Name": "n", "TaskTemplateId": "tpl"});
        assert_eq!(template_violations(&template(), &bare).len(), custom.len());
    }

    #[test]
    fn the_request_s_own_members_fill_name_description_schedule_and_expiry() {
        let mut t = template();
        require(&mut t, &["Task name", "Details", "When", "Expiry"]);
        let bare = json!({"InstanceId": "i", "Name": "", "TaskTemplateId": "tpl"});
        assert_eq!(
            template_violations(&t, &bare),
            [
                "Name: the task template requires field 'Task name' (NAME) and Name is empty",
                "Description: the task template requires field 'Details' (DESCRIPTION) and Description is not set",
                "ScheduledTime: the task template requires field 'When' (SCHEDULED_TIME) and ScheduledTime is not set",
                "SegmentAttributes: the task template requires field 'Expiry' (EXPIRY_DURATION) and SegmentAttributes has no connect:ContactExpiry",
            ]
        );
        let full = json!({
            "InstanceId": "i", "Name": "n", "Description": "d", "TaskTemplateId": "tpl",
            "ScheduledTime": NOW + 60.0,
            "SegmentAttributes": {"connect:ContactExpiry": {"ValueMap": {"ExpiryDuration": {"ValueInteger": 60}}}},
        });
        assert!(template_violations(&t, &full).is_empty());
    }

    #[test]
    fn quick_connect_and_self_assign_cannot_be_filled_unless_defaulted() {
        let mut t = template();
        require(&mut t, &["Transfer", "Mine"]);
        let v = template_violations(&t, &request());
        assert_eq!(
            v,
            [
                "TaskTemplateId: the task template requires field 'Transfer' (QUICK_CONNECT) and gives it no default; StartTaskContact cannot fill it",
                "TaskTemplateId: the task template requires field 'Mine' (SELF_ASSIGN) and gives it no default; StartTaskContact cannot fill it",
            ]
        );
        t["Defaults"]["DefaultFieldValues"] = json!([
            {"Id": {"Name": "Transfer"}, "DefaultValue": "qc"},
            {"Id": {"Name": "Mine"}, "DefaultValue": "true"},
        ]);
        assert!(template_violations(&t, &request()).is_empty());
    }

    #[test]
    fn a_default_stands_in_for_a_required_field() {
        let mut t = template();
        t["Defaults"]["DefaultFieldValues"] = json!([
            {"Id": {"Name": "Note"}, "DefaultValue": "from the template"},
            {"Id": {"Name": "Count"}, "DefaultValue": ""},
        ]);
        let mut r = request();
        let refs = r["References"].as_object_mut().unwrap();
        refs.remove("Note");
        refs.remove("Count");
        // An empty default gives no value.
        assert_eq!(
            template_violations(&t, &r),
            ["References.Count: the task template requires field 'Count' (NUMBER) and no reference of that name has a value"]
        );
    }

    #[test]
    fn a_reference_to_a_field_has_the_field_s_reference_type() {
        let wrong = [
            ("Link", "STRING", "URL", "URL"),
            ("Count", "STRING", "NUMBER", "NUMBER"),
            ("Note", "URL", "TEXT", "STRING"),
            ("Body", "NUMBER", "TEXT_AREA", "STRING"),
            ("Due", "NUMBER", "DATE_TIME", "DATE"),
            ("Urgent", "URL", "BOOLEAN", "STRING"),
            ("Pick", "EMAIL", "SINGLE_SELECT", "STRING"),
            ("Mail", "STRING", "EMAIL", "EMAIL"),
        ];
        for (name, given, kind, expected) in wrong {
            let mut r = request();
            r["References"][name]["Type"] = json!(given);
            assert_eq!(
                template_violations(&template(), &r),
                [format!("References.{name}: field '{name}' of the task template is {kind}; its reference must be of type {expected}")],
            );
        }
    }

    #[test]
    fn values_follow_the_field_s_rules() {
        let bad = [
            (
                "Pick",
                "blue",
                "the value of a SINGLE_SELECT field must be one of its SingleSelectOptions",
            ),
            (
                "Urgent",
                "yes",
                "the value of a BOOLEAN field must be true or false",
            ),
            (
                "Urgent",
                "True",
                "the value of a BOOLEAN field must be true or false",
            ),
            (
                "Note",
                &"x".repeat(512),
                "the value of a TEXT field must be fewer than 512 characters",
            ),
            (
                "Body",
                &"x".repeat(4096),
                "the value of a TEXT_AREA field must be fewer than 4,096 characters",
            ),
            (
                "Count",
                "twelve",
                "the value of a NUMBER field must be a number",
            ),
            (
                "Count",
                "inf",
                "the value of a NUMBER field must be a number",
            ),
            (
                "Count",
                "12 apples",
                "the value of a NUMBER field must be a number",
            ),
            (
                "Due",
                "2027-01-01",
                "the value of a DATE_TIME field must be an epoch timestamp",
            ),
            (
                "Due",
                "-5",
                "the value of a DATE_TIME field must be an epoch timestamp",
            ),
            (
                "Mail",
                "nobody",
                "the value of an EMAIL field must be an email address (name@domain)",
            ),
            (
                "Mail",
                "a@",
                "the value of an EMAIL field must be an email address (name@domain)",
            ),
            (
                "Link",
                "ftp://example.com",
                "the value of a URL field must be an http:// or https:// URL",
            ),
            (
                "Link",
                "https://",
                "the value of a URL field must be an http:// or https:// URL",
            ),
        ];
        for (name, value, rule) in bad {
            let mut r = request();
            r["References"][name]["Value"] = json!(value);
            let v = template_violations(&template(), &r);
            assert_eq!(v, [format!("References.{name}: {rule}")], "{name}");
            // ("https://" is in the rule's own words.)
            assert!(
                rule.contains(value) || !v[0].contains(value),
                "the message echoes the value: {v:?}"
            );
        }
        let good = [
            ("Note", "x".repeat(511)),
            ("Body", "é".repeat(4095)),
            ("Count", "42".into()),
            ("Count", "1e3".into()),
            ("Due", "1800000000.25".into()),
            ("Urgent", "false".into()),
            ("Link", "HTTP://example.com/path?q=1".into()),
        ];
        for (name, value) in good {
            let mut r = request();
            r["References"][name]["Value"] = json!(value);
            assert!(template_violations(&template(), &r).is_empty(), "{name}");
        }
    }

    #[test]
    fn references_that_name_no_field_are_left_alone() {
        let mut r = request();
        r["References"]["Unrelated"] = reference("URL", "not a url");
        r["References"]["Task name"] = reference("NUMBER", "not a number");
        assert!(template_violations(&template(), &r).is_empty());
    }

    #[test]
    fn a_template_s_definition_is_checked() {
        let t = json!({
            "Fields": [
                {"Id": {"Name": "a"}, "Type": "TEXT"},
                {"Id": {"Name": "a"}, "Type": "TEXT"},
                {"Id": {"Name": "s"}, "Type": "SINGLE_SELECT"},
                {"Id": {"Name": "n"}, "Type": "NUMBER", "SingleSelectOptions": ["1"]},
                {"Id": {"Name": "o"}, "Type": "SINGLE_SELECT", "SingleSelectOptions": ["x"]},
                {"Id": {"Name": "u"}},
            ],
            "Constraints": {"RequiredFields": [{"Id": {"Name": "ghost"}}], "InvisibleFields": [{"Id": {}}]},
            "Defaults": {"DefaultFieldValues": [{"Id": {"Name": "o"}, "DefaultValue": "y"}]},
        });
        let v: Vec<(String, &str)> = template_definition_violations(&t)
            .into_iter()
            .map(|(path, reason, _)| (path, reason))
            .collect();
        assert_eq!(
            v,
            [
                (
                    "Fields[1].Id.Name".to_string(),
                    "UNIQUE_CONSTRAINT_VIOLATED"
                ),
                (
                    "Fields[2].SingleSelectOptions".to_string(),
                    "REQUIRED_PROPERTY_MISSING"
                ),
                ("Fields[3].SingleSelectOptions".to_string(), "NOT_SUPPORTED"),
                ("Fields[5].Type".to_string(), "REQUIRED_PROPERTY_MISSING"),
                (
                    "Constraints.RequiredFields[0].Id.Name".to_string(),
                    "REFERENCED_RESOURCE_NOT_FOUND"
                ),
                (
                    "Constraints.InvisibleFields[0].Id.Name".to_string(),
                    "REQUIRED_PROPERTY_MISSING"
                ),
                (
                    "Defaults.DefaultFieldValues[0].DefaultValue".to_string(),
                    "INVALID_FORMAT"
                ),
            ]
        );
    }
}
