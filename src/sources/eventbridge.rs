//! EventBridge events (rules, scheduled rules, a bus's targets): one record per event, its
//! identity the event `id` EventBridge assigns; answered with the ContactId or an error (async
//! retries, then the on-failure destination).

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::IgnoredAny;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{async_answer, parse, single, Envelope, OpenContext, Source, Storage};
use crate::error::BridgeError;
use crate::record::{Body, Content, Record, SourceKind, SourceMeta};
use crate::token::{canonical_digest, stamp, vouched_event, Identity};

/// Its records' kind: `when.source: eventbridge`.
pub const KIND: SourceKind = SourceKind::new("eventbridge");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::Never,
    holdable: true,
    task_name: Some("{{ meta.detail_type }} ({{ meta.source }})"),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    obj.contains_key("detail-type") && obj.contains_key("source")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    Ok(single(KIND, eventbridge(payload)))
}

fn eventbridge(payload: Value) -> Result<Record, BridgeError> {
    let event: EventBridgeEvent<Value> = parse(&payload, "EventBridge event")?;
    // Every event EventBridge delivers has an id. One without (typed by hand, invoked directly)
    // has no identity to tell its redelivery from another event: refused, never guessed.
    let id = event
        .id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| {
            BridgeError::InvalidEvent("EventBridge event: id is missing or empty".into())
        })?;
    let meta = EventBridgeMeta {
        source: event.source,
        detail_type: event.detail_type,
        account: event.account,
        region: event.region,
        // The time as EventBridge wrote it, not as re-formatted by a date library.
        time: payload
            .get("time")
            .and_then(Value::as_str)
            .map(str::to_string),
        resources: event.resources.unwrap_or_default(),
    };
    let identity = vouched_event(
        &id,
        &canonical_digest(&payload),
        stamp(meta.time.as_deref()),
    );
    Ok(Record::event(
        KIND,
        id,
        identity,
        Arc::new(payload),
        Content::new(Body::value(event.detail), Arc::new(meta)),
    ))
}

/// What an EventBridge event's identity and `meta` are made of, read without building its
/// detail: an event that arrives in an SQS message (a rule whose target is a queue) is probed
/// when the batch is opened, and its detail parsed only when its record is handled.
#[derive(Deserialize)]
struct Header {
    id: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    account: Option<String>,
    region: Option<String>,
    time: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[allow(dead_code)]
    detail: IgnoredAny,
}

/// The record of an EventBridge event carried whole in an SQS message body: the event's own
/// identity (the same event delivered directly and through a queue is one task), `meta` as for a
/// direct event plus `via`. None when the body is not an event.
pub(super) fn from_queued(body: &str) -> Option<Result<QueuedEvent, BridgeError>> {
    if !body.trim_start().starts_with('{') || !body.contains("\"detail-type\"") {
        return None;
    }
    let header: Header = serde_json::from_str(body).ok()?;
    let Some(id) = header.id.filter(|id| !id.trim().is_empty()) else {
        return Some(Err(BridgeError::InvalidEvent(
            "EventBridge event in the message: id is missing or empty".into(),
        )));
    };
    // What the event says, as a direct delivery of it reads it (the whole event, canonical).
    let content = match serde_json::from_str::<Value>(body) {
        Ok(event) => canonical_digest(&event),
        Err(_) => {
            return Some(Err(BridgeError::InvalidEvent(
                "EventBridge event in the message is not JSON".into(),
            )))
        }
    };
    let identity = vouched_event(&id, &content, stamp(header.time.as_deref()));
    let meta = EventBridgeMeta {
        source: header.source,
        detail_type: header.detail_type,
        account: header.account,
        region: header.region,
        time: header.time,
        resources: header.resources,
    };
    Some(Ok(QueuedEvent {
        kind: KIND,
        identity,
        body: Body::text_at(body.to_string(), "/detail"),
        attributes: BTreeMap::new(),
        meta: Arc::new(meta),
    }))
}

/// An event of another source found inside a message: what its record takes from it.
pub(super) struct QueuedEvent {
    pub kind: SourceKind,
    pub identity: Identity,
    pub body: Body,
    pub attributes: BTreeMap<String, String>,
    pub meta: Arc<dyn SourceMeta>,
}

/// `meta` of an EventBridge event.
#[derive(Debug, Serialize)]
struct EventBridgeMeta {
    source: String,
    detail_type: String,
    account: Option<String>,
    region: Option<String>,
    time: Option<String>,
    resources: Vec<String>,
}

impl SourceMeta for EventBridgeMeta {
    fn event_type(&self) -> Option<(&str, &str)> {
        Some((&self.source, &self.detail_type))
    }
}
