//! Connect's limits for StartTaskContact, checked before the call.
//!
//! Bounds come from the service model in `shared/connect/start-task-contact.model.json`
//! (lengths count Unicode code points, as Smithy's `length` trait does; totals count UTF-8 bytes,
//! as Connect documents them). A request that passes here can still be refused by Connect for
//! reasons only it knows (a flow that does not exist), but never for a rule it publishes.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;

use crate::error::BridgeError;
use crate::plan::{Action, Plan};
use crate::task::{SegmentValue, TaskRequest};

pub const MAX_INSTANCE_ID: usize = 100;
pub const MAX_NAME: usize = 1024;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FLOW_ID: usize = 500;
pub const MAX_TEMPLATE_ID: usize = 500;
pub const MAX_CONTACT_ID: usize = 256;
pub const MAX_CLIENT_TOKEN: usize = 500;
pub const MAX_ATTRIBUTE_PART: usize = 32_767;
pub const MAX_ATTRIBUTES_BYTES: usize = 32_768;
pub const MAX_REFERENCE_KEY: usize = 4096;
pub const MAX_REFERENCE_VALUE: usize = 4096;
pub const MAX_REFERENCES_BYTES: usize = 4096;
pub const MAX_SEGMENT_NAME: usize = 128;
pub const MAX_SEGMENT_STRING: usize = 1024;
pub const MAX_ATTACHMENTS: usize = 5;
pub const MAX_FILE_NAME: usize = 256;
pub const MAX_S3_URL: usize = 2000;
/// How far ahead Connect accepts a ScheduledTime: 90 days since May 2026 (service-quotas page and
/// the 2026-05-29 announcement; not adjustable). The model's prose still says 6 days; see
/// `../shared/connect/README.md`. Every check and message derives from this one constant.
pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 90;
pub const MAX_SCHEDULE_AHEAD_SECS: i64 = MAX_SCHEDULE_AHEAD_DAYS * 24 * 3600;
/// Nested segment values deeper than this are refused rather than walked.
const MAX_SEGMENT_DEPTH: usize = 16;

/// Reference types Connect accepts when a contact is created; the model lists more (ATTACHMENT,
/// EMAIL_MESSAGE, ...) that only Connect itself sets.
pub const CREATABLE_REFERENCE_TYPES: &[&str] = &["URL", "NUMBER", "STRING", "DATE", "EMAIL"];
const MODEL_REFERENCE_TYPES: &[&str] = &[
    "URL",
    "ATTACHMENT",
    "CONTACT_ANALYSIS",
    "NUMBER",
    "STRING",
    "DATE",
    "EMAIL",
    "EMAIL_MESSAGE",
    "EMAIL_MESSAGE_PLAIN_TEXT",
    "EMAIL_MESSAGE_PLAIN_TEXT_REDACTED",
    "EMAIL_MESSAGE_REDACTED",
    "VOICEMAIL_RECORDING",
    "VOICEMAIL_RECORDING_REDACTED",
    "VOICEMAIL_ANALYSIS",
    "VOICEMAIL_ANALYSIS_REDACTED",
];
const REFERENCE_STATUSES: &[&str] = &[
    "AVAILABLE",
    "DELETED",
    "APPROVED",
    "REJECTED",
    "PROCESSING",
    "FAILED",
    "DRAFTING",
];

