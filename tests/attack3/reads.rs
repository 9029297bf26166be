//! Attack 3: reading task templates (GetTaskTemplate) must never stop the function
//! (docs/templates.md: "the check never takes the function down"). Three ways it does:
//!
//! - at cold start, `Book::warm` reads every template the configuration names with no deadline
//!   (`get(&id, None)`), through the full retry policy (3 attempts of up to 4 s each, plus
//!   backoff): a GetTaskTemplate that does not answer holds the cold start for ~13 s per
//!   template, past Lambda's 10 s init phase, so no invocation is served;
//! - during an invocation, a read that does not answer takes the whole invocation's time (the
//!   read gets the record's deadline), and the StartTaskContact that follows has none left:
//!   the record fails instead of going "unchecked, as before";
//! - concurrent records that name one template each read it (no single flight), spending
//!   GetTaskTemplate's 2/s quota.

use crate::common;

use std::time::{Duration, Instant};

use common::root;
use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use connect_standin::runtime_api::Invocation;
use serde_json::{json, Value};

const TEMPLATE_ID: &str = "7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01";

fn template() -> Value {
    common::example_task_template()
}

fn failing(op: &str, code: &str) -> Faults {
    Faults {
        failing: [(op.to_string(), code.to_string())].into_iter().collect(),
        ..Faults::default()
    }
}

async fn start(mapping: &str, faults: Faults) -> LocalStack {
    common::start_function_holding(vec![template()], faults, &[("TASK_MAPPING", mapping)]).await
}

fn example_mapping() -> String {
    std::fs::read_to_string(root().join("examples/task-template.yaml")).unwrap()
}

/// The example mapping with the template's id taken from the event (`body.tpl`): read during
/// the invocation, not at cold start.
fn per_event_mapping() -> String {
    example_mapping().replace(
        &format!("task_template_id: {TEMPLATE_ID}"),
        "task_template_id: \"{{ body.tpl }}\"",
    )
}

fn order(id: &str) -> Value {
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "OrderFailed",
        "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T09:14:03Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"orderId": id, "amount": 149.9, "reason": "Payment declined",
                   "customer": {"email": "a@example.com"}, "tpl": TEMPLATE_ID},
    })
}

/// An SQS batch (standard queue) of EventBridge events, one per id.
fn batch(ids: &[String]) -> Value {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "messageId": format!("m-{id}"), "receiptHandle": format!("h-{id}"),
                "body": order(id).to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:orders",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Lambda's init phase is 10 s: a cold start that reads a hanging template for longer is
/// ended before it serves anything. The harness starts the invocation clock when the event
/// is queued, right after the process starts, so a 10 s timeout is the init limit here.
#[tokio::test]
async fn a_template_read_that_hangs_at_cold_start_does_not_hold_the_cold_start_past_lambdas_init_limit(
) {
    let started = Instant::now();
    let mut stack = start(&example_mapping(), failing("GetTaskTemplate", "Hang")).await;
    let result = stack.invoke(order("o-1"), Duration::from_secs(10)).await;
    let took = started.elapsed();
    let logs = stack.function.logs().join("\n");
    stack.function.stop().await;
    assert!(
        matches!(result, Ok(Invocation::Response(ref v)) if v["ContactId"].is_string()),
        "the cold start took {took:?}; the invocation: {result:?}\n{logs}"
    );
}

/// A template read during an invocation that does not answer: the record still gets its task
/// (unchecked, as without the check) within the invocation's time.
#[tokio::test]
async fn a_template_read_that_hangs_during_an_invocation_leaves_time_for_the_task() {
    let mut stack = start(&per_event_mapping(), Faults::default()).await;
    stack.connect.set_faults(failing("GetTaskTemplate", "Hang"));
    let started = Instant::now();
    let result = stack.invoke(order("o-2"), Duration::from_secs(8)).await;
    let took = started.elapsed();
    let logs = stack.function.logs().join("\n");
    stack.function.stop().await;
    assert!(
        matches!(result, Ok(Invocation::Response(ref v)) if v["ContactId"].is_string()),
        "after {took:?}: {result:?}\n{logs}"
    );
}

/// Ten records of one batch naming the same template (read per event, so not at cold start):
/// one GetTaskTemplate, not ten.
#[tokio::test]
async fn concurrent_records_naming_one_template_read_it_once() {
    let mut stack = start(&per_event_mapping(), Faults::default()).await;
    let ids: Vec<String> = (0..10).map(|i| format!("c-{i}")).collect();
    let started = Instant::now();
    let answer = common::response(stack.invoke(batch(&ids), Duration::from_secs(20)).await);
    let took = started.elapsed();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 10);
    let reads = stack.connect.stats().template_requests;
    stack.function.stop().await;
    assert_eq!(
        reads, 1,
        "{reads} GetTaskTemplate calls for one template (the batch took {took:?})"
    );
}
