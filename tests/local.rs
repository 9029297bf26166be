//! The shipped binary under a local Lambda Runtime API, calling the Connect stand-in over HTTP
//! with SigV4: every sample event, checked at the stand-in (the tasks it holds, their exact
//! requests), redelivery, faults, a refused configuration and the `send` command.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{event, event_names, expected_requests, root, EXAMPLE_MAPPING, FLOW, INSTANCE};
use connect_standin::connect::{ConnectStandIn, Faults, Options};
use connect_standin::harness::LocalStack;
use connect_standin::runtime_api::{Invocation, InvokeError};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The function under test: the binary cargo built, or another build of it (CI points
/// CTB_FUNCTION_BINARY at the `bootstrap` that `sam build` packaged).
fn binary() -> PathBuf {
    std::env::var_os("CTB_FUNCTION_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_connect-task-bridge")))
}

fn function_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("CONNECT_INSTANCE_ID".to_string(), INSTANCE.to_string()),
        ("CONNECT_CONTACT_FLOW_ID".to_string(), FLOW.to_string()),
        // The samples' webhooks carry no IAM context or signature; tests/security.rs covers auth.
        ("WEBHOOK_AUTH".to_string(), "none".to_string()),
        ("LAMBDA_TASK_ROOT".to_string(), root().display().to_string()),
        ("TASK_MAPPING_FILE".to_string(), EXAMPLE_MAPPING.to_string()),
        // Unpaced: the pace is tested by itself (tests/surge.rs).
        (
            "CONNECT_REQUESTS_PER_SECOND".to_string(),
            "1000".to_string(),
        ),
        ("CONNECT_BURST".to_string(), "1000".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn start(options: Options, extra: &[(&str, &str)]) -> LocalStack {
    let connect = ConnectStandIn::start(options, 0).await.unwrap();
    LocalStack::start(&binary(), connect, &function_env(extra))
        .await
        .unwrap()
}

fn known_instance() -> Options {
    let mut o = Options::local();
    o.instances = vec![INSTANCE.to_string()];
    o
}

fn response(result: Result<Invocation, InvokeError>, name: &str) -> Value {
    match result {
        Ok(Invocation::Response(v)) => v,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

fn failures(answer: &Value) -> BTreeSet<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|r| r["ClientToken"].as_str().unwrap_or_default().to_string());
    v
}

#[tokio::test]
async fn every_sample_creates_exactly_its_tasks_at_the_stand_in_and_redelivery_creates_none() {
    let mut stack = start(known_instance(), &[]).await;
    let mut contact_ids = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // The redelivery reaches a new sandbox: a second cold start, same tokens.
            stack.cold_start().await.unwrap();
        }
        let mut ids = Vec::new();
        for name in event_names() {
            let before = stack.connect.tasks().len();
            let answer = response(stack.invoke(event(&name), TIMEOUT).await, &name);
            let new: Vec<Value> = stack.connect.tasks()[before..]
                .iter()
                .map(|t| t.request.clone())
                .collect();
            let expected = expected_requests(&name);
            let expected_new = match (round, name.as_str()) {
                (1, _) => vec![],
                (_, "sqs-fifo-batch") => expected[..1].to_vec(),
                _ => expected.clone(),
            };
            assert_eq!(
                sorted(new),
                sorted(expected_new),
                "{name}, delivery {round}"
            );
            match name.as_str() {
                "sqs-fifo-batch" => assert_eq!(
                    failures(&answer),
                    BTreeSet::from([
                        "a9a0f8a4-1b4e-4c1a-9d35-3a4d9c2b6e01".to_string(),
                        "f3b2c1d0-5e6f-4a7b-8c9d-0e1f2a3b4c5d".to_string()
                    ])
                ),
                "kinesis-records"
                | "dynamodb-update"
                | "pipes-sqs-batch"
                | "sqs-eventbridge-wrapped" => {
                    assert_eq!(failures(&answer), BTreeSet::new(), "{name}")
                }
                "sqs-standard-batch" => assert_eq!(
                    failures(&answer),
                    BTreeSet::from(["2e1424d4-f796-459a-8184-9c92662be6da".to_string()])
                ),
                n if ["apigw", "function-url", "alb"]
                    .iter()
                    .any(|p| n.starts_with(p)) =>
                {
                    assert_eq!(answer["statusCode"], 201, "{name}: {answer}");
                    let body: Value =
                        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
                    ids.push(body["contactId"].clone());
                    assert_eq!(body["clientToken"], expected[0]["ClientToken"]);
                }
                _ => {
                    assert_eq!(answer["ClientToken"], expected[0]["ClientToken"], "{name}");
                    ids.push(answer["ContactId"].clone());
                }
            }
        }
        contact_ids.push(ids);
    }
    assert_eq!(
        contact_ids[0], contact_ids[1],
        "a redelivery got another task"
    );
    let stats = stack.connect.stats();
    assert_eq!(stats.created as usize, stack.connect.tasks().len());
    assert_eq!(
        stats.replayed, stats.created,
        "every task was asked for twice"
    );
    assert_eq!(stats.auth_failures, 0);
    stack.stop().await;
}

