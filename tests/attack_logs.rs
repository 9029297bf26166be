//! Attack: event data (keys, values, headers) reaching a log line or the runtime's error answer,
//! through errors the sample-based test does not send: validation of keys, render errors on
//! values, Connect's own messages, a content type.

mod common;

use std::time::Duration;

use common::response;
use connect_standin::runtime_api::Invocation;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

const MAPPING: &str = r#"
routes:
  - name: int-filter
    when: { source: sqs, body: { kind: int } }
    task: { name: "{{ body.x | int }}" }
  - name: arith
    when: { source: sqs, body: { kind: arith } }
    task: { name: "{{ body.x / 2 }}" }
  - name: attr-key
    when: { source: sqs, body: { kind: key } }
    task: { name: "n", attributes: { "{{ body.x }}": "v" } }
  - name: ref-url
    when: { source: sqs, body: { kind: ref } }
    task: { name: "n", references: { link: { type: DATE, value: "{{ body.x }}" } } }
  - name: tojson-index
    when: { source: sqs, body: { kind: idx } }
    task: { name: "{{ body.list[body.x] }}" }
  - name: expr
    when: { source: sqs, expr: "body.x > 3" }
    task: { name: "n" }
  - name: rest
    when: { source: sqs }
    task: { name: "n", scheduled_time: "{{ body.x }}" }
"#;

fn sqs(id: &str, body: Value) -> Value {
    json!({
        "messageId": id, "receiptHandle": "h", "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:q", "awsRegion": "eu-west-1"
    })
}

#[tokio::test]
async fn canaries_in_errors() {
    let mut stack = common::start_function(&[
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ("WEBHOOK_AUTH", "none"),
        ("TASK_MAPPING", MAPPING),
    ])
    .await;
    let mut errors = Vec::new();
    let direct = [
        json!({"Name": "n", "Attributes": {"CANARYa ssn 123-45-6789": "v"}}),
        json!({"Name": "n", "References": {"CANARYb key": {"Type": "BOGUS", "Value": "x"}}}),
        json!({"Name": "n", "References": {"r": {"Type": "DATE", "Value": "CANARYc"}}}),
        json!({"Name": "n", "References": {"r": {"Type": "EMAIL", "Value": "CANARYd"}}}),
        json!({"Name": "n", "SegmentAttributes": {"CANARYe": {"ValueString": "x"}}}),
        json!({"Name": "n", "SegmentAttributes": {"connect:Subtype": {"ValueString": "CANARYf"}}}),
        json!({"Name": "n", "ScheduledTime": "CANARYg"}),
        json!({"Name": "n", "ContactFlowId": "CANARYh"}),
        json!({"Name": "n", "PreviousContactId": "CANARYi"}),
        json!({"Name": "n", "Attachments": [{"FileName": "CANARYj.exe", "S3Url": "s3://b/CANARYj"}]}),
        json!({"Name": "n", "TaskToken": "CANARYk"}),
        json!({"Name": "n", "Description": {"CANARYl": 1}}),
        json!({"Name": "n", "Attributes": {"k": ["CANARYm"]}}),
        json!({"Name": "n", "ClientToken": "ctb1-CANARYn"}),
        json!({"Name": "n", "QuickConnectId": "CANARYo", "ContactFlowId": "x"}),
    ];
    for payload in direct {
        let answer = stack.invoke(payload.clone(), TIMEOUT).await;
        if let Ok(Invocation::Error {
            error_type,
            message,
        }) = &answer
        {
            errors.push(format!("{error_type}: {message}"));
        } else {
            errors.push(format!("answer: {answer:?}"));
        }
    }
    let batch = json!({"Records": [
        sqs("int", json!({"kind": "int", "x": "CANARYp"})),
        sqs("arith", json!({"kind": "arith", "x": "CANARYq"})),
        sqs("key", json!({"kind": "key", "x": "CANARYr bad key"})),
        sqs("ref", json!({"kind": "ref", "x": "CANARYs"})),
        sqs("idx", json!({"kind": "idx", "list": [1], "x": "CANARYt"})),
        sqs("expr", json!({"x": "CANARYu"})),
        sqs("rest", json!({"kind": "rest", "x": "CANARYv"})),
    ]});
    let answer = response(stack.invoke(batch, TIMEOUT).await);
    errors.push(format!("batch: {answer}"));
    for t in stack.connect.tasks() {
        println!("task: {}", t.request);
    }
    // A webhook whose Content-Type says JSON and whose body is not.
    let mut hook = common::event("apigw-http-ticket");
    hook["headers"]["content-type"] = json!("application/json; CANARYw");
    hook["body"] = json!("{broken");
    hook["isBase64Encoded"] = json!(false);
    let answer = stack.invoke(hook, TIMEOUT).await;
    errors.push(format!("webhook: {answer:?}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = stack.function.logs();
    stack.stop().await;
    println!("--- error answers");
    for e in &errors {
        println!("{e}");
    }
    println!("--- log lines with a canary");
    let leaked: Vec<&String> = logs.iter().filter(|l| l.contains("CANARY")).collect();
    for l in &leaked {
        println!("{l}");
    }
    let answered: Vec<&String> = errors.iter().filter(|e| e.contains("CANARY")).collect();
    assert!(
        leaked.is_empty() && answered.iter().all(|e| e.starts_with("webhook")),
        "event data in {} log line(s) and {} error answer(s)",
        leaked.len(),
        answered.len()
    );
}
