//! Reserved turns (`src/pace/turns.rs`) attacked through the binary against moto (pace table,
//! task table, SQS) and the Connect stand-in: a record whose later call is handed back with
//! its turn reserved must not make its earlier calls again when it comes back.

mod common;

use std::time::Duration;

use connect_standin::moto::{moto_server, Moto};

const MAPPING: &str = r#"
routes:
  - name: open
    when: { body: { action: open } }
    key: "{{ body.key }}"
    task:
      name: "Turns {{ body.key }}"
  - name: attrs
    when: { body: { action: attrs } }
    action: update
    key: "{{ body.key }}"
    task:
      attributes: { note: "{{ body.note }}" }
  - name: desc
    when: { body: { action: desc } }
    action: update
    key: "{{ body.key }}"
    task:
      description: "{{ body.note }}"
  - name: both
    when: { body: { action: both } }
    action: update
    key: "{{ body.key }}"
    task:
      description: "{{ body.note }}"
      attributes: { note: "{{ body.note }}" }
"#;

/// UpdateContactAttributes' schedule filled (1/s burst 2), then two updates with a description
/// and attributes: their UpdateContact goes at once, their attributes' turn is far. Before: the
/// record went back with that turn reserved and its next delivery called UpdateContact again
/// (4 requests for 2 records; found by the attack on reserved turns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_handed_back_for_its_second_call_does_not_repeat_its_first() {
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    moto.create_task_table("tasks").await;
    let sqs = moto.sqs_client();
    let (url, arn) = common::queue::create(&sqs, "turns", 60).await;
    let mut stack = common::start_function(&[
        ("PACE_TABLE", "pace"),
        ("TASK_TABLE", "tasks"),
        ("TASK_QUEUE_URL", &url),
        ("TASK_MAPPING", MAPPING),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ("CONNECT_REQUESTS_PER_SECOND", "50"),
        ("CONNECT_BURST", "20"),
        ("CONNECT_CONTACT_RATE", "1"),
        ("CONNECT_CONTACT_BURST", "2"),
        ("BATCH_CONCURRENCY", "2"),
    ])
    .await;
    let timeout = Duration::from_secs(30);
    let opens = (0..10)
        .map(|i| serde_json::json!({"action": "open", "key": format!("k{i}")}))
        .collect();
    let records = common::queue::through_queue(&sqs, &url, &arn, opens).await;
    let answer = common::response(
        stack
            .invoke(serde_json::json!({ "Records": records }), timeout)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");

    // Load UpdateContactAttributes' schedule: 6 attribute-only updates.
    let bodies = (0..6)
        .map(|i| serde_json::json!({"action": "attrs", "key": format!("k{i}"), "note": "a"}))
        .collect();
    let records = common::queue::through_queue(&sqs, &url, &arn, bodies).await;
    let answer = common::response(
        stack
            .invoke(serde_json::json!({ "Records": records }), timeout)
            .await,
    );
    let f1 = common::batch_failures(&answer);
    eprintln!("attrs batch failures {}", f1.len());

    // Now 2 updates with description + attributes: UpdateContact near, attributes far.
    let bodies = (8..10)
        .map(|i| serde_json::json!({"action": "both", "key": format!("k{i}"), "note": "b"}))
        .collect();
    let records = common::queue::through_queue(&sqs, &url, &arn, bodies).await;
    let answer = common::response(
        stack
            .invoke(serde_json::json!({ "Records": records }), timeout)
            .await,
    );
    let f2 = common::batch_failures(&answer);
    let ops = stack.connect.stats().operations;
    eprintln!(
        "both batch failures {} ; UpdateContact after first delivery: {:?}",
        f2.len(),
        ops.get("UpdateContact").map(|o| o.requests)
    );

    // Deliver everything that comes back, until nothing does.
    let mut rounds = 0;
    loop {
        let again = common::queue::received(&sqs, &url, &arn, 8, Duration::from_secs(8)).await;
        if again.is_empty() {
            break;
        }
        rounds += 1;
        let counts: Vec<String> = again
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    &r["body"].as_str().unwrap()[..30.min(r["body"].as_str().unwrap().len())],
                    r["attributes"]["ApproximateReceiveCount"]
                )
            })
            .collect();
        let answer = common::response(
            stack
                .invoke(serde_json::json!({ "Records": again }), timeout)
                .await,
        );
        eprintln!(
            "round {rounds}: {} back {:?}; failures {} answer {answer}",
            again.len(),
            counts,
            common::batch_failures(&answer).len()
        );
        if rounds > 8 {
            break;
        }
    }
    let ops = stack.connect.stats().operations;
    let requests = |op: &str| ops.get(op).map(|o| o.requests).unwrap_or(0);
    // Two updates touch the contact: one UpdateContact each, whatever was handed back; eight
    // records set attributes: one UpdateContactAttributes each.
    assert_eq!(requests("UpdateContact"), 2, "{ops:?}");
    assert_eq!(requests("UpdateContactAttributes"), 8, "{ops:?}");
    stack.stop().await;
}
