//! A local Lambda Runtime API (2018-06-01): the function binary polls
//! `/runtime/invocation/next` and posts `/response` or `/error` over HTTP exactly as in AWS;
//! the harness queues invocations and awaits their results.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

pub const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:function:connect-task-bridge";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `/response`: the function's answer.
    Response(Value),
    /// `/error`: the function reported an error.
    Error { error_type: String, message: String },
}

#[derive(Debug)]
pub enum InvokeError {
    /// No answer before the deadline (Lambda: "Task timed out").
    TimedOut,
    /// The function reported an init error instead of polling.
    InitFailed(String),
    /// The runtime API was stopped.
    Stopped,
    /// The function process ended (for example a refused configuration at cold start).
    Exited(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::TimedOut => write!(f, "the invocation timed out"),
            InvokeError::InitFailed(e) => write!(f, "the function failed its init: {e}"),
            InvokeError::Stopped => write!(f, "the runtime API stopped"),
            InvokeError::Exited(status) => write!(f, "the function process exited ({status})"),
        }
    }
}

impl std::error::Error for InvokeError {}

struct Pending {
    id: String,
    payload: Value,
    deadline: SystemTime,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    init_error: Mutex<Option<String>>,
    init_notify: Notify,
    started: Instant,
    /// Time from start to the first `next` poll, in microseconds (0: none yet).
    first_poll_us: AtomicU64,
    /// A deadline to report instead of each invocation's own, as some emulators do (cargo
    /// lambda sends a constant `600000`).
    reported_deadline: Mutex<Option<SystemTime>>,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    sender: mpsc::UnboundedSender<Pending>,
    counter: AtomicU64,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            init_notify: Notify::new(),
            started: Instant::now(),
            first_poll_us: AtomicU64::new(0),
            reported_deadline: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let (stop, join) = crate::serve(listener, app);
        Ok(RuntimeApi {
            addr,
            shared,
            sender,
            counter: AtomicU64::new(0),
            stop: Some(stop),
            join: Some(join),
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Time from `start` to the function's first poll for work, once it has polled.
    pub fn first_poll(&self) -> Option<Duration> {
        match self.shared.first_poll_us.load(Ordering::SeqCst) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Reports `deadline` in `Lambda-Runtime-Deadline-Ms` for every invocation from now on (None:
    /// each invocation's own), to play emulators whose deadline is not an epoch time.
    pub fn report_deadline(&self, deadline: Option<SystemTime>) {
        *self.shared.reported_deadline.lock().unwrap() = deadline;
    }

    pub fn init_error(&self) -> Option<String> {
        self.shared.init_error.lock().unwrap().clone()
    }

    /// Queues one invocation with `timeout` as its deadline and waits for its end.
    pub async fn invoke(
        &self,
        payload: Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(id.clone(), tx);
        let sent = self.sender.send(Pending {
            id: id.clone(),
            payload,
            deadline: SystemTime::now() + timeout,
        });
        if sent.is_err() {
            return Err(InvokeError::Stopped);
        }
        let init_failed = async {
            loop {
                let notified = self.shared.init_notify.notified();
                if let Some(e) = self.init_error() {
                    return e;
                }
                notified.await;
            }
        };
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, rx) => match r {
                Ok(Ok(inv)) => Ok(inv),
                Ok(Err(_)) => Err(InvokeError::Stopped),
                Err(_) => Err(InvokeError::TimedOut),
            },
            e = init_failed => Err(InvokeError::InitFailed(e)),
        };
        self.shared.waiting.lock().unwrap().remove(&id);
        result
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            join.abort();
            let _ = join.await;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            join.abort();
        }
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let elapsed = shared.started.elapsed().as_micros().max(1) as u64;
    let _ = shared
        .first_poll_us
        .compare_exchange(0, elapsed, Ordering::SeqCst, Ordering::SeqCst);
    let pending = shared.queue.lock().await.recv().await;
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    let reported = *shared.reported_deadline.lock().unwrap();
    let deadline_ms = reported
        .unwrap_or(p.deadline)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        h.insert(k, v.parse().expect("header-safe value"));
    };
    put(&mut headers, "lambda-runtime-aws-request-id", p.id.clone());
    put(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline_ms.to_string(),
    );
    put(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        FUNCTION_ARN.into(),
    );
    put(
        &mut headers,
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{:024x};Sampled=0", 1),
    );
    put(&mut headers, "content-type", "application/json".into());
    (StatusCode::OK, headers, p.payload.to_string()).into_response()
}

fn finish(shared: &Shared, id: &str, result: Invocation) -> StatusCode {
    match shared.waiting.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let status = finish(&shared, &id, Invocation::Response(value));
    (status, axum::Json(json!({"status": "OK"}))).into_response()
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error_type = v["errorType"]
        .as_str()
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("Unknown")
        .to_string();
    let message = v["errorMessage"].as_str().unwrap_or_default().to_string();
    let status = finish(
        &shared,
        &id,
        Invocation::Error {
            error_type,
            message,
        },
    );
    (status, axum::Json(json!({"status": "OK"}))).into_response()
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = format!(
        "{}: {}",
        v["errorType"].as_str().unwrap_or("Unknown"),
        v["errorMessage"].as_str().unwrap_or_default()
    );
    *shared.init_error.lock().unwrap() = Some(message);
    shared.init_notify.notify_waiters();
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}
