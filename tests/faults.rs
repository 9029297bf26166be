//! The fault matrix: the binary under the local Runtime API against the stand-in with faults
//! injected, every event delivered at least twice the way its source would (SQS redelivers
//! failed items and whole batches after a timeout, Lambda retries async events twice, webhook
//! callers retry 429/5xx). For each scenario, at the stand-in: no event has two tasks, and every
//! event has its task or was reported failed to its source. `make test-faults` prints the table.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{root, FLOW, INSTANCE};
use connect_standin::connect::{ConnectStandIn, Faults, Options};
use connect_standin::harness::LocalStack;
use connect_standin::runtime_api::Invocation;
use serde_json::{json, Value};

/// Every task records the event it came from, so duplicates can be counted at the stand-in.
const MAPPING: &str = r#"
routes:
  - name: all
    task:
      name: "Fault matrix {{ body.key }}"
      attributes: { eventKey: "{{ body.key }}" }
"#;

fn binary() -> PathBuf {
    std::env::var_os("CTB_FUNCTION_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_connect-task-bridge")))
}

#[derive(Clone)]
enum Delivery {
    Sqs(Vec<(String, Value)>),
    Async(Value),
    Webhook(Value),
}

fn sqs_message(key: &str) -> (String, Value) {
    let id = format!("msg-{key}");
    (
        id.clone(),
        json!({
            "messageId": id, "receiptHandle": "rh", "body": json!({"key": key}).to_string(),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
            "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:faults", "awsRegion": "eu-west-1"
        }),
    )
}

fn eventbridge(key: &str) -> Value {
    json!({
        "version": "0", "id": format!("ev-{key}"), "detail-type": "Fault", "source": "faults",
        "account": "111122223333", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {"key": key}
    })
}

fn webhook(key: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "POST /tasks", "rawPath": "/tasks", "rawQueryString": "",
        "headers": {"content-type": "application/json", "idempotency-key": format!("hook-{key}")},
        "requestContext": {"accountId": "1", "apiId": "api", "domainName": "api.execute-api.eu-west-1.amazonaws.com",
            "http": {"method": "POST", "path": "/tasks", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "t"},
            "requestId": format!("req-{key}"), "routeKey": "POST /tasks", "stage": "$default", "time": "t", "timeEpoch": 0},
        "body": json!({"key": key}).to_string(), "isBase64Encoded": false
    })
}

/// 30 SQS messages in batches of 10, 10 EventBridge events, 5 webhooks.
fn workload() -> (Vec<Delivery>, Vec<String>) {
    let mut keys = Vec::new();
    let mut deliveries = Vec::new();
    for b in 0..3 {
        let batch: Vec<_> = (0..10).map(|i| format!("s{b}-{i}")).collect();
        keys.extend(batch.iter().cloned());
        deliveries.push(Delivery::Sqs(
            batch.iter().map(|k| sqs_message(k)).collect(),
        ));
    }
    for i in 0..10 {
        let k = format!("e{i}");
        deliveries.push(Delivery::Async(eventbridge(&k)));
        keys.push(k);
    }
    for i in 0..5 {
        let k = format!("w{i}");
        deliveries.push(Delivery::Webhook(webhook(&k)));
        keys.push(k);
    }
    (deliveries, keys)
}

struct Scenario {
    name: &'static str,
    faults: Faults,
    /// The function's timeout.
    timeout: Duration,
    env: Vec<(&'static str, &'static str)>,
    /// The first answer to each SQS batch is lost, as when an invocation times out after doing
    /// its work: the whole batch is delivered again.
    lose_first_answer: bool,
}

#[derive(Default, Debug)]
struct Figures {
    events: usize,
    tasks: usize,
    duplicates: usize,
    reported_failed: usize,
    lost: usize,
    invocations: usize,
    requests: u64,
    replayed: u64,
    seconds: f64,
}

const SQS_RECEIVES: usize = 8;
const ASYNC_ATTEMPTS: usize = 3;
const WEBHOOK_ATTEMPTS: usize = 5;

