//! Every decision counted, through the binary: each record outcome (started, replayed (a
//! redelivery the table knows, a token Connect answered from after a call cut short), found,
//! key_reused, updated, rescheduled, tagged, stopped, ignored, failed, heard, queued, held,
//! handed back for the pace, the clock and a fault) is driven against the stand-in (with moto's
//! DynamoDB, Step Functions, EventBridge, SQS and Secrets Manager where the outcome needs them),
//! and its EMF line is found in the function's stdout with its Source and Route dimensions.

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{order_event, response, root};
use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::surge::{esm_record, queue_arn};
use connect_task_bridge::metrics::{Counted, METRICS};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

const MAPPING: &str = r#"
routes:
  - name: order-failed
    when: { detail_type: OrderFailed }
    key: "order-{{ body.orderId }}"
    task_token: "{{ body.taskToken }}"
    task:
      name: "Order {{ body.orderId }} failed"
  - name: order-note
    when: { detail_type: OrderNote }
    action: update
    key: "order-{{ body.orderId }}"
    task: { description: "{{ body.note }}" }
  - name: order-delayed
    when: { detail_type: OrderDelayed }
    action: reschedule
    key: "order-{{ body.orderId }}"
    task: { delay: 2h }
  - name: order-priority
    when: { detail_type: OrderPriority }
    action: tag
    key: "order-{{ body.orderId }}"
    tags: { priority: "{{ body.priority }}" }
  - name: order-recovered
    when: { detail_type: OrderRecovered }
    action: stop
    key: "order-{{ body.orderId }}"
  - name: order-audit
    when: { detail_type: OrderAudit }
    action: update
    key: "order-{{ body.orderId }}"
    if_missing: fail
    task: { description: audited }
"#;

/// The function's EMF lines so far.
fn emf(stack: &LocalStack) -> Vec<Value> {
    stack
        .function
        .json_logs()
        .into_iter()
        .filter(|l| l["_aws"]["CloudWatchMetrics"].is_array())
        .collect()
}

/// The sum of `metric` over the EMF lines of `route` (any route: None).
fn counted(lines: &[Value], metric: &str, route: Option<&str>) -> u64 {
    lines
        .iter()
        .filter(|l| route.is_none_or(|r| l["Route"] == r))
        .filter_map(|l| l[metric].as_u64())
        .sum()
}

/// Every line is a well-formed EMF document of metrics the function declares.
fn well_formed(lines: &[Value]) {
    for line in lines {
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "ConnectTaskBridge", "{line}");
        assert!(line["_aws"]["Timestamp"].is_u64(), "{line}");
        assert_eq!(line["Version"], env!("CARGO_PKG_VERSION"), "{line}");
        for m in declared["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(METRICS.iter().any(|x| x.name == name), "{name}");
            assert!(line[name].is_u64(), "{line}");
        }
        for set in declared["Dimensions"].as_array().unwrap() {
            for dimension in set.as_array().unwrap() {
                assert!(line[dimension.as_str().unwrap()].is_string(), "{line}");
            }
        }
    }
}