/// Collects every violation so one error tells the user all that is wrong with a request.
#[derive(Default)]
struct Violations(Vec<(String, String)>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    fn length(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min {
            self.add(
                field,
                format!("must be at least {min} characters (got {len})"),
            );
        } else if len > max {
            self.add(
                field,
                format!("must be at most {max} characters (got {len})"),
            );
        }
    }

    fn optional(&mut self, field: &str, value: &Option<String>, min: usize, max: usize) {
        if let Some(v) = value {
            self.length(field, v, min, max);
        }
    }

    fn into_result(self) -> Result<(), BridgeError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = self.0.iter().map(|(f, _)| f.as_str()).collect();
        let field = fields.join(", ");
        let message = self
            .0
            .iter()
            .map(|(f, m)| format!("{f} {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(BridgeError::Validation { field, message })
    }
}

/// Checks a request that is about to be sent. `now` is the time the call will be made.
pub fn validate(req: &TaskRequest, now: DateTime) -> Result<(), BridgeError> {
    let mut v = Violations::default();

    match &req.instance_id {
        Some(id) => v.length("InstanceId", id, 1, MAX_INSTANCE_ID),
        None => v.add("InstanceId", "is required"),
    }
    match &req.name {
        Some(name) if !name.trim().is_empty() => v.length("Name", name, 0, MAX_NAME),
        _ => v.add("Name", "is required and must not be blank"),
    }
    v.optional("Description", &req.description, 0, MAX_DESCRIPTION);
    v.optional("ContactFlowId", &req.contact_flow_id, 0, MAX_FLOW_ID);
    v.optional("TaskTemplateId", &req.task_template_id, 1, MAX_TEMPLATE_ID);
    v.optional(
        "PreviousContactId",
        &req.previous_contact_id,
        1,
        MAX_CONTACT_ID,
    );
    v.optional(
        "RelatedContactId",
        &req.related_contact_id,
        1,
        MAX_CONTACT_ID,
    );
    match &req.client_token {
        Some(token) => v.length("ClientToken", token, 1, MAX_CLIENT_TOKEN),
        // Connect's SDK would invent a random token, and a redelivery would open a second task.
        None => v.add(
            "ClientToken",
            "is required (the bridge never sends a request without one)",
        ),
    }

    let flows: Vec<&str> = [
        ("ContactFlowId", &req.contact_flow_id),
        ("QuickConnectId", &req.quick_connect_id),
        ("TaskTemplateId", &req.task_template_id),
    ]
    .into_iter()
    .filter(|(_, value)| value.is_some())
    .map(|(name, _)| name)
    .collect();
    match flows.len() {
        0 => v.add(
            "ContactFlowId",
            "one of ContactFlowId, QuickConnectId or TaskTemplateId is required (set a default in the environment or the route)",
        ),
        1 => {}
        _ => v.add(
            flows.join("/"),
            "only one of ContactFlowId, QuickConnectId and TaskTemplateId may be given",
        ),
    }

    if let Some(attributes) = &req.attributes {
        check_attributes(&mut v, attributes);
    }
    if let Some(references) = &req.references {
        check_references(&mut v, references);
    }
    if let Some(time) = &req.scheduled_time {
        let secs = time.epoch_secs();
        if secs < now.secs() {
            v.add("ScheduledTime", "is in the past");
        } else if secs > now.secs() + MAX_SCHEDULE_AHEAD_SECS {
            v.add(
                "ScheduledTime",
                format!(
                    "must be at most {MAX_SCHEDULE_AHEAD_DAYS} days ahead ({} seconds from now, limit {MAX_SCHEDULE_AHEAD_SECS})",
                    secs - now.secs()
                ),
            );
        }
    }
    if let Some(segments) = &req.segment_attributes {
        for (name, value) in segments {
            let field = format!("SegmentAttributes.{name}");
            v.length(&field, name, 1, MAX_SEGMENT_NAME);
            check_segment_value(&mut v, &field, value, 0);
        }
    }
    if let Some(attachments) = &req.attachments {
        if attachments.is_empty() || attachments.len() > MAX_ATTACHMENTS {
            v.add(
                "Attachments",
                format!(
                    "must hold 1 to {MAX_ATTACHMENTS} items (got {})",
                    attachments.len()
                ),
            );
        }
        for (i, a) in attachments.iter().enumerate() {
            let field = format!("Attachments[{i}].FileName");
            v.length(&field, &a.file_name, 1, MAX_FILE_NAME);
            if a.file_name.chars().any(is_unprintable) {
                v.add(field, "must contain only printable characters");
            }
            v.length(&format!("Attachments[{i}].S3Url"), &a.s3_url, 1, MAX_S3_URL);
        }
    }
    v.into_result()
}

/// Tags per TagContact call, and their key and value lengths (lifecycle model slice).
const MAX_TAGS: usize = 6;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// Checks what an update, reschedule or tag sends (the lifecycle model slice's shapes, and the
/// rules they share with StartTaskContact) before the call.
pub fn validate_action(req: &TaskRequest, plan: &Plan, now: DateTime) -> Result<(), BridgeError> {
    let mut v = Violations::default();
    match &req.instance_id {
        Some(id) => v.length("InstanceId", id, 1, MAX_INSTANCE_ID),
        None => v.add("InstanceId", "is required"),
    }
    match plan.action {
        Action::Update => {
            v.optional("Name", &req.name, 0, MAX_NAME);
            v.optional("Description", &req.description, 0, MAX_DESCRIPTION);
            if let Some(attributes) = &req.attributes {
                check_attributes(&mut v, attributes);
            }
            if let Some(references) = &req.references {
                check_references(&mut v, references);
            }
            if let Some(segments) = &req.segment_attributes {
                for (name, value) in segments {
                    let field = format!("SegmentAttributes.{name}");
                    v.length(&field, name, 1, MAX_SEGMENT_NAME);
                    check_segment_value(&mut v, &field, value, 0);
                }
            }
        }
        Action::Reschedule => match &req.scheduled_time {
            None => v.add("ScheduledTime", "is required to reschedule"),
            Some(time) => {
                let secs = time.epoch_secs();
                if secs < now.secs() {
                    v.add("ScheduledTime", "is in the past");
                } else if secs > now.secs() + MAX_SCHEDULE_AHEAD_SECS {
                    v.add(
                        "ScheduledTime",
                        format!("must be at most {MAX_SCHEDULE_AHEAD_DAYS} days ahead"),
                    );
                }
            }
        },
        Action::Tag => {
            if plan.tags.is_empty() || plan.tags.len() > MAX_TAGS {
                v.add("Tags", format!("must hold 1 to {MAX_TAGS} tags"));
            }
            for (i, (key, value)) in plan.tags.iter().enumerate() {
                let field = member_field("Tags", i, key);
                v.length(&field, key, 1, MAX_TAG_KEY);
                if key.starts_with("aws:")
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-=._:/".contains(c))
                {
                    v.add(
                        &field,
                        "key may contain only letters, digits and + - = . _ : / and must not start with aws:",
                    );
                }
                if value.chars().count() > MAX_TAG_VALUE {
                    v.add(
                        &field,
                        format!("value must be at most {MAX_TAG_VALUE} characters"),
                    );
                }
            }
        }
        Action::Start | Action::Stop => {}
    }
    v.into_result()
}

fn check_attributes(v: &mut Violations, attributes: &BTreeMap<String, String>) {
    let mut total = 0usize;
    for (i, (key, value)) in attributes.iter().enumerate() {
        let field = member_field("Attributes", i, key);
        v.length(&field, key, 1, MAX_ATTRIBUTE_PART);
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            v.add(&field, "key may contain only letters, digits, '-' and '_'");
        }
        if value.chars().count() > MAX_ATTRIBUTE_PART {
            v.add(
                &field,
                format!("value must be at most {MAX_ATTRIBUTE_PART} characters"),
            );
        }
        total += key.len() + value.len();
    }
    if total > MAX_ATTRIBUTES_BYTES {
        v.add(
            "Attributes",
            format!(
                "keys and values total {total} UTF-8 bytes; the limit is {MAX_ATTRIBUTES_BYTES}"
            ),
        );
    }
}

