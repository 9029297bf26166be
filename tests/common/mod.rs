//! Shared by the integration tests: the sample events, the requests they are expected to
//! produce, and an in-process fake of Connect built on aws-smithy-mocks that records every
//! request the real SDK client was asked to send and honours client tokens as Connect does.

#![allow(dead_code)]

pub mod pace;
pub mod queue;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_sdk_connect::operation::start_task_contact::{
    StartTaskContactError, StartTaskContactInput, StartTaskContactOutput,
};
use aws_sdk_connect::types::SegmentAttributeValue;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use aws_smithy_types::retry::RetryConfig;
use connect_task_bridge::config::Config;
use connect_task_bridge::handler::Bridge;
use serde_json::{json, Value};

pub const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
pub const FLOW: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const EXAMPLE_MAPPING: &str = "examples/mapping.yaml";

/// The function under test: the binary cargo built, or another build of it (CI points
/// CTB_FUNCTION_BINARY at the `bootstrap` that `sam build` packaged; a defect's test can be run
/// against an older build the same way).
pub fn function_binary() -> PathBuf {
    std::env::var_os("CTB_FUNCTION_BINARY")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_connect-task-bridge").into())
}

/// The binary under a local Runtime API against a fresh stand-in that knows `INSTANCE`, with the
/// instance, flow and task root set, then `extra` (later values win).
pub async fn start_function(extra: &[(&str, &str)]) -> connect_standin::harness::LocalStack {
    start_function_holding(
        Vec::new(),
        connect_standin::connect::Faults::default(),
        extra,
    )
    .await
}

/// `start_function`, with a stand-in that holds (and enforces) `templates` and injects `faults`.
/// An empty value in `extra` unsets a variable (the configuration reads it so): a default task
/// template replaces the default flow with `("CONNECT_CONTACT_FLOW_ID", "")`.
pub async fn start_function_holding(
    templates: Vec<Value>,
    faults: connect_standin::connect::Faults,
    extra: &[(&str, &str)],
) -> connect_standin::harness::LocalStack {
    let mut options = connect_standin::connect::Options::local();
    options.instances = vec![INSTANCE.to_string()];
    options.task_templates = templates;
    options.faults = faults;
    let connect = connect_standin::connect::ConnectStandIn::start(options, 0)
        .await
        .unwrap();
    let mut env: Vec<(String, String)> = [
        ("CONNECT_INSTANCE_ID", INSTANCE),
        ("CONNECT_CONTACT_FLOW_ID", FLOW),
        ("LAMBDA_TASK_ROOT", root().to_str().unwrap()),
        // Unpaced unless a test says otherwise: the pace is tested by itself (tests/surge.rs).
        ("CONNECT_REQUESTS_PER_SECOND", "1000"),
        ("CONNECT_BURST", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    connect_standin::harness::LocalStack::start(&function_binary(), connect, &env)
        .await
        .unwrap()
}

/// `examples/task-template.json`: a task template as `aws connect get-task-template` prints it.
pub fn example_task_template() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/task-template.json")).unwrap(),
    )
    .unwrap()
}

/// The function's answer, or the error it reported as `{"errorType", "errorMessage"}`.
pub async fn answer(stack: &mut connect_standin::harness::LocalStack, event: Value) -> Value {
    match stack
        .invoke(event, std::time::Duration::from_secs(20))
        .await
    {
        Ok(connect_standin::runtime_api::Invocation::Response(v)) => v,
        Ok(connect_standin::runtime_api::Invocation::Error {
            error_type,
            message,
        }) => json!({"errorType": error_type, "errorMessage": message}),
        other => panic!("no answer: {other:?}"),
    }
}

