//! Per-event CPU of the function's own work, in process: JSON parse of the payload, envelope
//! detection, mapping, client token, validation and building the SDK request, for a ~2 KB event
//! of each source and an SQS batch of 10. No network: the SDK call is built, not sent.

use std::time::SystemTime;

use aws_smithy_types::DateTime;
use connect_task_bridge::config::Config;
use connect_task_bridge::connect::build_call;
use connect_task_bridge::prepare::prepare;
use connect_task_bridge::sources::{self, EnvelopeLimits};
use connect_task_bridge::webhook_auth::WebhookAuth;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};

fn sample(name: &str) -> Value {
    let path = format!("{}/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Pads an event to about 2 KB with a free-text field where the source carries its payload.
fn two_kb(name: &str) -> Vec<u8> {
    let mut event = sample(name);
    let pad = |text: &str| {
        let mut v: Value = serde_json::from_str(text).unwrap_or(json!({"text": text}));
        v["notes"] = json!("lorem ipsum dolor sit amet ".repeat(40));
        v.to_string()
    };
    match name {
        n if n.starts_with("eventbridge") => {
            event["detail"]["notes"] = json!("lorem ipsum dolor sit amet ".repeat(50))
        }
        n if n.starts_with("sns") => {
            let m = pad(event["Records"][0]["Sns"]["Message"].as_str().unwrap());
            event["Records"][0]["Sns"]["Message"] = json!(m);
        }
        n if n.starts_with("sqs") => {
            event["Records"] = json!([event["Records"][0].clone()]);
            let b = pad(event["Records"][0]["body"].as_str().unwrap());
            event["Records"][0]["body"] = json!(b);
        }
        n if n.starts_with("direct") => {
            event["Description"] = json!("lorem ipsum dolor sit amet ".repeat(35))
        }
        _ => {
            let body = if event["isBase64Encoded"] == true {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(event["body"].as_str().unwrap())
                    .unwrap();
                String::from_utf8(raw).unwrap()
            } else {
                event["body"].as_str().unwrap().to_string()
            };
            event["body"] = json!(pad(&body));
            event["isBase64Encoded"] = json!(false);
        }
    }
    serde_json::to_vec(&event).unwrap()
}

fn sqs_batch_of_10() -> Vec<u8> {
    let one: Value = serde_json::from_slice(&two_kb("sqs-standard-batch")).unwrap();
    let records: Vec<Value> = (0..10)
        .map(|i| {
            let mut r = one["Records"][0].clone();
            r["messageId"] = json!(format!("059f36b4-87a3-44ab-83d2-66197583{i:04}"));
            r
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

fn config() -> Config {
    let root = env!("CARGO_MANIFEST_DIR");
    Config::from_lookup(|k| match k {
        "CONNECT_INSTANCE_ID" => Some("11111111-2222-3333-4444-555555555555".into()),
        "CONNECT_CONTACT_FLOW_ID" => Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
        "WEBHOOK_AUTH" => Some("none".into()),
        "TASK_MAPPING_FILE" => Some(format!("{root}/examples/mapping.yaml")),
        _ => None,
    })
    .unwrap()
}

/// The function's per-invocation work short of the network call.
fn pipeline(config: &Config, client: &aws_sdk_connect::Client, bytes: &[u8]) -> usize {
    let payload: Value = serde_json::from_slice(bytes).unwrap();
    let now = DateTime::from(SystemTime::now());
    let envelope =
        sources::open(payload, EnvelopeLimits::default(), &WebhookAuth::None, None).unwrap();
    let mut built = 0;
    for record in envelope.records {
        let prepared = prepare(&record.unwrap(), config, now).unwrap();
        let call = build_call(client, &prepared.request).unwrap();
        built += usize::from(call.get_client_token().is_some());
    }
    built
}

fn benches(c: &mut Criterion) {
    let config = config();
    let sdk = aws_sdk_connect::Config::builder()
        .behavior_version(aws_sdk_connect::config::BehaviorVersion::latest())
        .region(aws_sdk_connect::config::Region::new("eu-west-1"))
        .build();
    let client = aws_sdk_connect::Client::from_conf(sdk);
    let mut group = c.benchmark_group("per_event");
    for name in [
        "eventbridge-order-failed",
        "sqs-standard-batch",
        "sns-notification",
        "apigw-rest-github-issue",
        "apigw-http-ticket",
        "function-url-kiosk",
        "direct-cli-skeleton",
    ] {
        let bytes = two_kb(name);
        let label = match name {
            "apigw-rest-github-issue" => "apigw_rest",
            "apigw-http-ticket" => "apigw_http",
            "function-url-kiosk" => "function_url",
            other => other.split('-').next().unwrap(),
        };
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(label, |b| {
            b.iter_batched(
                || bytes.clone(),
                |bytes| pipeline(&config, &client, &bytes),
                BatchSize::SmallInput,
            )
        });
    }
    let batch = sqs_batch_of_10();
    group.throughput(Throughput::Elements(10));
    group.bench_function("sqs_batch_10", |b| {
        b.iter(|| assert_eq!(pipeline(&config, &client, &batch), 10))
    });
    group.finish();
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
