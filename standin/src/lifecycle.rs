//! What happens to a task after StartTaskContact, as Connect serves it: StopContact,
//! UpdateContact, UpdateContactAttributes, UpdateContactSchedule, GetContactAttributes and
//! TagContact (restJson1, SigV4, checked against the lifecycle model slice), and the contact
//! events Connect publishes to EventBridge. An agent's part is played through admin endpoints
//! (`POST /admin/contacts/{id}/{accept|complete|expire}`); the events a task produced are at
//! `GET /admin/events`, for a test or the demo to deliver to the function as EventBridge would.
//!
//! Disconnect reasons follow the contact record's data model: `API` when StopContact ended the
//! task, `EXPIRED` when it expired, `AGENT_DISCONNECT` when an agent completed it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::model::lifecycle;
use crate::state::{
    contact_event, error, now_secs, status_of, verify_signature, Shared, Task, CONNECTED, ENDED,
    HANG,
};

/// Verifies the signature and the body against the operation's model; the parsed body (with
/// the URI's members merged in) or the error answer. (The error is the answer itself, built
/// once per request: boxing it would buy nothing.)
#[allow(clippy::result_large_err)]
fn accept(
    shared: &Shared,
    operation: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    uri_members: &[(&str, &str)],
) -> Result<Map<String, Value>, Response> {
    verify_signature(shared, method, uri, headers, body)?;
    if !shared.inner.lock().unwrap().admit(operation) {
        return Err(error(
            429,
            "ThrottlingException",
            format!("Rate exceeded: the {operation} quota is exhausted"),
        ));
    }
    let failing: Option<String> = shared
        .inner
        .lock()
        .unwrap()
        .faults
        .failing
        .get(operation)
        .cloned();
    if let Some(code) = failing.filter(|c| c != HANG) {
        return Err(error(status_of(&code), &code, "injected fault"));
    }
    let mut request = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(error(
                    400,
                    "InvalidRequestException",
                    "The request body is not a JSON object",
                ))
            }
        }
    };
    for (name, value) in uri_members {
        request.insert((*name).to_string(), json!(value));
    }
    let mut problems = lifecycle().violations_of(operation, &Value::Object(request.clone()));
    if let Some(tags) = request.get("Tags").and_then(Value::as_object) {
        if tags.keys().any(|k| k.starts_with("aws:")) {
            problems.push("Tags: a key must not start with aws:".into());
        }
    }
    if !problems.is_empty() {
        shared.inner.lock().unwrap().stats.invalid += 1;
        return Err(error(
            400,
            "InvalidParameterException",
            format!(
                "{} validation error(s) detected: {}",
                problems.len(),
                problems.join("; ")
            ),
        ));
    }
    if operation == "UpdateContactSchedule" {
        if let Some(refused) = schedule_rules(&request) {
            return Err(refused);
        }
    }
    shared.inner.lock().unwrap().stats.lifecycle_requests += 1;
    Ok(request)
}

/// A fault of `Hang` for the operation: the answer comes after the caller has given up.
async fn hold(shared: &Shared, operation: &str) {
    let hang = shared
        .inner
        .lock()
        .unwrap()
        .faults
        .failing
        .get(operation)
        .map(String::as_str)
        == Some(HANG);
    if hang {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}

/// The task `ContactId` names on the instance, or the answer Connect gives when there is none.
#[allow(clippy::result_large_err)]
fn find<'a>(
    tasks: &'a mut [Task],
    request: &Map<String, Value>,
    id_member: &str,
) -> Result<&'a mut Task, Response> {
    let id = request
        .get(id_member)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let instance = request
        .get("InstanceId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    tasks
        .iter_mut()
        .find(|t| t.contact_id == id && t.request["InstanceId"] == instance)
        .ok_or_else(|| error(404, "ResourceNotFoundException", "Contact not found"))
}

fn ended_error() -> Response {
    error(
        410,
        "ContactNotFoundException",
        "The contact is no longer active",
    )
}

fn ok() -> Response {
    Json(json!({})).into_response()
}

/// A request as every operation receives it.
pub(crate) struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Which tasks an operation may act on.
#[derive(Clone, Copy, PartialEq)]
enum Reach {
    /// Only a task that has not ended (ContactNotFoundException otherwise).
    Live,
    /// Any task (attributes and tags of an ended contact can still be written).
    Any,
}