#[tokio::test]
async fn every_lifecycle_outcome_is_counted_by_source_and_route() {
    let moto = Moto::start(&moto_server(&root())).await;
    moto.create_task_table("tasks").await;
    let mut stack = common::start_function(&[
        ("CONNECT_REQUESTS_PER_SECOND", "1000"),
        ("CONNECT_BURST", "1000"),
        ("TASK_MAPPING", MAPPING),
        ("TASK_TABLE", "tasks"),
        ("COMPLETION_EVENT_BUS", "default"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("AWS_ENDPOINT_URL_SFN", &moto.url),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto.url),
        ("WEBHOOK_AUTH", "none"),
    ])
    .await;
    let failed = order_event(
        "ev-1",
        "OrderFailed",
        json!({"orderId": "o-1", "taskToken": "t-1"}),
    );
    let mut invoke = async |event: Value| response(stack.invoke(event, TIMEOUT).await);
    invoke(failed.clone()).await; // started
    invoke(failed).await; // replayed: the same event
    let same = order_event(
        "ev-2",
        "OrderFailed",
        json!({"orderId": "o-1", "taskToken": "t-1"}),
    );
    assert_eq!(invoke(same).await["Outcome"], "found");
    let other = order_event(
        "ev-3",
        "OrderFailed",
        json!({"orderId": "o-1", "taskToken": "t-other"}),
    );
    assert_eq!(invoke(other).await["Outcome"], "key_reused");
    let note = order_event("ev-4", "OrderNote", json!({"orderId": "o-1", "note": "n"}));
    invoke(note.clone()).await; // updated
    invoke(order_event(
        "ev-5",
        "OrderDelayed",
        json!({"orderId": "o-1"}),
    ))
    .await;
    invoke(order_event(
        "ev-6",
        "OrderPriority",
        json!({"orderId": "o-1", "priority": "high"}),
    ))
    .await;
    invoke(order_event(
        "ev-7",
        "OrderRecovered",
        json!({"orderId": "o-1"}),
    ))
    .await;
    assert_eq!(invoke(note).await["Outcome"], "ignored");
    // An action the route says must find a task: failed (NoOpenTask), by class and code.
    let audit = order_event("ev-8", "OrderAudit", json!({"orderId": "o-1"}));
    let _ = stack.invoke(audit, TIMEOUT).await;
    // A workflow's task, completed by the agent: the contact event is heard.
    let direct = json!({"Name": "Call back", "TaskToken": "t-direct"});
    let contact = response(stack.invoke(direct, TIMEOUT).await)["ContactId"]
        .as_str()
        .unwrap()
        .to_string();
    let ended = stack
        .connect
        .agent(&contact, "complete", Value::Null)
        .unwrap();
    let heard = response(stack.invoke(ended[1].clone(), TIMEOUT).await);
    assert_eq!(heard["Outcome"], "heard", "{heard}");

    // A start whose call Connect carried out but answered too late: the claim is released, the
    // redelivery takes it over and sends the same token, and Connect answers from it.
    stack.connect.set_faults(Faults {
        hang: 1.0,
        hang_ms: 3_000,
        ..Faults::default()
    });
    let late = order_event(
        "ev-9",
        "OrderFailed",
        json!({"orderId": "o-9", "taskToken": "t-9"}),
    );
    let cut = stack.invoke(late.clone(), Duration::from_secs(2)).await;
    assert!(
        matches!(
            &cut,
            Ok(connect_standin::runtime_api::Invocation::Error { .. })
        ),
        "{cut:?}"
    );
    stack.connect.set_faults(Faults::default());
    let again = response(stack.invoke(late, TIMEOUT).await);
    assert!(again["ContactId"].is_string(), "{again}");
    assert_eq!(
        stack.connect.stats().replayed,
        1,
        "Connect answered from the token"
    );

    let lines = emf(&stack);
    well_formed(&lines);
    // The cold-start line names the version the metrics carry.
    let cold = stack
        .function
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "cold start")
        .expect("a cold-start line");
    assert_eq!(cold["version"], env!("CARGO_PKG_VERSION"), "{cold}");
    let route = |r: &'static str| Some(r);
    for (counted_as, on_route, n) in [
        (Counted::Started, route("order-failed"), 1),
        // The redelivery of ev-1 (no call), and ev-9's token sent again.
        (Counted::Replayed, route("order-failed"), 2),
        (Counted::Found, route("order-failed"), 1),
        (Counted::KeyReused, route("order-failed"), 1),
        (Counted::Updated, route("order-note"), 1),
        (Counted::Rescheduled, route("order-delayed"), 1),
        (Counted::Tagged, route("order-priority"), 1),
        (Counted::Stopped, route("order-recovered"), 1),
        (Counted::Ignored, route("order-note"), 1),
        (Counted::Failed, route("order-audit"), 1),
        (Counted::Heard, None, 1),
    ] {
        assert_eq!(
            counted(&lines, counted_as.metric(), on_route),
            n,
            "{counted_as:?} on {on_route:?}: {lines:#?}"
        );
    }
    // Every outcome line carries its source: EventBridge events, the direct request and the
    // contact event, each under its own.
    let sources: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["Route"].is_string())
        .map(|l| l["Source"].as_str().unwrap())
        .collect();
    assert!(sources.contains("eventbridge"), "{sources:?}");
    assert!(sources.len() >= 2, "{sources:?}");
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|l| l["ErrorCode"] == "NoOpenTask")
        .collect();
    assert_eq!(failures.len(), 1, "{lines:#?}");
    assert_eq!(failures[0]["ErrorClass"], "permanent");
    stack.stop().await;
}

struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

impl Queue {
    async fn new(moto: &Moto, name: &str) -> Queue {
        let sqs = moto.sqs_client();
        let url = sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Queue {
            sqs,
            url,
            arn: queue_arn(name),
        }
    }

    async fn send(&self, n: usize) {
        for i in 0..n {
            self.sqs
                .send_message()
                .queue_url(&self.url)
                .message_body(json!({"orderId": format!("o-{i}")}).to_string())
                .send()
                .await
                .unwrap();
        }
    }