async fn run(scenario: &Scenario) -> Figures {
    let mut options = Options::local();
    options.faults = scenario.faults.clone();
    let connect = ConnectStandIn::start(options, 0).await.unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("CONNECT_INSTANCE_ID".into(), INSTANCE.into()),
        ("CONNECT_CONTACT_FLOW_ID".into(), FLOW.into()),
        ("WEBHOOK_AUTH".into(), "none".into()),
        ("LAMBDA_TASK_ROOT".into(), root().display().to_string()),
        ("TASK_MAPPING".into(), MAPPING.into()),
        // Faults, not the pace (tests/surge.rs): calls go out as fast as the scenario sends them.
        ("CONNECT_REQUESTS_PER_SECOND".into(), "1000".into()),
        ("CONNECT_BURST".into(), "1000".into()),
    ];
    env.extend(
        scenario
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut stack = LocalStack::start(&binary(), connect, &env).await.unwrap();
    let (deliveries, keys) = workload();
    let started = Instant::now();
    let mut invocations = 0;
    // Events that reached their source's failure path: SQS DLQ, the async on-failure
    // destination, or a final error answer to the webhook caller.
    let mut reported_failed: BTreeSet<String> = BTreeSet::new();

    // Every delivery twice: at-least-once sources do redeliver successful events.
    for round in 0..2 {
        for delivery in &deliveries {
            match delivery {
                Delivery::Sqs(messages) => {
                    let mut pending: Vec<(String, Value)> = messages.clone();
                    let mut receives = 0;
                    while !pending.is_empty() && receives < SQS_RECEIVES {
                        receives += 1;
                        invocations += 1;
                        let batch = json!({"Records": pending.iter().map(|m| m.1.clone()).collect::<Vec<_>>()});
                        let answer = stack.invoke(batch, scenario.timeout).await;
                        let answer = if scenario.lose_first_answer && receives == 1 {
                            Err(connect_standin::runtime_api::InvokeError::TimedOut)
                        } else {
                            answer
                        };
                        let failed: BTreeSet<String> = match answer {
                            Ok(Invocation::Response(v)) => v["batchItemFailures"]
                                .as_array()
                                .expect("an SQS answer")
                                .iter()
                                .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
                                .collect(),
                            // A failed or timed-out invocation: the whole batch comes back.
                            _ => pending.iter().map(|m| m.0.clone()).collect(),
                        };
                        pending.retain(|m| failed.contains(&m.0));
                    }
                    for (id, _) in pending {
                        reported_failed
                            .insert(format!("{round}:{}", id.trim_start_matches("msg-")));
                    }
                }
                Delivery::Async(event) => {
                    let mut ok = false;
                    for _ in 0..ASYNC_ATTEMPTS {
                        invocations += 1;
                        if let Ok(Invocation::Response(_)) =
                            stack.invoke(event.clone(), scenario.timeout).await
                        {
                            ok = true;
                            break;
                        }
                    }
                    if !ok {
                        reported_failed.insert(format!(
                            "{round}:{}",
                            event["detail"]["key"].as_str().unwrap()
                        ));
                    }
                }
                Delivery::Webhook(request) => {
                    let mut ok = false;
                    for _ in 0..WEBHOOK_ATTEMPTS {
                        invocations += 1;
                        match stack.invoke(request.clone(), scenario.timeout).await {
                            Ok(Invocation::Response(v)) if v["statusCode"] == 201 => {
                                ok = true;
                                break;
                            }
                            Ok(Invocation::Response(v)) => {
                                let status = v["statusCode"].as_u64().unwrap();
                                assert!(status == 429 || status >= 500, "{}: {v}", scenario.name);
                            }
                            _ => {}
                        }
                    }
                    if !ok {
                        let body: Value =
                            serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
                        reported_failed
                            .insert(format!("{round}:{}", body["key"].as_str().unwrap()));
                    }
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    let tasks = stack.connect.tasks();
    let stats = stack.connect.stats();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tasks {
        let key = t.request["Attributes"]["eventKey"]
            .as_str()
            .unwrap()
            .to_string();
        *per_key.entry(key).or_default() += 1;
    }
    let duplicates = per_key.values().map(|n| n.saturating_sub(1)).sum();
    // Lost: an event without a task whose delivery was never reported failed.
    let lost = keys
        .iter()
        .filter(|k| !per_key.contains_key(*k))
        .filter(|k| !(0..2).any(|r| reported_failed.contains(&format!("{r}:{k}"))))
        .count();
    // An event reported failed in its last delivery must not have a task it never reported.
    let figures = Figures {
        events: keys.len(),
        tasks: tasks.len(),
        duplicates,
        reported_failed: reported_failed.len(),
        lost,
        invocations,
        requests: stats.requests,
        replayed: stats.replayed,
        seconds,
    };
    stack.stop().await;
    figures
}

fn scenarios() -> Vec<Scenario> {
    let fast_sdk = vec![
        ("CONNECT_ATTEMPT_TIMEOUT_MS", "800"),
        ("BATCH_CONCURRENCY", "4"),
    ];
    vec![
        Scenario {
            name: "no faults, every event twice",
            faults: Faults::default(),
            timeout: Duration::from_secs(10),
            env: fast_sdk.clone(),
            lose_first_answer: false,
        },
        Scenario {
            name: "40% ThrottlingException",
            faults: Faults {
                throttle: 0.4,
                ..Faults::default()
            },
            timeout: Duration::from_secs(10),
            env: fast_sdk.clone(),
            lose_first_answer: false,
        },
        Scenario {
            name: "10% InternalServiceException",
            faults: Faults {
                internal: 0.1,
                ..Faults::default()
            },
            timeout: Duration::from_secs(10),
            env: fast_sdk.clone(),
            lose_first_answer: false,
        },
        Scenario {
            name: "0-150 ms added latency",
            faults: Faults {
                latency_ms: 150,
                ..Faults::default()
            },
            timeout: Duration::from_secs(10),
            env: fast_sdk.clone(),
            lose_first_answer: false,
        },
        Scenario {
            name: "15% answered after the client timed out",
            faults: Faults {
                hang: 0.15,
                hang_ms: 1_200,
                ..Faults::default()
            },
            timeout: Duration::from_secs(10),
            env: fast_sdk.clone(),
            lose_first_answer: false,
        },
        Scenario {
            name: "deadline hit mid-batch (1.2 s timeout, 300 ms calls)",
            faults: Faults {
                delay_ms: 300,
                ..Faults::default()
            },
            timeout: Duration::from_millis(1_200),
            env: vec![("BATCH_CONCURRENCY", "2")],
            lose_first_answer: false,
        },
        Scenario {
            name: "answers later than the invocation deadline",
            faults: Faults {
                hang: 0.1,
                hang_ms: 3_000,
                ..Faults::default()
            },
            timeout: Duration::from_millis(1_500),
            env: vec![
                ("CONNECT_ATTEMPT_TIMEOUT_MS", "5000"),
                ("BATCH_CONCURRENCY", "4"),
            ],
            lose_first_answer: false,
        },
        Scenario {
            name: "batch answer lost (timeout), whole batch redelivered",
            faults: Faults::default(),
            timeout: Duration::from_secs(10),
            env: fast_sdk,
            lose_first_answer: true,
        },
    ]
}

#[tokio::test]
async fn no_task_is_lost_or_duplicated_under_faults() {
    let mut table = String::from(
        "| scenario | events | tasks | duplicates | reported failed | lost | invocations | Connect requests | answered from token | s |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut problems = Vec::new();
    for scenario in scenarios() {
        let f = run(&scenario).await;
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            scenario.name,
            f.events,
            f.tasks,
            f.duplicates,
            f.reported_failed,
            f.lost,
            f.invocations,
            f.requests,
            f.replayed,
            f.seconds
        ));
        if f.duplicates != 0 || f.lost != 0 {
            problems.push(format!("{}: {f:?}", scenario.name));
        }
        if scenario.faults == Faults::default() {
            assert_eq!(
                f.tasks, f.events,
                "{}: every event has its task",
                scenario.name
            );
            assert_eq!(f.reported_failed, 0);
        }
    }
    println!("\n{table}");
    assert!(problems.is_empty(), "{problems:#?}\n{table}");
}
