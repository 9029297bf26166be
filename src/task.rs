//! The StartTaskContact request as this function holds it, in the shape printed by
//! `aws connect start-task-contact --generate-cli-skeleton` (PascalCase members).
//!
//! One type serves three purposes: a direct invocation's payload deserialises into it, the
//! mapping renders into it, and `render` prints it as `--cli-input-json` input. Keeping our own
//! serde type (rather than the SDK's builder) is what makes the request printable and comparable
//! in tests; `connect` turns it into the SDK call.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The request. A mapping's `task:` block is this type written in snake_case, every text a
/// template (the aliases; `schema` shows the mapping's view): adding a member here and to the SDK
/// call (`connect::build_call`) is all a new member needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schemars(rename_all = "snake_case", deny_unknown_fields)]
pub struct TaskRequest {
    /// From the configuration, never from a mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub instance_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "contact_flow_id"
    )]
    pub contact_flow_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "previous_contact_id"
    )]
    pub previous_contact_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "related_contact_id"
    )]
    pub related_contact_id: Option<String>,
    /// Contact attributes (keys: letters, digits, `-`, `_`).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "attributes")]
    pub attributes: Option<BTreeMap<String, String>>,
    /// The task's name (at most 1,024 characters).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "name")]
    pub name: Option<String>,
    /// References shown to the agent: URL, NUMBER, STRING, DATE (epoch) or EMAIL. With a task
    /// template, a reference named after a template field fills it, with the field's type: TEXT,
    /// TEXT_AREA, BOOLEAN (`true`/`false`), SINGLE_SELECT (one of its options) → STRING; NUMBER →
    /// NUMBER; DATE_TIME → DATE; URL → URL; EMAIL → EMAIL (docs/templates.md).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "references")]
    pub references: Option<BTreeMap<String, TaskReference>>,
    /// The description (at most 4,096 characters).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "description"
    )]
    pub description: Option<String>,
    /// From the record's identity or the route's `client_token`, never from a `task:` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub client_token: Option<String>,
    /// When the task is due: epoch seconds or ISO-8601, at most 90 days ahead.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "scheduled_time"
    )]
    pub scheduled_time: Option<ScheduledTime>,
    /// A task template (instead of a flow or a quick connect): its required fields must be
    /// filled, checked by `check --task-template` and before each call (docs/templates.md).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "task_template_id"
    )]
    pub task_template_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "quick_connect_id"
    )]
    pub quick_connect_id: Option<String>,
    /// In the SDK's shape (`{ValueString: ...}`, `{ValueMap: {...}}`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "segment_attributes"
    )]
    pub segment_attributes: Option<BTreeMap<String, SegmentValue>>,
    /// Up to 5 files: `{file_name, s3_url}` (a pre-signed URL).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "attachments"
    )]
    pub attachments: Option<Vec<TaskAttachment>>,
}

/// Every member name of the request, as the CLI skeleton spells them. Envelope detection uses it
/// to recognise a direct payload.
pub const MEMBER_NAMES: &[&str] = &[
    "InstanceId",
    "ContactFlowId",
    "PreviousContactId",
    "RelatedContactId",
    "Attributes",
    "Name",
    "References",
    "Description",
    "ClientToken",
    "ScheduledTime",
    "TaskTemplateId",
    "QuickConnectId",
    "SegmentAttributes",
    "Attachments",
];

/// A reference shown to the agent. `Status`, `Arn` and `StatusReason` exist in the model (the CLI
/// skeleton prints them), so a skeleton-shaped payload carrying them is accepted and passed on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schemars(rename_all = "snake_case", deny_unknown_fields)]
pub struct TaskReference {
    #[serde(default, alias = "value")]
    pub value: String,
    #[serde(rename = "Type", alias = "type")]
    #[schemars(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "status")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "arn")]
    pub arn: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "status_reason"
    )]
    pub status_reason: Option<String>,
}

/// A segment attribute value (e.g. `connect:ContactExpiry`). The model allows any combination of
/// members; Connect expects exactly one, which validation checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SegmentValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    /// Held wide so that an out-of-range integer is reported by validation, not by serde. Read
    /// from a number or from text (a template renders text).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integer_or_text"
    )]
    #[schemars(with = "Option<serde_json::Value>")]
    pub value_integer: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_list: Option<Vec<SegmentValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_map: Option<BTreeMap<String, SegmentValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_arn: Option<String>,
}

/// The segment attribute that sets how long a task may wait before it expires.
pub const CONTACT_EXPIRY: &str = "connect:ContactExpiry";

