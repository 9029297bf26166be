use super::*;

fn keys() -> EnvelopeKeys {
    EnvelopeKeys::new(vec![b"the-functions-own-key".to_vec()]).unwrap()
}

fn target(fifo: bool) -> Target {
    Target {
        arn: format!(
            "arn:aws:sqs:eu-west-1:111122223333:tasks{}",
            if fifo { ".fifo" } else { "" }
        ),
        fifo,
        region: "eu-west-1".into(),
        dlq_of_a_queue: false,
    }
}

fn message(id: &str, body: &str) -> DlqMessage {
    DlqMessage {
        message_id: id.into(),
        body: body.into(),
        attributes: [("SentTimestamp".to_string(), "1795500000000".to_string())].into(),
        message_attributes: Map::new(),
        md5_of_body: None,
    }
}

fn sample(name: &str) -> Value {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn opened(body: &str) -> Value {
    let read = queued_payload(body, Some(&keys())).unwrap().unwrap();
    assert!(read.signed, "{body}");
    read.payload
}

/// A producer's message keeps its messageId only inside the function's signed envelope, as
/// Lambda delivered it: the envelope a quota hold writes.
#[test]
fn a_raw_message_travels_signed_with_its_own_message_id() {
    let mut m = message("original-id", "{\"orderId\": 7}");
    m.message_attributes.insert(
        "tenant".into(),
        json!({"dataType": "String", "stringValue": "a"}),
    );
    let planned = plan(&m, Some(&keys()), &target(false)).unwrap();
    assert_eq!(planned.kind, Kind::Raw);
    assert_eq!(planned.bodies.len(), 1);
    let payload = opened(&planned.bodies[0].body);
    let record = &payload["Records"][0];
    assert_eq!(payload["Records"].as_array().unwrap().len(), 1);
    assert_eq!(record["messageId"], "original-id");
    assert_eq!(record["body"], "{\"orderId\": 7}");
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(record["eventSourceARN"], target(false).arn);
    assert_eq!(record["attributes"]["SentTimestamp"], "1795500000000");
    assert_eq!(record["messageAttributes"]["tenant"]["stringValue"], "a");
    // The payload is the one a source recognises as an SQS batch (a hold's shape).
    assert!(sources::source_of(&payload).is_some_and(|s| s.kinds[0].as_str() == "sqs"));
    // The queue SQS says it came from, when it says so (not an attribute of the delivery).
    m.attributes.insert(
        "DeadLetterQueueSourceArn".into(),
        "arn:aws:sqs:eu-west-1:111122223333:orders".into(),
    );
    let planned = plan(&m, Some(&keys()), &target(false)).unwrap();
    let record = &opened(&planned.bodies[0].body)["Records"][0];
    assert_eq!(
        record["eventSourceARN"],
        "arn:aws:sqs:eu-west-1:111122223333:orders"
    );
    assert!(record["attributes"]
        .get("DeadLetterQueueSourceArn")
        .is_none());
    // Without the key it cannot keep its identity: left in place, never moved bare.
    assert_eq!(plan(&m, None, &target(false)), Err(Refusal::NoKey));
}

/// A body that carries its own identity moves as it is: no envelope is needed.
#[test]
fn events_with_their_own_identity_move_as_they_are() {
    let event = sample("eventbridge-order-failed").to_string();
    let wrapped = sample("sqs-eventbridge-wrapped")["Records"][0]["body"]
        .as_str()
        .unwrap()
        .to_string();
    let sns = sample("sns-notification")["Records"][0]["Sns"].clone();
    let mut notification = sns.clone();
    notification["Type"] = json!("Notification");
    for body in [event, wrapped, notification.to_string()] {
        for keys in [Some(keys()), None] {
            let planned = plan(&message("m", &body), keys.as_ref(), &target(false)).unwrap();
            assert_eq!(planned.kind, Kind::Event, "{body}");
            assert_eq!(planned.bodies[0].body, body);
        }
    }
    // An EventBridge event without its id cannot be told from another: refused.
    let mut no_id = sample("eventbridge-order-failed");
    no_id["id"] = json!("");
    assert_eq!(
        plan(&message("m", &no_id.to_string()), None, &target(false)),
        Err(Refusal::BadEvent)
    );
}

/// The function's own envelope moves as it is (its identity is inside); one it did not sign
/// is refused, as the function refuses it.
#[test]
fn envelopes_move_only_when_they_are_the_functions_own() {
    let payload = json!({"Records": [{"messageId": "x", "eventSource": "aws:sqs", "body": "b"}]});
    let own = crate::queue::envelope(&payload, Some(&keys()));
    let planned = plan(&message("m", &own), Some(&keys()), &target(false)).unwrap();
    assert_eq!(
        (planned.kind, planned.bodies[0].body.as_str()),
        (Kind::Envelope, own.as_str())
    );
    let other = EnvelopeKeys::new(vec![b"someone-else".to_vec()]).unwrap();
    let forged = crate::queue::envelope(&payload, Some(&other));
    assert_eq!(
        plan(&message("m", &forged), Some(&keys()), &target(false)),
        Err(Refusal::Forged)
    );
    assert_eq!(
        plan(&message("m", &own), None, &target(false)),
        Err(Refusal::NoKey)
    );
    let unsigned = crate::queue::envelope(&sample("apigw-http-ticket"), None);
    assert_eq!(
        plan(&message("m", &unsigned), Some(&keys()), &target(false))
            .unwrap()
            .kind,
        Kind::UnsignedEnvelope
    );
    let broken = r#"{"connectTaskBridge": {"version": 7}}"#;
    assert_eq!(
        plan(&message("m", broken), Some(&keys()), &target(false)),
        Err(Refusal::BadEnvelope)
    );
}

fn failure_record(payload: Option<Value>) -> String {
    let mut record = json!({
        "version": "1.0",
        "timestamp": "2026-11-26T10:00:00.000Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
            "functionArn": "arn:aws:lambda:eu-west-1:111122223333:function:bridge:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorType": "transient.Throttled", "errorMessage": "m"}
    });
    if let Some(p) = payload {
        record["requestPayload"] = p;
    }
    record.to_string()
}

