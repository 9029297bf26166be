//! SQS queues through a Lambda event source mapping: one record per message, its identity the
//! `messageId` SQS keeps across receives (never the FIFO deduplication id, unique for five
//! minutes only). A FIFO queue's messages are handled in order within each message group (a
//! standard queue's, fair queues included, in any order). Answered with a partial batch response
//! listing every failed message, permanent or transient, so it is retried or reaches the DLQ.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsMessage;
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::{
    batch_answer, is_records_of, parse, take_records, Envelope, OpenContext, RecordError, Source,
    Storage,
};
use super::{contact_event, eventbridge, sns};
use crate::error::BridgeError;
use crate::queue::{self, QueueMessage};
use crate::record::{within_budget, Body, Content, Record, SourceKind, SourceMeta, ToJson, Work};
use crate::token::Identity;

/// Its records' kind: `when.source: sqs`.
pub const KIND: SourceKind = SourceKind::new("sqs");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: batch_answer,
    storage: Storage::Never,
    holdable: true,
    task_name: Some("Message from {{ meta.queue_name }}"),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    is_records_of(obj, "aws:sqs")
}

fn open(payload: Value, ctx: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    let items = take_records(payload);
    let first = items
        .first()
        .ok_or_else(|| BridgeError::InvalidEvent("Records is empty".into()))?;
    // A FIFO batch keeps order within each message group. Only a FIFO queue's ARN says
    // so: a standard queue's messages may carry a MessageGroupId too (fair queues), and
    // they are not ordered.
    let fifo = first
        .get("eventSourceARN")
        .and_then(Value::as_str)
        .is_some_and(|arn| arn.ends_with(".fifo"));
    let records = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let id = item
                .get("messageId")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string);
            let group = item
                .pointer("/attributes/MessageGroupId")
                .and_then(Value::as_str)
                .filter(|_| fifo)
                .map(str::to_string);
            match id {
                Some(id) => sqs_message(item, ctx)
                    .map(|mut record| {
                        record.order_key = group.clone();
                        record
                    })
                    .map_err(|error| RecordError {
                        id: id.clone(),
                        error,
                        order_key: group,
                    }),
                // Without a messageId (or with an empty one) the record cannot be reported
                // as a batch item failure, nor told from another: the frame is broken and
                // the whole batch must be retried.
                None => Err(RecordError {
                    id: String::new(),
                    order_key: None,
                    error: BridgeError::InvalidEvent(format!(
                        "SQS record {i} has no messageId (missing or empty)"
                    )),
                }),
            }
        })
        .collect::<Vec<_>>();
    if let Some(Err(bad)) = records
        .iter()
        .find(|r| matches!(r, Err(e) if e.id.is_empty()))
    {
        return Err(BridgeError::InvalidEvent(bad.error.to_string()));
    }
    Ok(Envelope {
        kind: KIND,
        fifo,
        records,
    })
}