impl SegmentValue {
    /// The value of `connect:ContactExpiry`: `{ValueMap: {ExpiryDuration: {ValueInteger: minutes}}}`.
    pub fn contact_expiry(minutes: i64) -> SegmentValue {
        SegmentValue {
            value_map: Some(BTreeMap::from([(
                "ExpiryDuration".into(),
                SegmentValue {
                    value_integer: Some(minutes),
                    ..Default::default()
                },
            )])),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
#[schemars(rename_all = "snake_case", deny_unknown_fields)]
pub struct TaskAttachment {
    #[serde(alias = "file_name")]
    pub file_name: String,
    #[serde(rename = "S3Url", alias = "s3_url")]
    #[schemars(rename = "s3_url")]
    pub s3_url: String,
}

/// An integer, or text holding one.
fn integer_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Int(i) => Ok(Some(i)),
        Raw::Text(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("ValueInteger is not an integer")),
    }
}

/// A point in time, read from epoch seconds (integer or fractional) or an ISO-8601 / RFC 3339
/// string, and written as epoch seconds (what `--cli-input-json` accepts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduledTime(pub DateTime);

impl ScheduledTime {
    pub fn from_epoch_secs(secs: i64) -> Self {
        ScheduledTime(DateTime::from_secs(secs))
    }

    pub fn epoch_secs(&self) -> i64 {
        self.0.secs()
    }

    /// Parses the textual forms a user or a template may give: epoch seconds, or an ISO-8601 /
    /// RFC 3339 date-time with `Z`, `±hh:mm` or `±hhmm`. A date-time without a zone is taken as
    /// UTC, as the CLI skeleton's placeholder has none.
    ///
    /// chrono does the date arithmetic: it is already in the binary (aws_lambda_events' event
    /// types use it), so it costs nothing, and a hand-written offset parser here once sliced text
    /// by bytes and panicked on a multi-byte character. The message never quotes the text: it is
    /// event data and may reach a log line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<i64>() {
            return Ok(Self::from_epoch_secs(secs));
        }
        if let Ok(secs) = text.parse::<f64>() {
            if secs.is_finite() && secs.abs() < MAX_EPOCH_SECS {
                return Ok(ScheduledTime(DateTime::from_secs_f64(secs)));
            }
        }
        let with_zone = chrono::DateTime::parse_from_rfc3339(text)
            .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .map(|t| t.to_utc());
        let parsed = with_zone.or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        });
        parsed
            .map(|t| {
                // chrono keeps a leap second (`…:59:60`) as nanoseconds past 1e9, which
                // aws-smithy-types refuses with a panic (`make fuzz` found it): it is the next
                // second's start.
                let (secs, nanos) = (t.timestamp(), t.timestamp_subsec_nanos());
                let (secs, nanos) = match nanos.checked_sub(1_000_000_000) {
                    Some(past) => (secs.saturating_add(1), past),
                    None => (secs, nanos),
                };
                ScheduledTime(DateTime::from_secs_and_nanos(secs, nanos))
            })
            .map_err(|_| {
                "is neither epoch seconds nor an ISO-8601 date-time (e.g. 2026-11-24T15:00:00Z)"
                    .to_string()
            })
    }
}

/// Epoch seconds beyond this (year 33658) are no time anyone schedules a task for; floats past
/// it lose whole seconds of precision.
const MAX_EPOCH_SECS: f64 = 1e12;

impl Serialize for ScheduledTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            serializer.serialize_i64(self.0.secs())
        } else {
            serializer.serialize_f64(self.0.as_secs_f64())
        }
    }
}

impl JsonSchema for ScheduledTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScheduledTime".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Epoch seconds, or an ISO-8601 / RFC 3339 date-time",
            "type": ["string", "number"]
        })
    }
}

impl<'de> Deserialize<'de> for ScheduledTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(secs) => Ok(ScheduledTime::from_epoch_secs(secs)),
            Raw::Float(secs) if secs.is_finite() && secs.abs() < MAX_EPOCH_SECS => {
                Ok(ScheduledTime(DateTime::from_secs_f64(secs)))
            }
            Raw::Float(_) => Err(serde::de::Error::custom(
                "ScheduledTime must be epoch seconds within range",
            )),
            Raw::Text(text) => ScheduledTime::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// The configured values a request falls back on when it does not carry its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDefaults {
    pub instance_id: String,
    pub contact_flow_id: Option<String>,
    pub task_template_id: Option<String>,
    pub quick_connect_id: Option<String>,
}

