//! The identity model, case by case, through the shipped binary under the local Runtime API
//! against the stand-in, counting tasks where Connect keeps them: distinct events → distinct
//! tasks; the same event again → no new task. (The signed-webhook cases, which need the key in
//! Secrets Manager, are in tests/webhook_auth.rs.)

mod common;

use std::time::Duration;

use common::{batch_failures, event, ids, response, start_function, EXAMPLE_MAPPING};
use connect_standin::harness::LocalStack;
use connect_standin::runtime_api::{Invocation, InvokeError};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The function with webhooks open (the samples' webhooks are unsigned), plus `extra`.
async fn start(extra: &[(&str, &str)]) -> LocalStack {
    let mut env = vec![("WEBHOOK_AUTH", "none")];
    env.extend_from_slice(extra);
    start_function(&env).await
}

/// An SQS message; `group` and `dedup` set the FIFO attributes, `queue` names the queue.
fn message(id: &str, queue: &str, group: Option<&str>, dedup: Option<&str>, body: Value) -> Value {
    let mut attributes = json!({"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"});
    if let Some(g) = group {
        attributes["MessageGroupId"] = json!(g);
    }
    if let Some(d) = dedup {
        attributes["MessageDeduplicationId"] = json!(d);
    }
    json!({
        "messageId": id, "receiptHandle": format!("{id}-r1"), "body": body.to_string(),
        "attributes": attributes,
        "messageAttributes": {"kind": {"stringValue": "support-request", "dataType": "String"}},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:eu-west-1:111122223333:{queue}"),
        "awsRegion": "eu-west-1"
    })
}

/// What a redelivery changes: the receive count, the receipt handle, the first-receive time.
fn redelivered(mut batch: Value) -> Value {
    for record in batch["Records"].as_array_mut().unwrap() {
        record["attributes"]["ApproximateReceiveCount"] = json!("2");
        record["attributes"]["ApproximateFirstReceiveTimestamp"] = json!("1795500099000");
        let id = record["messageId"].as_str().unwrap().to_string();
        record["receiptHandle"] = json!(format!("{id}-r2"));
    }
    batch
}

fn support(name: &str, callback_at: &str) -> Value {
    json!({"customer": {"name": name, "email": "c@example.org"}, "message": "call me",
           "callback_at": callback_at})
}

/// Case 1: SQS holds a deduplication id unique for five minutes only (and per group): two
/// different FIFO messages sharing one used to share a token, and the second was answered with
/// the first one's task and deleted. The identity is the messageId.
#[tokio::test]
async fn fifo_messages_sharing_a_deduplication_id_are_two_tasks() {
    let mut stack = start(&[]).await;
    let batch = json!({"Records": [
        message("m-1", "orders.fifo", Some("g-1"), Some("same-dedup"), json!({"n": 1})),
        message("m-2", "orders.fifo", Some("g-2"), Some("same-dedup"), json!({"n": 2})),
    ]});
    assert_eq!(
        batch_failures(&response(stack.invoke(batch.clone(), TIMEOUT).await)),
        ids(&[])
    );
    assert_eq!(stack.connect.tasks().len(), 2);
    // Redelivered (new receipt handles, higher receive count): no new task.
    let again = response(stack.invoke(redelivered(batch), TIMEOUT).await);
    assert_eq!(batch_failures(&again), ids(&[]));
    assert_eq!(stack.connect.tasks().len(), 2);
    stack.stop().await;
}

/// Case 2: `order-{{ body.orderId }}` rendered `order-` for every event without an orderId (or
/// with it null or empty), and all of them shared one task. Now each is refused, naming the route
/// and the variable, and only the event with an orderId gets a task.
#[tokio::test]
async fn a_route_token_with_a_missing_part_is_refused_not_shared() {
    let mapping = r#"
routes:
  - name: orders
    task: {name: "Order"}
    client_token: "order-{{ body.orderId }}"
"#;
    let mut stack = start(&[("TASK_MAPPING", mapping)]).await;
    let eb = |id: &str, detail: Value| {
        let mut e = event("eventbridge-order-failed");
        e["id"] = json!(id);
        e["detail"] = detail;
        e
    };
    let ok = stack
        .invoke(eb("e-1", json!({"orderId": "o-1"})), TIMEOUT)
        .await;
    assert!(response(ok)["ContactId"].is_string());
    for (id, detail) in [
        ("e-2", json!({"order_id": "o-2"})),
        ("e-3", json!({"orderId": null})),
        ("e-4", json!({"orderId": "  "})),
    ] {
        match stack.invoke(eb(id, detail), TIMEOUT).await {
            Ok(Invocation::Error {
                error_type,
                message,
            }) => {
                assert_eq!(error_type, "permanent.RenderError", "{id}");
                assert!(
                    message.contains("'orders'") && message.contains("body.orderId"),
                    "{id}: {message}"
                );
            }
            other => panic!("{id}: expected an error, got {other:?}"),
        }
    }
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}

/// Case 3: a webhook's Idempotency-Key fed the same hash as an SQS messageId on the shared
/// catch-all route, so a caller could pre-claim a queued message's token. Caller identities now
/// live in their own namespace: the message gets its own task.
#[tokio::test]
async fn a_webhook_caller_cannot_claim_a_queued_messages_task() {
    let mut stack = start(&[]).await;
    let mut webhook = event("apigw-http-ticket");
    webhook["headers"]["idempotency-key"] = json!("m-victim");
    let attacker = response(stack.invoke(webhook, TIMEOUT).await);
    assert_eq!(attacker["statusCode"], 201);
    let batch = json!({"Records": [message("m-victim", "support", None, None, json!({"a": 1}))]});
    assert_eq!(
        batch_failures(&response(stack.invoke(batch, TIMEOUT).await)),
        ids(&[])
    );
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 2);
    assert_ne!(tasks[0].client_token, tasks[1].client_token);
    stack.stop().await;
}

