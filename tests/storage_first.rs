//! Storage-first delivery through the binary, with the task queue served by moto: a queued
//! webhook becomes the same task a synchronous one would (same client token), bad input is still
//! refused at once, a direct request Connect throttles is queued rather than failed, and queue
//! messages the pace cannot serve before the deadline come back at the next turn, not after the
//! visibility timeout.

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{event, response, root, EXAMPLE_MAPPING};
use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::surge::{esm_record, queue_arn};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

async fn queue(moto: &Moto, name: &str, visibility: u32) -> Queue {
    let sqs = moto.sqs_client();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
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

impl Queue {
    /// What the event source mapping would hand the function now.
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

/// The binary against a fresh stand-in (common::start_function), with the example mapping,
/// unauthenticated sample webhooks and `extra`.
async fn stack(extra: &[(&str, String)]) -> LocalStack {
    let mut env: Vec<(&str, &str)> = vec![
        ("WEBHOOK_AUTH", "none"),
        ("TASK_MAPPING_FILE", EXAMPLE_MAPPING),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    common::start_function(&env).await
}

fn queued_env(moto: &Moto, q: &Queue) -> Vec<(&'static str, String)> {
    vec![
        ("TASK_QUEUE_URL", q.url.clone()),
        ("AWS_ENDPOINT_URL_SQS", moto.url.clone()),
    ]
}

fn body(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_queued_webhook_becomes_the_task_a_synchronous_one_would_and_bad_input_is_refused_at_once(
) {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = queue(&moto, "webhooks", 30).await;

    let mut sync = stack(&[]).await;
    let answer = response(sync.invoke(event("apigw-http-ticket"), TIMEOUT).await);
    assert_eq!(answer["statusCode"], 201, "{answer}");
    let sync_token = body(&answer)["clientToken"].clone();
    sync.stop().await;

    let mut queued = stack(&queued_env(&moto, &q)).await;
    let answer = response(queued.invoke(event("apigw-http-ticket"), TIMEOUT).await);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    assert_eq!(body(&answer)["clientToken"], sync_token);
    assert_eq!(body(&answer)["queued"], true);
    assert!(
        queued.connect.tasks().is_empty(),
        "no call before the queue"
    );

    // Bad input is answered at once and never queued.
    let mut broken = event("apigw-http-ticket");
    broken["body"] = json!("{not json");
    let answer = response(queued.invoke(broken, TIMEOUT).await);
    assert_eq!(answer["statusCode"], 400, "{answer}");

    // The queue holds exactly the one request; read back, it is that webhook's task.
    let records = q.receive().await;
    assert_eq!(records.len(), 1);
    let answer = response(queued.invoke(json!({ "Records": records }), TIMEOUT).await);
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let tasks = queued.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(json!(tasks[0].client_token), sync_token);
    queued.stop().await;
}

#[tokio::test]
async fn a_direct_request_connect_throttles_is_queued_and_becomes_its_task_later() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = queue(&moto, "direct", 30).await;
    let throttling = Faults {
        throttle: 1.0,
        ..Faults::default()
    };
    let mut env = queued_env(&moto, &q);
    env.push(("CONNECT_MAX_ATTEMPTS", "2".into()));
    let mut stack = stack(&env).await;
    stack.connect.set_faults(throttling);
    let direct = event("direct-cli-skeleton");
    let answer = response(stack.invoke(direct, TIMEOUT).await);
    assert_eq!(answer["Queued"], true, "{answer}");
    let token = answer["ClientToken"].clone();
    assert!(stack.connect.tasks().is_empty());

    stack.connect.set_faults(Faults::default());
    let records = q.receive().await;
    assert_eq!(records.len(), 1);
    let answer = response(stack.invoke(json!({ "Records": records }), TIMEOUT).await);
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(json!(tasks[0].client_token), token);
    stack.stop().await;
}

#[tokio::test]
async fn records_the_pace_cannot_serve_come_back_at_the_next_turn() {
    let moto = Moto::start(&moto_server(&root())).await;
    // A visibility timeout of a minute: a record that waited for it would not be back soon.
    let q = queue(&moto, "paced", 60).await;
    for i in 0..5 {
        q.sqs
            .send_message()
            .queue_url(&q.url)
            .message_body(json!({"orderId": format!("o-{i}")}).to_string())
            .send()
            .await
            .unwrap();
    }
    let mut env = queued_env(&moto, &q);
    env.extend([
        ("CONNECT_REQUESTS_PER_SECOND", "1".to_string()),
        ("CONNECT_BURST", "1".to_string()),
        ("CONNECT_CALLERS", "1".to_string()),
    ]);
    let mut stack = stack(&env).await;
    let records = q.receive().await;
    assert_eq!(records.len(), 5);
    // One call a second and 2.5 s to live: the first calls at once, the second and third wait
    // their turns, the last two have none before the deadline.
    let answer = response(
        stack
            .invoke(json!({ "Records": records }), Duration::from_millis(2500))
            .await,
    );
    let failures = common::batch_failures(&answer);
    assert!(
        (1..=3).contains(&failures.len()),
        "records without a turn are handed back: {answer}"
    );
    assert_eq!(stack.connect.tasks().len(), 5 - failures.len());
    // Back within a couple of seconds (the next turn, rounded up to SQS's whole seconds), not
    // after the minute of the visibility timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = q.receive().await;
    let ids: std::collections::BTreeSet<String> = again
        .iter()
        .map(|r| r["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, failures);
    stack.stop().await;
}

/// Creates a secret in moto.
async fn secret(moto: &Moto, name: &str, value: &str) {
    moto.secrets_client()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// What the function queues itself is signed with its envelope key, and read back as its own:
/// an environment that cold-started before the webhook secret was rotated creates the task of a
/// webhook another environment accepted with the new secret (it once checked the signature
/// again with the old key only, and the 202 became a refusal). An envelope the function did not
/// sign is refused.
#[tokio::test]
async fn a_queued_webhook_is_the_functions_word_across_a_secret_rotation() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = queue(&moto, "signed-webhooks", 30).await;
    secret(&moto, "webhook", "first-key").await;
    secret(&moto, "envelope", "the-functions-own-key").await;
    let mut env = queued_env(&moto, &q);
    env.extend([
        ("WEBHOOK_AUTH", "signature".to_string()),
        ("WEBHOOK_SECRET_ID", "webhook".to_string()),
        ("ENVELOPE_SECRET_ID", "envelope".to_string()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.clone()),
    ]);
    let mut before = stack(&env).await;
    // Its cold start (the secret read) is over before the rotation.
    while !before.function.logs().join("\n").contains("cold start") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    moto.secrets_client()
        .put_secret_value()
        .secret_id("webhook")
        .secret_string("second-key")
        .send()
        .await
        .unwrap();
    let mut after = stack(&env).await;
    let mut github = event("apigw-rest-github-issue");
    let signature = connect_task_bridge::webhook_auth::sign(
        b"second-key",
        None,
        github["body"].as_str().unwrap(),
    );
    github["headers"]["X-Signature-256"] = json!(format!("sha256={signature}"));
    let answer = response(after.invoke(github, TIMEOUT).await);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let records = q.receive().await;
    assert_eq!(records.len(), 1);
    let answer = response(before.invoke(json!({ "Records": records }), TIMEOUT).await);
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    assert_eq!(before.connect.tasks().len(), 1);

    // A producer that may send to the queue writes the envelope itself: refused.
    let forged = json!({"connectTaskBridge": {
        "version": 2,
        "payload": json!({"Name": "forged", "ClientToken": "x-1"}).to_string(),
        "mac": "00".repeat(32)
    }});
    q.sqs
        .send_message()
        .queue_url(&q.url)
        .message_body(forged.to_string())
        .send()
        .await
        .unwrap();
    let records = q.receive().await;
    let answer = response(before.invoke(json!({ "Records": records }), TIMEOUT).await);
    assert_eq!(common::batch_failures(&answer).len(), 1, "{answer}");
    assert_eq!(before.connect.tasks().len(), 1);
    before.stop().await;
    after.stop().await;
}

/// A queued webhook whose ScheduledTime passes while it waits in the queue becomes its task
/// (due now) instead of a permanent refusal: the 202 it was answered with holds.
#[tokio::test]
async fn a_queued_request_whose_time_passed_in_the_queue_still_becomes_its_task() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = queue(&moto, "scheduled-webhooks", 30).await;
    let mapping = r#"
routes:
  - name: callback
    when: { source: webhook }
    task: { name: "Call back", scheduled_time: "{{ body.at }}" }
"#;
    let mut env = queued_env(&moto, &q);
    env.push(("TASK_MAPPING", mapping.to_string()));
    env.push(("TASK_MAPPING_FILE", String::new()));
    let mut function = stack(&env).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let mut request = event("apigw-http-ticket");
    request["isBase64Encoded"] = json!(false);
    request["body"] = json!(json!({"at": at.to_rfc3339()}).to_string());
    let answer = response(function.invoke(request, TIMEOUT).await);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let records = q.receive().await;
    assert_eq!(records.len(), 1);
    let answer = response(
        function
            .invoke(json!({ "Records": records }), TIMEOUT)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    let tasks = function.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0].request.get("ScheduledTime").is_none(),
        "{:?}",
        tasks[0].request
    );
    function.stop().await;
}

/// Connect's quota of active tasks exhausted (ServiceQuotaExceededException, for minutes or
/// hours): a queue message is held — back on the task queue in the function's signed envelope,
/// with its own identity, after a growing delay — instead of failing towards the DLQ one
/// receive at a time; a direct request is queued. When the quota frees up each becomes its
/// task, once.
#[tokio::test]
async fn records_are_held_while_connects_quota_of_active_tasks_is_exhausted() {
    let moto = Moto::start(&moto_server(&root())).await;
    let q = queue(&moto, "held", 30).await;
    secret(&moto, "envelope-held", "the-functions-own-key").await;
    let mut env = queued_env(&moto, &q);
    env.extend([
        ("ENVELOPE_SECRET_ID", "envelope-held".to_string()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.clone()),
        ("QUOTA_HOLD_SECONDS", "1".to_string()),
    ]);
    let mut function = stack(&env).await;
    function.connect.set_faults(Faults {
        failing: [(
            "StartTaskContact".to_string(),
            "ServiceQuotaExceededException".to_string(),
        )]
        .into(),
        ..Faults::default()
    });
    q.sqs
        .send_message()
        .queue_url(&q.url)
        .message_body(r#"{"customer": "c-1", "message": "call me"}"#)
        .send()
        .await
        .unwrap();
    let original = q.receive().await;
    assert_eq!(original.len(), 1);
    let answer = response(
        function
            .invoke(json!({ "Records": original.clone() }), TIMEOUT)
            .await,
    );
    assert!(
        common::batch_failures(&answer).is_empty(),
        "held, not failed: {answer}"
    );
    let direct = json!({"Name": "Call back", "Description": "quota"});
    let answer = response(function.invoke(direct, TIMEOUT).await);
    assert_eq!(answer["Queued"], true, "{answer}");
    // Held again while the quota stays exhausted (after the delay: a second, then two).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = q.receive().await;
    assert_eq!(waiting.len(), 2, "the held message and the queued request");
    let answer = response(
        function
            .invoke(json!({ "Records": waiting }), TIMEOUT)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    assert!(function.connect.tasks().is_empty());

    // The quota frees up: each becomes its task.
    function.connect.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let waiting = q.receive().await;
    assert_eq!(waiting.len(), 2);
    let answer = response(
        function
            .invoke(json!({ "Records": waiting }), TIMEOUT)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    assert_eq!(function.connect.tasks().len(), 2);
    // The original message delivered again (its receive had been answered before the hold was
    // known, say) meets the task its held copy opened: the identity travelled with it.
    let answer = response(
        function
            .invoke(json!({ "Records": original }), TIMEOUT)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    assert_eq!(function.connect.tasks().len(), 2);
    assert_eq!(function.connect.stats().replayed, 1);
    function.stop().await;
}

/// Two lanes: what a `priority: high` route queues goes to the priority queue (its own event
/// source mapping drains it, behind no backlog), the rest to the task queue; read back from
/// the priority queue, the urgent webhook is the task its 202 promised.
#[tokio::test]
async fn what_a_high_priority_route_queues_goes_to_the_priority_queue_and_nothing_else_does() {
    let moto = Moto::start(&moto_server(&root())).await;
    let tasks = queue(&moto, "lane-tasks", 30).await;
    let urgent = queue(&moto, "lane-urgent", 30).await;
    let mapping = "routes:\n  - name: urgent\n    when: {source: webhook, headers: {x-lane: urgent}}\n    priority: high\n    task: {name: \"Urgent {{ id }}\"}\n  - name: rest\n    task: {name: \"Normal {{ id }}\"}\n";
    let mut env = queued_env(&moto, &tasks);
    env.push(("PRIORITY_QUEUE_URL", urgent.url.clone()));
    env.push(("TASK_MAPPING", mapping.into()));
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("WEBHOOK_AUTH", "none")])
        .collect();
    let mut stack = common::start_function(&env).await;

    let mut fraud = event("apigw-http-ticket");
    fraud["headers"]["x-lane"] = json!("urgent");
    let answer = response(stack.invoke(fraud, TIMEOUT).await);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let urgent_token = body(&answer)["clientToken"].clone();
    let mut routine = event("apigw-http-ticket");
    routine["headers"]["idempotency-key"] = json!("helpdesk-HD-5522");
    let answer = response(stack.invoke(routine, TIMEOUT).await);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let routine_token = body(&answer)["clientToken"].clone();

    let on_urgent = urgent.receive().await;
    let on_tasks = tasks.receive().await;
    assert_eq!((on_urgent.len(), on_tasks.len()), (1, 1));
    let answer = response(stack.invoke(json!({ "Records": on_urgent }), TIMEOUT).await);
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let started = stack.connect.tasks();
    assert_eq!(started.len(), 1);
    assert_eq!(json!(started[0].client_token), urgent_token);
    let answer = response(stack.invoke(json!({ "Records": on_tasks }), TIMEOUT).await);
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let started = stack.connect.tasks();
    assert_eq!(started.len(), 2);
    assert_eq!(json!(started[1].client_token), routine_token);
    stack.stop().await;
}