fn check_references(v: &mut Violations, references: &BTreeMap<String, crate::task::TaskReference>) {
    let mut total = 0usize;
    for (i, (key, reference)) in references.iter().enumerate() {
        let field = member_field("References", i, key);
        v.length(&field, key, 1, MAX_REFERENCE_KEY);
        if reference.value.chars().count() > MAX_REFERENCE_VALUE {
            v.add(
                &field,
                format!("value must be at most {MAX_REFERENCE_VALUE} characters"),
            );
        }
        let kind = reference.kind.as_str();
        if !CREATABLE_REFERENCE_TYPES.contains(&kind) {
            let why = if MODEL_REFERENCE_TYPES.contains(&kind) {
                "cannot be set when a task is created"
            } else {
                "is not a reference type"
            };
            v.add(
                format!("{field}.Type"),
                format!("{why}; use one of {}", CREATABLE_REFERENCE_TYPES.join(", ")),
            );
        }
        match kind {
            "DATE" if reference.value.parse::<i64>().is_err() => v.add(
                &field,
                "a DATE reference's value must be an epoch timestamp",
            ),
            "NUMBER" if reference.value.trim().parse::<f64>().is_err() => {
                v.add(&field, "a NUMBER reference's value must be a number")
            }
            _ => {}
        }
        if let Some(status) = &reference.status {
            if !REFERENCE_STATUSES.contains(&status.as_str()) {
                v.add(
                    format!("{field}.Status"),
                    format!(
                        "is not a reference status; use one of {}",
                        REFERENCE_STATUSES.join(", ")
                    ),
                );
            }
        }
        if let Some(arn) = &reference.arn {
            v.length(&format!("{field}.Arn"), arn, 20, 256);
        }
        if let Some(reason) = &reference.status_reason {
            v.length(&format!("{field}.StatusReason"), reason, 0, 100);
        }
        total += key.len() + reference.value.len();
    }
    if total > MAX_REFERENCES_BYTES {
        v.add(
            "References",
            format!(
                "keys and values total {total} UTF-8 bytes; the limit is {MAX_REFERENCES_BYTES}"
            ),
        );
    }
}