/// The common path of the operations that change a task: signature and model checked, the
/// task found by `id_member` on its instance, `act` applied, the change counted; `ok` or the
/// answer Connect gives.
fn on_task(
    shared: &Shared,
    operation: &str,
    received: &Received,
    uri_members: &[(&str, &str)],
    id_member: &str,
    reach: Reach,
    act: impl FnOnce(&Map<String, Value>, &mut Task) -> Option<Value>,
) -> Response {
    let Received {
        method,
        uri,
        headers,
        body,
    } = received;
    let request = match accept(shared, operation, method, uri, headers, body, uri_members) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut inner = shared.inner.lock().unwrap();
    let inner = &mut *inner;
    let task = match find(&mut inner.tasks, &request, id_member) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if reach == Reach::Live && task.state == ENDED {
        return ended_error();
    }
    task.updates += 1;
    task.updated_at = Some(now_secs());
    if let Some(event) = act(&request, task) {
        inner.events.push(event);
    }
    ok()
}

pub(crate) async fn stop_contact(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hold(&shared, "StopContact").await;
    let received = Received {
        method,
        uri,
        headers,
        body,
    };
    on_task(
        &shared,
        "StopContact",
        &received,
        &[],
        "ContactId",
        Reach::Live,
        |_, task| Some(end(task, "API")),
    )
}

