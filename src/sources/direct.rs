//! Direct invocations (`aws lambda invoke`, Step Functions, EventBridge Scheduler): the payload
//! is a StartTaskContact request in the CLI skeleton's shape, merged over the configured
//! defaults; its own ClientToken is sent unchanged (our ctb<N>- prefixes refused), else its
//! identity is a digest of the canonical payload. Answered as EventBridge is.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{async_answer, single, Envelope, OpenContext, Source, Storage};
use crate::error::BridgeError;
use crate::record::{Record, SourceKind};
use crate::task::{TaskRequest, MEMBER_NAMES};
use crate::token::{canonical_json, digest_parts, is_reserved, Identity};

/// Its records' kind: `when.source: direct`.
pub const KIND: SourceKind = SourceKind::new("direct");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::OnThrottle,
    holdable: true,
    // Never routed (see `routable_kinds`): no default task name.
    task_name: None,
};

fn recognise(obj: &Map<String, Value>) -> bool {
    obj.keys().any(|k| MEMBER_NAMES.contains(&k.as_str()))
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    Ok(single(KIND, direct(payload)))
}

fn direct(payload: Value) -> Result<Record, BridgeError> {
    // A Step Functions task (`lambda:invoke.waitForTaskToken`) adds its token beside the
    // members: kept for the task table, never sent to Connect.
    let task_token = match payload.get("TaskToken") {
        None => None,
        Some(Value::String(token)) if !token.trim().is_empty() => Some(token.clone()),
        Some(_) => {
            return Err(BridgeError::InvalidEvent(
                "TaskToken must be a non-empty string".into(),
            ))
        }
    };
    let request = match &task_token {
        None => TaskRequest::deserialize(&payload),
        Some(_) => {
            let mut members = payload.clone();
            if let Some(obj) = members.as_object_mut() {
                obj.remove("TaskToken");
            }
            TaskRequest::deserialize(&members)
        }
    }
    .map_err(|e| {
        BridgeError::InvalidEvent(format!(
            "StartTaskContact request: {}",
            crate::error::without_data(&e.to_string())
        ))
    })?;
    let identity = match &request.client_token {
        Some(token) if is_reserved(token) => {
            return Err(BridgeError::InvalidEvent(
                "ClientToken: the prefixes ctb<N>- are reserved for the tokens this function derives from events".into(),
            ))
        }
        // Sent to Connect unchanged (see `prepare`); the identity only names the record.
        Some(token) => Identity::Caller {
            namespace: "direct-token",
            value: token.clone(),
        },
        None => Identity::Caller {
            namespace: "direct",
            value: digest_parts(&[canonical_json(&payload).as_bytes()]),
        },
    };
    Ok(Record::direct(
        KIND,
        identity.value().to_string(),
        identity,
        Arc::new(payload),
        request,
        task_token,
    ))
}
