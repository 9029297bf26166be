//! Hostile input through the shipped binary under the local Runtime API, against the stand-in:
//! a record that used to panic fails alone, the worst body the sources can deliver stays within
//! the function's memory, no log level writes event data, and webhooks fail closed.

mod common;

use std::time::Duration;

use common::{batch_failures, event, ids, response, start_function, EXAMPLE_MAPPING};
use connect_standin::harness::{peak_rss_mib, worst_case_sqs_batch, LocalStack};
use connect_standin::runtime_api::Invocation;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What the template gives the function (`MemorySize`, MB).
const FUNCTION_MEMORY_MIB: f64 = 128.0;

async fn start(extra: &[(&str, &str)]) -> LocalStack {
    start_function(extra).await
}

fn sqs_message(id: &str, body: &Value) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
        "messageAttributes": {"kind": {"stringValue": "support-request", "dataType": "String"}},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:support-requests",
        "awsRegion": "eu-west-1"
    })
}

fn support_request(callback_at: &str) -> Value {
    json!({
        "customer": {"name": "Ada Lovelace", "email": "ada@example.org"},
        "message": "Please call me back about the invoice.",
        "callback_at": callback_at
    })
}

/// A callback time with a multi-byte character in its offset panicked the old hand-written
/// parser; with `panic = "abort"` the whole batch died and came back until every message of it
/// reached the DLQ. Now the record fails alone and the others get their tasks.
#[tokio::test]
async fn a_record_that_once_panicked_fails_alone_and_the_process_serves_on() {
    let mut stack = start(&[("TASK_MAPPING_FILE", EXAMPLE_MAPPING)]).await;
    let batch = json!({"Records": [
        sqs_message("good-1", &support_request("")),
        sqs_message("poison", &support_request("2026-11-24T10:00:00+1é2")),
        sqs_message("good-2", &support_request("")),
    ]});
    let answer = response(stack.invoke(batch, TIMEOUT).await);
    assert_eq!(batch_failures(&answer), ids(&["poison"]));
    assert_eq!(stack.connect.tasks().len(), 2);
    // The same process answers the next event.
    let pid = stack.function.pid();
    response(stack.invoke(event("sns-notification"), TIMEOUT).await);
    assert_eq!(stack.function.pid(), pid);
    assert_eq!(stack.connect.tasks().len(), 3);
    stack.stop().await;
}

#[tokio::test]
async fn ten_worst_case_messages_stay_within_the_function_memory() {
    let mut stack = start(&[]).await;
    let answer = response(stack.invoke(worst_case_sqs_batch(), TIMEOUT).await);
    // Each becomes a task: its description is the pretty body, cut at 4,096 characters.
    assert_eq!(batch_failures(&answer), ids(&[]));
    assert_eq!(stack.connect.tasks().len(), 10);
    let peak = peak_rss_mib(stack.function.pid().unwrap()).unwrap();
    println!("peak RSS for 10 x 1 MiB nested SQS bodies: {peak:.1} MiB");
    assert!(
        peak < FUNCTION_MEMORY_MIB,
        "peak RSS {peak:.1} MiB over the function's {FUNCTION_MEMORY_MIB} MB"
    );
    stack.stop().await;
}

/// At every level Lambda's log settings allow, no log line carries event data: not a value a
/// render or parse error met, not the raw event lambda_runtime logs at TRACE.
#[tokio::test]
async fn no_log_level_writes_event_data() {
    const SECRET_TEXT: &str = "call me on +44 7700 900123 after 5pm";
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        let mut stack = start(&[
            ("TASK_MAPPING_FILE", EXAMPLE_MAPPING),
            ("AWS_LAMBDA_LOG_LEVEL", level),
            ("WEBHOOK_AUTH", "none"),
        ])
        .await;
        let batch = json!({"Records": [
            sqs_message("bad-time", &support_request(SECRET_TEXT)),
            sqs_message("ok", &support_request("")),
        ]});
        let answer = response(stack.invoke(batch, TIMEOUT).await);
        assert_eq!(batch_failures(&answer), ids(&["bad-time"]), "{level}");
        for name in common::event_names() {
            stack.invoke(event(&name), TIMEOUT).await.unwrap();
        }
        // A direct request that does not fit: the runtime logs the error it is answered with
        // at ERROR, whatever the level; that error once quoted the value.
        let misfit = json!({"Name": "n", "Attributes": "SSN-123-45-6789-JANE"});
        let answer = stack.invoke(misfit, TIMEOUT).await;
        assert!(
            matches!(&answer, Ok(Invocation::Error { error_type, message }) if error_type == "permanent.InvalidEvent" && !message.contains("SSN")),
            "{answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let logs = stack.function.logs().join("\n");
        for needle in [
            "SSN-123",
            SECRET_TEXT,
            "+44 7700",
            "Ada Lovelace",
            "ada@example.org",
            "invoice",
            "raw JSON event",
            "My router keeps dropping",
        ] {
            assert!(
                !logs.contains(needle),
                "{level}: logged {needle:?}:\n{logs}"
            );
        }
        if level == "TRACE" || level == "DEBUG" || level == "INFO" {
            assert!(logs.contains("task started"), "{level}: {logs}");
        }
        stack.stop().await;
    }
}