fn check_segment_value(v: &mut Violations, field: &str, value: &SegmentValue, depth: usize) {
    if depth > MAX_SEGMENT_DEPTH {
        v.add(
            field,
            format!("nests deeper than {MAX_SEGMENT_DEPTH} levels"),
        );
        return;
    }
    let members = [
        value.value_string.is_some(),
        value.value_integer.is_some(),
        value.value_list.is_some(),
        value.value_map.is_some(),
        value.value_arn.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if members != 1 {
        v.add(
            field,
            format!("must set exactly one of ValueString, ValueInteger, ValueList, ValueMap, ValueArn (got {members})"),
        );
    }
    if let Some(s) = &value.value_string {
        v.length(&format!("{field}.ValueString"), s, 0, MAX_SEGMENT_STRING);
    }
    if let Some(s) = &value.value_arn {
        v.length(&format!("{field}.ValueArn"), s, 0, MAX_SEGMENT_STRING);
    }
    if let Some(i) = value.value_integer {
        if i32::try_from(i).is_err() {
            v.add(
                format!("{field}.ValueInteger"),
                "does not fit a 32-bit integer",
            );
        }
    }
    if let Some(list) = &value.value_list {
        for (i, item) in list.iter().enumerate() {
            check_segment_value(v, &format!("{field}.ValueList[{i}]"), item, depth + 1);
        }
    }
    if let Some(map) = &value.value_map {
        for (name, item) in map {
            let sub = format!("{field}.ValueMap.{name}");
            v.length(&sub, name, 1, MAX_SEGMENT_NAME);
            check_segment_value(v, &sub, item, depth + 1);
        }
    }
}

/// The model's FileName pattern is `^\P{C}*$`: no control, format, surrogate, private-use or
/// unassigned code points. Unassigned ones would need Unicode tables; the rest are checked.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
            | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}'
            | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

