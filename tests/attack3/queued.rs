//! Attack 3: queued webhooks (WEBHOOK_MODE=queued, the task queue in moto) and task templates.
//! docs/templates.md: "a queued webhook [is checked] before it is answered 202 (a 202 never
//! turns into a refusal later)".
//!
//! - holds: a webhook that does not fit its (readable) template is answered 400 and never
//!   queued;
//! - broken: when the environment that answers the webhook cannot read the template (a
//!   throttled or denied GetTaskTemplate at its cold start: "sent unchecked"), the webhook is
//!   answered 202 and queued unchecked; the environment that takes the message off the queue
//!   can read the template and refuses it as a permanent TaskTemplateMismatch. The caller was
//!   told its task is on its way; it never comes.

use crate::common;

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{event, function_binary, response, root, INSTANCE};
use connect_standin::connect::{ConnectStandIn, Faults, Options};
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::surge::{esm_record, queue_arn};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

const MAPPING: &str = r#"
routes:
  - name: ticket-form
    when: { source: webhook }
    task:
      task_template_id: 7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01
      name: "Ticket {{ body.ticket }}"
      references:
        orderId: { type: STRING, value: "{{ body.ticket }}" }
        priority: { type: STRING, value: "{{ body.priority }}" }
"#;

fn template() -> Value {
    common::example_task_template()
}

/// The sample HTTP API webhook with `body` as its JSON body and its own idempotency key.
fn webhook(key: &str, body: Value) -> Value {
    let mut e = event("apigw-http-ticket");
    e["headers"]["idempotency-key"] = json!(key);
    e["body"] = json!(body.to_string());
    e["isBase64Encoded"] = json!(false);
    e
}

async fn stack(moto: &Moto, queue_url: &str, faults: Faults) -> LocalStack {
    common::start_function_holding(
        vec![template()],
        faults,
        &[
            ("TASK_MAPPING", MAPPING),
            ("WEBHOOK_AUTH", "none"),
            ("WEBHOOK_MODE", "queued"),
            ("TASK_QUEUE_URL", queue_url),
            ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ],
    )
    .await
}

async fn queue(moto: &Moto, name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = moto.sqs_client();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, url)
}

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, name: &str) -> Vec<Value> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| esm_record(m, &queue_arn(name)))
        .collect()
}

/// Holds: refused at once (400), nothing queued.
#[tokio::test]
async fn a_queued_webhook_that_does_not_fit_is_refused_before_the_202() {
    let moto = Moto::start(&moto_server(&root())).await;
    let (sqs, url) = queue(&moto, "webhooks-misfit").await;
    let mut stack = stack(&moto, &url, Faults::default()).await;
    let answer = response(
        stack
            .invoke(
                webhook("k-1", json!({"ticket": "T-1", "priority": "urgent"})),
                TIMEOUT,
            )
            .await,
    );
    assert_eq!(answer["statusCode"], 400, "{answer}");
    assert!(!answer.to_string().contains("urgent"), "{answer}");
    assert!(receive(&sqs, &url, "webhooks-misfit").await.is_empty());
    stack.stop().await;
}