/// The function's answer to an invocation that must get one.
pub fn response(
    result: Result<
        connect_standin::runtime_api::Invocation,
        connect_standin::runtime_api::InvokeError,
    >,
) -> Value {
    match result {
        Ok(connect_standin::runtime_api::Invocation::Response(v)) => v,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The ids a partial batch answer reports as failed.
pub fn batch_failures(answer: &Value) -> std::collections::BTreeSet<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch answer: {answer}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

/// A set of ids, to compare with `batch_failures`.
pub fn ids(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every sample event, by file stem, sorted.
pub fn event_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("events"))
        .expect("events/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn event(name: &str) -> Value {
    read_json(&root().join("events").join(format!("{name}.json")))
}

/// The requests `examples/mapping.yaml` renders for an event, one per record that renders, in
/// record order (tokens checked against an independent computation when the files were made).
pub fn expected_requests(name: &str) -> Vec<Value> {
    match read_json(&root().join("tests/expected").join(format!("{name}.json"))) {
        Value::Array(items) => items,
        other => panic!("tests/expected/{name}.json is not a list: {other}"),
    }
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The configuration a cold start would build from these variables (plus the instance and flow).
pub fn config_with(vars: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = HashMap::from([
        ("CONNECT_INSTANCE_ID".into(), INSTANCE.into()),
        ("CONNECT_CONTACT_FLOW_ID".into(), FLOW.into()),
        ("WEBHOOK_AUTH".into(), "none".into()),
        ("LAMBDA_TASK_ROOT".into(), root().display().to_string()),
        ("CONNECT_REQUESTS_PER_SECOND".into(), "1000".into()),
        ("CONNECT_BURST".into(), "1000".into()),
    ]);
    for (k, v) in vars {
        env.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration is valid")
}

pub fn example_config() -> Config {
    config_with(&[("TASK_MAPPING_FILE", EXAMPLE_MAPPING)])
}

#[derive(Default)]
struct State {
    /// Every request, as sent, in the order the client sent them.
    calls: Vec<Value>,
    /// ClientToken → ContactId, as Connect keeps them.
    tasks: HashMap<String, String>,
    /// Errors handed out to the next calls, before any task is created.
    faults: VecDeque<StartTaskContactError>,
}

/// Connect, as far as the client can tell: creates a task per new client token and returns the
/// same ContactId for a token it has seen.
#[derive(Clone, Default)]
pub struct FakeConnect {
    state: Arc<Mutex<State>>,
}

impl FakeConnect {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next calls fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = StartTaskContactError>) {
        self.state.lock().unwrap().faults.extend(errors);
    }

    pub fn calls(&self) -> Vec<Value> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn task_count(&self) -> usize {
        self.state.lock().unwrap().tasks.len()
    }

    pub fn client(&self) -> aws_sdk_connect::Client {
        let state = Arc::clone(&self.state);
        let rule = mock!(aws_sdk_connect::Client::start_task_contact).then_compute_response(
            move |input: &StartTaskContactInput| {
                let mut state = state.lock().unwrap();
                state.calls.push(input_json(input));
                if let Some(error) = state.faults.pop_front() {
                    return MockResponse::Error(error);
                }
                let token = input
                    .client_token()
                    .expect("the function always sends a ClientToken")
                    .to_string();
                let next = state.tasks.len() + 1;
                let id = state
                    .tasks
                    .entry(token)
                    .or_insert_with(|| format!("contact-{next:04}"))
                    .clone();
                MockResponse::Output(StartTaskContactOutput::builder().contact_id(id).build())
            },
        );
        // Retries are the Lambda's and the queue's business in these tests; the SDK's own
        // retries are exercised against the stand-in.
        mock_client!(aws_sdk_connect, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(RetryConfig::disabled()))
    }

    /// A bridge as a cold start builds it, talking to this fake.
    pub fn bridge(&self, config: Config) -> Bridge {
        Bridge::new(config, self.client())
    }
}

/// The request in the shape of `aws connect start-task-contact --cli-input-json`, read back from
/// what the SDK was given, so that tests compare what goes on the wire, not our own structs.
pub fn input_json(input: &StartTaskContactInput) -> Value {
    let mut out = serde_json::Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            out.insert(key.into(), v);
        }
    };
    let text = |s: Option<&str>| s.map(|s| json!(s));
    put("InstanceId", text(input.instance_id()));
    put("ContactFlowId", text(input.contact_flow_id()));
    put("PreviousContactId", text(input.previous_contact_id()));
    put("RelatedContactId", text(input.related_contact_id()));
    put(
        "Attributes",
        input
            .attributes()
            .map(|a| json!(a.iter().collect::<BTreeMap<_, _>>())),
    );
    put("Name", text(input.name()));
    put(
        "References",
        input.references().map(|refs| {
            let refs: BTreeMap<_, _> = refs
                .iter()
                .map(|(k, r)| {
                    let mut v = json!({"Value": r.value(), "Type": r.r#type().as_str()});
                    if let Some(s) = r.status() {
                        v["Status"] = json!(s.as_str());
                    }
                    if let Some(a) = r.arn() {
                        v["Arn"] = json!(a);
                    }
                    if let Some(s) = r.status_reason() {
                        v["StatusReason"] = json!(s);
                    }
                    (k.clone(), v)
                })
                .collect();
            json!(refs)
        }),
    );
    put("Description", text(input.description()));
    put("ClientToken", text(input.client_token()));
    put(
        "ScheduledTime",
        input.scheduled_time().map(|t| json!(t.secs())),
    );
    put("TaskTemplateId", text(input.task_template_id()));
    put("QuickConnectId", text(input.quick_connect_id()));
    put(
        "SegmentAttributes",
        input.segment_attributes().map(|m| {
            json!(m
                .iter()
                .map(|(k, v)| (k.clone(), segment_json(v)))
                .collect::<BTreeMap<_, _>>())
        }),
    );
    if !input.attachments().is_empty() {
        put(
            "Attachments",
            Some(json!(input
                .attachments()
                .iter()
                .map(|a| json!({"FileName": a.file_name(), "S3Url": a.s3_url()}))
                .collect::<Vec<_>>())),
        );
    }
    Value::Object(out)
}

fn segment_json(v: &SegmentAttributeValue) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(s) = v.value_string() {
        out.insert("ValueString".into(), json!(s));
    }
    if let Some(m) = v.value_map() {
        let m: BTreeMap<_, _> = m
            .iter()
            .map(|(k, v)| (k.clone(), segment_json(v)))
            .collect();
        out.insert("ValueMap".into(), json!(m));
    }
    if let Some(i) = v.value_integer() {
        out.insert("ValueInteger".into(), json!(i));
    }
    if !v.value_list().is_empty() {
        let list: Vec<Value> = v.value_list().iter().map(segment_json).collect();
        out.insert("ValueList".into(), json!(list));
    }
    if let Some(a) = v.value_arn() {
        out.insert("ValueArn".into(), json!(a));
    }
    Value::Object(out)
}

/// An EventBridge event of the shop's orders (the lifecycle suites' events).
pub fn order_event(id: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": detail_type, "source": "shop.orders",
        "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": detail
    })
}