    /// What the event source mapping would hand the function now.
    async fn receive(&self) -> Value {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let records: Vec<Value> = out
            .messages
            .unwrap_or_default()
            .iter()
            .map(|m| esm_record(m, &self.arn))
            .collect();
        json!({ "Records": records })
    }
}

/// The binary with the example mapping and `q` as its task queue (and the envelope key in
/// moto's Secrets Manager, for holds), paced at one call a second.
async fn queued_stack(moto: &Moto, q: &Queue, key: &str) -> LocalStack {
    moto.secrets_client()
        .create_secret()
        .name(key)
        .secret_string("the-functions-own-key")
        .send()
        .await
        .unwrap();
    common::start_function(&[
        ("WEBHOOK_AUTH", "none"),
        ("TASK_MAPPING_FILE", common::EXAMPLE_MAPPING),
        ("TASK_QUEUE_URL", &q.url),
        ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ("ENVELOPE_SECRET_ID", key),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url),
        ("QUOTA_HOLD_SECONDS", "1"),
        ("CONNECT_REQUESTS_PER_SECOND", "1"),
        ("CONNECT_BURST", "1"),
        ("CONNECT_CALLERS", "1"),
        ("CONNECT_MAX_ATTEMPTS", "2"),
    ])
    .await
}

fn hand_backs(lines: &[Value], reason: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l["Reason"] == reason)
        .filter_map(|l| l["HandBacks"].as_u64())
        .sum()
}

#[tokio::test]
async fn queued_held_and_handed_back_records_are_counted_with_their_reason() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = Queue::new(&moto, "counted").await;
    let mut stack = queued_stack(&moto, &q, "envelope-counted").await;

    // The pace: one call a second and 2.5 s to live, five records: some have no turn.
    q.send(5).await;
    let answer = response(
        stack
            .invoke(q.receive().await, Duration::from_millis(2500))
            .await,
    );
    let paced = common::batch_failures(&answer).len() as u64;
    assert!(paced > 0, "{answer}");
    let lines = emf(&stack);
    assert_eq!(counted(&lines, "TasksHandedBack", None), paced);
    assert_eq!(hand_backs(&lines, "pace"), paced);
    assert_eq!(counted(&lines, "TasksStarted", None), 5 - paced);
    let failures: u64 = lines
        .iter()
        .filter(|l| l["ErrorCode"] == "Paced")
        .filter_map(|l| l["Failures"].as_u64())
        .sum();
    assert_eq!(failures, paced, "{lines:#?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = q.receive().await; // the handed-back ones, out of the way

    // The clock: Connect answers after the invocation's time is up.
    stack.connect.set_faults(Faults {
        delay_ms: 4000,
        ..Faults::default()
    });
    q.send(1).await;
    let before = hand_backs(&emf(&stack), "clock");
    let _ = stack
        .invoke(q.receive().await, Duration::from_millis(2000))
        .await;
    assert_eq!(
        hand_backs(&emf(&stack), "clock") - before,
        1,
        "{:#?}",
        emf(&stack)
    );

    // A fault of Connect's after the retries.
    stack.connect.set_faults(Faults {
        internal: 1.0,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    q.send(1).await;
    // The new message, and the one the clock handed back (back at its next turn).
    let batch = q.receive().await;
    let n = batch["Records"].as_array().unwrap().len() as u64;
    let _ = stack.invoke(batch, TIMEOUT).await;
    assert_eq!(hand_backs(&emf(&stack), "fault"), n, "{:#?}", emf(&stack));

    // Connect's quota of active tasks: held.
    stack.connect.set_faults(Faults {
        failing: [(
            "StartTaskContact".to_string(),
            "ServiceQuotaExceededException".to_string(),
        )]
        .into(),
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let direct = json!({"Name": "Call back", "Description": "quota"});
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    assert_eq!(answer["Queued"], true, "{answer}");
    let lines = emf(&stack);
    assert_eq!(counted(&lines, "TasksHeld", None), 1, "{lines:#?}");
    assert_eq!(hand_backs(&lines, "quota"), 1);

    // Throttled with no time to wait: a direct request is queued.
    stack.connect.set_faults(Faults {
        throttle: 1.0,
        ..Faults::default()
    });
    let direct = json!({"Name": "Call back", "Description": "throttled"});
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    assert_eq!(answer["Queued"], true, "{answer}");
    let lines = emf(&stack);
    assert_eq!(counted(&lines, "TasksQueued", None), 1, "{lines:#?}");
    assert!(counted(&lines, "ConnectThrottles", None) >= 1);
    well_formed(&lines);
    stack.stop().await;
}