pub(crate) async fn update_contact(
    State(shared): State<Arc<Shared>>,
    Path((instance, contact)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hold(&shared, "UpdateContact").await;
    let received = Received {
        method,
        uri,
        headers,
        body,
    };
    let members = [
        ("InstanceId", instance.as_str()),
        ("ContactId", contact.as_str()),
    ];
    on_task(
        &shared,
        "UpdateContact",
        &received,
        &members,
        "ContactId",
        Reach::Live,
        |request, task| {
            for member in ["Name", "Description", "References", "SegmentAttributes"] {
                if let Some(value) = request.get(member) {
                    task.current.insert(member.to_string(), value.clone());
                }
            }
            Some(contact_event(task, "CONTACT_DATA_UPDATED", None))
        },
    )
}

pub(crate) async fn update_contact_attributes(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hold(&shared, "UpdateContactAttributes").await;
    let received = Received {
        method,
        uri,
        headers,
        body,
    };
    // Attributes can be updated after the contact ended (the contact record is updated).
    on_task(
        &shared,
        "UpdateContactAttributes",
        &received,
        &[],
        "InitialContactId",
        Reach::Any,
        |request, task| {
            merge(&mut task.attributes, request.get("Attributes"));
            None
        },
    )
}

pub(crate) async fn update_contact_schedule(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hold(&shared, "UpdateContactSchedule").await;
    let received = Received {
        method,
        uri,
        headers,
        body,
    };
    on_task(
        &shared,
        "UpdateContactSchedule",
        &received,
        &[],
        "ContactId",
        Reach::Live,
        |request, task| {
            task.current
                .insert("ScheduledTime".into(), request["ScheduledTime"].clone());
            None
        },
    )
}

/// StartTaskContact's rules for a time (not in the past, at most 90 days ahead), which
/// UpdateContactSchedule applies too; checked after the model, before the task is looked up.
fn schedule_rules(request: &Map<String, Value>) -> Option<Response> {
    let violations: Vec<String> = crate::rules::violations(
        &json!({"ScheduledTime": request.get("ScheduledTime")}),
        now_secs(),
    )
    .into_iter()
    .filter(|v| v.starts_with("ScheduledTime"))
    .collect();
    (!violations.is_empty()).then(|| error(400, "InvalidParameterException", violations.join("; ")))
}

pub(crate) async fn tag_contact(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    hold(&shared, "TagContact").await;
    let received = Received {
        method,
        uri,
        headers,
        body,
    };
    on_task(
        &shared,
        "TagContact",
        &received,
        &[],
        "ContactId",
        Reach::Any,
        |request, task| {
            merge(&mut task.tags, request.get("Tags"));
            None
        },
    )
}

/// Writes the entries of a JSON object into `into`.
fn merge(into: &mut Map<String, Value>, from: Option<&Value>) {
    if let Some(Value::Object(entries)) = from {
        for (k, v) in entries {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// The common path of the operations that read a task by the ids in their URI (GET, no body):
/// the hold, signature and model checked, the task found by `id_member` on its instance, then
/// `read` gives the answer.
async fn read_task(
    shared: &Shared,
    operation: &str,
    received: (Method, Uri, HeaderMap),
    (instance, contact): (&str, &str),
    id_member: &str,
    read: impl FnOnce(&Task) -> Value,
) -> Response {
    hold(shared, operation).await;
    let (method, uri, headers) = received;
    let members = [("InstanceId", instance), (id_member, contact)];
    let request = match accept(
        shared,
        operation,
        &method,
        &uri,
        &headers,
        &Bytes::new(),
        &members,
    ) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut inner = shared.inner.lock().unwrap();
    match find(&mut inner.tasks, &request, id_member) {
        Ok(task) => Json(read(task)).into_response(),
        Err(e) => e,
    }
}

pub(crate) async fn get_contact_attributes(
    State(shared): State<Arc<Shared>>,
    Path((instance, contact)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    read_task(
        &shared,
        "GetContactAttributes",
        (method, uri, headers),
        (&instance, &contact),
        "InitialContactId",
        |task| json!({"Attributes": task.attributes}),
    )
    .await
}

/// DescribeContact: what Connect says of a contact (the function confirms a contact event's
/// ending with it before acting on the event).
pub(crate) async fn describe_contact(
    State(shared): State<Arc<Shared>>,
    Path((instance, contact)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let arn_prefix = format!(
        "arn:aws:connect:{}:{}:instance/{instance}/contact/",
        crate::LOCAL_REGION,
        crate::ACCOUNT
    );
    read_task(
        &shared,
        "DescribeContact",
        (method, uri, headers),
        (&instance, &contact),
        "ContactId",
        |task| {
            let mut described = json!({
                "Id": task.contact_id,
                "InitialContactId": task.contact_id,
                "Arn": format!("{arn_prefix}{}", task.contact_id),
                "Channel": "TASK",
                "InitiationMethod": "API",
                "InitiationTimestamp": task.created_at,
                "Tags": task.tags,
            });
            if let Some(ended) = task.ended_at {
                described["DisconnectTimestamp"] = json!(ended);
            }
            if let Some(reason) = &task.disconnect_reason {
                described["DisconnectReason"] = json!(reason);
            }
            json!({ "Contact": described })
        },
    )
    .await
}

/// An agent's part: `accept` (CONNECTED_TO_AGENT), `complete` (DISCONNECTED by the agent, then
/// COMPLETED), `expire` (DISCONNECTED, EXPIRED). A body `{"attributes": {...}}` sets contact
/// attributes first, as a flow or the agent would. Answers the events it produced.
pub(crate) async fn admin_contact(
    State(shared): State<Arc<Shared>>,
    Path((contact, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let set: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match play(&shared, &contact, &action, &set) {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err((status, code, message)) => error(status, code, message),
    }
}

/// See `admin_contact`; the events, or the error's status, code and message.
pub(crate) fn play(
    shared: &Shared,
    contact: &str,
    action: &str,
    set: &Value,
) -> Result<Vec<Value>, (u16, &'static str, &'static str)> {
    let mut inner = shared.inner.lock().unwrap();
    let inner = &mut *inner;
    let Some(task) = inner.tasks.iter_mut().find(|t| t.contact_id == contact) else {
        return Err((404, "ResourceNotFoundException", "Contact not found"));
    };
    merge(&mut task.attributes, set.get("attributes"));
    if task.state == ENDED {
        return Err((409, "InvalidRequestException", "The contact has ended"));
    }
    let events = match action {
        "accept" => {
            task.state = CONNECTED.into();
            vec![contact_event(task, "CONNECTED_TO_AGENT", None)]
        }
        "complete" => {
            let disconnected = end(task, "AGENT_DISCONNECT");
            vec![
                disconnected,
                contact_event(task, "COMPLETED", Some("AGENT_DISCONNECT")),
            ]
        }
        "expire" => vec![end(task, "EXPIRED")],
        _ => return Err((400, "InvalidRequestException", "accept, complete or expire")),
    };
    inner.events.extend(events.iter().cloned());
    Ok(events)
}

pub(crate) async fn admin_events(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "events": shared.inner.lock().unwrap().events.clone() }))
}

/// Ends the task and gives its DISCONNECTED event.
fn end(task: &mut Task, reason: &str) -> Value {
    task.state = ENDED.into();
    task.disconnect_reason = Some(reason.to_string());
    task.ended_at = Some(now_secs());
    contact_event(task, "DISCONNECTED", Some(reason))
}
