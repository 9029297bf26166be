//! What the stand-in's Connect operations share: the tasks and their states, the task templates
//! a task may be started from, the faults to inject, the counters, the answers (errors as
//! Connect spells them, SigV4 refusals) and the contact events Connect would emit.
//! StartTaskContact and the task-template operations (`connect`) and the lifecycle operations
//! (`lifecycle`) both build on it; neither needs the other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sigv4::Signer;

/// A task's state, as the stand-in tracks it.
pub const QUEUED: &str = "QUEUED";
pub const CONNECTED: &str = "CONNECTED";
pub const ENDED: &str = "ENDED";

/// Faults to inject, settable at start and through `PUT /admin/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of requests (0..1) answered with ThrottlingException.
    pub throttle: f64,
    /// Share of requests answered with InternalServiceException.
    pub internal: f64,
    /// Added latency: a uniform draw in 0..=latency_ms per request.
    pub latency_ms: u64,
    /// A fixed delay before every answer.
    pub delay_ms: u64,
    /// Share of requests that are carried out but answered only after `hang_ms`: the caller
    /// times out although the task exists, the case client tokens are for.
    pub hang: f64,
    pub hang_ms: u64,
    /// A token bucket like Connect's per-account quota: requests per second and burst.
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    /// Another caller of the same quota (another function, a person with the console), taking
    /// this many tokens per second from the bucket before ours get any.
    pub other_caller_rate: f64,
    /// Operations answered with an error code instead of being carried out (e.g.
    /// `{"GetContactAttributes": "InternalServiceException"}`), with the status the model
    /// gives the code.
    pub failing: std::collections::BTreeMap<String, String>,
    /// Every other operation's own token bucket, by operation name (Connect's quotas are per
    /// operation: `Quota::connect` gives them). An operation not named here is not throttled;
    /// StartTaskContact's bucket is `rate`/`burst` above. Throttled as StartTaskContact's
    /// bucket is: 429 ThrottlingException.
    pub quotas: std::collections::BTreeMap<String, Quota>,
}

/// One operation's token bucket: requests per second and burst.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub rate: f64,
    pub burst: u32,
}

impl Quota {
    /// Connect's default per-operation quotas (docs: Amazon Connect service quotas) for the
    /// operations the function calls after StartTaskContact, their rates multiplied by `scale`
    /// as the surge scales StartTaskContact's: UpdateContactSchedule 2/s burst 5; StopContact,
    /// UpdateContact, UpdateContactAttributes, GetContactAttributes, DescribeContact 10/s
    /// burst 15; TagContact 20/s burst 25.
    pub fn connect(scale: f64) -> std::collections::BTreeMap<String, Quota> {
        let q = |rate: f64, burst| Quota {
            rate: rate * scale,
            burst,
        };
        [
            ("UpdateContactSchedule", q(2.0, 5)),
            ("StopContact", q(10.0, 15)),
            ("UpdateContact", q(10.0, 15)),
            ("UpdateContactAttributes", q(10.0, 15)),
            ("GetContactAttributes", q(10.0, 15)),
            ("DescribeContact", q(10.0, 15)),
            ("TagContact", q(20.0, 25)),
        ]
        .into_iter()
        .map(|(name, quota)| (name.to_string(), quota))
        .collect()
    }
}

/// One operation's requests and the share of them its bucket throttled.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationStats {
    pub requests: u64,
    pub throttled: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub contact_id: String,
    pub client_token: Option<String>,
    pub created_at: f64,
    /// The request as received (the stand-in is a local tool: it keeps everything).
    pub request: Value,
    /// QUEUED, CONNECTED (an agent accepted it) or ENDED.
    pub state: String,
    /// Members UpdateContact / UpdateContactSchedule changed since (Name, Description, ...).
    pub current: serde_json::Map<String, Value>,
    /// User-defined attributes as they stand now.
    pub attributes: serde_json::Map<String, Value>,
    pub tags: serde_json::Map<String, Value>,
    /// Lifecycle calls that changed it.
    pub updates: u32,
    /// When a lifecycle call last changed it (epoch seconds).
    pub updated_at: Option<f64>,
    pub disconnect_reason: Option<String>,
    /// When it ended (epoch seconds).
    pub ended_at: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub created: u64,
    /// Requests whose client token named a task that already existed.
    pub replayed: u64,
    pub throttled: u64,
    pub internal_errors: u64,
    pub invalid: u64,
    pub not_found: u64,
    pub quota_exceeded: u64,
    pub auth_failures: u64,
    pub hung: u64,
    /// Valid StopContact, UpdateContact* and TagContact requests.
    pub lifecycle_requests: u64,
    /// CreateTaskTemplate, GetTaskTemplate and ListTaskTemplates requests that passed the
    /// signature and the model, on a known instance.
    pub template_requests: u64,
    /// Requests (signed right) and throttles per operation: StartTaskContact and the lifecycle
    /// operations. (`requests` and `throttled` above are StartTaskContact's.)
    pub operations: std::collections::BTreeMap<String, OperationStats>,
}