impl TaskRequest {
    /// Fills what the request leaves unset from the configured defaults. The three ways of naming
    /// the flow are one choice: a request that names any of them keeps only its own, since sending
    /// two is an error at Connect.
    pub fn apply_defaults(&mut self, defaults: &TaskDefaults) {
        if self.instance_id.is_none() {
            self.instance_id = Some(defaults.instance_id.clone());
        }
        let names_flow = self.contact_flow_id.is_some()
            || self.task_template_id.is_some()
            || self.quick_connect_id.is_some();
        if !names_flow {
            self.contact_flow_id = defaults.contact_flow_id.clone();
            self.task_template_id = defaults.task_template_id.clone();
            self.quick_connect_id = defaults.quick_connect_id.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_skeleton_shape_deserialises() {
        let payload = serde_json::json!({
            "InstanceId": "i-1",
            "ContactFlowId": "flow-1",
            "PreviousContactId": "p",
            "RelatedContactId": "r",
            "Attributes": {"KeyName": ""},
            "Name": "n",
            "References": {"KeyName": {"Value": "", "Type": "URL", "Status": "AVAILABLE", "Arn": "", "StatusReason": ""}},
            "Description": "d",
            "ClientToken": "t",
            "ScheduledTime": "1970-01-01T00:00:00",
            "TaskTemplateId": "tt",
            "QuickConnectId": "q",
            "SegmentAttributes": {"KeyName": {"ValueString": "", "ValueMap": {"KeyName": {"ValueInteger": 0}}, "ValueInteger": 0, "ValueList": [], "ValueArn": ""}},
            "Attachments": [{"FileName": "f", "S3Url": "u"}]
        });
        let req: TaskRequest = serde_json::from_value(payload).unwrap();
        assert_eq!(req.scheduled_time.unwrap().epoch_secs(), 0);
        assert_eq!(req.references.unwrap()["KeyName"].kind, "URL");
        assert_eq!(req.attachments.unwrap()[0].s3_url, "u");
    }

    #[test]
    fn unknown_members_are_rejected_with_their_name() {
        let err =
            serde_json::from_value::<TaskRequest>(serde_json::json!({"Name": "n", "Nmae": "x"}))
                .unwrap_err()
                .to_string();
        assert!(err.contains("Nmae"), "{err}");
    }

    #[test]
    fn scheduled_time_accepts_epoch_and_iso_forms() {
        for (text, secs) in [
            ("1798200000", 1_798_200_000),
            ("2026-12-25T00:00:00Z", 1_798_156_800),
            ("2026-12-25T01:00:00+01:00", 1_798_156_800),
            ("2026-12-24T19:30:00-0430", 1_798_156_800),
            ("2026-12-25T00:00:00", 1_798_156_800),
        ] {
            assert_eq!(
                ScheduledTime::parse(text).unwrap().epoch_secs(),
                secs,
                "{text}"
            );
        }
        assert!(ScheduledTime::parse("tomorrow").is_err());
        assert_eq!(
            ScheduledTime::parse("2026-12-25T00:00:00.250Z")
                .unwrap()
                .0
                .subsec_nanos(),
            250_000_000
        );
        let t: ScheduledTime = serde_json::from_str("1798200000.5").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "1798200000.5");
    }

    #[test]
    fn a_leap_second_is_the_next_seconds_start() {
        for text in ["2026-12-31T23:59:60Z", "2026-12-24T9:3:60-0430"] {
            let t = ScheduledTime::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(t.0.subsec_nanos() < 1_000_000_000, "{text}");
        }
        assert_eq!(
            ScheduledTime::parse("2026-12-31T23:59:60Z")
                .unwrap()
                .epoch_secs(),
            ScheduledTime::parse("2027-01-01T00:00:00Z")
                .unwrap()
                .epoch_secs()
        );
    }

    #[test]
    fn malformed_times_are_refused_without_panicking_or_quoting_them() {
        // Each of these reached a byte-indexed slice of the old hand-written offset parser.
        for text in [
            "2026-11-24T10:00:00+1é2",
            "2026-11-24T10:00:00-é",
            "2026-11-24Té+00:00",
            "T+é1:00",
            "2026-11-24T10:00:00+99:99",
            "1e400",
            "-1e300",
            "",
        ] {
            let err = ScheduledTime::parse(text).unwrap_err();
            assert!(
                !text.is_empty() && !err.contains(text) || text.is_empty(),
                "{err}"
            );
            assert!(serde_json::from_value::<ScheduledTime>(serde_json::json!(text)).is_err());
        }
    }

    #[test]
    fn defaults_fill_gaps_but_never_add_a_second_flow() {
        let defaults = TaskDefaults {
            instance_id: "inst".into(),
            contact_flow_id: Some("flow".into()),
            ..Default::default()
        };
        let mut req = TaskRequest {
            task_template_id: Some("tpl".into()),
            ..Default::default()
        };
        req.apply_defaults(&defaults);
        assert_eq!(req.instance_id.as_deref(), Some("inst"));
        assert_eq!(req.contact_flow_id, None);

        let mut bare = TaskRequest::default();
        bare.apply_defaults(&defaults);
        assert_eq!(bare.contact_flow_id.as_deref(), Some("flow"));
    }
}
