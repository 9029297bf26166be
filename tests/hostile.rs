//! Hostile and malformed input, generated: arbitrary JSON, deep nesting, huge and odd strings,
//! every member at and past its limit. The whole path from raw event to StartTaskContact request
//! (source recognition → mapping → token → validation) must never panic, every rejection must be a typed
//! permanent error, and whatever it accepts must also pass the stand-in's independent reading of
//! the model and Connect's rules.

mod common;

use std::time::SystemTime;

use aws_smithy_types::DateTime;
use connect_task_bridge::config::Config;
use connect_task_bridge::error::{BridgeError, ErrorClass};
use connect_task_bridge::prepare::prepare;
use connect_task_bridge::sources::{self, EnvelopeLimits};
use connect_task_bridge::webhook_auth::WebhookAuth;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Runs the path; returns the requests it would send, as the JSON Connect would receive.
fn run(config: &Config, payload: &Value) -> Vec<Result<Value, BridgeError>> {
    let now = DateTime::from(SystemTime::now());
    let envelope = match sources::open(
        payload.clone(),
        EnvelopeLimits::default(),
        &WebhookAuth::None,
        None,
    ) {
        Ok(e) => e,
        Err(e) => return vec![Err(e)],
    };
    envelope
        .records
        .into_iter()
        .map(|r| {
            let record = r.map_err(|e| e.error)?;
            let prepared = prepare(&record, config, now)?;
            Ok(serde_json::to_value(&prepared.request).unwrap())
        })
        .collect()
}

fn check(config: &Config, payload: &Value) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for result in run(config, payload) {
        match result {
            Ok(request) => {
                let mut problems = connect_standin::model::model().violations(&request);
                problems.extend(connect_standin::rules::violations(&request, now));
                assert!(
                    problems.is_empty(),
                    "accepted a request the model refuses: {problems:?}\n{request}"
                );
                let token = request["ClientToken"].as_str().unwrap();
                assert!(!token.is_empty() && token.chars().count() <= 500);
            }
            Err(e) => assert_eq!(e.class(), ErrorClass::Permanent, "{e}"),
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn config() -> Config {
    common::config_with(&[])
}

fn example_config() -> Config {
    common::example_config()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(payload in any_json()) {
        check(&config(), &payload);
        check(&example_config(), &payload);
    }

    #[test]
    fn arbitrary_eventbridge_details_become_valid_requests_or_typed_errors(
        detail in any_json(),
        detail_type in "\\PC{0,300}",
        source in ".{0,60}",
    ) {
        let event = json!({
            "version": "0", "id": "id-1", "detail-type": detail_type, "source": source,
            "account": "1", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": detail
        });
        check(&config(), &event);
        check(&example_config(), &event);
    }

    #[test]
    fn arbitrary_bodies_in_every_source(body in "\\PC{0,2000}", key in "\\PC{0,80}") {
        let sqs = json!({"Records": [{
            "messageId": "m", "body": body, "attributes": {}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:q"
        }]});
        check(&config(), &sqs);
        let http = json!({
            "version": "2.0", "rawPath": "/x", "headers": {"idempotency-key": key, "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/x"}, "domainName": "a.execute-api.x"},
            "body": body, "isBase64Encoded": false
        });
        check(&config(), &http);
        check(&example_config(), &http);
    }

    #[test]
    fn direct_members_at_and_past_their_limits(
        name_len in 0usize..1100,
        description_len in 0usize..4200,
        attr_key in "[A-Za-z0-9_ -]{0,20}",
        attr_len in 0usize..33_000,
        ref_len in 0usize..4200,
        ref_type in prop::sample::select(vec!["URL", "NUMBER", "STRING", "DATE", "EMAIL", "ATTACHMENT", "NOPE"]),
        scheduled_offset in -100_000i64..700_000,
        attachments in 0usize..8,
        segment_depth in 1usize..20,
        wide in prop::sample::select(vec!['a', 'é', '語', '😀']),
    ) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        let mut segment = json!({"ValueString": "x"});
        for _ in 0..segment_depth {
            segment = json!({"ValueMap": {"k": segment}});
        }
        let payload = json!({
            "Name": wide.to_string().repeat(name_len),
            "Description": wide.to_string().repeat(description_len),
            "Attributes": {attr_key: "v".repeat(attr_len)},
            "References": {"r": {"Type": ref_type, "Value": "1".repeat(ref_len)}},
            "ScheduledTime": now + scheduled_offset,
            "Attachments": (0..attachments).map(|i| json!({"FileName": format!("f{i}.pdf"), "S3Url": "https://s3/x"})).collect::<Vec<_>>(),
            "SegmentAttributes": {"connect:Custom": segment},
        });
        check(&config(), &payload);
    }
}

#[test]
fn nesting_as_deep_as_the_runtime_parser_allows_is_handled() {
    // lambda_runtime parses the payload with serde_json, whose recursion limit is 128.
    let mut deep = json!("leaf");
    for _ in 0..126 {
        deep = json!({ "d": deep });
    }
    let event = json!({
        "version": "0", "id": "deep", "detail-type": "Deep", "source": "s", "account": "1",
        "time": "2026-11-24T10:00:00Z", "region": "eu-west-1", "resources": [], "detail": deep
    });
    let text = serde_json::to_string(&event).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    check(&config(), &parsed);
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(serde_json::from_str::<Value>(&too_deep).is_err());
}

#[test]
fn huge_strings_are_cut_to_fit_not_refused() {
    let event = json!({
        "version": "0", "id": "big", "detail-type": "語".repeat(5000), "source": "s",
        "account": "1", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {"text": "😀".repeat(200_000)}
    });
    let results = run(&config(), &event);
    // The default route names the task after the detail-type: 5000 characters are too many for
    // a Name (1024), and that is the event's fault, reported by field.
    match &results[0] {
        Err(BridgeError::Validation { field, .. }) => assert!(field.contains("Name"), "{field}"),
        other => panic!("{other:?}"),
    }
    let event = json!({
        "version": "0", "id": "big", "detail-type": "Big", "source": "s",
        "account": "1", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {"text": "😀".repeat(200_000)}
    });
    let request = run(&config(), &event).remove(0).unwrap();
    assert!(request["Description"].as_str().unwrap().chars().count() <= 4096);
}