/// Case 5: an EventBridge event with `"id": ""` shared its token with every other such event.
#[tokio::test]
async fn events_without_an_id_are_refused_not_merged() {
    let mut stack = start(&[]).await;
    for (n, id) in [json!(""), json!(""), Value::Null].into_iter().enumerate() {
        let mut e = event("eventbridge-order-failed");
        e["id"] = id;
        e["detail"]["orderId"] = json!(format!("o-{n}"));
        match stack.invoke(e, TIMEOUT).await {
            Ok(Invocation::Error { error_type, .. }) => {
                assert_eq!(error_type, "permanent.InvalidEvent")
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    assert!(stack.connect.tasks().is_empty());
    stack.stop().await;
}

/// FIFO order is per message group: one group's failure holds back the later messages of that
/// group only. It used to fail every other group's messages too, each report burning one of
/// their receives until they reached the DLQ untried.
#[tokio::test]
async fn a_fifo_failure_holds_back_its_own_group_only() {
    let mut stack = start(&[("TASK_MAPPING_FILE", EXAMPLE_MAPPING)]).await;
    let past = "2020-01-01T00:00:00Z";
    let batch = json!({"Records": [
        message("a-1", "support.fifo", Some("A"), Some("d1"), support("Ana", past)),
        message("b-1", "support.fifo", Some("B"), Some("d2"), support("Bo", "")),
        message("a-2", "support.fifo", Some("A"), Some("d3"), support("Ana", "")),
        message("b-2", "support.fifo", Some("B"), Some("d4"), support("Bo", "")),
    ]});
    let answer = response(stack.invoke(batch, TIMEOUT).await);
    assert_eq!(batch_failures(&answer), ids(&["a-1", "a-2"]));
    assert_eq!(stack.connect.tasks().len(), 2);
    stack.stop().await;
}

/// A standard queue whose messages carry a MessageGroupId (SQS fair queues) is not ordered.
#[tokio::test]
async fn a_fair_queue_is_a_standard_queue() {
    let mut stack = start(&[("TASK_MAPPING_FILE", EXAMPLE_MAPPING)]).await;
    let batch = json!({"Records": [
        message("f-1", "fair", Some("A"), None, support("Ana", "2020-01-01T00:00:00Z")),
        message("f-2", "fair", Some("A"), None, support("Ana", "")),
    ]});
    assert_eq!(
        batch_failures(&response(stack.invoke(batch, TIMEOUT).await)),
        ids(&["f-1"])
    );
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}

/// With signatures on, a route token that reads an unsigned part would let a replay with that
/// part changed open a new task: such a mapping stops the cold start, saying why (before the
/// secret is fetched).
#[tokio::test]
async fn a_route_token_from_unsigned_parts_stops_a_signed_cold_start() {
    let mapping = r#"
routes:
  - name: hooks
    task: {name: "Hook"}
    client_token: "{{ headers['x-github-delivery'] }}"
"#;
    let mut stack = start(&[
        ("TASK_MAPPING", mapping),
        ("WEBHOOK_AUTH", "signature"),
        ("WEBHOOK_SECRET_ID", "never-fetched"),
    ])
    .await;
    let result = stack.invoke(event("sns-notification"), TIMEOUT).await;
    assert!(matches!(result, Err(InvokeError::Exited(_))), "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert!(
        logs.contains("'hooks'") && logs.contains("headers") && logs.contains("signature"),
        "{logs}"
    );
    stack.stop().await;
}

/// An EventBridge rule whose target is a queue puts the whole event in the message body, and an
/// SNS subscription without raw delivery puts the notification's JSON envelope there. Each is
/// treated as that event, with that event's identity: the same event delivered directly and
/// through a queue is one task. (Before, the body was an opaque SQS message: a second task.)
#[tokio::test]
async fn an_event_delivered_directly_and_through_a_queue_is_one_task() {
    for mapping in [None, Some(EXAMPLE_MAPPING)] {
        let extra: Vec<(&str, &str)> = mapping
            .map(|m| vec![("TASK_MAPPING_FILE", m)])
            .unwrap_or_default();
        let mut stack = start(&extra).await;
        let eb = event("eventbridge-order-failed");
        assert!(response(stack.invoke(eb.clone(), TIMEOUT).await)["ContactId"].is_string());
        let sns = event("sns-notification");
        assert!(response(stack.invoke(sns.clone(), TIMEOUT).await)["ContactId"].is_string());
        assert_eq!(stack.connect.tasks().len(), 2, "{mapping:?}");

        let n = &sns["Records"][0]["Sns"];
        let envelope = json!({
            "Type": "Notification", "MessageId": n["MessageId"], "TopicArn": n["TopicArn"],
            "Subject": n["Subject"], "Message": n["Message"], "Timestamp": n["Timestamp"],
            "SignatureVersion": "1", "Signature": "c2ln", "SigningCertURL": "https://sns.example/cert.pem",
            "UnsubscribeURL": "https://sns.example/unsubscribe", "MessageAttributes": {}
        });
        let mut via_queue = json!({"Records": [
            message("q-eb", "events", None, None, json!(null)),
            message("q-sns", "events", None, None, json!(null)),
        ]});
        via_queue["Records"][0]["body"] = json!(eb.to_string());
        via_queue["Records"][1]["body"] = json!(envelope.to_string());
        // The messages carry no attributes of the sender's, so no SQS route claims them.
        via_queue["Records"][0]["messageAttributes"] = json!({});
        via_queue["Records"][1]["messageAttributes"] = json!({});
        let answer = response(stack.invoke(via_queue, TIMEOUT).await);
        assert_eq!(batch_failures(&answer), ids(&[]), "{mapping:?}");
        assert_eq!(stack.connect.tasks().len(), 2, "{mapping:?}: a second task");
        stack.stop().await;
    }
}

/// An EventBridge or SNS id inside a queue message is only the sender's word: two different
/// messages carrying one id are two tasks (they were one: the second message was lost), while
/// the same event, stamped after identities carried their content, delivered directly and
/// through the queue is still one task.
#[tokio::test]
async fn an_aws_id_in_a_message_does_not_merge_two_events() {
    let mut stack = start(&[]).await;
    let mut eb = event("eventbridge-order-failed");
    eb["time"] = json!("2026-12-02T10:00:00Z");
    let mut other = eb.clone();
    other["detail"] = json!({"orderId": "someone-else", "reason": "forged"});
    let mut sns = event("sns-notification");
    sns["Records"][0]["Sns"]["Timestamp"] = json!("2026-12-02T10:00:00.000Z");
    let n = &sns["Records"][0]["Sns"];
    let notification = |message: &Value| {
        json!({
            "Type": "Notification", "MessageId": n["MessageId"], "TopicArn": n["TopicArn"],
            "Subject": n["Subject"], "Message": message, "Timestamp": n["Timestamp"],
            "SignatureVersion": "1", "Signature": "c2ln", "SigningCertURL": "https://sns.example/cert.pem",
            "UnsubscribeURL": "https://sns.example/unsubscribe", "MessageAttributes": {}
        })
    };
    let mut batch = json!({"Records": [
        message("q-1", "events", None, None, json!(null)),
        message("q-2", "events", None, None, json!(null)),
        message("q-3", "events", None, None, json!(null)),
        message("q-4", "events", None, None, json!(null)),
    ]});
    let bodies = [
        eb.to_string(),
        other.to_string(),
        notification(&n["Message"]).to_string(),
        notification(&json!("{\"forged\": true}")).to_string(),
    ];
    for (i, body) in bodies.iter().enumerate() {
        batch["Records"][i]["body"] = json!(body);
        batch["Records"][i]["messageAttributes"] = json!({});
    }
    let answer = response(stack.invoke(batch, TIMEOUT).await);
    assert_eq!(batch_failures(&answer), ids(&[]));
    assert_eq!(stack.connect.tasks().len(), 4, "two ids, four events");
    // The genuine events delivered directly meet the tasks their queued copies opened.
    assert!(response(stack.invoke(eb, TIMEOUT).await)["ContactId"].is_string());
    assert!(response(stack.invoke(sns, TIMEOUT).await)["ContactId"].is_string());
    assert_eq!(stack.connect.tasks().len(), 4);
    stack.stop().await;
}

/// A message body that merely looks like an event is still a message.
#[tokio::test]
async fn a_body_that_is_not_an_event_stays_a_message() {
    let mut stack = start(&[]).await;
    let body = json!({"detail-type": "looks like one", "note": "but has no source or id"});
    let batch = json!({"Records": [message("m-x", "plain", None, None, body)]});
    assert_eq!(
        batch_failures(&response(stack.invoke(batch, TIMEOUT).await)),
        ids(&[])
    );
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0].request["Name"]
            .as_str()
            .unwrap()
            .starts_with("Message from plain"),
        "{}",
        tasks[0].request
    );
    stack.stop().await;
}

/// Kinesis: records of one partition key in order; a failure holds back the later records of
/// its key only, and the batch answer names failed records by sequence number. Redelivered (as
/// a stream retries from a checkpoint), the records keep their tokens.
#[tokio::test]
async fn a_kinesis_failure_holds_back_its_partition_key_only() {
    let mapping = r#"
routes:
  - name: orders
    task: {name: "Order {{ body.orderId }}"}
    client_token: "order-{{ body.orderId }}"
"#;
    let mut stack = start(&[("TASK_MAPPING", mapping)]).await;
    use base64::Engine;
    let record = |key: &str, seq: &str, body: Value| {
        json!({
            "kinesis": {"partitionKey": key, "kinesisSchemaVersion": "1.0",
                "data": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
                "sequenceNumber": seq, "approximateArrivalTimestamp": 1428537600.0},
            "eventSource": "aws:kinesis", "eventID": format!("shardId-000000000000:{seq}"),
            "invokeIdentityArn": "arn:aws:iam::111122223333:role/r", "eventVersion": "1.0",
            "eventName": "aws:kinesis:record",
            "eventSourceARN": "arn:aws:kinesis:eu-west-1:111122223333:stream/orders",
            "awsRegion": "eu-west-1"
        })
    };
    let batch = json!({"Records": [
        record("A", "101", json!({"orderId": null})),
        record("B", "102", json!({"orderId": "b-1"})),
        record("A", "103", json!({"orderId": "a-2"})),
        record("B", "104", json!({"orderId": "b-2"})),
    ]});
    let answer = response(stack.invoke(batch.clone(), TIMEOUT).await);
    assert_eq!(batch_failures(&answer), ids(&["101", "103"]));
    assert_eq!(stack.connect.tasks().len(), 2);
    response(stack.invoke(batch, TIMEOUT).await);
    assert_eq!(stack.connect.tasks().len(), 2);
    stack.stop().await;
}

/// EventBridge Pipes delivers its source's records as a bare JSON array in the source's own
/// shape, and takes the same partial batch answer. A message through a pipe is the same message.
#[tokio::test]
async fn a_pipe_delivers_a_bare_array_of_records() {
    let mut stack = start(&[("TASK_MAPPING_FILE", EXAMPLE_MAPPING)]).await;
    let past = "2020-01-01T00:00:00Z";
    let pipe = json!([
        message("p-1", "support", None, None, support("Ana", "")),
        message("p-2", "support", None, None, support("Bo", past)),
    ]);
    let answer = response(stack.invoke(pipe.clone(), TIMEOUT).await);
    assert_eq!(batch_failures(&answer), ids(&["p-2"]));
    assert_eq!(stack.connect.tasks().len(), 1);
    // The same message through an event source mapping: no second task.
    let esm = json!({"Records": [pipe[0].clone()]});
    assert_eq!(
        batch_failures(&response(stack.invoke(esm, TIMEOUT).await)),
        ids(&[])
    );
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}
