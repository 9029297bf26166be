//! Attack: lifecycle endings not confirmed with Connect. A stop that meets a contact Connect
//! says has ended (ContactNotFoundException) is taken as "stopped" without asking how it
//! ended: an agent's completion that the contact event has not yet reported is told to the
//! workflow as TaskStopped, and the agent's attributes are never sent.

mod common;

use std::time::Duration;

use common::{order_event, response, root, sent};
use connect_standin::moto::{moto_server, Moto};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(10);

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

#[tokio::test]
async fn a_stop_racing_an_agents_completion_tells_the_workflow_stopped() {
    let moto = Moto::start(&moto_server(&root())).await;
    moto.create_task_table("tasks").await;
    let mut stack = common::start_function(&[
        ("TASK_MAPPING", MAPPING),
        ("TASK_TABLE", "tasks"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("AWS_ENDPOINT_URL_SFN", &moto.url),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto.url),
        ("WEBHOOK_AUTH", "none"),
    ])
    .await;
    let opened = response(
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
    let contact = opened["ContactId"].as_str().unwrap().to_string();
    // The agent completes the task with a decision; its contact events are on their way.
    let events = stack
        .connect
        .agent(&contact, "complete", json!({"decision": "refund"}))
        .unwrap();
    // Meanwhile the order recovers: a stop.
    let stop = response(
        stack
            .invoke(
                order_event("e2", "OrderRecovered", json!({"orderId": "o-1"})),
                TIMEOUT,
            )
            .await,
    );
    println!("stop: {stop}");
    // Connect's DISCONNECTED event arrives.
    let heard = response(stack.invoke(events[0].clone(), TIMEOUT).await);
    println!("contact event: {heard}");
    let successes = sent(&moto, "AWSStepFunctions.SendTaskSuccess");
    let failures = sent(&moto, "AWSStepFunctions.SendTaskFailure");
    println!("SendTaskSuccess: {successes:?}");
    println!("SendTaskFailure: {failures:?}");
    stack.stop().await;
    assert!(
        failures.is_empty() && successes.len() == 1,
        "an agent completed the task (decision: refund) and the workflow was told {:?}",
        failures.first().map(|f| f["error"].clone())
    );
}

/// A keyed start held for Connect's quota leaves the key `starting` (claim released): every
/// action on the key (stop, update, with if_missing: ignore) answers KeyBusy, transient, on
/// every delivery for as long as the hold lasts — for a full chain, for ever.
#[tokio::test]
async fn a_held_keyed_start_makes_every_action_on_the_key_busy() {
    const HELD_MAPPING: &str = r#"
routes:
  - name: order-failed
    when: { detail_type: OrderFailed }
    key: "order-{{ body.orderId }}"
    task: { name: "Order {{ body.orderId }} failed", previous_contact_id: "{{ body.prev }}" }
  - name: order-recovered
    when: { detail_type: OrderRecovered }
    action: stop
    key: "order-{{ body.orderId }}"
"#;
    let moto = Moto::start(&moto_server(&root())).await;
    moto.create_task_table("tasks").await;
    let sqs = moto.sqs_client();
    let url = sqs
        .create_queue()
        .queue_name("tasks")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    moto.secrets_client()
        .create_secret()
        .name("envelope")
        .secret_string("k")
        .send()
        .await
        .unwrap();
    let mut stack = common::start_function(&[
        ("TASK_MAPPING", HELD_MAPPING),
        ("TASK_TABLE", "tasks"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("AWS_ENDPOINT_URL_SFN", &moto.url),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto.url),
        ("WEBHOOK_AUTH", "none"),
        ("TASK_QUEUE_URL", &url),
        ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ("ENVELOPE_SECRET_ID", "envelope"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url),
    ])
    .await;
    for i in 0..12 {
        let direct = json!({"Name": format!("chain {i}"), "PreviousContactId": "prev-1",
                            "ClientToken": format!("chain-{i}")});
        response(stack.invoke(direct, TIMEOUT).await);
    }
    let held = response(
        stack
            .invoke(
                order_event(
                    "e1",
                    "OrderFailed",
                    json!({"orderId": "o-1", "prev": "prev-1"}),
                ),
                TIMEOUT,
            )
            .await,
    );
    println!("start: {held}");
    let mut answers = Vec::new();
    for i in 0..3 {
        let stop = stack
            .invoke(
                order_event(
                    &format!("s{i}"),
                    "OrderRecovered",
                    json!({"orderId": "o-1"}),
                ),
                TIMEOUT,
            )
            .await;
        println!("stop delivery {i}: {stop:?}");
        answers.push(format!("{stop:?}"));
    }
    stack.stop().await;
    assert!(
        answers.iter().all(|a| !a.contains("KeyBusy")),
        "a stop on a key whose start is held answers KeyBusy on every delivery"
    );
}
