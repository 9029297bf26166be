//! Attack: quota holds (ServiceQuotaExceededException → the record goes back on the task queue
//! in the function's signed envelope, answered as success). The stand-in's per-chain quota (at
//! most 12 tasks per PreviousContactId) never frees up, and a FIFO group's later message is not
//! held back behind the held one.

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{batch_failures, response, root};
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::surge::{esm_record, queue_arn};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(15);

const MAPPING: &str = r#"
routes:
  - name: chained
    when: { source: sqs }
    task:
      name: "Message {{ body.n }}"
      previous_contact_id: "{{ body.prev | default('') }}"
"#;

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
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
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
    async fn receive(&self) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .iter()
            .map(|m| esm_record(m, &self.arn))
            .collect()
    }
}

fn fifo_message(id: &str, group: &str, body: Value) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000",
                        "MessageGroupId": group, "SequenceNumber": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:orders.fifo",
        "awsRegion": "eu-west-1"
    })
}

async fn stack(moto: &Moto, q: &Queue) -> LocalStack {
    moto.secrets_client()
        .create_secret()
        .name("envelope")
        .secret_string("the-functions-own-key")
        .send()
        .await
        .unwrap();
    common::start_function(&[
        ("WEBHOOK_AUTH", "none"),
        ("TASK_MAPPING", MAPPING),
        ("TASK_QUEUE_URL", &q.url),
        ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ("ENVELOPE_SECRET_ID", "envelope"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url),
        ("QUOTA_HOLD_SECONDS", "1"),
    ])
    .await
}

/// Twelve tasks chained to `prev` (the stand-in's per-chain quota, as Connect's).
async fn exhaust_chain(stack: &mut LocalStack, prev: &str) {
    for i in 0..12 {
        let direct = json!({"Name": format!("chain {i}"), "PreviousContactId": prev,
                            "ClientToken": format!("chain-{prev}-{i}")});
        let answer = response(stack.invoke(direct, TIMEOUT).await);
        assert!(answer["ContactId"].is_string(), "{answer}");
    }
}

/// FIFO: message 1 of group G meets the chain quota and is held (answered as success), so
/// message 2 of G is not blocked and opens its task first: the group's order is broken.
#[tokio::test]
async fn a_held_fifo_message_lets_the_next_one_of_its_group_overtake_it() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = Queue::new(&moto, "tasks").await;
    let mut stack = stack(&moto, &q).await;
    exhaust_chain(&mut stack, "prev-1").await;
    let before = stack.connect.tasks().len();
    let batch = json!({"Records": [
        fifo_message("m-1", "G", json!({"n": "first", "prev": "prev-1"})),
        fifo_message("m-2", "G", json!({"n": "second"})),
    ]});
    let answer = response(stack.invoke(batch, TIMEOUT).await);
    println!("FIFO batch answer: {answer}");
    let created: Vec<String> = stack.connect.tasks()[before..]
        .iter()
        .map(|t| t.request["Name"].as_str().unwrap_or_default().to_string())
        .collect();
    println!("tasks created by the batch: {created:?}");
    let failures = batch_failures(&answer);
    stack.stop().await;
    assert!(
        !created.contains(&"Message second".to_string()) || failures.contains("m-1"),
        "message 2 of group G became a task while message 1 of G was held: order broken ({answer})"
    );
}

/// A quota that never frees up for this record (its chain is full for good): held again and
/// again, with no end and no DLQ.
#[tokio::test]
async fn a_record_whose_chain_is_full_is_held_forever() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = Queue::new(&moto, "tasks").await;
    let mut stack = stack(&moto, &q).await;
    exhaust_chain(&mut stack, "prev-2").await;
    let batch = json!({"Records": [fifo_message("m-9", "G", json!({"n": "x", "prev": "prev-2"}))]});
    let answer = response(stack.invoke(batch, TIMEOUT).await);
    println!("first delivery: {answer}");
    let mut rounds = 0;
    for round in 1..=4 {
        // Waits hold_delay(1 s, round - 1).
        tokio::time::sleep(Duration::from_millis(1000 * (1 << (round - 1)) + 700)).await;
        let held = q.receive().await;
        if held.is_empty() {
            break;
        }
        let holds = held[0]["body"]
            .as_str()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .map(|b| b["connectTaskBridge"]["holds"].clone());
        let answer = response(
            stack
                .invoke(json!({ "Records": held.clone() }), TIMEOUT)
                .await,
        );
        println!("round {round}: holds={holds:?} answer={answer}");
        // The ESM deletes what was answered as success.
        for r in &held {
            q.sqs
                .delete_message()
                .queue_url(&q.url)
                .receipt_handle(r["receiptHandle"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
        rounds = round;
    }
    let held_count = stack
        .function
        .logs()
        .iter()
        .filter(|l| l.contains("\"held\""))
        .count();
    println!("log lines with outcome held: {held_count}");
    stack.stop().await;
    assert!(
        rounds < 4,
        "still held after {rounds} rounds: a record the quota will never admit never fails"
    );
}
