//! The identity model as properties over generated events of every source: two different events
//! never share a client token, and an event redelivered with anything a redelivery may change
//! (receive count, receipt handle, receive times, request id, unsigned headers) keeps its token.

use std::collections::HashMap;

use aws_smithy_types::DateTime;
use connect_task_bridge::config::Config;
use connect_task_bridge::prepare::prepare_payload;
use proptest::prelude::*;
use serde_json::{json, Value};

fn config() -> Config {
    Config::from_lookup(|k| match k {
        "CONNECT_INSTANCE_ID" => Some("11111111-2222-3333-4444-555555555555".into()),
        "CONNECT_CONTACT_FLOW_ID" => Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
        "WEBHOOK_AUTH" => Some("none".into()),
        _ => None,
    })
    .unwrap()
}

/// One event of a source, with the id its source gives it (for webhooks: the Idempotency-Key, or
/// none; for direct payloads: part of the request) and a body.
#[derive(Debug, Clone)]
struct Event {
    source: u8,
    id: String,
    body: String,
}

/// What changes between deliveries of the same event.
#[derive(Debug, Clone)]
struct Delivery {
    receive_count: u32,
    request_id: String,
    user_agent: String,
}

fn payload(e: &Event, d: &Delivery) -> Value {
    let sqs = |arn: &str, group: Option<&str>| {
        let mut attributes = json!({
            "ApproximateReceiveCount": d.receive_count.to_string(),
            "ApproximateFirstReceiveTimestamp": (1_795_500_000_000u64 + d.receive_count as u64).to_string(),
            "SentTimestamp": "1795500000000",
        });
        if let Some(g) = group {
            attributes["MessageGroupId"] = json!(g);
            // Deliberately the same for every message: it must never make the identity.
            attributes["MessageDeduplicationId"] = json!("shared-dedup");
        }
        json!({"Records": [{
            "messageId": e.id, "receiptHandle": format!("rh-{}", d.request_id),
            "body": e.body, "attributes": attributes, "messageAttributes": {},
            "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "eu-west-1"
        }]})
    };
    match e.source {
        0 => json!({"version": "0", "id": e.id, "detail-type": "T", "source": "s",
                    "account": "1", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
                    "resources": [], "detail": {"text": e.body}}),
        1 => sqs("arn:aws:sqs:eu-west-1:1:q", None),
        2 => sqs("arn:aws:sqs:eu-west-1:1:q.fifo", Some("g")),
        3 => json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:1:t:s", "Sns": {
                "Type": "Notification", "MessageId": e.id, "TopicArn": "arn:aws:sns:eu-west-1:1:t",
                "Subject": null, "Message": e.body, "Timestamp": "2026-11-24T10:00:00.000Z",
                "SignatureVersion": "1", "Signature": "", "SigningCertUrl": "",
                "UnsubscribeUrl": "", "MessageAttributes": {}}}]}),
        4 | 5 => {
            let mut headers = json!({"user-agent": d.user_agent});
            if e.source == 4 {
                headers["idempotency-key"] = json!(e.id);
            }
            json!({"version": "2.0", "rawPath": "/hook", "headers": headers,
                   "requestContext": {"http": {"method": "POST", "path": "/hook"},
                       "requestId": d.request_id, "timeEpoch": 0,
                       "domainName": "x.execute-api.eu-west-1.amazonaws.com"},
                   "body": if e.source == 5 { format!("{}|{}", e.id, e.body) } else { e.body.clone() },
                   "isBase64Encoded": false})
        }
        _ => json!({"Name": format!("{}|{}", e.id, e.body), "ContactFlowId": "f"}),
    }
}

/// The token of the event's single record, if it became a request.
fn token(config: &Config, e: &Event, d: &Delivery) -> Option<String> {
    let now = DateTime::from_secs(1_800_000_000);
    let records = prepare_payload(payload(e, d), config, now).ok()?;
    let (_, prepared) = records.into_iter().next()?;
    prepared.ok().map(|p| p.client_token().to_string())
}

fn event() -> impl Strategy<Value = Event> {
    // A small alphabet, so that ids (and bodies) often coincide across events and sources.
    (
        0u8..7,
        "[a-c]{1,3}",
        prop_oneof!["[a-c]{0,3}", "\\PC{0,40}"],
    )
        .prop_map(|(source, id, body)| Event { source, id, body })
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (1u32..20, "[a-f0-9]{8}", "[a-zA-Z/ .0-9]{0,20}").prop_map(
        |(receive_count, request_id, user_agent)| Delivery {
            receive_count,
            request_id,
            user_agent,
        },
    )
}

/// Sources whose ids AWS assigns (EventBridge, SQS standard and FIFO, SNS): globally unique, so
/// two records carrying the same one are the same delivery, whatever shape they came in.
fn service(source: u8) -> bool {
    source <= 3
}

/// What makes two generated events the same event: for AWS-assigned ids, the id; for a keyed
/// webhook, its key; for an unkeyed webhook and a direct payload, their whole content.
fn same_event(a: &Event, b: &Event) -> bool {
    if service(a.source) && service(b.source) {
        return a.id == b.id;
    }
    a.source == b.source && a.id == b.id && (a.source == 4 || a.body == b.body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn different_events_never_share_a_token(a in event(), b in event(), d in delivery()) {
        prop_assume!(!same_event(&a, &b));
        let config = config();
        if let (Some(ta), Some(tb)) = (token(&config, &a, &d), token(&config, &b, &d)) {
            prop_assert_ne!(ta, tb, "{:?} and {:?}", a, b);
        }
    }

    #[test]
    fn a_redelivery_keeps_its_token(e in event(), first in delivery(), again in delivery()) {
        let config = config();
        prop_assert_eq!(token(&config, &e, &first), token(&config, &e, &again), "{:?}", e);
    }

    #[test]
    fn no_caller_chosen_identity_meets_another_sources_token(id in "[a-c]{1,3}", d in delivery()) {
        let config = config();
        let mut seen: HashMap<String, u8> = HashMap::new();
        for source in 0u8..7 {
            let e = Event { source, id: id.clone(), body: id.clone() };
            if let Some(t) = token(&config, &e, &d) {
                if let Some(other) = seen.insert(t, source) {
                    prop_assert!(
                        service(source) && service(other),
                        "sources {} and {} share a token for id {}", other, source, id
                    );
                }
            }
        }
    }
}
