//! EventBridge events (rules, scheduled rules, a bus's targets): one record per event, its
//! identity the event `id` EventBridge assigns; answered with the ContactId or an error (async
//! retries, then the on-failure destination).

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{json, Map, Value};

use super::{async_answer, parse, single, Envelope, OpenContext, Source};
use crate::error::BridgeError;
use crate::record::{Body, Record, SourceKind};
use crate::token::Identity;

pub const SOURCE: Source = Source {
    kinds: &[SourceKind::EventBridge],
    recognise,
    open,
    respond: async_answer,
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
    })
}