fn sqs_message(item: Value, ctx: &OpenContext<'_>) -> Result<Record, BridgeError> {
    let msg: SqsMessage = parse(&item, "SQS record")?;
    let id = msg.message_id.clone().unwrap_or_default();
    let attributes = msg
        .message_attributes
        .iter()
        .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
        .collect();
    // The messageId, which SQS keeps across redeliveries, FIFO queues included. Never the
    // MessageDeduplicationId: SQS holds it unique for five minutes only (and per group with
    // per-group deduplication), so two different messages can share it.
    let identity = Identity::Service(id.clone());
    let queue_arn = msg.event_source_arn.clone().unwrap_or_default();
    let meta = SqsMeta {
        queue_name: queue_arn.rsplit(':').next().unwrap_or_default().to_string(),
        fifo: queue_arn.ends_with(".fifo"),
        queue_arn: queue_arn.clone(),
        message_group_id: msg.attributes.get("MessageGroupId").cloned(),
        sent_timestamp: msg.attributes.get("SentTimestamp").cloned(),
        receive_count: msg.attributes.get("ApproximateReceiveCount").cloned(),
    };
    let body = msg.body.unwrap_or_default();
    // However the body is read below (an envelope, a wrapped event, the message's own JSON),
    // its parsed form must fit the function's memory.
    within_budget(&body, "message body")?;
    let queue_message = msg
        .receipt_handle
        .clone()
        .map(|receipt_handle| QueueMessage {
            queue_arn: queue_arn.clone(),
            receipt_handle,
            message_id: id.clone(),
            receive_count: msg
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok()),
        });
    // A request the function queued itself (a webhook in `queued` mode, a throttled direct
    // request) is opened as it was when it came in, judged at the time SQS says it was sent.
    if let Some(queued) = queue::queued_payload(&body, ctx.envelope) {
        let sent_at = msg
            .attributes
            .get("SentTimestamp")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .ok_or_else(|| {
                BridgeError::InvalidEvent(
                    "a queued request needs the SentTimestamp attribute".into(),
                )
            })?;
        let queued = queued?;
        let holds = queued.holds;
        let mut record = super::open_queued(
            queued.payload,
            &OpenContext {
                now: sent_at,
                verified: queued.signed,
                unsigned: !queued.signed,
                ..*ctx
            },
        )?;
        record.id = id;
        if let Work::Route(content) = &mut record.work {
            content.meta = Arc::new(ViaSqs {
                inner: Arc::clone(&content.meta),
                sqs: meta,
            });
        }
        record.queue_message = queue_message;
        record.queued_at = Some(sent_at);
        record.holds = holds;
        return Ok(record);
    }
    // Connect's contact events (the lifecycle's rule targets the queue): heard, not routed.
    if let Some(event) = contact_event::from_queued(&body) {
        let mut record = event?;
        record.id = id;
        record.queue_message = queue_message;
        return Ok(record);
    }
    // An EventBridge event (a rule whose target is the queue) or an SNS notification (a
    // subscription without raw delivery) is treated as that event, with its own identity; the
    // record keeps the messageId for the batch answer, and `meta.via` says how it arrived.
    let queued = eventbridge::from_queued(&body).or_else(|| sns::from_queued(&body));
    if let Some(inner) = queued {
        let inner = inner?;
        return Ok(Record {
            queue_message,
            ..Record::event(
                inner.kind,
                id,
                inner.identity,
                Arc::new(item),
                Content {
                    attributes: inner.attributes,
                    ..Content::new(
                        inner.body,
                        Arc::new(ViaSqs {
                            inner: inner.meta,
                            sqs: meta,
                        }),
                    )
                },
            )
        });
    }
    Ok(Record {
        queue_message,
        ..Record::event(
            KIND,
            id,
            identity,
            Arc::new(item),
            Content {
                attributes,
                ..Content::new(Body::text(body), Arc::new(meta))
            },
        )
    })
}

/// The kind of event an SQS message body carries whole with its own identity (a contact
/// event, an EventBridge event, an SNS notification), read as `open` reads it; None for any
/// other body (a producer's message, whose identity is its `messageId`, or an envelope). A body
/// of one of these moves between queues as it is and stays the same event (`redrive`).
pub fn wrapped_event(body: &str) -> Option<Result<SourceKind, BridgeError>> {
    if let Some(event) = contact_event::from_queued(body) {
        return Some(event.map(|_| contact_event::KIND));
    }
    eventbridge::from_queued(body)
        .or_else(|| sns::from_queued(body))
        .map(|inner| inner.map(|inner| inner.kind))
}

/// `meta` of an SQS message.
#[derive(Debug, Serialize)]
struct SqsMeta {
    queue_name: String,
    queue_arn: String,
    fifo: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receive_count: Option<String>,
}

impl SourceMeta for SqsMeta {}

/// `meta` of an event of another source that arrived in an SQS message: that source's fields,
/// `via: sqs` and the message's own under `sqs`.
#[derive(Debug)]
struct ViaSqs {
    inner: Arc<dyn SourceMeta>,
    sqs: SqsMeta,
}

impl Serialize for ViaSqs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = match self.inner.to_json() {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        fields.insert("via".into(), json!("sqs"));
        fields.insert("sqs".into(), self.sqs.to_json());
        fields.serialize(serializer)
    }
}

impl SourceMeta for ViaSqs {
    fn event_type(&self) -> Option<(&str, &str)> {
        self.inner.event_type()
    }
}
