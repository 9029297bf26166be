//! Attack: a producer that may only SendMessage to the task queue (README: "your producers ->
//! task queue") writes an *unsigned* version-1 envelope. With ENVELOPE_SECRET_ID configured it
//! is still opened ("checked again as before"), and for WEBHOOK_AUTH=iam the check is only that
//! the request context names an IAM caller, which the producer writes itself. So it can take
//! any tenant's Idempotency-Key namespace (the defect fixed by cf886a7, through the queue).

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{event, response, root};
use connect_standin::moto::{moto_server, Moto};
use connect_standin::surge::{esm_record, queue_arn};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(15);
const TENANT_A: &str = "arn:aws:iam::111122223333:user/tenant-a";

fn webhook_of(user_arn: &str, key: &str, body: Value) -> Value {
    let mut w = event("apigw-rest-github-issue");
    w["requestContext"]["identity"]["userArn"] = json!(user_arn);
    w["requestContext"]["identity"]["accessKey"] = json!("AKIDEXAMPLE");
    let headers = w["headers"].as_object_mut().unwrap();
    headers.remove("X-Hub-Signature-256");
    headers.insert("Idempotency-Key".into(), json!(key));
    w["body"] = json!(body.to_string());
    w["isBase64Encoded"] = json!(false);
    w
}

#[tokio::test]
async fn an_unsigned_envelope_from_a_producer_squats_another_tenants_idempotency_key() {
    let moto = Moto::start(&moto_server(&root())).await;
    let sqs = moto.sqs_client();
    let url = sqs
        .create_queue()
        .queue_name("tasks")
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    moto.secrets_client()
        .create_secret()
        .name("envelope")
        .secret_string("the-functions-own-key")
        .send()
        .await
        .unwrap();
    let mut stack = common::start_function(&[
        ("WEBHOOK_AUTH", "iam"),
        ("WEBHOOK_MODE", "sync"),
        ("TASK_QUEUE_URL", &url),
        ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ("ENVELOPE_SECRET_ID", "envelope"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url),
    ])
    .await;

    // The producer's message: an unsigned envelope naming tenant A as the caller.
    let forged = webhook_of(TENANT_A, "1", json!({"title": "written by the producer"}));
    sqs.send_message()
        .queue_url(&url)
        .message_body(json!({"connectTaskBridge": {"version": 1, "payload": forged}}).to_string())
        .send()
        .await
        .unwrap();
    let out = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = out
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| esm_record(m, &queue_arn("tasks")))
        .collect();
    let answer = response(stack.invoke(json!({ "Records": records }), TIMEOUT).await);
    println!("the producer's unsigned envelope: {answer}");
    let squatted = stack.connect.tasks();
    println!(
        "tasks after it: {}",
        squatted
            .iter()
            .map(|t| format!("{} {}", t.contact_id, t.request["Description"]))
            .collect::<Vec<_>>()
            .join(" | ")
    );

    // Tenant A's own request, with its own key 1 and its own content.
    let genuine = webhook_of(TENANT_A, "1", json!({"title": "tenant A's real request"}));
    let answer = response(stack.invoke(genuine, TIMEOUT).await);
    println!("tenant A's webhook: {answer}");
    let tasks = stack.connect.tasks();
    stack.stop().await;
    assert_eq!(
        tasks.len(),
        2,
        "tenant A's request was answered with the producer's task (it has {} task(s)): {answer}",
        tasks.len()
    );
}
