//! The Connect stand-in: `PUT /contact/task` as Amazon Connect serves it (restJson1, SigV4,
//! the model's errors and statuses), with client-token idempotency, fault injection and admin
//! endpoints that show what it holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::lifecycle;
use crate::model::model;
use crate::rules;
use crate::sigv4::Signer;
use crate::state::{self, error, now_secs, uuid_like, verify_signature, Inner, Shared};
/// What a stand-in is started with and reports: defined beside the state both kinds of
/// operation share.
pub use crate::state::{Faults, Stats, Task};

/// At most this many tasks may name one PreviousContactId (then ServiceQuotaExceeded).
pub const MAX_TASKS_PER_PREVIOUS_CONTACT: u32 = 12;

#[derive(Debug, Clone)]
pub struct Options {
    pub signer: Signer,
    /// Instances that exist; empty means any instance ID is accepted.
    pub instances: Vec<String>,
    pub faults: Faults,
    pub seed: u64,
}

impl Options {
    /// Local credentials and region, the ones `make demo` and the tests give the function.
    pub fn local() -> Options {
        Options {
            signer: Signer {
                access_key: crate::LOCAL_ACCESS_KEY.into(),
                secret_key: crate::LOCAL_SECRET_KEY.into(),
                region: crate::LOCAL_REGION.into(),
                service: "connect".into(),
            },
            instances: Vec::new(),
            faults: Faults::default(),
            seed: 7,
        }
    }
}