/// The 202 promise holds for templates the function can read. A webhook that comes while its
/// template cannot be read (here: GetTaskTemplate throttled) is accepted unchecked, as it was
/// before templates were checked (the check never takes the function down); taken off the queue
/// by an environment that can read the template, it is judged then, and refused clearly
/// (`TaskTemplateMismatch`, naming the field) rather than sent to Connect to be refused there.
#[tokio::test]
async fn a_webhook_queued_while_its_template_cannot_be_read_is_judged_from_the_queue() {
    let moto = Moto::start(&moto_server(&root())).await;
    let (sqs, url) = queue(&moto, "webhooks-unread").await;
    let throttled = Faults {
        failing: [(
            "GetTaskTemplate".to_string(),
            "ThrottlingException".to_string(),
        )]
        .into_iter()
        .collect(),
        ..Faults::default()
    };
    let mut stack = stack(&moto, &url, throttled).await;
    let answer = response(
        stack
            .invoke(
                webhook("k-2", json!({"ticket": "T-2", "priority": "urgent"})),
                TIMEOUT,
            )
            .await,
    );
    assert_eq!(answer["statusCode"], 202, "accepted unchecked: {answer}");
    stack.connect.set_faults(Faults::default());
    stack.cold_start().await.unwrap();
    let records = receive(&sqs, &url, "webhooks-unread").await;
    assert_eq!(records.len(), 1);
    let later = response(stack.invoke(json!({ "Records": records }), TIMEOUT).await);
    assert_eq!(
        later["batchItemFailures"].as_array().unwrap().len(),
        1,
        "{later}"
    );
    let logs = stack.function.logs().join("\n");
    assert!(logs.contains("TaskTemplateMismatch"), "{logs}");
    assert!(logs.contains("priority"), "the field is named: {logs}");
    assert_eq!(stack.connect.stats().requests, 0, "Connect was not called");
    stack.stop().await;
}

/// A template that requires SCHEDULED_TIME, and a route that fills it with a short `delay`.
/// Answered synchronously it fits; queued, it is checked (fits: the time is there) and answered
/// 202, but when the message comes off the queue `prepare` drops every ScheduledTime within 60 s
/// of now (`QUEUED_TIME_MARGIN_SECS`: "the task is due, and starts now"), and the check then
/// refuses the request: the template's SCHEDULED_TIME is required and no longer filled. Every
/// such webhook is accepted with 202 and then refused, permanently, with no fault anywhere.
#[tokio::test]
async fn a_queued_webhook_whose_template_requires_a_scheduled_time_becomes_its_task() {
    const DELAYED: &str = r#"
routes:
  - name: ticket-form
    when: { source: webhook }
    task:
      task_template_id: 7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01
      name: "Ticket {{ body.ticket }}"
      delay: 30s
      references:
        orderId: { type: STRING, value: "{{ body.ticket }}" }
        priority: { type: STRING, value: "{{ body.priority }}" }
"#;
    let mut scheduled = template();
    scheduled["Fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Id": {"Name": "Scheduled"}, "Type": "SCHEDULED_TIME"}));
    scheduled["Constraints"]["RequiredFields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Id": {"Name": "Scheduled"}}));

    let moto = Moto::start(&moto_server(&root())).await;
    let (sqs, url) = queue(&moto, "webhooks-delayed").await;
    let mut options = Options::local();
    options.instances = vec![INSTANCE.to_string()];
    options.task_templates = vec![scheduled];
    let connect = ConnectStandIn::start(options, 0).await.unwrap();
    let env: Vec<(String, String)> = [
        ("CONNECT_INSTANCE_ID", INSTANCE),
        ("LAMBDA_TASK_ROOT", root().to_str().unwrap()),
        ("TASK_MAPPING", DELAYED),
        ("WEBHOOK_AUTH", "none"),
        ("WEBHOOK_MODE", "queued"),
        ("TASK_QUEUE_URL", url.as_str()),
        ("AWS_ENDPOINT_URL_SQS", moto.url.as_str()),
        ("CONNECT_REQUESTS_PER_SECOND", "1000"),
        ("CONNECT_BURST", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut stack = LocalStack::start(&function_binary(), connect, &env)
        .await
        .unwrap();

    let answer = response(
        stack
            .invoke(
                webhook("k-3", json!({"ticket": "T-3", "priority": "high"})),
                TIMEOUT,
            )
            .await,
    );
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let records = receive(&sqs, &url, "webhooks-delayed").await;
    assert_eq!(records.len(), 1);
    let later = response(stack.invoke(json!({ "Records": records }), TIMEOUT).await);
    let logs = stack.function.logs().join("\n");
    let tasks = stack.connect.tasks().len();
    stack.stop().await;
    assert!(
        later["batchItemFailures"] == json!([]) && tasks == 1,
        "answered 202, then from the queue: {later} ({tasks} task(s))\n{logs}"
    );
}
