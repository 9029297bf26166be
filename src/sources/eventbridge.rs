//! EventBridge events (rules, scheduled rules, a bus's targets): one record per event, its
//! identity the event `id` EventBridge assigns; answered with the ContactId or an error (async
//! retries, then the on-failure destination).

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{async_answer, parse, single, Envelope, OpenContext, Source, Storage};
use crate::error::BridgeError;
use crate::record::{Body, Record, SourceKind};
use crate::token::Identity;

pub const SOURCE: Source = Source {
    kinds: &[SourceKind::EventBridge],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::Never,
};

fn recognise(obj: &Map<String, Value>) -> bool {
    obj.contains_key("detail-type") && obj.contains_key("source")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    Ok(single(SourceKind::EventBridge, eventbridge(payload)))
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
    let mut meta = serde_json::Map::new();
    meta.insert("source".into(), json!(event.source));
    meta.insert("detail_type".into(), json!(event.detail_type));
    meta.insert("account".into(), json!(event.account));
    meta.insert("region".into(), json!(event.region));
    // The time as EventBridge wrote it, not as re-formatted by a date library.
    meta.insert(
        "time".into(),
        payload.get("time").cloned().unwrap_or(Value::Null),
    );
    meta.insert("resources".into(), json!(event.resources));
    Ok(Record {
        kind: SourceKind::EventBridge,
        identity: Identity::Service(id.clone()),
        id,
        body: Body::value(event.detail),
        raw_body: None,
        headers: BTreeMap::new(),
        attributes: BTreeMap::new(),
        meta,
        event: payload,
        direct: None,
        order_key: None,
        linked_contact: None,
        queue_message: None,
    })
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
    let mut meta = serde_json::Map::new();
    meta.insert("source".into(), json!(header.source));
    meta.insert("detail_type".into(), json!(header.detail_type));
    meta.insert("account".into(), json!(header.account));
    meta.insert("region".into(), json!(header.region));
    meta.insert("time".into(), json!(header.time));
    meta.insert("resources".into(), json!(header.resources));
    Some(Ok(QueuedEvent {
        kind: SourceKind::EventBridge,
        identity: Identity::Service(id),
        body: Body::text_at(body.to_string(), "/detail"),
        attributes: BTreeMap::new(),
        meta,
    }))
}

/// An event of another source found inside a message: what its record takes from it.
pub(super) struct QueuedEvent {
    pub kind: SourceKind,
    pub identity: Identity,
    pub body: Body,
    pub attributes: BTreeMap<String, String>,
    pub meta: serde_json::Map<String, Value>,
}