/// A running stand-in on a loopback port. Dropping it stops the server.
pub struct ConnectStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl ConnectStandIn {
    /// Starts on `127.0.0.1:port` (0: an ephemeral port).
    pub async fn start(options: Options, port: u16) -> std::io::Result<ConnectStandIn> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            signer: options.signer,
            instances: options.instances,
            inner: Mutex::new(Inner {
                tasks: Vec::new(),
                events: Vec::new(),
                by_token: HashMap::new(),
                per_previous: HashMap::new(),
                stats: Stats::default(),
                faults: options.faults,
                rng: fastrand::Rng::with_seed(options.seed),
                bucket: None,
            }),
        });
        let app = Router::new()
            .route("/contact/task", put(start_task_contact))
            .route("/contact/stop", post(lifecycle::stop_contact))
            .route(
                "/contact/attributes",
                post(lifecycle::update_contact_attributes),
            )
            .route(
                "/contact/attributes/{instance}/{contact}",
                get(lifecycle::get_contact_attributes),
            )
            .route(
                "/contact/schedule",
                post(lifecycle::update_contact_schedule),
            )
            .route("/contact/tags", post(lifecycle::tag_contact))
            .route(
                "/contacts/{instance}/{contact}",
                post(lifecycle::update_contact).get(lifecycle::describe_contact),
            )
            .route(
                "/admin/contacts/{contact}/{action}",
                post(lifecycle::admin_contact),
            )
            .route("/admin/events", get(lifecycle::admin_events))
            .route("/admin/tasks", get(admin_tasks))
            .route("/admin/stats", get(admin_stats))
            .route("/admin/faults", get(admin_get_faults).put(admin_set_faults))
            .route("/admin/reset", post(admin_reset))
            .route("/health", get(|| async { "ok" }))
            .with_state(Arc::clone(&shared));
        let (stop, join) = crate::serve(listener, app);
        Ok(ConnectStandIn {
            addr,
            shared,
            stop: Some(stop),
            join: Some(join),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn tasks(&self) -> Vec<Task> {
        self.shared.inner.lock().unwrap().tasks.clone()
    }

    /// Plays the agent or the clock on a task (`accept`, `complete`, `expire`; see
    /// `POST /admin/contacts/{id}/{action}`), after setting `attributes` on it; the contact
    /// events that caused.
    pub fn agent(
        &self,
        contact_id: &str,
        action: &str,
        attributes: Value,
    ) -> Result<Vec<Value>, String> {
        lifecycle::play(
            &self.shared,
            contact_id,
            action,
            &json!({ "attributes": attributes }),
        )
        .map_err(|(_, code, message)| format!("{code}: {message}"))
    }

    /// The contact events so far.
    pub fn events(&self) -> Vec<Value> {
        self.shared.inner.lock().unwrap().events.clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.inner.lock().unwrap().stats.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.faults = faults;
        inner.bucket = None;
    }

    /// Stops accepting requests and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

impl Drop for ConnectStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the fault draw decided for one request.
enum Fault {
    None,
    Throttle(&'static str),
    Internal,
}

async fn start_task_contact(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = verify_signature(&shared, &method, &uri, &headers, &body) {
        return refused;
    }

    let failing: Option<String> = {
        let inner = shared.inner.lock().unwrap();
        inner.faults.failing.get("StartTaskContact").cloned()
    };
    if let Some(code) = failing {
        shared.inner.lock().unwrap().stats.requests += 1;
        return error(state::status_of(&code), &code, "injected fault");
    }
    let (wait, fault, hang) = {
        let mut inner = shared.inner.lock().unwrap();
        inner.stats.requests += 1;
        let f = inner.faults.clone();
        let mut wait = Duration::from_millis(f.delay_ms);
        if f.latency_ms > 0 {
            wait += Duration::from_millis(inner.rng.u64(0..=f.latency_ms));
        }
        let fault = if !take_from_bucket(&mut inner) {
            Fault::Throttle("Rate exceeded: the StartTaskContact quota is exhausted")
        } else if f.throttle > 0.0 && inner.rng.f64() < f.throttle {
            Fault::Throttle("Rate exceeded")
        } else if f.internal > 0.0 && inner.rng.f64() < f.internal {
            Fault::Internal
        } else {
            Fault::None
        };
        let hang =
            (f.hang > 0.0 && inner.rng.f64() < f.hang).then(|| Duration::from_millis(f.hang_ms));
        (wait, fault, hang)
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    match fault {
        Fault::Throttle(message) => {
            shared.inner.lock().unwrap().stats.throttled += 1;
            return error(429, "ThrottlingException", message);
        }
        Fault::Internal => {
            shared.inner.lock().unwrap().stats.internal_errors += 1;
            return error(500, "InternalServiceException", "Request processing failed");
        }
        Fault::None => {}
    }

    let response = create_task(&shared, &body);
    if let Some(hang) = hang {
        shared.inner.lock().unwrap().stats.hung += 1;
        tokio::time::sleep(hang).await;
    }
    response
}

fn take_from_bucket(inner: &mut Inner) -> bool {
    let Some(rate) = inner.faults.rate.filter(|r| *r > 0.0) else {
        return true;
    };
    let burst = f64::from(inner.faults.burst.unwrap_or(1).max(1));
    let now = Instant::now();
    let (tokens, last) = inner.bucket.unwrap_or((burst, now));
    let elapsed = now.duration_since(last).as_secs_f64();
    let other = (elapsed * inner.faults.other_caller_rate).max(0.0);
    let tokens = ((tokens + elapsed * rate).min(burst) - other).max(0.0);
    if tokens >= 1.0 {
        inner.bucket = Some((tokens - 1.0, now));
        true
    } else {
        inner.bucket = Some((tokens, now));
        false
    }
}

fn create_task(shared: &Shared, body: &[u8]) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            shared.inner.lock().unwrap().stats.invalid += 1;
            return error(
                400,
                "InvalidRequestException",
                "The request body is not a JSON object",
            );
        }
    };
    let mut problems = model().violations(&request);
    problems.extend(rules::violations(&request, now_secs()));
    if !problems.is_empty() {
        shared.inner.lock().unwrap().stats.invalid += 1;
        let code = if problems
            .iter()
            .any(|p| p.contains("only one of ContactFlowId"))
        {
            "InvalidRequestException"
        } else {
            "InvalidParameterException"
        };
        return error(
            400,
            code,
            format!(
                "{} validation error(s) detected: {}",
                problems.len(),
                problems.join("; ")
            ),
        );
    }
    let instance = request["InstanceId"].as_str().unwrap_or_default();
    if !shared.instances.is_empty() && !shared.instances.iter().any(|i| i == instance) {
        shared.inner.lock().unwrap().stats.not_found += 1;
        return error(
            404,
            "ResourceNotFoundException",
            format!("Instance {instance} not found"),
        );
    }

    let mut inner = shared.inner.lock().unwrap();
    let token = request
        .get("ClientToken")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(existing) = token.as_ref().and_then(|t| inner.by_token.get(t)).copied() {
        inner.stats.replayed += 1;
        let id = inner.tasks[existing].contact_id.clone();
        return Json(json!({"ContactId": id})).into_response();
    }
    if let Some(previous) = request.get("PreviousContactId").and_then(Value::as_str) {
        let count = inner.per_previous.entry(previous.to_string()).or_default();
        if *count >= MAX_TASKS_PER_PREVIOUS_CONTACT {
            inner.stats.quota_exceeded += 1;
            return error(
                402,
                "ServiceQuotaExceededException",
                format!(
                    "at most {MAX_TASKS_PER_PREVIOUS_CONTACT} tasks may share a PreviousContactId"
                ),
            );
        }
        *count += 1;
    }
    let contact_id = uuid_like(&mut inner.rng);
    let index = inner.tasks.len();
    let attributes = request
        .get("Attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let task = Task {
        contact_id: contact_id.clone(),
        client_token: token.clone(),
        created_at: now_secs(),
        request,
        state: state::QUEUED.into(),
        current: serde_json::Map::new(),
        attributes,
        tags: serde_json::Map::new(),
        updates: 0,
        disconnect_reason: None,
        ended_at: None,
    };
    inner
        .events
        .push(state::contact_event(&task, "INITIATED", None));
    inner.tasks.push(task);
    if let Some(token) = token {
        inner.by_token.insert(token, index);
    }
    inner.stats.created += 1;
    Json(json!({"ContactId": contact_id})).into_response()
}

async fn admin_tasks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let tasks = shared.inner.lock().unwrap().tasks.clone();
    Json(json!({ "tasks": tasks }))
}

async fn admin_stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(shared.inner.lock().unwrap().stats.clone())
}

async fn admin_get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.inner.lock().unwrap().faults.clone())
}

async fn admin_set_faults(
    State(shared): State<Arc<Shared>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    let mut inner = shared.inner.lock().unwrap();
    inner.faults = faults.clone();
    inner.bucket = None;
    Json(faults)
}

async fn admin_reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    let mut inner = shared.inner.lock().unwrap();
    inner.tasks.clear();
    inner.events.clear();
    inner.by_token.clear();
    inner.per_previous.clear();
    inner.stats = Stats::default();
    StatusCode::NO_CONTENT
}
