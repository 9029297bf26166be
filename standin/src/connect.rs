//! The Connect stand-in: `PUT /contact/task` as Amazon Connect serves it (restJson1, SigV4,
//! the model's errors and statuses), with client-token idempotency, fault injection and admin
//! endpoints that show what it holds; and the task templates a task may be started from
//! (CreateTaskTemplate, GetTaskTemplate, ListTaskTemplates at the paths the model binds them
//! to, seedable at start and through `PUT /admin/task-templates`), which StartTaskContact
//! enforces as Connect does (`rules::template_violations`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, post, put, MethodFilter};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::lifecycle;
use crate::model::{model, task_templates};
use crate::rules;
use crate::sigv4::Signer;
use crate::state::{
    self, error, now_secs, status_of, uuid_like, verify_signature, Inner, Shared, HANG,
};
/// What a stand-in is started with and reports: defined beside the state both kinds of
/// operation share.
pub use crate::state::{Faults, OperationStats, Quota, Stats, Task};

/// At most this many tasks may name one PreviousContactId (then ServiceQuotaExceeded).
pub const MAX_TASKS_PER_PREVIOUS_CONTACT: u32 = 12;

#[derive(Debug, Clone)]
pub struct Options {
    pub signer: Signer,
    /// Instances that exist; empty means any instance ID is accepted.
    pub instances: Vec<String>,
    pub faults: Faults,
    pub seed: u64,
    /// Task templates that exist from the start, each in GetTaskTemplate's answer shape (what
    /// `aws connect get-task-template --output json` prints) with its `Id` and `InstanceId`;
    /// what may be left out is filled in (`Arn`, `Status` ACTIVE, empty `Constraints`,
    /// `Defaults` and `Fields`, the times: now), ISO 8601 times become epoch seconds. A template
    /// the model or Connect's rules refuse stops `start` (InvalidInput).
    pub task_templates: Vec<Value>,
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
            task_templates: Vec::new(),
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
        let mut templates = Vec::new();
        for seed in options.task_templates {
            template_from(seed, &options.instances, now_secs())
                .and_then(|t| put_template(&mut templates, t))
                .map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("task template: {e}"),
                    )
                })?;
        }
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
                buckets: HashMap::new(),
                templates,
                template_tokens: HashMap::new(),
            }),
        });
        let app = template_routes(Router::new())
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
            .route(
                "/admin/task-templates",
                get(admin_templates).put(admin_put_template),
            )
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

    /// The task templates, in GetTaskTemplate's answer shape.
    pub fn task_templates(&self) -> Vec<Value> {
        self.shared.inner.lock().unwrap().templates.clone()
    }

    /// Adds a task template, or replaces the one with its `Id` (as `PUT /admin/task-templates`;
    /// see `Options::task_templates`); the template as stored.
    pub fn put_task_template(&self, template: Value) -> Result<Value, String> {
        let template = template_from(template, &self.shared.instances, now_secs())?;
        put_template(
            &mut self.shared.inner.lock().unwrap().templates,
            template.clone(),
        )?;
        Ok(template)
    }

    pub fn stats(&self) -> Stats {
        self.shared.inner.lock().unwrap().stats.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.faults = faults;
        inner.bucket = None;
        inner.buckets.clear();
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
        let within_quota = take_from_bucket(&mut inner);
        let counted = inner
            .stats
            .operations
            .entry("StartTaskContact".into())
            .or_default();
        counted.requests += 1;
        counted.throttled += u64::from(!within_quota);
        let fault = if !within_quota {
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

    if let Some(template_id) = request
        .get("TaskTemplateId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        let template = shared
            .inner
            .lock()
            .unwrap()
            .template(instance, template_id)
            .cloned();
        let Some(template) = template else {
            shared.inner.lock().unwrap().stats.not_found += 1;
            return error(
                404,
                "ResourceNotFoundException",
                "TaskTemplateId: the instance has no task template with this ID",
            );
        };
        let problems = rules::template_violations(&template, &request);
        if !problems.is_empty() {
            shared.inner.lock().unwrap().stats.invalid += 1;
            return error(
                400,
                "InvalidRequestException",
                format!(
                    "{} validation error(s) detected: {}",
                    problems.len(),
                    problems.join("; ")
                ),
            );
        }
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
        updated_at: None,
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

/// The task-template operations, at the methods and paths the model binds them to.
fn template_routes(app: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    let binding = |operation: &str| {
        let (method, uri) = task_templates()
            .http(operation)
            .expect("the task-template slice binds the operation");
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let filter = MethodFilter::try_from(method).expect("a method axum routes");
        (uri, filter)
    };
    let (uri, filter) = binding("CreateTaskTemplate");
    let app = app.route(uri, on(filter, create_task_template));
    let (uri, filter) = binding("GetTaskTemplate");
    let app = app.route(uri, on(filter, get_task_template));
    let (uri, filter) = binding("ListTaskTemplates");
    app.route(uri, on(filter, list_task_templates))
}

/// A task-template operation's request as received: the URI's labels, the query string, and
/// what the signature covers.
struct TemplateCall {
    labels: HashMap<String, String>,
    query: Vec<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// The common path of the task-template operations: an injected failure (`Hang` holds the
/// answer back), the signature, the input bound and checked as the model says, the instance
/// known; the input, or the answer Connect gives.
async fn template_call(
    shared: &Shared,
    operation: &str,
    call: TemplateCall,
) -> Result<Value, Response> {
    let failing = shared
        .inner
        .lock()
        .unwrap()
        .faults
        .failing
        .get(operation)
        .cloned();
    if failing.as_deref() == Some(HANG) {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    verify_signature(shared, &call.method, &call.uri, &call.headers, &call.body)?;
    if let Some(code) = failing.filter(|c| c != HANG) {
        return Err(error(status_of(&code), &code, "injected fault"));
    }
    let body = if call.body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice(&call.body) {
            Ok(Value::Object(map)) => map,
            _ => {
                shared.inner.lock().unwrap().stats.invalid += 1;
                return Err(error(
                    400,
                    "InvalidParameterException",
                    "The request body is not a JSON object",
                ));
            }
        }
    };
    let model = task_templates();
    let request = model.bind(operation, &call.labels, &call.query, body);
    let problems = model.violations_of(operation, &request);
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
    let instance = request["InstanceId"].as_str().unwrap_or_default();
    if !shared.instances.is_empty() && !shared.instances.iter().any(|i| i == instance) {
        return Err(error(
            404,
            "ResourceNotFoundException",
            format!("Instance {instance} not found"),
        ));
    }
    shared.inner.lock().unwrap().stats.template_requests += 1;
    Ok(request)
}

/// The ARN Connect gives a task template.
fn template_arn(instance: &str, id: &str) -> String {
    format!(
        "arn:aws:connect:{}:{}:instance/{instance}/task-template/{id}",
        crate::LOCAL_REGION,
        crate::ACCOUNT
    )
}

/// Fills in what GetTaskTemplate always answers and a definition may leave out: `Status`
/// ACTIVE, `Constraints`' three lists, `Defaults`' list, `Fields`.
fn complete(template: &mut Map<String, Value>) {
    template.entry("Status").or_insert_with(|| json!("ACTIVE"));
    let constraints = template.entry("Constraints").or_insert_with(|| json!({}));
    if let Some(constraints) = constraints.as_object_mut() {
        for list in ["RequiredFields", "ReadOnlyFields", "InvisibleFields"] {
            constraints.entry(list).or_insert_with(|| json!([]));
        }
    }
    let defaults = template.entry("Defaults").or_insert_with(|| json!({}));
    if let Some(defaults) = defaults.as_object_mut() {
        defaults
            .entry("DefaultFieldValues")
            .or_insert_with(|| json!([]));
    }
    template.entry("Fields").or_insert_with(|| json!([]));
}

/// A template as a test seeds it (see `Options::task_templates`), completed and checked
/// against GetTaskTemplate's answer shape and Connect's rules for a template.
fn template_from(seed: Value, instances: &[String], now: f64) -> Result<Value, String> {
    let Value::Object(mut template) = seed else {
        return Err("a task template is a JSON object".into());
    };
    let members = task_templates().members("GetTaskTemplateResponse");
    let unknown: Vec<&str> = template
        .keys()
        .map(String::as_str)
        .filter(|k| !members.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{} not a member of GetTaskTemplateResponse",
            unknown.join(", ")
        ));
    }
    let text = |t: &Map<String, Value>, m: &str| {
        t.get(m)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{m} is required"))
    };
    let id = text(&template, "Id")?;
    let instance = text(&template, "InstanceId")?;
    if !instances.is_empty() && !instances.contains(&instance) {
        return Err(format!("instance {instance} is not one of the stand-in's"));
    }
    for member in ["CreatedTime", "LastModifiedTime"] {
        match template.get(member) {
            None | Some(Value::Null) => {
                template.insert(member.into(), json!(now));
            }
            Some(Value::String(iso)) => {
                let at = chrono::DateTime::parse_from_rfc3339(iso)
                    .map_err(|_| format!("{member}: neither epoch seconds nor ISO 8601"))?;
                template.insert(member.into(), json!(at.timestamp_millis() as f64 / 1000.0));
            }
            Some(_) => {}
        }
    }
    template
        .entry("Arn")
        .or_insert_with(|| json!(template_arn(&instance, &id)));
    complete(&mut template);
    // The CLI prints a template without tags with `"Tags": {}`, which the model's TagMap (at
    // least one entry, a bound on what a request sends) would refuse.
    let mut checked = template.clone();
    if checked
        .get("Tags")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        checked.remove("Tags");
    }
    let template = Value::Object(template);
    let mut problems =
        task_templates().violations_of_shape("GetTaskTemplateResponse", &Value::Object(checked));
    problems.extend(
        rules::template_definition_violations(&template)
            .into_iter()
            .map(|(path, _, message)| format!("{path}: {message}")),
    );
    if template["Fields"].as_array().map_or(0, Vec::len) > rules::MAX_TEMPLATE_FIELDS {
        problems.push(format!(
            "Fields: at most {} fields per task template",
            rules::MAX_TEMPLATE_FIELDS
        ));
    }
    if problems.is_empty() {
        Ok(template)
    } else {
        Err(problems.join("; "))
    }
}

/// Stores a template, replacing the one with its `Id`; at most
/// `rules::MAX_TEMPLATES_PER_INSTANCE` per instance.
fn put_template(templates: &mut Vec<Value>, template: Value) -> Result<(), String> {
    if let Some(old) = templates.iter_mut().find(|t| t["Id"] == template["Id"]) {
        *old = template;
        return Ok(());
    }
    let in_instance = templates
        .iter()
        .filter(|t| t["InstanceId"] == template["InstanceId"])
        .count();
    if in_instance >= rules::MAX_TEMPLATES_PER_INSTANCE {
        return Err(format!(
            "at most {} task templates per instance",
            rules::MAX_TEMPLATES_PER_INSTANCE
        ));
    }
    templates.push(template);
    Ok(())
}

/// CreateTaskTemplate's PropertyValidationException: the model's `Message` and `PropertyList`.
fn property_validation(problems: &[(String, &str, String)]) -> Response {
    let message = format!(
        "{} validation error(s) detected: {}",
        problems.len(),
        problems
            .iter()
            .map(|(path, _, message)| format!("{path}: {message}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let list: Vec<Value> = problems
        .iter()
        .map(|(path, reason, message)| {
            json!({"PropertyPath": path, "Reason": reason, "Message": message})
        })
        .collect();
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(json!({"Message": message, "PropertyList": list})),
    )
        .into_response();
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("PropertyValidationException"),
    );
    response
}

async fn create_task_template(
    State(shared): State<Arc<Shared>>,
    Path(labels): Path<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = TemplateCall {
        labels,
        query: Vec::new(),
        method,
        uri,
        headers,
        body,
    };
    let request = match template_call(&shared, "CreateTaskTemplate", call).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let instance = request["InstanceId"].as_str().unwrap_or_default();
    let mut inner = shared.inner.lock().unwrap();
    let token = request
        .get("ClientToken")
        .and_then(Value::as_str)
        .map(|t| (instance.to_string(), t.to_string()));
    let replayed = token
        .as_ref()
        .and_then(|t| inner.template_tokens.get(t))
        .and_then(|id| inner.template(instance, id));
    if let Some(existing) = replayed {
        return Json(json!({"Id": existing["Id"], "Arn": existing["Arn"]})).into_response();
    }
    let problems = rules::template_definition_violations(&request);
    if !problems.is_empty() {
        inner.stats.invalid += 1;
        return property_validation(&problems);
    }
    if request["Fields"].as_array().map_or(0, Vec::len) > rules::MAX_TEMPLATE_FIELDS {
        inner.stats.quota_exceeded += 1;
        return error(
            402,
            "ServiceQuotaExceededException",
            format!(
                "at most {} fields per task template",
                rules::MAX_TEMPLATE_FIELDS
            ),
        );
    }
    let id = uuid_like(&mut inner.rng);
    let now = now_secs();
    let mut template: Map<String, Value> = request
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "ClientToken")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    template.insert("Id".into(), json!(id));
    template.insert("Arn".into(), json!(template_arn(instance, &id)));
    template.insert("CreatedTime".into(), json!(now));
    template.insert("LastModifiedTime".into(), json!(now));
    complete(&mut template);
    let answer = json!({"Id": template["Id"], "Arn": template["Arn"]});
    if let Err(message) = put_template(&mut inner.templates, Value::Object(template)) {
        inner.stats.quota_exceeded += 1;
        return error(402, "ServiceQuotaExceededException", message);
    }
    if let Some(token) = token {
        inner.template_tokens.insert(token, id);
    }
    Json(answer).into_response()
}

async fn get_task_template(
    State(shared): State<Arc<Shared>>,
    Path(labels): Path<HashMap<String, String>>,
    Query(query): Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = TemplateCall {
        labels,
        query,
        method,
        uri,
        headers,
        body: Bytes::new(),
    };
    let request = match template_call(&shared, "GetTaskTemplate", call).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let instance = request["InstanceId"].as_str().unwrap_or_default();
    let id = request["TaskTemplateId"].as_str().unwrap_or_default();
    match shared.inner.lock().unwrap().template(instance, id) {
        Some(template) => Json(template.clone()).into_response(),
        None => error(
            404,
            "ResourceNotFoundException",
            "The task template does not exist in the instance",
        ),
    }
}

/// ListTaskTemplates' page size when the request names none.
const TEMPLATES_PER_PAGE: usize = 100;
const TOKEN_PREFIX: &str = "ListTaskTemplates:";

async fn list_task_templates(
    State(shared): State<Arc<Shared>>,
    Path(labels): Path<HashMap<String, String>>,
    Query(query): Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = TemplateCall {
        labels,
        query,
        method,
        uri,
        headers,
        body: Bytes::new(),
    };
    let request = match template_call(&shared, "ListTaskTemplates", call).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let page_size = request["MaxResults"]
        .as_u64()
        .map_or(TEMPLATES_PER_PAGE, |n| n as usize);
    let start = match request.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(token) => {
            let offset = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.strip_prefix(TOKEN_PREFIX)?.parse::<usize>().ok());
            match offset {
                Some(offset) => offset,
                None => {
                    shared.inner.lock().unwrap().stats.invalid += 1;
                    return error(
                        400,
                        "InvalidParameterException",
                        "NextToken: not a token ListTaskTemplates gave",
                    );
                }
            }
        }
    };
    let inner = shared.inner.lock().unwrap();
    let matching: Vec<&Value> = inner
        .templates
        .iter()
        .filter(|t| t["InstanceId"] == request["InstanceId"])
        .filter(|t| request.get("Status").is_none_or(|s| t["Status"] == *s))
        .filter(|t| request.get("Name").is_none_or(|n| t["Name"] == *n))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(page_size)
        .map(|t| {
            let metadata: Map<String, Value> = [
                "Id",
                "Arn",
                "Name",
                "Description",
                "Status",
                "LastModifiedTime",
                "CreatedTime",
            ]
            .into_iter()
            .filter_map(|m| Some((m.to_string(), t.get(m)?.clone())))
            .collect();
            Value::Object(metadata)
        })
        .collect();
    let mut answer = json!({ "TaskTemplates": page });
    let next = start + page_size;
    if next < matching.len() {
        answer["NextToken"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{TOKEN_PREFIX}{next}")));
    }
    Json(answer).into_response()
}