/// Keys are user data of any length; error messages show a bounded prefix.
/// How an error names a map member: by its key when the key has the shape of a name (what a
/// mapping's author writes: letters, digits, '-' and '_', at most 40), else by its position in
/// key order: a key is the caller's text, and errors reach the log and the runtime's answer.
pub fn member_field(map: &str, index: usize, key: &str) -> String {
    let name_like = (1..=40).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name_like {
        format!("{map}.{key}")
    } else {
        format!("{map}[{index}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{ScheduledTime, TaskAttachment, TaskReference};

    const NOW: i64 = 1_800_000_000;

    fn valid() -> TaskRequest {
        TaskRequest {
            instance_id: Some("inst".into()),
            contact_flow_id: Some("flow".into()),
            name: Some("A task".into()),
            client_token: Some("tok".into()),
            ..Default::default()
        }
    }

    fn check(req: &TaskRequest) -> Result<(), String> {
        validate(req, DateTime::from_secs(NOW)).map_err(|e| e.to_string())
    }

    fn fails_on(req: &TaskRequest, field: &str) -> String {
        let err = check(req).expect_err("should fail");
        assert!(err.contains(field), "error should name {field}: {err}");
        err
    }

    #[test]
    fn a_minimal_request_passes() {
        check(&valid()).unwrap();
    }

    #[test]
    fn required_members() {
        let mut r = valid();
        r.instance_id = None;
        r.name = Some("  ".into());
        r.client_token = None;
        let err = check(&r).unwrap_err();
        for f in ["InstanceId", "Name", "ClientToken"] {
            assert!(err.contains(f), "{err}");
        }
    }

    #[test]
    fn lengths_count_characters_at_the_bounds() {
        let mut r = valid();
        r.name = Some("é".repeat(MAX_NAME));
        check(&r).unwrap();
        r.name = Some("é".repeat(MAX_NAME + 1));
        fails_on(&r, "Name");

        let mut r = valid();
        r.description = Some("x".repeat(MAX_DESCRIPTION + 1));
        fails_on(&r, "Description");
        let mut r = valid();
        r.previous_contact_id = Some(String::new());
        fails_on(&r, "PreviousContactId");
        let mut r = valid();
        r.client_token = Some("t".repeat(501));
        fails_on(&r, "ClientToken");
        let mut r = valid();
        r.instance_id = Some("i".repeat(101));
        fails_on(&r, "InstanceId");
    }

    #[test]
    fn exactly_one_flow() {
        let mut r = valid();
        r.task_template_id = Some("tpl".into());
        fails_on(&r, "ContactFlowId/TaskTemplateId");
        r.contact_flow_id = None;
        check(&r).unwrap();
        r.task_template_id = None;
        fails_on(
            &r,
            "one of ContactFlowId, QuickConnectId or TaskTemplateId is required",
        );
    }

    #[test]
    fn attribute_keys_and_total_bytes() {
        let mut r = valid();
        r.attributes = Some(BTreeMap::from([("order id".into(), "1".into())]));
        // A key that is not name-like is named by its position, never quoted.
        fails_on(&r, "Attributes[0]");

        // Exactly at the byte limit passes; one byte over fails. "é" is two bytes.
        let key = "k".to_string();
        let at_limit = "é".repeat((MAX_ATTRIBUTES_BYTES - 1) / 2)
            + if (MAX_ATTRIBUTES_BYTES - 1) % 2 == 1 {
                "x"
            } else {
                ""
            };
        let mut r = valid();
        r.attributes = Some(BTreeMap::from([(key.clone(), at_limit.clone())]));
        assert_eq!(key.len() + at_limit.len(), MAX_ATTRIBUTES_BYTES);
        check(&r).unwrap();
        r.attributes = Some(BTreeMap::from([(key, at_limit + "y")]));
        let err = fails_on(&r, "Attributes");
        assert!(err.contains("32768"), "{err}");
    }

    #[test]
    fn references_types_values_and_total() {
        let reference = |kind: &str, value: &str| TaskReference {
            value: value.into(),
            kind: kind.into(),
            ..Default::default()
        };
        let mut r = valid();
        r.references = Some(BTreeMap::from([
            ("link".into(), reference("URL", "https://example.com")),
            ("due".into(), reference("DATE", "1800000000")),
            ("amount".into(), reference("NUMBER", "12.5")),
        ]));
        check(&r).unwrap();

        r.references = Some(BTreeMap::from([("f".into(), reference("ATTACHMENT", "x"))]));
        let err = fails_on(&r, "References.f.Type");
        assert!(
            err.contains("cannot be set when a task is created"),
            "{err}"
        );
        r.references = Some(BTreeMap::from([("f".into(), reference("BLOB", "x"))]));
        fails_on(&r, "not a reference type");
        r.references = Some(BTreeMap::from([(
            "d".into(),
            reference("DATE", "tomorrow"),
        )]));
        fails_on(&r, "epoch");

        r.references = Some(BTreeMap::from([
            ("a".into(), reference("STRING", &"x".repeat(2048))),
            ("b".into(), reference("STRING", &"x".repeat(2047))),
        ]));
        let err = fails_on(&r, "References");
        assert!(err.contains("4097") && err.contains("4096"), "{err}");
    }

    #[test]
    fn scheduled_time_window() {
        let mut r = valid();
        r.scheduled_time = Some(ScheduledTime::from_epoch_secs(
            NOW + MAX_SCHEDULE_AHEAD_SECS,
        ));
        check(&r).unwrap();
        r.scheduled_time = Some(ScheduledTime::from_epoch_secs(
            NOW + MAX_SCHEDULE_AHEAD_SECS + 1,
        ));
        fails_on(&r, "90 days");
        // Connect has accepted up to 90 days since May 2026; 30 days ahead is fine.
        r.scheduled_time = Some(ScheduledTime::from_epoch_secs(NOW + 30 * 24 * 3600));
        check(&r).unwrap();
        r.scheduled_time = Some(ScheduledTime::from_epoch_secs(NOW - 1));
        fails_on(&r, "in the past");
    }

    #[test]
    fn segment_attributes() {
        let expiry = SegmentValue::contact_expiry(60);
        let mut r = valid();
        r.segment_attributes = Some(BTreeMap::from([("connect:ContactExpiry".into(), expiry)]));
        check(&r).unwrap();

        r.segment_attributes = Some(BTreeMap::from([(
            "x".into(),
            SegmentValue {
                value_string: Some("a".into()),
                value_integer: Some(1),
                ..Default::default()
            },
        )]));
        fails_on(&r, "exactly one");
        r.segment_attributes = Some(BTreeMap::from([(
            "x".into(),
            SegmentValue {
                value_integer: Some(i64::from(i32::MAX) + 1),
                ..Default::default()
            },
        )]));
        fails_on(&r, "ValueInteger");
        r.segment_attributes = Some(BTreeMap::from([(
            "n".repeat(129),
            SegmentValue {
                value_string: Some("a".into()),
                ..Default::default()
            },
        )]));
        fails_on(&r, "at most 128");
    }

    #[test]
    fn attachments() {
        let a = |name: &str| TaskAttachment {
            file_name: name.into(),
            s3_url: "https://bucket.s3.amazonaws.com/x?sig".into(),
        };
        let mut r = valid();
        r.attachments = Some(vec![a("report.pdf")]);
        check(&r).unwrap();
        r.attachments = Some(vec![a("x"); 6]);
        fails_on(&r, "1 to 5");
        r.attachments = Some(vec![a("bad\u{0007}name")]);
        fails_on(&r, "printable");
        r.attachments = Some(vec![a("zero\u{200B}width")]);
        fails_on(&r, "printable");
    }

    #[test]
    fn all_violations_are_reported_together() {
        let mut r = valid();
        r.name = Some("n".repeat(2000));
        r.description = Some("d".repeat(5000));
        let err = check(&r).unwrap_err();
        assert!(err.starts_with("Name, Description:"), "{err}");
    }
}
