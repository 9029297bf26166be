//! Every sample in `events/` through the real handler and the real SDK client (answered by
//! aws-smithy-mocks): the exact requests sent, the answer each source gets, and the client-token
//! guarantees (same event → same token across cold starts; different events → different tokens).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_connect::operation::start_task_contact::StartTaskContactError;
use aws_sdk_connect::types::error::{
    InternalServiceException, InvalidParameterException, InvalidRequestException,
    ResourceNotFoundException, ServiceQuotaExceededException, ThrottlingException,
};
use common::{event, event_names, example_config, expected_requests, FakeConnect};
use connect_task_bridge::error::{BridgeError, ErrorClass};
use serde_json::{json, Value};

fn by_token(mut requests: Vec<Value>) -> Vec<Value> {
    requests.sort_by(|a, b| a["ClientToken"].as_str().cmp(&b["ClientToken"].as_str()));
    requests
}

fn batch_failures(response: &Value) -> BTreeSet<String> {
    response["batchItemFailures"]
        .as_array()
        .expect("an SQS answer is a partial batch response")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn every_sample_event_sends_exactly_the_expected_requests() {
    let names = event_names();
    assert!(names.len() >= 9, "events/ lost samples: {names:?}");
    for name in names {
        let connect = FakeConnect::new();
        let bridge = connect.bridge(example_config());
        let response = bridge
            .handle(event(&name), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = expected_requests(&name);
        let calls = connect.calls();
        match name.as_str() {
            // The second message asks for a call back in the past: refused before the call, and
            // in a FIFO queue everything after it waits too, so only the first is sent.
            "sqs-fifo-batch" => {
                assert_eq!(calls, expected[..1], "{name}");
                assert_eq!(
                    batch_failures(&response),
                    ids(&[
                        "a9a0f8a4-1b4e-4c1a-9d35-3a4d9c2b6e01",
                        "f3b2c1d0-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
                    ])
                );
            }
            // Streams answer with a partial batch response; every change becomes its task,
            // the three changes of one item in order.
            "kinesis-records" | "dynamodb-update" | "sqs-eventbridge-wrapped" => {
                assert_eq!(calls, expected, "{name}");
                assert_eq!(batch_failures(&response), ids(&[]), "{name}");
            }
            // A pipe from a standard queue: its messages run concurrently as the queue's own
            // do (the calls' order is the scheduler's; it once failed CI on a clean clone).
            "pipes-sqs-batch" => {
                assert_eq!(by_token(calls), by_token(expected), "{name}");
                assert_eq!(batch_failures(&response), ids(&[]), "{name}");
            }
            // A standard queue runs its messages concurrently: compare without order.
            "sqs-standard-batch" => {
                assert_eq!(by_token(calls), by_token(expected), "{name}");
                assert_eq!(
                    batch_failures(&response),
                    ids(&["2e1424d4-f796-459a-8184-9c92662be6da"])
                );
            }
            _ => {
                assert_eq!(calls, expected, "{name}");
                let token = expected[0]["ClientToken"].clone();
                if ["apigw", "function-url", "alb"]
                    .iter()
                    .any(|p| name.starts_with(p))
                {
                    assert_eq!(response["statusCode"], 201, "{name}: {response}");
                    if name.starts_with("alb") {
                        // ALB needs the status line's text and the body's encoding.
                        assert_eq!(response["statusDescription"], "201 Created");
                        assert_eq!(response["isBase64Encoded"], false);
                    }
                    let body: Value =
                        serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
                    assert_eq!(
                        body,
                        json!({"contactId": "contact-0001", "clientToken": token})
                    );
                } else {
                    assert_eq!(
                        response,
                        json!({"ContactId": "contact-0001", "ClientToken": token}),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_same_event_twice_across_cold_starts_reuses_its_token_and_its_task() {
    for name in event_names() {
        // One Connect, two cold starts: each builds its configuration and client anew.
        let connect = FakeConnect::new();
        let first = connect
            .bridge(example_config())
            .handle(event(&name), None)
            .await
            .unwrap();
        let tasks = connect.task_count();
        let sent_once = connect.calls().len();
        let second = connect
            .bridge(example_config())
            .handle(event(&name), None)
            .await
            .unwrap();
        let calls = connect.calls();
        let tokens = |calls: &[Value]| {
            by_token(calls.to_vec())
                .iter()
                .map(|c| c["ClientToken"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tokens(&calls[..sent_once]),
            tokens(&calls[sent_once..]),
            "{name}"
        );
        assert_eq!(
            connect.task_count(),
            tasks,
            "{name}: a second task was opened"
        );
        assert_eq!(first, second, "{name}: the redelivery got another answer");
    }
}

#[tokio::test]
async fn different_events_never_share_a_token() {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut check = |label: String, calls: Vec<Value>| {
        for call in calls {
            let token = call["ClientToken"].as_str().unwrap().to_string();
            if let Some(other) = seen.insert(token.clone(), label.clone()) {
                panic!("{label} and {other} share the token {token}");
            }
        }
    };
    for name in event_names() {
        let connect = FakeConnect::new();
        connect
            .bridge(example_config())
            .handle(event(&name), None)
            .await
            .unwrap();
        check(name, connect.calls());
    }
    // Near misses: one changed field each, and the token must change with it.
    let mut variants = Vec::new();
    let mut eb = event("eventbridge-scheduled");
    eb["id"] = json!("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eab");
    variants.push(("eventbridge with another id", eb));
    let mut order = event("eventbridge-order-failed");
    order["detail"]["orderId"] = json!("ord-20932");
    variants.push(("another order", order));
    let mut url = event("function-url-kiosk");
    url["body"] = json!("device=kiosk-18&status=offline&since=2026-11-24T06:55:00Z");
    variants.push(("webhook with another body", url));
    let mut url_path = event("function-url-kiosk");
    url_path["requestContext"]["http"]["path"] = json!("/alerts/kiosk2");
    variants.push(("webhook on another path", url_path));
    let mut sns = event("sns-notification");
    sns["Records"][0]["Sns"]["MessageId"] = json!("95df01b4-ee98-5cb9-9903-4c221d41eb5f");
    variants.push(("sns with another id", sns));
    let mut direct = event("direct-cli-skeleton");
    direct.as_object_mut().unwrap().remove("ClientToken");
    variants.push(("direct without a token", direct.clone()));
    direct["Description"] = json!("Refund of 250.00 EUR requested by finance.");
    variants.push(("direct without a token, other description", direct));
    for (label, payload) in variants {
        let connect = FakeConnect::new();
        connect
            .bridge(example_config())
            .handle(payload, None)
            .await
            .unwrap();
        check(label.to_string(), connect.calls());
    }
}

#[tokio::test]
async fn the_built_in_default_turns_every_sample_into_a_task() {
    for name in event_names() {
        let connect = FakeConnect::new();
        let bridge = connect.bridge(common::config_with(&[]));
        let response = bridge.handle(event(&name), None).await.unwrap();
        if name.starts_with("sqs") {
            assert_eq!(batch_failures(&response), BTreeSet::new(), "{name}");
        }
        for call in connect.calls() {
            assert_eq!(call["InstanceId"], common::INSTANCE);
            let has_flow = call.get("ContactFlowId").is_some();
            assert!(has_flow, "{name}: {call}");
            assert!(call["Name"].as_str().is_some_and(|n| !n.is_empty()));
        }
        assert!(!connect.calls().is_empty(), "{name}");
    }
}

fn connect_errors() -> Vec<(StartTaskContactError, &'static str, ErrorClass, u16)> {
    vec![
        (
            StartTaskContactError::ThrottlingException(
                ThrottlingException::builder()
                    .message("Rate exceeded")
                    .build(),
            ),
            "ThrottlingException",
            ErrorClass::Transient,
            429,
        ),
        (
            StartTaskContactError::InternalServiceException(
                InternalServiceException::builder().message("oops").build(),
            ),
            "InternalServiceException",
            ErrorClass::Transient,
            502,
        ),
        (
            StartTaskContactError::ServiceQuotaExceededException(
                ServiceQuotaExceededException::builder()
                    .message("too many tasks share this PreviousContactId")
                    .build(),
            ),
            "ServiceQuotaExceededException",
            ErrorClass::Transient,
            503,
        ),
        (
            StartTaskContactError::InvalidParameterException(
                InvalidParameterException::builder()
                    .message("bad reference")
                    .build(),
            ),
            "InvalidParameterException",
            ErrorClass::Permanent,
            400,
        ),
        (
            StartTaskContactError::InvalidRequestException(
                InvalidRequestException::builder().message("no").build(),
            ),
            "InvalidRequestException",
            ErrorClass::Permanent,
            400,
        ),
        (
            StartTaskContactError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("flow not found")
                    .build(),
            ),
            "ResourceNotFoundException",
            ErrorClass::Permanent,
            500,
        ),
    ]
}

/// The example mapping with one attempt per call: a failure reaches the source as it is.
fn single_attempt() -> connect_task_bridge::config::Config {
    common::config_with(&[
        ("TASK_MAPPING_FILE", common::EXAMPLE_MAPPING),
        ("CONNECT_MAX_ATTEMPTS", "1"),
    ])
}

#[tokio::test]
async fn a_transient_failure_is_tried_again_within_the_invocation() {
    for code in ["ThrottlingException", "InternalServiceException"] {
        let connect = failing_next_call(code);
        let answer = connect
            .bridge(example_config())
            .handle(event("eventbridge-order-failed"), None)
            .await
            .unwrap();
        assert!(answer["ContactId"].is_string(), "{code}: {answer}");
        assert_eq!(connect.calls().len(), 2, "{code}");
        assert_eq!(connect.task_count(), 1, "{code}");
    }
}

/// A fresh Connect whose next call fails with the error of that code.
fn failing_next_call(code: &str) -> FakeConnect {
    let (error, ..) = connect_errors().into_iter().find(|e| e.1 == code).unwrap();
    let connect = FakeConnect::new();
    connect.fail_next([error]);
    connect
}

#[tokio::test]
async fn every_connect_error_reaches_each_source_in_its_own_shape() {
    for (_, code, class, status) in connect_errors() {
        // EventBridge (async): the invocation fails with the class and code, so Lambda retries
        // and finally hands the event to the on-failure destination.
        let connect = failing_next_call(code);
        let err = connect
            .bridge(single_attempt())
            .handle(event("eventbridge-order-failed"), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
        assert_eq!(err.class(), class, "{code}");
        assert!(matches!(err, BridgeError::Connect { .. }));
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert!(diagnostic.error_type.ends_with(code), "{diagnostic:?}");

        // Webhook: the status tells the caller whether to fix the request or retry.
        let connect = failing_next_call(code);
        let response = connect
            .bridge(single_attempt())
            .handle(event("apigw-rest-github-issue"), None)
            .await
            .unwrap();
        assert_eq!(response["statusCode"], status, "{code}: {response}");
        let retry_after = response["headers"]["retry-after"].as_str();
        assert_eq!(
            retry_after.is_some(),
            status == 429 || status == 503,
            "{code}"
        );
        assert!(
            !response["body"]
                .as_str()
                .unwrap()
                .contains("flow not found"),
            "{code}: Connect's own message leaked to the caller"
        );

        // SQS: the failed message is reported, whatever the class; the others are not.
        let connect = failing_next_call(code);
        let mut batch = event("sqs-standard-batch");
        batch["Records"].as_array_mut().unwrap().remove(1);
        let bridge = connect.bridge(common::config_with(&[
            ("TASK_MAPPING_FILE", common::EXAMPLE_MAPPING),
            ("BATCH_CONCURRENCY", "1"),
            ("CONNECT_MAX_ATTEMPTS", "1"),
        ]));
        let response = bridge.handle(batch, None).await.unwrap();
        assert_eq!(
            batch_failures(&response),
            ids(&["059f36b4-87a3-44ab-83d2-661975830a7d"]),
            "{code}"
        );
        assert_eq!(connect.task_count(), 1, "{code}");
    }
}

#[tokio::test]
async fn a_fifo_batch_stops_at_a_connect_failure_and_keeps_its_order() {
    let connect = FakeConnect::new();
    connect.fail_next([StartTaskContactError::ThrottlingException(
        ThrottlingException::builder().build(),
    )]);
    let mut batch = event("sqs-fifo-batch");
    batch["Records"].as_array_mut().unwrap().remove(1);
    let response = connect
        .bridge(single_attempt())
        .handle(batch, None)
        .await
        .unwrap();
    assert_eq!(
        batch_failures(&response),
        ids(&[
            "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5",
            "f3b2c1d0-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
        ])
    );
    assert_eq!(
        connect.calls().len(),
        1,
        "nothing after the failure was sent"
    );
    assert_eq!(connect.task_count(), 0);
}

#[tokio::test]
async fn invalid_input_never_reaches_connect() {
    let connect = FakeConnect::new();
    let bridge = connect.bridge(example_config());
    let mut direct = event("direct-cli-skeleton");
    direct["Attributes"]["bad key!"] = json!("x");
    direct["References"]["file"] = json!({"Value": "x", "Type": "ATTACHMENT"});
    let err = bridge.handle(direct, None).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Attributes"), "{message}");
    assert!(message.contains("References"), "{message}");
    assert_eq!(err.class(), ErrorClass::Permanent);

    let err = bridge
        .handle(json!({"hello": "world"}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BridgeError::UnrecognisedPayload(_)), "{err}");
    assert!(connect.calls().is_empty());
}

/// Real events carry numbers and nulls where the example mapping truncates text (an order's
/// failure reason given as a code, a message that is a number, an issue without a body):
/// each still becomes its task.
#[tokio::test]
async fn the_example_mapping_takes_numbers_and_nulls_where_it_truncates_text() {
    let mut order = event("eventbridge-order-failed");
    order["detail"]["reason"] = json!(402);
    let mut sqs = event("sqs-standard-batch");
    sqs["Records"].as_array_mut().unwrap().truncate(1);
    let mut body: Value =
        serde_json::from_str(sqs["Records"][0]["body"].as_str().unwrap()).unwrap();
    body["message"] = json!(12345);
    sqs["Records"][0]["body"] = Value::String(body.to_string());
    let mut github = event("apigw-rest-github-issue");
    let mut issue: Value = serde_json::from_str(github["body"].as_str().unwrap()).unwrap();
    issue["issue"]["title"] = json!(7);
    issue["issue"]["body"] = Value::Null;
    github["body"] = Value::String(issue.to_string());

    for (name, payload) in [("order", order), ("sqs", sqs), ("github", github)] {
        let connect = FakeConnect::new();
        let response = connect.bridge(example_config()).handle(payload, None).await;
        let response = response.unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "sqs" {
            assert_eq!(batch_failures(&response), BTreeSet::new(), "{name}");
        }
        assert_eq!(connect.task_count(), 1, "{name}: {response}");
    }
    let connect = FakeConnect::new();
    let mut order = event("eventbridge-order-failed");
    order["detail"]["reason"] = json!(402);
    connect
        .bridge(example_config())
        .handle(order, None)
        .await
        .unwrap();
    let name = connect.calls()[0]["Name"].as_str().unwrap().to_string();
    assert!(name.ends_with("failed: 402"), "{name}");
}