#[tokio::test]
async fn the_log_has_one_line_per_outcome_and_no_task_content() {
    let mut stack = start(known_instance(), &[]).await;
    for name in event_names() {
        stack.invoke(event(&name), TIMEOUT).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs();
    let outcomes: Vec<Value> = stack
        .function
        .json_logs()
        .into_iter()
        .filter(|l| l["outcome"].is_string())
        .collect();
    // 23 samples: 19 single records (a stream of one, a queue of one), three batches of 3,
    // a pipe of 2.
    assert_eq!(outcomes.len(), 30, "{logs:#?}");
    for line in &outcomes {
        let f = line;
        assert!(
            f["record_id"].is_string() && f["source"].is_string(),
            "{line}"
        );
        assert!(f["duration_ms"].is_number(), "{line}");
        // Joined to its invocation by the runtime's request id.
        let request_id = f["span"]["requestId"].as_str().unwrap_or_default();
        assert!(request_id.starts_with("00000000-0000-4000-8000-"), "{line}");
        if f["outcome"] == "started" {
            assert!(
                f["contact_id"].is_string() && f["client_token"].is_string(),
                "{line}"
            );
        } else {
            assert!(
                f["error_class"].is_string() && f["error_code"].is_string(),
                "{line}"
            );
        }
    }
    // The EMF lines agree with the outcome lines.
    let emf: Vec<Value> = stack
        .function
        .json_logs()
        .into_iter()
        .filter(|l| l["_aws"]["CloudWatchMetrics"].is_array())
        .collect();
    // One line per invocation with its pace and throttles, beside one per route's outcomes.
    let invocations = emf.iter().filter(|l| l["ConnectThrottles"].is_u64());
    assert_eq!(invocations.count(), event_names().len());
    let started_lines = outcomes
        .iter()
        .filter(|l| l["outcome"] == "started")
        .count();
    let started_metric: u64 = emf.iter().filter_map(|l| l["TasksStarted"].as_u64()).sum();
    assert_eq!(started_metric as usize, started_lines);

    let all = logs.join("\n");
    for task in stack.connect.tasks() {
        let secret_bits = [
            task.request["Name"].as_str(),
            task.request["Description"].as_str(),
        ];
        for text in secret_bits.into_iter().flatten() {
            assert!(!all.contains(text), "logged: {text}");
        }
        for reference in task.request["References"].as_object().into_iter().flatten() {
            let v = reference.1["Value"].as_str().unwrap();
            if v.len() > 6 {
                assert!(!all.contains(v), "reference value logged: {v}");
            }
        }
        // The catch-all route copies the source kind into an attribute; that one is not data.
        for (key, value) in task.request["Attributes"].as_object().into_iter().flatten() {
            let v = value.as_str().unwrap();
            // A direct payload's own ClientToken (logged by design) may name a business id too.
            let in_token = task.client_token.as_deref().is_some_and(|t| t.contains(v));
            if key != "source" && v.len() > 6 && !in_token {
                assert!(!all.contains(v), "attribute value logged: {v}");
            }
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn throttling_and_server_faults_reach_each_source_as_its_answer() {
    let mut options = known_instance();
    options.faults = Faults {
        throttle: 1.0,
        ..Faults::default()
    };
    let mut stack = start(options, &[]).await;
    match stack
        .invoke(event("eventbridge-order-failed"), TIMEOUT)
        .await
    {
        Ok(Invocation::Error { error_type, .. }) => {
            assert_eq!(error_type, "transient.ThrottlingException")
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let answer = response(
        stack.invoke(event("apigw-http-ticket"), TIMEOUT).await,
        "webhook",
    );
    assert_eq!(answer["statusCode"], 429, "{answer}");
    assert!(answer["headers"]["retry-after"].is_string(), "{answer}");
    let answer = response(
        stack.invoke(event("sqs-standard-batch"), TIMEOUT).await,
        "sqs",
    );
    assert_eq!(failures(&answer).len(), 3, "{answer}");

    stack.connect.set_faults(Faults {
        internal: 1.0,
        ..Faults::default()
    });
    let answer = response(
        stack.invoke(event("function-url-kiosk"), TIMEOUT).await,
        "webhook",
    );
    assert_eq!(answer["statusCode"], 502, "{answer}");
    assert!(stack.connect.tasks().is_empty());

    // Faults gone, the same events go through, each exactly once.
    stack.connect.set_faults(Faults::default());
    let answer = response(
        stack.invoke(event("function-url-kiosk"), TIMEOUT).await,
        "webhook",
    );
    assert_eq!(answer["statusCode"], 201, "{answer}");
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}

#[tokio::test]
async fn the_stand_in_refuses_wrong_signatures_and_unknown_instances() {
    let connect = ConnectStandIn::start(known_instance(), 0).await.unwrap();
    let mut env = function_env(&[]);
    env.push(("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret".into()));
    let mut stack = LocalStack::start(&binary(), connect, &env).await.unwrap();
    match stack.invoke(event("sns-notification"), TIMEOUT).await {
        Ok(Invocation::Error {
            error_type,
            message,
        }) => {
            assert_eq!(
                error_type, "permanent.InvalidSignatureException",
                "{message}"
            )
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    assert!(stack.connect.stats().auth_failures >= 1);
    assert!(stack.connect.tasks().is_empty());
    stack.stop().await;

    let mut stack = start(
        known_instance(),
        &[(
            "CONNECT_INSTANCE_ID",
            "99999999-2222-3333-4444-555555555555",
        )],
    )
    .await;
    match stack.invoke(event("sns-notification"), TIMEOUT).await {
        Ok(Invocation::Error { error_type, .. }) => {
            assert_eq!(error_type, "permanent.ResourceNotFoundException")
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_broken_mapping_stops_the_cold_start_with_the_route_and_field_named() {
    let connect = ConnectStandIn::start(known_instance(), 0).await.unwrap();
    let mut env = function_env(&[(
        "TASK_MAPPING",
        "routes:\n  - name: broken\n    task:\n      name: \"{{ body.x \"\n",
    )]);
    env.retain(|(k, _)| k != "TASK_MAPPING_FILE");
    let mut stack = LocalStack::start(&binary(), connect, &env).await.unwrap();
    let result = stack.invoke(event("sns-notification"), TIMEOUT).await;
    assert!(matches!(result, Err(InvokeError::Exited(_))), "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert!(logs.contains("configuration refused"), "{logs}");
    assert!(
        logs.contains("broken") && logs.contains("task.name"),
        "{logs}"
    );
    assert!(stack.connect.tasks().is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn send_replays_an_event_against_an_endpoint() {
    let connect = ConnectStandIn::start(known_instance(), 0).await.unwrap();
    let run = |url: String| {
        let mut cmd = std::process::Command::new(binary());
        cmd.current_dir(root())
            .env_clear()
            .args([
                "send",
                "events/eventbridge-order-failed.json",
                "--endpoint-url",
            ])
            .arg(url)
            .args(["--mapping", EXAMPLE_MAPPING]);
        for (k, v) in [
            ("CONNECT_INSTANCE_ID", INSTANCE),
            ("CONNECT_CONTACT_FLOW_ID", FLOW),
            ("WEBHOOK_AUTH", "none"),
            ("AWS_REGION", connect_standin::LOCAL_REGION),
            ("AWS_ACCESS_KEY_ID", connect_standin::LOCAL_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", connect_standin::LOCAL_SECRET_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            cmd.env(k, v);
        }
        cmd
    };
    let url = connect.url();
    let out = tokio::task::spawn_blocking(move || run(url).output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        answer,
        json!({"ContactId": tasks[0].contact_id, "ClientToken": tasks[0].client_token})
    );
    assert_eq!(
        tasks[0].request,
        expected_requests("eventbridge-order-failed")[0]
    );
    connect.stop().await;
}

/// The stack may be deployed in another Region than the instance (samconfig once defaulted to
/// one where Connect does not run). With the instance given as an ARN, Connect is called in the
/// ARN's Region: the stand-in checks the SigV4 Region (eu-west-1) while the function's own
/// Region is us-east-1. It used to sign for us-east-1 and be refused.
#[tokio::test]
async fn an_instance_arn_sends_the_call_to_the_instances_region() {
    let arn = format!("arn:aws:connect:eu-west-1:111122223333:instance/{INSTANCE}");
    let mut stack = start(
        known_instance(),
        &[
            ("CONNECT_INSTANCE_ID", arn.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ],
    )
    .await;
    let answer = response(
        stack.invoke(event("sns-notification"), TIMEOUT).await,
        "sns",
    );
    assert!(answer["ContactId"].is_string(), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}

/// cargo lambda's emulator sends `Lambda-Runtime-Deadline-Ms: 600000` (a constant, not an epoch
/// time). Taken at its word, every call was "deadline too close"; now a deadline before the
/// process started is treated as unknown, with one warning.
#[tokio::test]
async fn a_deadline_that_cannot_be_real_is_treated_as_unknown() {
    let mut stack = start(known_instance(), &[]).await;
    stack
        .function
        .report_deadline(Some(std::time::UNIX_EPOCH + Duration::from_millis(600_000)));
    for name in ["sns-notification", "eventbridge-order-failed"] {
        let answer = response(stack.invoke(event(name), TIMEOUT).await, name);
        assert!(answer["ContactId"].is_string(), "{name}: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert_eq!(
        logs.matches("lies before this process started").count(),
        1,
        "{logs}"
    );
    stack.stop().await;
}

/// A contact flow gets the flat map of strings it reads, and the task is linked to the calling
/// contact: RelatedContactId by default, PreviousContactId with CONTACT_FLOW_LINK=previous. A
/// failure is an error, so the flow takes its error branch.
#[tokio::test]
async fn a_contact_flow_gets_a_flat_answer_and_a_linked_task() {
    for (link, member) in [
        (None, "RelatedContactId"),
        (Some("previous"), "PreviousContactId"),
    ] {
        let extra: Vec<(&str, &str)> = link
            .map(|l| vec![("CONTACT_FLOW_LINK", l)])
            .unwrap_or_default();
        let mut stack = start(known_instance(), &extra).await;
        let flow = event("contact-flow-callback");
        let answer = response(stack.invoke(flow.clone(), TIMEOUT).await, "flow");
        let map = answer.as_object().unwrap();
        assert!(map.values().all(Value::is_string), "{answer}");
        assert!(
            map["ContactId"].is_string() && map["ClientToken"].is_string(),
            "{answer}"
        );
        let task = &stack.connect.tasks()[0];
        let caller = &flow["Details"]["ContactData"]["ContactId"];
        assert_eq!(&task.request[member], caller, "{}", task.request);
        stack.stop().await;
    }
    let mut stack = start(known_instance(), &[]).await;
    let mut broken = event("contact-flow-callback");
    broken["Details"]["ContactData"]["ContactId"] = json!("");
    assert!(matches!(
        stack.invoke(broken, TIMEOUT).await,
        Ok(Invocation::Error { .. })
    ));
    stack.stop().await;
}
