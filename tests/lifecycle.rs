//! The task lifecycle through the binary: the stand-in plays Connect (and the agent), moto's
//! server plays DynamoDB (the task table), Step Functions and EventBridge. Each action with
//! redelivery; concurrent deliveries of one key make one call; a crash between the call and the
//! table write is recovered by the next delivery with the same client token; a completion
//! delivered twice and out of order notifies once; a task that expires fails its workflow.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{batch_failures, order_event, response, root, sent};
use connect_standin::connect::Faults;
use connect_standin::harness::LocalFunction;
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);
const TABLE: &str = "tasks";

const MAPPING: &str = r#"
routes:
  - name: order-failed
    when: { detail_type: OrderFailed }
    key: "order-{{ body.orderId }}"
    task_token: "{{ body.taskToken }}"
    task:
      name: "Order {{ body.orderId }} failed"
      attributes: { orderId: "{{ body.orderId }}" }
  - name: order-note
    when: { detail_type: OrderNote }
    action: update
    key: "order-{{ body.orderId }}"
    task:
      description: "{{ body.note }}"
      attributes: { note: "{{ body.note }}" }
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
  - name: queued-order
    when: { source: sqs }
    key: "order-{{ body.orderId }}"
    task: { name: "Order {{ body.orderId }}" }
"#;