pub(crate) struct Inner {
    pub(crate) tasks: Vec<Task>,
    /// Contact events, in the order they happened.
    pub(crate) events: Vec<Value>,
    pub(crate) by_token: HashMap<String, usize>,
    pub(crate) per_previous: HashMap<String, u32>,
    pub(crate) stats: Stats,
    pub(crate) faults: Faults,
    pub(crate) rng: fastrand::Rng,
    pub(crate) bucket: Option<(f64, Instant)>,
    /// The other operations' buckets (`Faults::quotas`): tokens and when they were counted.
    pub(crate) buckets: HashMap<String, (f64, Instant)>,
    /// Task templates in GetTaskTemplate's answer shape, in the order they were made (seeded,
    /// created or put through the admin endpoint); kept across `POST /admin/reset`.
    pub(crate) templates: Vec<Value>,
    /// CreateTaskTemplate's client tokens: (instance, token) → template ID.
    pub(crate) template_tokens: HashMap<(String, String), String>,
}

impl Inner {
    /// Counts a request to `operation` and takes a token from its bucket (`Faults::quotas`);
    /// false (and counted as throttled) when the bucket is empty.
    pub(crate) fn admit(&mut self, operation: &str) -> bool {
        let admitted = match self.faults.quotas.get(operation).copied() {
            Some(quota) if quota.rate > 0.0 => {
                let burst = f64::from(quota.burst.max(1));
                let now = Instant::now();
                let (tokens, last) = self.buckets.get(operation).copied().unwrap_or((burst, now));
                let elapsed = now.duration_since(last).as_secs_f64();
                let tokens = (tokens + elapsed * quota.rate).min(burst);
                let admitted = tokens >= 1.0;
                let left = if admitted { tokens - 1.0 } else { tokens };
                self.buckets.insert(operation.to_string(), (left, now));
                admitted
            }
            _ => true,
        };
        let counted = self
            .stats
            .operations
            .entry(operation.to_string())
            .or_default();
        counted.requests += 1;
        if !admitted {
            counted.throttled += 1;
        }
        admitted
    }

    /// The template `id` of `instance`.
    pub(crate) fn template(&self, instance: &str, id: &str) -> Option<&Value> {
        self.templates
            .iter()
            .find(|t| t["InstanceId"] == instance && t["Id"] == id)
    }
}

pub(crate) struct Shared {
    pub(crate) signer: Signer,
    pub(crate) instances: Vec<String>,
    pub(crate) inner: Mutex<Inner>,
}

pub(crate) fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(json!({"message": message.into()}))).into_response();
    response.headers_mut().insert(
        "x-amzn-errortype",
        code.parse().expect("error codes are header-safe"),
    );
    response
}

pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Checks the request's SigV4 signature as Connect does; the answer to a refused one.
#[allow(clippy::result_large_err)]
pub(crate) fn verify_signature(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    shared
        .signer
        .verify(method.as_str(), path, headers, body, SystemTime::now())
        .map_err(|e| {
            shared.inner.lock().unwrap().stats.auth_failures += 1;
            error(e.status, e.code, e.message)
        })
}

pub(crate) fn uuid_like(rng: &mut fastrand::Rng) -> String {
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.u32(0..16), 16).expect("a hex digit"))
        .collect();
    // Version 4, RFC 4122 variant, as Connect's ContactIds are.
    let variant = ['8', '9', 'a', 'b'][rng.usize(0..4)];
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The `failing` fault that holds an operation's answer back instead of refusing it.
pub const HANG: &str = "Hang";

/// The HTTP status the lifecycle model gives an error code.
pub(crate) fn status_of(code: &str) -> u16 {
    match code {
        "InternalServiceException" => 500,
        "ThrottlingException" | "LimitExceededException" => 429,
        "ResourceNotFoundException" => 404,
        "ContactNotFoundException" => 410,
        "ServiceQuotaExceededException" => 402,
        "AccessDeniedException" => 403,
        "ConflictException" => 409,
        _ => 400,
    }
}

/// A contact event as Connect puts it on the default bus: no user-defined attributes.
pub(crate) fn contact_event(task: &Task, event_type: &str, reason: Option<&str>) -> Value {
    let instance = task.request["InstanceId"].as_str().unwrap_or_default();
    let mut rng = fastrand::Rng::new();
    let mut detail = json!({
        "eventType": event_type,
        "contactId": task.contact_id,
        "initialContactId": task.contact_id,
        "channel": "TASK",
        "initiationMethod": "API",
        "instanceArn": format!("arn:aws:connect:{}:{}:instance/{instance}", crate::LOCAL_REGION, crate::ACCOUNT),
        "initiationTimestamp": iso(task.created_at),
        "tags": task.tags,
    });
    if let Some(previous) = task.request.get("PreviousContactId") {
        detail["previousContactId"] = previous.clone();
    }
    if let Some(related) = task.request.get("RelatedContactId") {
        detail["relatedContactId"] = related.clone();
    }
    if let Some(reason) = reason {
        detail["disconnectReason"] = json!(reason);
        detail["disconnectTimestamp"] = json!(iso(now_secs()));
    }
    json!({
        "version": "0",
        "id": uuid_like(&mut rng),
        "detail-type": "Amazon Connect Contact Event",
        "source": "aws.connect",
        "account": crate::ACCOUNT,
        "time": iso(now_secs()),
        "region": crate::LOCAL_REGION,
        "resources": [detail["instanceArn"].clone(), json!(format!("{}/contact/{}", detail["instanceArn"].as_str().unwrap_or_default(), task.contact_id))],
        "detail": detail,
    })
}

fn iso(secs: f64) -> String {
    chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_800_000_000.5), "2027-01-15T08:00:00.500Z");
    }
}