async fn admin_templates(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let templates = shared.inner.lock().unwrap().templates.clone();
    Json(json!({ "taskTemplates": templates }))
}

/// `PUT /admin/task-templates`: one template in GetTaskTemplate's answer shape (see
/// `Options::task_templates`), added or replacing the one with its `Id`; answers it as stored.
async fn admin_put_template(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(seed) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "InvalidParameterException",
            "The body is not JSON: one task template in GetTaskTemplate's answer shape",
        );
    };
    let stored = template_from(seed, &shared.instances, now_secs()).and_then(|t| {
        put_template(&mut shared.inner.lock().unwrap().templates, t.clone())?;
        Ok(t)
    });
    match stored {
        Ok(template) => Json(template).into_response(),
        Err(message) => error(400, "InvalidParameterException", message),
    }
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
    inner.buckets.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use std::time::SystemTime;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
    const TEMPLATES: &str = "/instance/11111111-2222-3333-4444-555555555555/task/template";

    #[derive(Debug)]
    struct Answer {
        status: u16,
        code: Option<String>,
        body: Value,
    }

    /// Sends one request over HTTP/1.1 to the stand-in, SigV4-signed with the local keys when
    /// `signed` (as the SDK signs it), and reads the answer.
    async fn call(
        standin: &ConnectStandIn,
        method: &str,
        path: &str,
        body: Option<&Value>,
        signed: bool,
    ) -> Answer {
        let host = standin.addr.to_string();
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut headers = vec![("host".to_string(), host.clone())];
        if signed {
            let identity = Credentials::new(
                crate::LOCAL_ACCESS_KEY,
                crate::LOCAL_SECRET_KEY,
                None,
                None,
                "test",
            )
            .into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(crate::LOCAL_REGION)
                .name("connect")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
            let request = SignableRequest::new(
                method,
                format!("http://{host}{path}"),
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(body.as_bytes()),
            )
            .unwrap();
            let (instructions, _) = sign(request, &params).unwrap().into_parts();
            headers.extend(
                instructions
                    .headers()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
        }
        let mut text = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        let mut stream = tokio::net::TcpStream::connect(standin.addr).await.unwrap();
        stream.write_all(text.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        Answer {
            status: head[9..12].parse().unwrap(),
            code: head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("x-amzn-errortype")
                    .then(|| value.trim().to_string())
            }),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    async fn standin(templates: Vec<Value>) -> ConnectStandIn {
        let options = Options {
            instances: vec![INSTANCE.into()],
            task_templates: templates,
            ..Options::local()
        };
        ConnectStandIn::start(options, 0).await.unwrap()
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    fn definition(name: &str) -> Value {
        json!({
            "Name": name,
            "Description": "refunds",
            "ContactFlowId": "flow-1",
            "Fields": [
                {"Id": {"Name": "Task name"}, "Type": "NAME"},
                {"Id": {"Name": "Order"}, "Type": "TEXT", "Description": "the order"},
                {"Id": {"Name": "Kind"}, "Type": "SINGLE_SELECT", "SingleSelectOptions": ["refund", "swap"]},
            ],
            "Constraints": {"RequiredFields": [{"Id": {"Name": "Order"}}]},
            "Defaults": {"DefaultFieldValues": [{"Id": {"Name": "Kind"}, "DefaultValue": "refund"}]},
        })
    }

    #[tokio::test]
    async fn templates_are_created_read_and_listed_as_the_model_answers() {
        let s = standin(Vec::new()).await;
        let created = call(&s, "PUT", TEMPLATES, Some(&definition("Refund")), true).await;
        assert_eq!(created.status, 200, "{created:?}");
        assert_eq!(keys(&created.body), ["Arn", "Id"]);
        let id = created.body["Id"].as_str().unwrap().to_string();
        assert_eq!(
            created.body["Arn"],
            format!(
                "arn:aws:connect:eu-west-1:123456789012:instance/{INSTANCE}/task-template/{id}"
            )
        );

        let got = call(&s, "GET", &format!("{TEMPLATES}/{id}"), None, true).await;
        assert_eq!(got.status, 200, "{got:?}");
        let t = &got.body;
        assert_eq!(
            keys(t),
            [
                "Arn",
                "Constraints",
                "ContactFlowId",
                "CreatedTime",
                "Defaults",
                "Description",
                "Fields",
                "Id",
                "InstanceId",
                "LastModifiedTime",
                "Name",
                "Status"
            ]
        );
        assert_eq!(t["Status"], "ACTIVE");
        assert_eq!(t["InstanceId"], INSTANCE);
        assert!(t["CreatedTime"].is_f64() && t["LastModifiedTime"].is_f64());
        assert_eq!(
            t["Constraints"],
            json!({"RequiredFields": [{"Id": {"Name": "Order"}}], "ReadOnlyFields": [], "InvisibleFields": []})
        );
        assert_eq!(t["Defaults"], definition("x")["Defaults"]);
        assert_eq!(t["Fields"], definition("x")["Fields"]);
        assert!(task_templates()
            .violations_of_shape("GetTaskTemplateResponse", t)
            .is_empty());

        // A client token makes a retry answer the first template.
        let mut off = definition("Swap");
        off["Status"] = json!("INACTIVE");
        off["ClientToken"] = json!("token-1");
        let first = call(&s, "PUT", TEMPLATES, Some(&off), true).await;
        let again = call(&s, "PUT", TEMPLATES, Some(&off), true).await;
        assert_eq!(first.body, again.body);
        assert_eq!(s.task_templates().len(), 2);
        assert!(s.task_templates()[1].get("ClientToken").is_none());

        let all = call(&s, "GET", TEMPLATES, None, true).await;
        assert_eq!(all.status, 200, "{all:?}");
        assert_eq!(keys(&all.body), ["TaskTemplates"]);
        let listed = all.body["TaskTemplates"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            keys(&listed[0]),
            [
                "Arn",
                "CreatedTime",
                "Description",
                "Id",
                "LastModifiedTime",
                "Name",
                "Status"
            ]
        );
        let names = |a: &Answer| -> Vec<String> {
            a.body["TaskTemplates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["Name"].as_str().unwrap().to_string())
                .collect()
        };
        let active = call(&s, "GET", &format!("{TEMPLATES}?status=ACTIVE"), None, true).await;
        assert_eq!(names(&active), ["Refund"]);
        let swap = call(&s, "GET", &format!("{TEMPLATES}?name=Swap"), None, true).await;
        assert_eq!(names(&swap), ["Swap"]);

        let page = call(&s, "GET", &format!("{TEMPLATES}?maxResults=1"), None, true).await;
        assert_eq!(names(&page), ["Refund"]);
        let token = page.body["NextToken"].as_str().unwrap();
        let next = format!("{TEMPLATES}?maxResults=1&nextToken={token}");
        let last = call(&s, "GET", &next, None, true).await;
        assert_eq!(names(&last), ["Swap"]);
        assert!(last.body.get("NextToken").is_none());
        assert_eq!(s.stats().template_requests, 9);
    }

    #[tokio::test]
    async fn template_requests_are_signed_checked_and_found() {
        let s = standin(Vec::new()).await;
        let unsigned = call(&s, "GET", TEMPLATES, None, false).await;
        assert_eq!(
            (unsigned.status, unsigned.code.as_deref()),
            (403, Some("MissingAuthenticationTokenException"))
        );

        let mut bad = definition(&"n".repeat(101));
        bad["Status"] = json!("PAUSED");
        bad.as_object_mut().unwrap().remove("Fields");
        let refused = call(&s, "PUT", TEMPLATES, Some(&bad), true).await;
        assert_eq!(
            (refused.status, refused.code.as_deref()),
            (400, Some("InvalidParameterException"))
        );
        let message = refused.body["message"].as_str().unwrap();
        for needle in [
            "Fields: member must not be null",
            "Name: member must have length less than or equal to 100",
            "Status: member must satisfy enum value set: ACTIVE, INACTIVE",
        ] {
            assert!(message.contains(needle), "{message}");
        }

        let mut twice = definition("Twice");
        twice["Fields"][2]["Id"]["Name"] = json!("Order");
        let refused = call(&s, "PUT", TEMPLATES, Some(&twice), true).await;
        assert_eq!(
            (refused.status, refused.code.as_deref()),
            (400, Some("PropertyValidationException"))
        );
        assert_eq!(
            refused.body["PropertyList"],
            json!([
                {"PropertyPath": "Fields[2].Id.Name", "Reason": "UNIQUE_CONSTRAINT_VIOLATED", "Message": "field 'Order' is defined twice"},
                {"PropertyPath": "Defaults.DefaultFieldValues[0].Id.Name", "Reason": "REFERENCED_RESOURCE_NOT_FOUND", "Message": "'Kind' names no field of the template"},
            ])
        );
        assert!(s.task_templates().is_empty());

        let missing = call(&s, "GET", &format!("{TEMPLATES}/nope"), None, true).await;
        assert_eq!(
            (missing.status, missing.code.as_deref()),
            (404, Some("ResourceNotFoundException"))
        );
        let elsewhere = call(&s, "GET", "/instance/other/task/template", None, true).await;
        assert_eq!(
            (elsewhere.status, elsewhere.code.as_deref()),
            (404, Some("ResourceNotFoundException"))
        );
        for query in [
            "maxResults=0",
            "maxResults=101",
            "maxResults=ten",
            "status=PAUSED",
            "nextToken=forged",
        ] {
            let refused = call(&s, "GET", &format!("{TEMPLATES}?{query}"), None, true).await;
            assert_eq!(
                (refused.status, refused.code.as_deref()),
                (400, Some("InvalidParameterException")),
                "{query}: {refused:?}"
            );
        }

        let mut faults = Faults::default();
        faults
            .failing
            .insert("GetTaskTemplate".into(), "ThrottlingException".into());
        s.set_faults(faults);
        let throttled = call(&s, "GET", &format!("{TEMPLATES}/nope"), None, true).await;
        assert_eq!(
            (throttled.status, throttled.code.as_deref()),
            (429, Some("ThrottlingException"))
        );
    }

    /// Every operation has its own bucket (`Faults::quotas`), throttles as StartTaskContact's
    /// does, and is counted on its own; an operation without a quota is not throttled.
    #[tokio::test]
    async fn operations_have_their_own_buckets_and_counts() {
        let s = standin(Vec::new()).await;
        let quotas = Quota::connect(5.0);
        assert_eq!(
            quotas["StopContact"],
            Quota {
                rate: 50.0,
                burst: 15
            }
        );
        assert_eq!(
            quotas["UpdateContactSchedule"],
            Quota {
                rate: 10.0,
                burst: 5
            }
        );
        let mut faults = Faults::default();
        faults.quotas.insert(
            "StopContact".into(),
            Quota {
                rate: 0.001,
                burst: 2,
            },
        );
        s.set_faults(faults);
        let stop = json!({"InstanceId": INSTANCE, "ContactId": "nope"});
        let mut answers = Vec::new();
        for _ in 0..3 {
            let a = call(&s, "POST", "/contact/stop", Some(&stop), true).await;
            answers.push((a.status, a.code));
        }
        for _ in 0..3 {
            let path = format!("/contacts/{INSTANCE}/nope");
            let a = call(&s, "GET", &path, None, true).await;
            answers.push((a.status, a.code));
        }
        let not_found = (404, Some("ResourceNotFoundException".to_string()));
        let throttled = (429, Some("ThrottlingException".to_string()));
        assert_eq!(
            answers,
            [&not_found, &not_found, &throttled, &not_found, &not_found, &not_found]
                .map(Clone::clone)
        );
        let counted = s.stats().operations;
        let of = |op: &str| counted.get(op).map(|c| (c.requests, c.throttled));
        assert_eq!(of("StopContact"), Some((3, 1)));
        assert_eq!(of("DescribeContact"), Some((3, 0)));
        assert_eq!(
            s.stats().throttled,
            0,
            "StartTaskContact's count is its own"
        );
    }

    /// A template as `aws connect get-task-template --output json` prints it (ISO times).
    fn printed(id: &str) -> Value {
        let mut t = definition("Printed");
        t["Id"] = json!(id);
        t["InstanceId"] = json!(INSTANCE);
        t["Status"] = json!("ACTIVE");
        t["CreatedTime"] = json!("2026-01-15T08:00:00.500000+00:00");
        t["LastModifiedTime"] = json!("2026-01-15T09:00:00+00:00");
        t
    }

    #[tokio::test]
    async fn templates_are_seeded_at_start_and_through_the_admin_endpoint() {
        let s = standin(vec![printed("seeded")]).await;
        let got = call(&s, "GET", &format!("{TEMPLATES}/seeded"), None, true).await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.body["CreatedTime"], json!(1_768_464_000.5));
        assert_eq!(got.body["LastModifiedTime"], json!(1_768_467_600.0));
        assert_eq!(
            got.body["Arn"],
            format!(
                "arn:aws:connect:eu-west-1:123456789012:instance/{INSTANCE}/task-template/seeded"
            )
        );

        let mut changed = printed("seeded");
        changed["Status"] = json!("INACTIVE");
        let put = call(&s, "PUT", "/admin/task-templates", Some(&changed), false).await;
        assert_eq!(put.status, 200, "{put:?}");
        assert_eq!(put.body["Status"], "INACTIVE");
        let added = call(
            &s,
            "PUT",
            "/admin/task-templates",
            Some(&printed("second")),
            false,
        )
        .await;
        assert_eq!(added.status, 200, "{added:?}");
        let all = call(&s, "GET", "/admin/task-templates", None, false).await;
        let ids: Vec<&str> = all.body["taskTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["Id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["seeded", "second"]);
        assert_eq!(all.body["taskTemplates"][0]["Status"], "INACTIVE");

        let mut typo = printed("third");
        typo["RequiredField"] = json!([]);
        let refused = call(&s, "PUT", "/admin/task-templates", Some(&typo), false).await;
        assert_eq!(refused.status, 400);
        assert_eq!(
            refused.body["message"],
            "RequiredField not a member of GetTaskTemplateResponse"
        );
        let mut elsewhere = printed("third");
        elsewhere["InstanceId"] = json!("other");
        assert!(s.put_task_template(elsewhere).is_err());

        let mut no_id = printed("x");
        no_id.as_object_mut().unwrap().remove("Id");
        let mut bad_time = printed("x");
        bad_time["CreatedTime"] = json!("yesterday");
        for (seed, needle) in [
            (no_id, "Id is required"),
            (bad_time, "CreatedTime: neither epoch seconds nor ISO 8601"),
        ] {
            let err = ConnectStandIn::start(
                Options {
                    task_templates: vec![seed],
                    ..Options::local()
                },
                0,
            )
            .await
            .err()
            .unwrap();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[tokio::test]
    async fn the_example_template_as_the_cli_prints_it_is_seeded_and_enforced() {
        let example: Value =
            serde_json::from_str(include_str!("../../examples/task-template.json")).unwrap();
        let id = example["Id"].as_str().unwrap().to_string();
        let s = standin(vec![example.clone()]).await;
        let got = call(&s, "GET", &format!("{TEMPLATES}/{id}"), None, true).await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.body["Tags"], json!({}));
        assert_eq!(got.body["Fields"], example["Fields"]);
        assert!(got.body["CreatedTime"].is_f64());

        let filled = json!({
            "orderId": {"Type": "STRING", "Value": "A-1"},
            "priority": {"Type": "STRING", "Value": "high"},
        });
        let made = call(&s, "PUT", "/contact/task", Some(&task(&id, filled)), true).await;
        assert_eq!(made.status, 200, "{made:?}");
        let short = json!({"orderId": {"Type": "STRING", "Value": "A-1"}});
        let refused = call(&s, "PUT", "/contact/task", Some(&task(&id, short)), true).await;
        assert_eq!(
            refused.body["message"],
            "1 validation error(s) detected: References.priority: the task template requires field 'priority' (SINGLE_SELECT) and no reference of that name has a value"
        );
    }

    fn task(template: &str, references: Value) -> Value {
        json!({
            "InstanceId": INSTANCE,
            "Name": "A refund",
            "TaskTemplateId": template,
            "References": references,
        })
    }

    #[tokio::test]
    async fn start_task_contact_enforces_the_template() {
        let mut off = printed("off");
        off["Status"] = json!("INACTIVE");
        let mut flowless = printed("flowless");
        flowless.as_object_mut().unwrap().remove("ContactFlowId");
        let s = standin(vec![printed("tpl"), off, flowless]).await;
        let order = json!({"Order": {"Type": "STRING", "Value": "SECRET-ORDER-1"}});

        let refusals = [
            (task("missing", order.clone()), 404, "ResourceNotFoundException", "TaskTemplateId: the instance has no task template with this ID"),
            (task("off", order.clone()), 400, "InvalidRequestException", "TaskTemplateId: the task template is INACTIVE"),
            (task("flowless", order.clone()), 400, "InvalidRequestException", "TaskTemplateId: the task template has no flow (ContactFlowId) of its own"),
            (task("tpl", json!({})), 400, "InvalidRequestException", "References.Order: the task template requires field 'Order' (TEXT) and no reference of that name has a value"),
            (task("tpl", json!({"Order": {"Type": "URL", "Value": "https://secret.example"}})), 400, "InvalidRequestException", "References.Order: field 'Order' of the task template is TEXT; its reference must be of type STRING"),
            (task("tpl", json!({"Order": {"Type": "STRING", "Value": "SECRET-ORDER-1"}, "Kind": {"Type": "STRING", "Value": "SECRET-KIND"}})), 400, "InvalidRequestException", "References.Kind: the value of a SINGLE_SELECT field must be one of its SingleSelectOptions"),
        ];
        for (request, status, code, needle) in &refusals {
            let answer = call(&s, "PUT", "/contact/task", Some(request), true).await;
            assert_eq!(
                (answer.status, answer.code.as_deref()),
                (*status, Some(*code)),
                "{needle}: {answer:?}"
            );
            let message = answer.body["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
        }
        let stats = s.stats();
        assert_eq!((stats.not_found, stats.invalid, stats.created), (1, 5, 0));
        assert!(s.tasks().is_empty() && s.events().is_empty());

        // The default fills Kind; Order is given: the task is created.
        let made = call(&s, "PUT", "/contact/task", Some(&task("tpl", order)), true).await;
        assert_eq!(made.status, 200, "{made:?}");
        assert_eq!(s.tasks().len(), 1);
        assert_eq!(s.tasks()[0].contact_id, made.body["ContactId"]);

        // A template and a flow: the one-flow rule refuses it, as before.
        let mut both = task("tpl", json!({}));
        both["ContactFlowId"] = json!("flow-1");
        let answer = call(&s, "PUT", "/contact/task", Some(&both), true).await;
        assert_eq!(answer.code.as_deref(), Some("InvalidRequestException"));
        assert!(answer.body["message"]
            .as_str()
            .unwrap()
            .contains("only one of ContactFlowId"));
    }
}