fn webhook_status(result: Result<Invocation, connect_standin::runtime_api::InvokeError>) -> u64 {
    response(result)["statusCode"].as_u64().unwrap()
}

/// Webhook samples, as AWS delivers them to a function behind an unauthenticated endpoint.
const WEBHOOKS: [&str; 3] = [
    "apigw-http-ticket",
    "apigw-rest-github-issue",
    "function-url-kiosk",
];

#[tokio::test]
async fn webhooks_are_refused_unless_authentication_is_chosen() {
    let mut stack = start(&[]).await;
    for name in WEBHOOKS {
        assert_eq!(
            webhook_status(stack.invoke(event(name), TIMEOUT).await),
            403,
            "{name}"
        );
    }
    // Other sources are unaffected.
    response(stack.invoke(event("sns-notification"), TIMEOUT).await);
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;

    let mut stack = start(&[("WEBHOOK_AUTH", "none")]).await;
    for name in WEBHOOKS {
        assert_eq!(
            webhook_status(stack.invoke(event(name), TIMEOUT).await),
            201,
            "{name}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(stack
        .function
        .logs()
        .join("\n")
        .contains("webhooks are not authenticated"));
    stack.stop().await;
}

#[tokio::test]
async fn iam_mode_refuses_what_slipped_past_the_endpoint() {
    let mut stack = start(&[("WEBHOOK_AUTH", "iam")]).await;
    let url = event("function-url-kiosk");
    assert_eq!(
        webhook_status(stack.invoke(url.clone(), TIMEOUT).await),
        403
    );
    let mut signed = url;
    signed["requestContext"]["authorizer"] = json!({"iam": {
        "accessKey": "AKIAEXAMPLE", "accountId": "111122223333", "callerId": "AIDAEXAMPLE",
        "userArn": "arn:aws:iam::111122223333:user/kiosk", "userId": "AIDAEXAMPLE"
    }});
    assert_eq!(webhook_status(stack.invoke(signed, TIMEOUT).await), 201);
    assert_eq!(stack.connect.tasks().len(), 1);
    stack.stop().await;
}

/// What a caller chooses is its own: two authenticated tenants sending `Idempotency-Key: 1`
/// (or, without a key, the same body) are two tasks, and neither learns the other's ContactId
/// (they were one task, and the second tenant was answered 201 with the first's).
#[tokio::test]
async fn a_callers_idempotency_key_is_scoped_to_the_caller() {
    for (mode, who) in [
        ("iam", "/requestContext/authorizer/iam/userArn"),
        ("authorizer", "/requestContext/authorizer/principalId"),
    ] {
        let mut stack = start(&[("WEBHOOK_AUTH", mode)]).await;
        let as_tenant = |tenant: &str, key: Option<&str>| {
            let mut request = event("function-url-kiosk");
            request["requestContext"]["authorizer"] = json!({});
            let (parent, leaf) = who.rsplit_once('/').unwrap();
            let mut at = &mut request;
            for part in parent.split('/').skip(1) {
                if at.get(part).is_none() {
                    at[part] = json!({});
                }
                at = &mut at[part];
            }
            at[leaf] = json!(tenant);
            if let Some(key) = key {
                request["headers"]["idempotency-key"] = json!(key);
            }
            request
        };
        let mut answers = Vec::new();
        for key in [Some("1"), None] {
            for tenant in [
                "arn:aws:iam::111122223333:user/a",
                "arn:aws:iam::444455556666:user/b",
            ] {
                let answer = response(stack.invoke(as_tenant(tenant, key), TIMEOUT).await);
                assert_eq!(answer["statusCode"], 201, "{mode}: {answer}");
                answers.push(answer["body"].as_str().unwrap().to_string());
            }
            // The same tenant again: its own task, answered again.
            let again = response(
                stack
                    .invoke(as_tenant("arn:aws:iam::111122223333:user/a", key), TIMEOUT)
                    .await,
            );
            assert_eq!(again["body"].as_str().unwrap(), answers[answers.len() - 2]);
        }
        assert_eq!(stack.connect.tasks().len(), 4, "{mode}");
        let distinct: std::collections::BTreeSet<_> = answers.iter().collect();
        assert_eq!(distinct.len(), 4, "{mode}: {answers:?}");
        stack.stop().await;
    }
}

/// A JSON array of `unit`s, `bytes` long.
fn dense(unit: &str, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + unit.len());
    text.push('[');
    while text.len() + unit.len() + 1 < bytes {
        text.push_str(unit);
        text.push(',');
    }
    text.pop();
    text.push(']');
    text
}