/// The function's environment for `moto` (the table, Step Functions and EventBridge there),
/// then `extra` (later values win), as `common::start_function` adds it to its own.
fn env_of(moto: &Moto, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("CONNECT_INSTANCE_ID", common::INSTANCE),
        ("CONNECT_CONTACT_FLOW_ID", common::FLOW),
        ("CONNECT_REQUESTS_PER_SECOND", "1000"),
        ("CONNECT_BURST", "1000"),
        ("TASK_MAPPING", MAPPING),
        ("TASK_TABLE", TABLE),
        ("COMPLETION_EVENT_BUS", "default"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("AWS_ENDPOINT_URL_SFN", &moto.url),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto.url),
        ("WEBHOOK_AUTH", "none"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn stack(moto: &Moto, extra: &[(&str, &str)]) -> LocalStack {
    moto.create_task_table(TABLE).await;
    let env = env_of(moto, extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::start_function(&env).await
}

#[tokio::test]
async fn every_action_finds_the_keys_task_and_redelivery_changes_nothing() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    let failed = order_event(
        "ev-1",
        "OrderFailed",
        json!({"orderId": "o-1", "taskToken": "token-1"}),
    );

    // Start, then the same event again, then another event for the same order: one task.
    let first = response(stack.invoke(failed.clone(), TIMEOUT).await);
    let contact = first["ContactId"].as_str().unwrap().to_string();
    let again = response(stack.invoke(failed.clone(), TIMEOUT).await);
    assert_eq!(again["Outcome"], "replayed", "{again}");
    assert_eq!(again["ContactId"], contact.as_str());
    let other = order_event(
        "ev-2",
        "OrderFailed",
        json!({"orderId": "o-1", "taskToken": "token-1"}),
    );
    let other = response(stack.invoke(other, TIMEOUT).await);
    assert_eq!(other["ContactId"], contact.as_str(), "{other}");
    // The same key with a different request: answered with the open task, and said so.
    let different = order_event(
        "ev-2b",
        "OrderFailed",
        json!({"orderId": "o-1", "taskToken": "token-other"}),
    );
    let different = response(stack.invoke(different, TIMEOUT).await);
    assert_eq!(different["Outcome"], "key_reused", "{different}");
    assert_eq!(different["ContactId"], contact.as_str());
    assert_eq!(stack.connect.tasks().len(), 1);
    // The task token stays in the table: the agent never sees it.
    let task = &stack.connect.tasks()[0];
    assert!(!task.request.to_string().contains("token-1"));

    // Update, twice: harmless.
    let note = order_event(
        "ev-3",
        "OrderNote",
        json!({"orderId": "o-1", "note": "customer called"}),
    );
    for _ in 0..2 {
        let answer = response(stack.invoke(note.clone(), TIMEOUT).await);
        assert_eq!(answer["Outcome"], "updated", "{answer}");
    }
    let task = &stack.connect.tasks()[0];
    assert_eq!(task.current["Description"], "customer called");
    assert_eq!(task.attributes["note"], "customer called");
    assert_eq!(task.attributes["orderId"], "o-1");

    // Reschedule and tag.
    let delayed = order_event("ev-4", "OrderDelayed", json!({"orderId": "o-1"}));
    let answer = response(stack.invoke(delayed, TIMEOUT).await);
    assert_eq!(answer["Outcome"], "rescheduled", "{answer}");
    assert!(stack.connect.tasks()[0].current["ScheduledTime"].is_number());
    let priority = order_event(
        "ev-5",
        "OrderPriority",
        json!({"orderId": "o-1", "priority": "high"}),
    );
    let answer = response(stack.invoke(priority, TIMEOUT).await);
    assert_eq!(answer["Outcome"], "tagged", "{answer}");
    assert_eq!(stack.connect.tasks()[0].tags["priority"], "high");

    // Stop, twice: stopped once, the workflow told once that it was stopped.
    let recovered = order_event("ev-6", "OrderRecovered", json!({"orderId": "o-1"}));
    for _ in 0..2 {
        let answer = response(stack.invoke(recovered.clone(), TIMEOUT).await);
        assert_eq!(answer["Outcome"], "stopped", "{answer}");
    }
    let task = &stack.connect.tasks()[0];
    assert_eq!(task.state, "ENDED");
    assert_eq!(task.disconnect_reason.as_deref(), Some("API"));
    let failures = sent(&moto, "AWSStepFunctions.SendTaskFailure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["taskToken"], "token-1");
    assert_eq!(failures[0]["error"], "TaskStopped");
    let completions = sent(&moto, "AWSEvents.PutEvents");
    assert_eq!(completions.len(), 1, "{completions:?}");
    let detail: Value =
        serde_json::from_str(completions[0]["Entries"][0]["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["outcome"], "stopped");
    assert_eq!(detail["key"], "order-o-1");
    assert_eq!(detail["contactId"], contact.as_str());

    // Connect's own DISCONNECTED event for the stop comes later: already heard.
    let events = stack.connect.events();
    let disconnected = events
        .iter()
        .find(|e| e["detail"]["eventType"] == "DISCONNECTED")
        .unwrap()
        .clone();
    let answer = response(stack.invoke(disconnected, TIMEOUT).await);
    assert_eq!(answer["Outcome"], "ignored", "{answer}");
    assert_eq!(sent(&moto, "AWSStepFunctions.SendTaskFailure").len(), 1);

    // Actions on a key with no open task: ignored, or failed where the route says so.
    let answer = response(stack.invoke(note.clone(), TIMEOUT).await);
    assert_eq!(answer["Outcome"], "ignored", "{answer}");
    let audit = order_event("ev-7", "OrderAudit", json!({"orderId": "o-1"}));
    match stack.invoke(audit, TIMEOUT).await {
        Ok(connect_standin::runtime_api::Invocation::Error { error_type, .. }) => {
            assert_eq!(error_type, "permanent.NoOpenTask")
        }
        other => panic!("expected an error, got {other:?}"),
    }

    // The order fails again later: a new event opens the key's next task; the first event,
    // redelivered now, is not a new task.
    let later = order_event("ev-8", "OrderFailed", json!({"orderId": "o-1"}));
    let answer = response(stack.invoke(later, TIMEOUT).await);
    let second = answer["ContactId"].as_str().unwrap().to_string();
    assert_ne!(second, contact);
    let answer = response(stack.invoke(failed, TIMEOUT).await);
    assert_eq!(answer["ContactId"], second.as_str(), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 2);
    let tokens: BTreeSet<_> = stack
        .connect
        .tasks()
        .iter()
        .map(|t| t.client_token.clone().unwrap())
        .collect();
    assert_eq!(tokens.len(), 2, "each generation has its own token");
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_deliveries_of_one_key_make_one_call() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[("BATCH_CONCURRENCY", "10")]).await;
    // Some latency, so that the deliveries overlap at Connect.
    stack.connect.set_faults(Faults {
        delay_ms: 300,
        ..Faults::default()
    });
    let records: Vec<Value> = (0..8)
        .map(|i| {
            json!({
                "messageId": format!("m-{i}"), "receiptHandle": format!("r-{i}"),
                "body": "{\"orderId\": \"o-9\"}", "attributes": {"SentTimestamp": "1"},
                "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:orders"
            })
        })
        .collect();
    let answer = response(
        stack
            .invoke(json!({ "Records": records.clone() }), TIMEOUT)
            .await,
    );
    assert_eq!(stack.connect.stats().requests, 1, "one call for one key");
    assert_eq!(stack.connect.tasks().len(), 1);
    // Those that met the claim in flight come back (batch item failures) and find the task.
    let busy = batch_failures(&answer);
    assert!(busy.len() < 8, "{answer}");
    let retry: Vec<Value> = records
        .into_iter()
        .filter(|r| busy.contains(r["messageId"].as_str().unwrap()))
        .collect();
    if !retry.is_empty() {
        let answer = response(stack.invoke(json!({ "Records": retry }), TIMEOUT).await);
        assert!(batch_failures(&answer).is_empty(), "{answer}");
    }
    assert_eq!(stack.connect.stats().requests, 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_crash_between_the_call_and_the_table_write_is_recovered_with_the_same_token() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    // Connect creates the task and is slow to answer; the process dies before it does (an
    // out-of-memory kill, a host failure): nothing after the call ran.
    stack.connect.set_faults(Faults {
        hang: 1.0,
        hang_ms: 5_000,
        ..Faults::default()
    });
    let failed = order_event("ev-c", "OrderFailed", json!({"orderId": "o-c"}));
    let pid = stack.function.pid().unwrap();
    let connect = &stack.connect;
    let killer = async {
        while connect.tasks().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    };
    let (crashed, ()) = tokio::join!(
        stack
            .function
            .invoke(failed.clone(), Duration::from_secs(2)),
        killer
    );
    assert!(crashed.is_err(), "{crashed:?}");
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.connect.set_faults(Faults::default());
    stack.cold_start().await.unwrap();

    // Within the claim (its invocation's deadline and a margin) the next delivery waits.
    let answer = stack.invoke(failed.clone(), TIMEOUT).await;
    assert!(
        matches!(&answer, Ok(connect_standin::runtime_api::Invocation::Error { error_type, .. }) if error_type.ends_with("KeyBusy")),
        "{answer:?}"
    );
    // The claim holds until its invocation's deadline has surely passed, then is taken over.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let answer = response(stack.invoke(failed, TIMEOUT).await);
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 1, "{answer}");
    assert_eq!(answer["ContactId"], tasks[0].contact_id.as_str());
    assert_eq!(
        stack.connect.stats().replayed,
        1,
        "the same token met the same task"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_completion_heard_twice_and_out_of_order_notifies_once() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    // A Step Functions task (waitForTaskToken) invokes the function directly.
    let direct = json!({"Name": "Call the customer back", "TaskToken": "token-d"});
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    let contact = answer["ContactId"].as_str().unwrap().to_string();

    // The agent accepts, adds a note, completes: DISCONNECTED then COMPLETED, delivered
    // COMPLETED first, then DISCONNECTED, then COMPLETED again.
    let accepted = stack.connect.events();
    let completed = stack
        .connect
        .agent(&contact, "complete", json!({"outcome": "reached"}))
        .unwrap();
    let (disconnected, completed) = (completed[0].clone(), completed[1].clone());
    let mut told = Vec::new();
    for event in [completed.clone(), disconnected, completed] {
        let answer = response(stack.invoke(event, TIMEOUT).await);
        told.push(answer["Outcome"].as_str().unwrap().to_string());
    }
    assert_eq!(told, ["heard", "ignored", "ignored"]);
    // Events about the task's start, and about contacts the table does not know: ignored.
    for event in accepted {
        let answer = response(stack.invoke(event, TIMEOUT).await);
        assert_eq!(answer["Outcome"], "ignored", "{answer}");
    }

    let successes = sent(&moto, "AWSStepFunctions.SendTaskSuccess");
    assert_eq!(successes.len(), 1, "{successes:?}");
    assert_eq!(successes[0]["taskToken"], "token-d");
    let output: Value = serde_json::from_str(successes[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["contactId"], contact.as_str());
    assert_eq!(output["outcome"], "completed");
    assert_eq!(output["disconnectReason"], "AGENT_DISCONNECT");
    assert_eq!(output["attributes"]["outcome"], "reached");
    assert_eq!(sent(&moto, "AWSEvents.PutEvents").len(), 1);

    // A notification that failed (Step Functions unreachable from this environment) is sent by
    // the event's next delivery, not lost to the claim the failed one held.
    let direct = json!({"Name": "Third", "TaskToken": "token-f"});
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    let contact = answer["ContactId"].as_str().unwrap().to_string();
    let events = stack
        .connect
        .agent(&contact, "complete", Value::Null)
        .unwrap();
    let mut cut_off = LocalFunction::start(
        &common::function_binary(),
        &stack.connect.url(),
        &env_of(&moto, &[("AWS_ENDPOINT_URL_SFN", "http://127.0.0.1:9")]),
    )
    .await
    .unwrap();
    let failed = cut_off.invoke(events[1].clone(), TIMEOUT).await;
    assert!(
        matches!(&failed, Ok(connect_standin::runtime_api::Invocation::Error { error_type, .. }) if error_type.starts_with("transient")),
        "{failed:?}"
    );
    cut_off.stop().await;
    let answer = response(stack.invoke(events[1].clone(), TIMEOUT).await);
    assert_eq!(answer["Outcome"], "heard", "{answer}");
    let told: Vec<Value> = sent(&moto, "AWSStepFunctions.SendTaskSuccess")
        .into_iter()
        .filter(|b| b["taskToken"] == "token-f")
        .collect();
    assert_eq!(told.len(), 1);

    // Another task expires: its workflow is told it failed.
    let direct = json!({"Name": "Another", "TaskToken": "token-e"});
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    let contact = answer["ContactId"].as_str().unwrap().to_string();
    let expired = stack
        .connect
        .agent(&contact, "expire", Value::Null)
        .unwrap();
    // As the template delivers contact events: through the task queue.
    let message = json!({
        "messageId": "m-expired", "receiptHandle": "r", "body": expired[0].to_string(),
        "attributes": {"SentTimestamp": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:tasks"
    });
    let answer = response(stack.invoke(json!({ "Records": [message] }), TIMEOUT).await);
    assert!(batch_failures(&answer).is_empty(), "{answer}");
    let failures = sent(&moto, "AWSStepFunctions.SendTaskFailure");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["error"], "TaskExpired");
    stack.stop().await;
}

/// The error type an invocation answered, or why there was no answer.
fn error_type<E: std::fmt::Debug>(
    answer: &Result<connect_standin::runtime_api::Invocation, E>,
) -> String {
    match answer {
        Ok(connect_standin::runtime_api::Invocation::Error { error_type, .. }) => {
            error_type.clone()
        }
        other => format!("no error answer: {other:?}"),
    }
}

/// A lifecycle call that cannot reach Connect (connection refused) or gets no answer in time
/// fails its record transiently; the process lives on. (The classification of every Connect
/// operation once ended in a call to itself for these: the process overflowed its stack and
/// aborted on every delivery, taking the batch's good records with it.)
#[tokio::test]
async fn a_lifecycle_call_that_gets_no_answer_fails_transiently_and_the_function_lives() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    let failed = order_event("ev-t1", "OrderFailed", json!({"orderId": "o-t"}));
    let opened = response(stack.invoke(failed, TIMEOUT).await);
    assert!(opened["ContactId"].is_string(), "{opened}");

    // The same function and table, with Connect out of reach.
    let mut cut_off = LocalFunction::start(
        &common::function_binary(),
        "http://127.0.0.1:9",
        &env_of(&moto, &[]),
    )
    .await
    .unwrap();
    for (id, detail_type, detail) in [
        ("ev-t2", "OrderRecovered", json!({"orderId": "o-t"})),
        ("ev-t3", "OrderNote", json!({"orderId": "o-t", "note": "n"})),
        (
            "ev-t4",
            "OrderPriority",
            json!({"orderId": "o-t", "priority": "p"}),
        ),
        ("ev-t5", "OrderDelayed", json!({"orderId": "o-t"})),
    ] {
        let answer = cut_off
            .invoke(order_event(id, detail_type, detail), TIMEOUT)
            .await;
        assert_eq!(
            error_type(&answer),
            "transient.DispatchFailure",
            "{detail_type}"
        );
    }
    // Still the same process: it answers the next event.
    let answer = cut_off
        .invoke(
            order_event("ev-t6", "OrderRecovered", json!({"orderId": "o-t"})),
            TIMEOUT,
        )
        .await;
    assert_eq!(error_type(&answer), "transient.DispatchFailure");
    assert!(cut_off
        .wait_exit(Duration::from_millis(100))
        .await
        .is_none());
    cut_off.stop().await;

    // No answer in time (the stand-in holds the answer past the attempt timeout).
    let slow = stack.connect.url();
    let mut timing_out = LocalFunction::start(
        &common::function_binary(),
        &slow,
        &env_of(&moto, &[("CONNECT_ATTEMPT_TIMEOUT_MS", "200")]),
    )
    .await
    .unwrap();
    stack.connect.set_faults(Faults {
        failing: [("StopContact".to_string(), "Hang".to_string())].into(),
        ..Faults::default()
    });
    let answer = timing_out
        .invoke(
            order_event("ev-t7", "OrderRecovered", json!({"orderId": "o-t"})),
            TIMEOUT,
        )
        .await;
    assert!(
        error_type(&answer).starts_with("transient."),
        "{}",
        error_type(&answer)
    );
    assert!(timing_out
        .wait_exit(Duration::from_millis(100))
        .await
        .is_none());
    timing_out.stop().await;
    stack.stop().await;
}

/// The workflow is told the agent's decision, or not yet: when the attributes cannot be read
/// back, nothing is sent and the event comes back (it once sent SendTaskSuccess with empty
/// attributes and counted the notification as done).
#[tokio::test]
async fn a_completion_whose_attributes_cannot_be_read_is_not_told_until_they_can() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    let direct = json!({"Name": "Call back", "TaskToken": "token-attr"});
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    let contact = answer["ContactId"].as_str().unwrap().to_string();
    let events = stack
        .connect
        .agent(&contact, "complete", json!({"outcome": "refund agreed"}))
        .unwrap();
    stack.connect.set_faults(Faults {
        failing: [(
            "GetContactAttributes".to_string(),
            "InternalServiceException".to_string(),
        )]
        .into(),
        ..Faults::default()
    });
    let answer = stack.invoke(events[0].clone(), TIMEOUT).await;
    assert!(error_type(&answer).starts_with("transient."), "{answer:?}");
    assert!(sent(&moto, "AWSStepFunctions.SendTaskSuccess").is_empty());

    stack.connect.set_faults(Faults::default());
    let answer = response(stack.invoke(events[0].clone(), TIMEOUT).await);
    assert_eq!(answer["Outcome"], "heard", "{answer}");
    let told = sent(&moto, "AWSStepFunctions.SendTaskSuccess");
    assert_eq!(told.len(), 1);
    let output: Value = serde_json::from_str(told[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["attributes"]["outcome"], "refund agreed");
    stack.stop().await;
}

/// A start Connect refused leaves the key without a task: actions find none (if_missing
/// applies) and the next start takes the key (it once stayed claimed: every action answered
/// KeyBusy until the DLQ).
#[tokio::test]
async fn a_start_connect_refused_leaves_the_key_free() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    // A flow the instance does not have: Connect's permanent refusal of the start.
    stack.connect.set_faults(Faults {
        failing: [(
            "StartTaskContact".to_string(),
            "InvalidParameterException".to_string(),
        )]
        .into(),
        ..Faults::default()
    });
    let failed = order_event("ev-r1", "OrderFailed", json!({"orderId": "o-r"}));
    let answer = stack.invoke(failed.clone(), TIMEOUT).await;
    assert_eq!(error_type(&answer), "permanent.InvalidParameterException");
    stack.connect.set_faults(Faults::default());

    // A stop with if_missing: ignore is ignored, at once; an audit (if_missing: fail) fails.
    let stop = order_event("ev-r2", "OrderRecovered", json!({"orderId": "o-r"}));
    let answer = response(stack.invoke(stop, TIMEOUT).await);
    assert_eq!(answer["Outcome"], "ignored", "{answer}");
    let audit = order_event("ev-r3", "OrderAudit", json!({"orderId": "o-r"}));
    let answer = stack.invoke(audit, TIMEOUT).await;
    assert_eq!(error_type(&answer), "permanent.NoOpenTask");
    // The event delivered again opens the task.
    let answer = response(stack.invoke(failed, TIMEOUT).await);
    assert!(answer["ContactId"].is_string(), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}

/// A keyed start with `delay:` delivered again is the same request (its ScheduledTime comes
/// from the clock): replayed, not key_reused.
#[tokio::test]
async fn a_delayed_start_delivered_again_is_replayed() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mapping = r#"
routes:
  - name: callback
    key: "callback-{{ body.customer }}"
    task: { name: "Call {{ body.customer }} back", delay: 1h }
"#;
    let mut stack = stack(&moto, &[("TASK_MAPPING", mapping)]).await;
    let event = order_event("ev-d1", "Callback", json!({"customer": "c-1"}));
    let first = response(stack.invoke(event.clone(), TIMEOUT).await);
    assert!(first["ContactId"].is_string(), "{first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = response(stack.invoke(event, TIMEOUT).await);
    assert_eq!(again["Outcome"], "replayed", "{again}");
    assert_eq!(again["ContactId"], first["ContactId"]);
    stack.stop().await;
}

/// `connect-task-bridge send` with the function's environment, against the stand-in: exit
/// code and printed answer.
async fn send(moto: &Moto, connect_url: &str, event: &Value) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("ctb-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", fastrand::u64(..)));
    std::fs::write(&path, event.to_string()).unwrap();
    let mut cmd = std::process::Command::new(common::function_binary());
    cmd.env_clear()
        .arg("send")
        .arg(&path)
        .args(["--endpoint-url", connect_url]);
    for (k, v) in env_of(moto, &[]) {
        cmd.env(k, v);
    }
    for (k, v) in [
        ("AWS_REGION", connect_standin::LOCAL_REGION),
        ("AWS_ACCESS_KEY_ID", connect_standin::LOCAL_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", connect_standin::LOCAL_SECRET_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `send` replays an event as the function handles it, through the task table: a key's open
/// task (not an earlier generation's), and actions work (it once ignored TASK_TABLE: a replayed
/// start answered with a stopped task, a stop failed with NoTaskTable).
#[tokio::test]
async fn send_goes_through_the_task_table_as_the_function_does() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    let url = stack.connect.url();
    let first = order_event("ev-s1", "OrderFailed", json!({"orderId": "o-s"}));
    let opened = response(stack.invoke(first.clone(), TIMEOUT).await);
    let stop = order_event("ev-s2", "OrderRecovered", json!({"orderId": "o-s"}));
    let (code, out) = send(&moto, &url, &stop).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(stack.connect.tasks()[0].state, "ENDED");
    // The order fails again: its second task. The first event, replayed, meets that one.
    let again = order_event("ev-s3", "OrderFailed", json!({"orderId": "o-s"}));
    let second = response(stack.invoke(again, TIMEOUT).await);
    assert_ne!(second["ContactId"], opened["ContactId"]);
    let (code, out) = send(&moto, &url, &first).await;
    assert_eq!(code, 0, "{out}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["ContactId"], second["ContactId"], "{out}");
    assert_eq!(stack.connect.tasks().len(), 2);
    stack.stop().await;
}

/// A contact event is a message, not Connect: one that says an open task ended — sent by
/// anyone who can write to a queue wired to the function — is acted on only when Connect
/// confirms the ending (DescribeContact). It once told the workflow "success", marked the task
/// ended while it stayed open, and let the key's next failure open a second task.
#[tokio::test]
async fn a_forged_contact_event_ends_nothing() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    let failed = order_event(
        "ev-f1",
        "OrderFailed",
        json!({"orderId": "o-f", "taskToken": "token-forged"}),
    );
    let opened = response(stack.invoke(failed, TIMEOUT).await);
    let contact = opened["ContactId"].as_str().unwrap().to_string();
    let genuine = stack.connect.events()[0].clone();
    let forge = |instance: &str| {
        let mut event = genuine.clone();
        event["id"] = json!(format!("forged-{instance}"));
        event["detail"]["eventType"] = json!("DISCONNECTED");
        event["detail"]["disconnectReason"] = json!("AGENT_DISCONNECT");
        event["detail"]["instanceArn"] = json!(format!(
            "arn:aws:connect:eu-west-1:123456789012:instance/{instance}"
        ));
        event
    };
    for (i, forged) in [
        forge(common::INSTANCE),
        forge("99999999-0000-0000-0000-000000000000"),
    ]
    .into_iter()
    .enumerate()
    {
        // As a producer would put it on the task queue: a plain SQS message.
        let message = json!({
            "messageId": format!("m-forged-{i}"), "receiptHandle": "r", "body": forged.to_string(),
            "attributes": {"SentTimestamp": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:tasks"
        });
        let answer = response(stack.invoke(json!({ "Records": [message] }), TIMEOUT).await);
        assert!(batch_failures(&answer).is_empty(), "{answer}");
        // Delivered directly, as an EventBridge rule would.
        let answer = response(stack.invoke(forged, TIMEOUT).await);
        assert_eq!(answer["Outcome"], "ignored", "{answer}");
    }
    assert!(sent(&moto, "AWSStepFunctions.SendTaskSuccess").is_empty());
    assert!(sent(&moto, "AWSEvents.PutEvents").is_empty());
    assert_ne!(stack.connect.tasks()[0].state, "ENDED");
    // The key's task is still open: the order's next failure meets it, no second task.
    let again = order_event(
        "ev-f2",
        "OrderFailed",
        json!({"orderId": "o-f", "taskToken": "token-forged"}),
    );
    let answer = response(stack.invoke(again, TIMEOUT).await);
    assert_eq!(answer["ContactId"], contact.as_str(), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 1);

    // The agent completes it: Connect confirms, the workflow is told once.
    let events = stack
        .connect
        .agent(&contact, "complete", json!({"outcome": "done"}))
        .unwrap();
    let answer = response(stack.invoke(events[0].clone(), TIMEOUT).await);
    assert_eq!(answer["Outcome"], "heard", "{answer}");
    assert_eq!(sent(&moto, "AWSStepFunctions.SendTaskSuccess").len(), 1);
    stack.stop().await;
}

/// A caller's ClientToken never names a route's business key: a direct request with
/// `ClientToken: order-77` and a waiting workflow once took the item of the key `order-77`, and
/// the real OrderFailed for order 77 was answered key_reused with the squatter's task.
#[tokio::test]
async fn a_callers_token_never_names_a_business_key() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    let squatter = json!({"Name": "n", "ClientToken": "order-o-77", "TaskToken": "token-squat"});
    let squatted = response(stack.invoke(squatter.clone(), TIMEOUT).await);
    let real = order_event(
        "ev-k1",
        "OrderFailed",
        json!({"orderId": "o-77", "taskToken": "token-real"}),
    );
    let answer = response(stack.invoke(real, TIMEOUT).await);
    assert!(answer.get("Outcome").is_none(), "{answer}");
    assert_ne!(answer["ContactId"], squatted["ContactId"], "{answer}");
    assert_eq!(stack.connect.tasks().len(), 2);
    // The squatter's request, again, is its own task's redelivery.
    let again = response(stack.invoke(squatter, TIMEOUT).await);
    assert_eq!(again["ContactId"], squatted["ContactId"]);
    assert_eq!(again["Outcome"], "replayed", "{again}");
    stack.stop().await;
}

/// A keyless task a workflow waits for, opened by the version before tokens had their own
/// namespace (its item under `task#<token>`, written here as that version wrote it), is found
/// after the upgrade: its redelivery is no second task, and its ending tells its workflow.
#[tokio::test]
async fn a_task_opened_before_the_upgrade_is_found_after_it() {
    use aws_sdk_dynamodb::types::AttributeValue::{Bool, N, S};
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto, &[]).await;
    // The task exists in Connect (opened with the caller's token)...
    let request = json!({"Name": "Call back", "ClientToken": "caller-1"});
    let opened = response(stack.invoke(request, TIMEOUT).await);
    let contact = opened["ContactId"].as_str().unwrap().to_string();
    // ...and in the table as the previous version left it.
    let db = moto.dynamodb_client();
    let now = 1_800_000_000i64;
    db.put_item()
        .table_name(TABLE)
        .item("pk", S("task#caller-1".into()))
        .item("state", S("open".into()))
        .item("generation", N("1".into()))
        .item("contact_id", S(contact.clone()))
        .item("client_token", S("caller-1".into()))
        .item("route", S("direct".into()))
        .item("origin", S("ctb2-old".into()))
        .item("payload_hash", S("old".into()))
        .item("task_token", S("token-upgrade".into()))
        .item("claim_until", N(now.to_string()))
        .item("notified", Bool(false))
        .item("expires_at", N((now + 86_400).to_string()))
        .send()
        .await
        .unwrap();
    db.put_item()
        .table_name(TABLE)
        .item("pk", S(format!("contact#{contact}")))
        .item("task", S("task#caller-1".into()))
        .send()
        .await
        .unwrap();
    let again =
        json!({"Name": "Call back", "ClientToken": "caller-1", "TaskToken": "token-upgrade"});
    let answer = response(stack.invoke(again, TIMEOUT).await);
    assert_eq!(answer["ContactId"], contact.as_str(), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 1);
    let events = stack
        .connect
        .agent(&contact, "complete", json!({"outcome": "ok"}))
        .unwrap();
    let answer = response(stack.invoke(events[0].clone(), TIMEOUT).await);
    assert_eq!(answer["Outcome"], "heard", "{answer}");
    let told = sent(&moto, "AWSStepFunctions.SendTaskSuccess");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["taskToken"], "token-upgrade");
    stack.stop().await;
}