/// What the function sent moto for `target` (e.g. `AWSStepFunctions.SendTaskSuccess`).
pub fn sent(moto: &connect_standin::moto::Moto, target: &str) -> Vec<Value> {
    moto.recorded()
        .into_iter()
        .filter(|(t, _)| t == target)
        .map(|(_, body)| body)
        .collect()
}

/// An API Gateway HTTP API request (payload 2.0) carrying `body` as sent, with `headers` (names
/// lower-cased, as API Gateway gives them) and a request id of its own.
pub fn http_api_request(body: &str, headers: &Value) -> Value {
    let mut all = json!({"content-type": "application/json", "user-agent": "sender/1.0"});
    for (k, v) in headers.as_object().into_iter().flatten() {
        all[k.to_ascii_lowercase()] = v.clone();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    json!({
        "version": "2.0",
        "routeKey": "POST /hooks",
        "rawPath": "/hooks",
        "rawQueryString": "",
        "headers": all,
        "requestContext": {
            "accountId": "111122223333",
            "apiId": "snd123",
            "domainName": "snd123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "snd123",
            "http": {"method": "POST", "path": "/hooks", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "sender/1.0"},
            "requestId": format!("req-{nanos}"),
            "routeKey": "POST /hooks",
            "stage": "$default",
            "time": "26/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_600_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Where the signed-webhook suites keep the sender's secret in moto's Secrets Manager.
pub const WEBHOOK_SECRET_NAME: &str = "connect-task-bridge/webhook";

/// moto with `secret` stored as the sender's dashboard shows it.
pub async fn moto_with_webhook_secret(secret: &str) -> connect_standin::moto::Moto {
    let moto =
        connect_standin::moto::Moto::start(&connect_standin::moto::moto_server(&root())).await;
    moto.secrets_client()
        .create_secret()
        .name(WEBHOOK_SECRET_NAME)
        .secret_string(secret)
        .send()
        .await
        .expect("the secret is created in moto");
    moto
}

/// The binary (against a fresh stand-in, the example mapping) checking webhooks with `scheme`
/// and the secret in `moto`, then `extra`.
pub async fn start_signed_webhooks(
    moto: &connect_standin::moto::Moto,
    scheme: &str,
    extra: &[(&str, String)],
) -> connect_standin::harness::LocalStack {
    let mut env = vec![
        ("WEBHOOK_AUTH", "signature".to_string()),
        ("WEBHOOK_SECRET_ID", WEBHOOK_SECRET_NAME.to_string()),
        ("WEBHOOK_SIGNATURE_SCHEME", scheme.to_string()),
        ("TASK_MAPPING_FILE", EXAMPLE_MAPPING.to_string()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.clone()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_function(&env).await
}
