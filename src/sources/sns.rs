//! SNS topics: one record per notification, its identity the `MessageId` SNS assigns;
//! answered as EventBridge is (async retries, then the on-failure destination).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::sns::SnsRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    async_answer, is_records_of, parse, take_records, Envelope, OpenContext, RecordError, Source,
    Storage,
};
use crate::error::BridgeError;
use crate::record::{within_budget, Body, Content, Record, SourceKind, SourceMeta};
use crate::token::{digest_parts, stamp, vouched_event};

use super::eventbridge::QueuedEvent;

/// Its records' kind: `when.source: sns`.
pub const KIND: SourceKind = SourceKind::new("sns");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::Never,
    holdable: true,
    task_name: Some(
        r#"{{ meta.subject or "Notification from " ~ meta.topic_arn.split(":")[-1] }}"#,
    ),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    is_records_of(obj, "aws:sns")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    let items = take_records(payload);
    Ok(Envelope {
        kind: KIND,
        fifo: false,
        records: items
            .into_iter()
            .map(|item| {
                let id = item
                    .pointer("/Sns/MessageId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                sns_record(item).map_err(|error| RecordError {
                    id,
                    error,
                    order_key: None,
                })
            })
            .collect(),
    })
}

fn sns_record(item: Value) -> Result<Record, BridgeError> {
    let rec: SnsRecord = parse(&item, "SNS record")?;
    let sns = rec.sns;
    if sns.message_id.trim().is_empty() {
        return Err(BridgeError::InvalidEvent(
            "SNS record: MessageId is missing or empty".into(),
        ));
    }
    within_budget(&sns.message, "notification message")?;
    let attributes = sns
        .message_attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let meta = SnsMeta {
        topic_arn: sns.topic_arn,
        subject: sns.subject,
        // As SNS wrote it, not as re-formatted by a date library.
        timestamp: item
            .pointer("/Sns/Timestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let identity = vouched_event(
        &sns.message_id,
        &notification_digest(
            &sns.message_id,
            &meta.topic_arn,
            meta.subject.as_deref(),
            &sns.message,
            meta.timestamp.as_deref(),
        ),
        stamp(meta.timestamp.as_deref()),
    );
    Ok(Record::event(
        KIND,
        sns.message_id,
        identity,
        Arc::new(item),
        Content {
            attributes,
            ..Content::new(Body::text(sns.message), Arc::new(meta))
        },
    ))
}

/// An SNS notification as SNS writes it into an SQS queue (a subscription without raw
/// delivery): the JSON envelope with `Type`, `MessageId`, `TopicArn` and `Message`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Queued {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    subject: Option<String>,
    message: String,
    timestamp: Option<String>,
    #[serde(default)]
    message_attributes: BTreeMap<String, QueuedAttribute>,
}

#[derive(Deserialize)]
struct QueuedAttribute {
    #[serde(rename = "Value")]
    value: String,
}

/// The record of an SNS notification carried in an SQS message body, with the notification's
/// own identity (the same notification delivered to the function directly and through a queue
/// is one task). None when the body is not a notification.
pub(super) fn from_queued(body: &str) -> Option<Result<QueuedEvent, BridgeError>> {
    if !body.trim_start().starts_with('{') || !body.contains("\"TopicArn\"") {
        return None;
    }
    let n: Queued = serde_json::from_str(body).ok()?;
    if n.kind != "Notification" {
        return None;
    }
    if n.message_id.trim().is_empty() {
        return Some(Err(BridgeError::InvalidEvent(
            "SNS notification in the message: MessageId is missing or empty".into(),
        )));
    }
    let identity = vouched_event(
        &n.message_id,
        &notification_digest(
            &n.message_id,
            &n.topic_arn,
            n.subject.as_deref(),
            &n.message,
            n.timestamp.as_deref(),
        ),
        stamp(n.timestamp.as_deref()),
    );
    let meta = SnsMeta {
        topic_arn: n.topic_arn,
        subject: n.subject,
        timestamp: n.timestamp,
    };
    Some(Ok(QueuedEvent {
        kind: KIND,
        identity,
        body: Body::text(n.message),
        attributes: n
            .message_attributes
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect(),
        meta: Arc::new(meta),
    }))
}

/// What a notification says, read alike whether SNS delivered it to the function or wrote it
/// into a queue (the two shapes share these members).
fn notification_digest(
    message_id: &str,
    topic_arn: &str,
    subject: Option<&str>,
    message: &str,
    timestamp: Option<&str>,
) -> String {
    digest_parts(&[
        message_id.as_bytes(),
        topic_arn.as_bytes(),
        subject.unwrap_or_default().as_bytes(),
        message.as_bytes(),
        timestamp.unwrap_or_default().as_bytes(),
    ])
}

/// `meta` of an SNS notification.
#[derive(Debug, Serialize)]
struct SnsMeta {
    topic_arn: String,
    subject: Option<String>,
    timestamp: Option<String>,
}

impl SourceMeta for SnsMeta {}