/// A body shaped like a Lambda destination record in a queue's DLQ is a producer's message (the
/// function read it so, identity its messageId): moved whole in the signed envelope, never its
/// `requestPayload` instead (a second, different task, the message itself deleted).
#[test]
fn a_record_shaped_message_from_a_queue_is_a_raw_message() {
    let body = failure_record(Some(sample("eventbridge-order-failed")));
    let queues_dlq = Target {
        dlq_of_a_queue: true,
        ..target(false)
    };
    let planned = plan(&message("m", &body), Some(&keys()), &queues_dlq).unwrap();
    assert_eq!(planned.kind, Kind::Raw);
    assert_eq!(opened(&planned.bodies[0].body)["Records"][0]["body"], body);
    // SQS says where it came from: the same, whatever the place.
    let mut moved = message("m", &body);
    moved.attributes.insert(
        DLQ_SOURCE_ARN.into(),
        "arn:aws:sqs:eu-west-1:111122223333:tasks".into(),
    );
    let planned = plan(&moved, Some(&keys()), &target(false)).unwrap();
    assert_eq!(planned.kind, Kind::Raw);
}

/// The asynchronous failure queue: the request inside a Lambda failure record goes back as
/// the function would have held it.
#[test]
fn a_failure_records_request_goes_back_with_its_identity() {
    let event = sample("eventbridge-order-failed");
    let planned = plan(
        &message("m", &failure_record(Some(event.clone()))),
        None,
        &target(false),
    )
    .unwrap();
    assert_eq!(planned.kind, Kind::FailureRecord);
    assert_eq!(planned.bodies[0].body, event.to_string());

    // SNS and S3 payloads are not readable in an SQS body: the signed envelope, one per record.
    let mut sns = sample("sns-notification");
    let first = sns["Records"][0].clone();
    let mut second = first.clone();
    second["Sns"]["MessageId"] = json!("second");
    sns["Records"] = json!([first, second]);
    let planned = plan(
        &message("m", &failure_record(Some(sns))),
        Some(&keys()),
        &target(false),
    )
    .unwrap();
    assert_eq!(planned.bodies.len(), 2);
    for (i, out) in planned.bodies.iter().enumerate() {
        let payload = opened(&out.body);
        assert_eq!(payload["Records"].as_array().unwrap().len(), 1);
        assert_eq!(
            payload["Records"][0]["Sns"]["MessageId"] == json!("second"),
            i == 1
        );
    }
    assert_ne!(
        planned.bodies[0].deduplication_id,
        planned.bodies[1].deduplication_id
    );
    let s3 = sample("s3-object-created");
    assert_eq!(
        plan(
            &message("m", &failure_record(Some(s3.clone()))),
            None,
            &target(false)
        ),
        Err(Refusal::NoKey)
    );
    assert_eq!(
        plan(
            &message("m", &failure_record(Some(s3))),
            Some(&keys()),
            &target(false)
        )
        .unwrap()
        .bodies
        .len(),
        1
    );

    // A webhook is never invoked asynchronously, nor an event source mapping's batch: a record
    // of one is nobody's to sign (signed, its claim on a message's identity would stand).
    for sync in [
        "apigw-http-ticket",
        "contact-flow-callback",
        "sqs-standard-batch",
        "kinesis-records",
        "dynamodb-update",
    ] {
        assert_eq!(
            plan(
                &message("m", &failure_record(Some(sample(sync)))),
                Some(&keys()),
                &target(false)
            ),
            Err(Refusal::Synchronous),
            "{sync}"
        );
    }
    assert_eq!(
        plan(
            &message("m", &failure_record(None)),
            Some(&keys()),
            &target(false)
        ),
        Err(Refusal::NoRequestPayload)
    );
    assert_eq!(
        plan(
            &message("m", &failure_record(Some(json!({"what": 1})))),
            Some(&keys()),
            &target(false)
        ),
        Err(Refusal::UnknownPayload)
    );
}

