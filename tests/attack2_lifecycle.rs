//! Attack (second review): endings and claims settled on less than Connect's word.
//!
//! 1. A stop whose StopContact answers ContactNotFoundException while DescribeContact says the
//!    contact is still open (no DisconnectTimestamp) is recorded as "stopped" anyway: the
//!    workflow is told TaskStopped, the key is free, and the next start opens a second task
//!    while the first is still open in Connect.
//! 2. A start whose first attempt reached Connect (the task was created, the answer was lost to
//!    the attempt timeout) and whose later attempts were throttled ends with a throttle, which
//!    `refused_by_connect` takes as "nothing opened": the claim is settled `refused`, and a stop
//!    on the key is answered `ignored` (success, never retried) while the task is open in
//!    Connect; the start's redelivery then records that very task as open. The stop is lost.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{order_event, root, sent};
use connect_standin::connect::Faults;
use connect_standin::moto::{moto_server, Moto};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

const MAPPING: &str = r#"
routes:
  - name: order-failed
    when: { detail_type: OrderFailed }
    key: "order-{{ body.orderId }}"
    task_token: "{{ body.taskToken }}"
    task: { name: "Order {{ body.orderId }} failed" }
  - name: order-recovered
    when: { detail_type: OrderRecovered }
    action: stop
    key: "order-{{ body.orderId }}"
"#;

async fn item_state(moto: &Moto, pk: &str) -> Option<String> {
    let out = moto
        .dynamodb_client()
        .get_item()
        .table_name("tasks")
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
        .and_then(|i| i.get("state").and_then(|s| s.as_s().ok()).cloned())
}

async fn stack(moto: &Moto, extra: &[(&str, &str)]) -> connect_standin::harness::LocalStack {
    let mut env = vec![
        ("TASK_MAPPING", MAPPING),
        ("TASK_TABLE", "tasks"),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.as_str()),
        ("AWS_ENDPOINT_URL_SFN", moto.url.as_str()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.url.as_str()),
        ("WEBHOOK_AUTH", "none"),
    ];
    env.extend_from_slice(extra);
    common::start_function(&env).await
}

#[tokio::test]
async fn a_stop_meeting_contact_not_found_ends_a_task_connect_says_is_open() {
    let moto = Moto::start(&moto_server(&root())).await;
    moto.create_task_table("tasks").await;
    let mut stack = stack(&moto, &[]).await;
    let opened = common::response(
        stack
            .invoke(
                order_event(
                    "e1",
                    "OrderFailed",
                    json!({"orderId": "o-1", "taskToken": "wf-1"}),
                ),
                TIMEOUT,
            )
            .await,
    );
    let first = opened["ContactId"].as_str().unwrap().to_string();
    // StopContact answers ContactNotFoundException (eventual consistency, or Connect's own
    // answer for a contact it cannot stop), while DescribeContact shows the task still open.
    stack.connect.set_faults(Faults {
        failing: [(
            "StopContact".to_string(),
            "ContactNotFoundException".to_string(),
        )]
        .into(),
        ..Faults::default()
    });
    let stop = stack
        .invoke(
            order_event("e2", "OrderRecovered", json!({"orderId": "o-1"})),
            TIMEOUT,
        )
        .await;
    println!("stop: {stop:?}");
    stack.connect.set_faults(Faults::default());
    let state = item_state(&moto, "task#order-o-1").await;
    let tasks = stack.connect.tasks();
    let first_task = tasks.iter().find(|t| t.contact_id == first).unwrap();
    println!(
        "table: {state:?}; Connect: {} ended_at {:?}",
        first_task.state, first_task.ended_at
    );
    // The order fails again: a new start for the key.
    let again = stack
        .invoke(
            order_event(
                "e3",
                "OrderFailed",
                json!({"orderId": "o-1", "taskToken": "wf-2"}),
            ),
            TIMEOUT,
        )
        .await;
    println!("second start: {again:?}");
    let failures = sent(&moto, "AWSStepFunctions.SendTaskFailure");
    let open_in_connect: Vec<_> = stack
        .connect
        .tasks()
        .into_iter()
        .filter(|t| t.ended_at.is_none())
        .map(|t| t.contact_id)
        .collect();
    println!("SendTaskFailure: {failures:?}");
    println!("open in Connect: {open_in_connect:?}");
    stack.stop().await;
    assert!(
        state.as_deref() == Some("open") && open_in_connect.len() <= 1,
        "Connect says {first} is open (no DisconnectTimestamp), yet the table recorded it {state:?}, \
         the workflow was told {} time(s) TaskStopped, and the key now has {} open tasks in Connect",
        failures.len(),
        open_in_connect.len()
    );
}

#[tokio::test]
async fn a_start_whose_outcome_is_unknown_is_settled_refused_and_a_stop_is_lost() {
    let moto = Moto::start(&moto_server(&root())).await;
    moto.create_task_table("tasks").await;
    let mut stack = stack(
        &moto,
        &[
            ("CONNECT_ATTEMPT_TIMEOUT_MS", "500"),
            ("CONNECT_MAX_ATTEMPTS", "3"),
        ],
    )
    .await;
    // Connect carries the first call out and answers it late (the attempt times out: the task
    // exists); its quota is then spent, so the later attempts are throttled.
    stack.connect.set_faults(Faults {
        hang: 1.0,
        hang_ms: 3_000,
        rate: Some(0.001),
        burst: Some(1),
        ..Faults::default()
    });
    let start = stack
        .invoke(
            order_event(
                "e1",
                "OrderFailed",
                json!({"orderId": "o-1", "taskToken": "wf-1"}),
            ),
            TIMEOUT,
        )
        .await;
    println!("start: {start:?}");
    stack.connect.set_faults(Faults::default());
    let state = item_state(&moto, "task#order-o-1").await;
    let created: Vec<_> = stack
        .connect
        .tasks()
        .into_iter()
        .map(|t| t.contact_id)
        .collect();
    println!("table after the start: {state:?}; Connect created {created:?}");
    assert_eq!(created.len(), 1, "the first attempt created the task");
    // The order recovers: a stop. The key says `refused` (nothing opened).
    let stop = stack
        .invoke(
            order_event("e2", "OrderRecovered", json!({"orderId": "o-1"})),
            TIMEOUT,
        )
        .await;
    println!("stop: {stop:?}");
    let stop_text = format!("{stop:?}");
    // The start comes back (its record failed with a throttle): Connect answers with the task
    // its first attempt created.
    let again = stack
        .invoke(
            order_event(
                "e1",
                "OrderFailed",
                json!({"orderId": "o-1", "taskToken": "wf-1"}),
            ),
            TIMEOUT,
        )
        .await;
    println!("start redelivered: {again:?}");
    let after = item_state(&moto, "task#order-o-1").await;
    let open: Vec<_> = stack
        .connect
        .tasks()
        .into_iter()
        .filter(|t| t.ended_at.is_none())
        .map(|t| t.contact_id)
        .collect();
    println!("table at the end: {after:?}; open in Connect: {open:?}");
    stack.stop().await;
    assert!(
        !stop_text.contains("ignored") || open.is_empty(),
        "the start's first attempt created {created:?} (its answer lost), its last was throttled: \
         the claim was settled {state:?}, the stop was answered `ignored` (success, never retried), \
         and the task stays open ({after:?} in the table, {open:?} open in Connect)"
    );
}