/// Memory is bounded by what the input can expand into, not by the shapes tried: the worst
/// shapes a payload Lambda can deliver (a 6 MB synchronous payload; an SQS batch of four ~1 MiB
/// messages) keep the process under 100 MiB. A body or payload whose parsed form would not fit
/// is refused before it is parsed (TooComplex), the batch's other messages become their tasks.
/// (Before: one message of 1 MiB of small objects took 110 MiB; a 6 MB direct payload of them
/// 567 MiB, inside the runtime, before any check.)
#[tokio::test]
async fn the_worst_shapes_stay_within_a_hundred_mebibytes() {
    const LIMIT_MIB: f64 = 100.0;
    let mut stack = start(&[("WEBHOOK_AUTH", "none")]).await;
    let shapes = [
        ("objects", "{\"\":0}"),
        ("arrays", "[]"),
        ("strings", "\"\""),
        ("numbers", "0"),
    ];
    let records: Vec<Value> = shapes
        .iter()
        .map(|(name, unit)| {
            json!({
                "messageId": format!("shape-{name}"), "receiptHandle": "h",
                "body": dense(unit, 1_400_000),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:bulk", "awsRegion": "eu-west-1"
            })
        })
        .collect();
    let answer = response(stack.invoke(json!({ "Records": records }), TIMEOUT).await);
    let refused = batch_failures(&answer);
    assert!(refused.contains("shape-objects"), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 4 - refused.len());
    let pid = stack.function.pid().unwrap();
    let peak = peak_rss_mib(pid).unwrap();
    println!("peak RSS after an SQS batch of four 1.4 MB dense bodies: {peak:.1} MiB");
    assert!(peak < LIMIT_MIB, "{peak:.1} MiB");

    // ~6 MB synchronous payloads of each shape, invoked directly: refused before they are
    // parsed, by the same process.
    for (name, unit) in shapes {
        let payload: Value = serde_json::from_str(&dense(unit, 5_900_000)).unwrap();
        let answer = stack.invoke(payload, TIMEOUT).await;
        assert!(
            matches!(&answer, Ok(Invocation::Error { error_type, .. }) if error_type == "permanent.TooComplex"),
            "{name}: {answer:?}"
        );
        let peak = peak_rss_mib(pid).unwrap();
        println!("peak RSS after a 5.9 MB payload of {name}: {peak:.1} MiB");
        assert!(peak < LIMIT_MIB, "{name}: {peak:.1} MiB");
    }
    // A 5.9 MB payload that is mostly text parses (and is refused for what it says).
    let text = json!({"Name": "n", "Description": "x".repeat(5_900_000)});
    let answer = stack.invoke(text, TIMEOUT).await;
    assert!(
        matches!(&answer, Ok(Invocation::Error { .. })),
        "{answer:?}"
    );
    assert_eq!(stack.function.pid(), Some(pid));
    let peak = peak_rss_mib(pid).unwrap();
    assert!(peak < LIMIT_MIB, "{peak:.1} MiB");
    stack.stop().await;
}