/// FIFO: the group is kept by the caller (`run`); the deduplication id comes from the identity,
/// so a rerun within SQS's window sends nothing twice.
#[test]
fn fifo_moves_need_the_group_and_deduplicate_by_identity() {
    let body = sample("eventbridge-order-failed").to_string();
    assert_eq!(
        plan(&message("m", &body), None, &target(true)),
        Err(Refusal::NoGroup)
    );
    let mut m = message("m", &body);
    m.attributes
        .insert("MessageGroupId".into(), "order-1".into());
    let once = plan(&m, None, &target(true)).unwrap();
    let twice = plan(&m, None, &target(true)).unwrap();
    assert_eq!(
        once.bodies[0].deduplication_id,
        twice.bodies[0].deduplication_id
    );
    assert!(once.bodies[0].deduplication_id.len() <= 128);
    m.message_id = "other".into();
    let other = plan(&m, None, &target(true)).unwrap();
    assert_ne!(
        once.bodies[0].deduplication_id,
        other.bodies[0].deduplication_id
    );
}

#[test]
fn arguments_are_read_with_the_key_from_the_environment() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let env = |name: &str| (name == "ENVELOPE_SECRET_ID").then(|| "from-env".to_string());
    let parsed = Args::parse(&args(&["--from", "q"]), env).unwrap();
    assert_eq!(parsed.from, "q");
    assert_eq!(parsed.envelope_secret_id.as_deref(), Some("from-env"));
    assert!(!parsed.dry_run && parsed.to.is_none() && parsed.rate.is_none());
    let parsed = Args::parse(
        &args(&[
            "--from",
            "q",
            "--to",
            "t",
            "--rate",
            "2.5",
            "--max",
            "7",
            "--dry-run",
            "--envelope-secret-id",
            "flag",
            "--rule-arn",
            "arn:aws:events:eu-west-1:1:rule/p",
        ]),
        env,
    )
    .unwrap();
    assert_eq!(parsed.to.as_deref(), Some("t"));
    assert_eq!((parsed.rate, parsed.max), (Some(2.5), Some(7)));
    assert!(parsed.dry_run);
    assert_eq!(parsed.envelope_secret_id.as_deref(), Some("flag"));
    assert_eq!(
        parsed.rule_arn.as_deref(),
        Some("arn:aws:events:eu-west-1:1:rule/p")
    );
    for bad in [
        &["--to", "t"][..],
        &["--from"],
        &["--from", "q", "--rate", "0"],
        &["--from", "q", "--rate", "x"],
        &["--from", "q", "--rate", "NaN"],
        &["--from", "q", "--rate", "0.0009"],
        &["--from", "q", "--rate", "1e-300"],
        &["--from", "q", "--max", "-1"],
        &["--from", "q", "--what"],
        &["--from", "--dry-run"],
    ] {
        assert!(Args::parse(&args(bad), |_| None).is_err(), "{bad:?}");
    }
}

#[test]
fn the_summary_counts_by_outcome_and_reason() {
    let mut summary = Summary {
        seconds: 2.0,
        ..Summary::default()
    };
    summary.moved.insert(Kind::Raw.describe().into(), 3);
    summary.moved.insert(Kind::Event.describe().into(), 1);
    summary.failed.insert(Refusal::Forged.to_string(), 2);
    let text = summary.render();
    assert!(
        text.starts_with("redrive: moved 4, skipped 0, failed 2 in 2.0 s\n"),
        "{text}"
    );
    assert!(
        text.contains("       3  raw message, in the signed envelope"),
        "{text}"
    );
    assert!(
        text.contains("failed          2  envelope not signed"),
        "{text}"
    );
    assert!(text.contains("left in the dead-letter queue"), "{text}");
    summary.broken = Some("ReceiveMessage failed (no connection)".into());
    assert!(summary.render().contains(
        "  stopped: ReceiveMessage failed (no connection); the rest is still in the dead-letter queue\n"
    ));
    summary.broken = None;
    summary.dry_run = true;
    summary.failed.clear();
    assert!(summary
        .render()
        .starts_with("redrive (dry run): would move 4, skipped 0, failed 0"));
}
