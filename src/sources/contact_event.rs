//! Amazon Connect's own contact events (`source: aws.connect`, `detail-type: Amazon Connect
//! Contact Event`, from an EventBridge rule on the default bus): how the tasks this function
//! opened end. One record per event, its identity the event `id`; the work is the lifecycle's
//! (`lifecycle::Lifecycle::hear`), never a route: a contact event never opens a task. Events of
//! other channels are answered and ignored. Answered as EventBridge is (async retries, then the
//! on-failure destination).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{async_answer, single, Envelope, OpenContext, Source, Storage};
use crate::error::BridgeError;
use crate::plan::ending_of;
use crate::record::{Record, SourceKind};
use crate::token::Identity;

/// Its records' kind: `connect_event`.
pub const KIND: SourceKind = SourceKind::new("connect_event");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::Never,
    holdable: false,
    // Never routed (see `routable_kinds`): no default task name.
    task_name: None,
};

fn recognise(obj: &Map<String, Value>) -> bool {
    obj.get("source").and_then(Value::as_str) == Some("aws.connect")
        && obj.get("detail-type").and_then(Value::as_str) == Some("Amazon Connect Contact Event")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    Ok(single(KIND, contact_event(payload)))
}

fn contact_event(payload: Value) -> Result<Record, BridgeError> {
    let id = payload
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| BridgeError::InvalidEvent("contact event: id is missing or empty".into()))?
        .to_string();
    let detail = payload.get("detail").cloned().unwrap_or(Value::Null);
    let is_task = detail.get("channel").and_then(Value::as_str) == Some("TASK");
    let ending = if is_task {
        Some(ending_of(&detail).ok_or_else(|| {
            BridgeError::InvalidEvent("contact event: contactId or eventType is missing".into())
        })?)
    } else {
        None
    };
    Ok(Record::heard(
        KIND,
        id.clone(),
        Identity::Service(id),
        Arc::new(payload),
        ending,
    ))
}

/// A contact event carried whole in an SQS message body (the template's rule targets the task
/// queue): opened as delivered directly, with the event's own identity. None when the body is
/// not one.
pub(super) fn from_queued(body: &str) -> Option<Result<Record, BridgeError>> {
    if !body.contains("\"aws.connect\"") || !body.contains("Amazon Connect Contact Event") {
        return None;
    }
    let payload: Value = serde_json::from_str(body).ok()?;
    payload
        .as_object()
        .is_some_and(recognise)
        .then(|| contact_event(payload))
}
