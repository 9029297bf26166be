//! Task templates through the binary, against a stand-in that holds the template and enforces it
//! as Connect does: a request that does not fit is refused by the function before any
//! StartTaskContact (the stand-in counts none), naming the field and the rule; a good one
//! creates its task; a template the function cannot read does not stop it.

mod common;

use std::time::Duration;

use common::{response, root};
use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use serde_json::{json, Value};

const TEMPLATE_ID: &str = "7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01";

fn template() -> Value {
    common::example_task_template()
}

async fn start(template: Value, mapping: &str, faults: Faults) -> LocalStack {
    start_with(template, mapping, faults, &[]).await
}

async fn start_with(
    template: Value,
    mapping: &str,
    faults: Faults,
    extra: &[(&str, &str)],
) -> LocalStack {
    let mut env = vec![("TASK_MAPPING", mapping)];
    env.extend_from_slice(extra);
    common::start_function_holding(vec![template], faults, &env).await
}

fn example_mapping() -> String {
    std::fs::read_to_string(root().join("examples/task-template.yaml")).unwrap()
}

/// An OrderFailed event (EventBridge, invoked directly: its answer carries the outcome).
fn order(id: &str, amount: f64, email: &str) -> Value {
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "OrderFailed",
        "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T09:14:03Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"orderId": id, "amount": amount, "reason": "Payment declined",
                   "customer": {"email": email}},
    })
}

async fn invoke(stack: &mut LocalStack, event: Value) -> Result<Value, Value> {
    let answer = common::answer(stack, event).await;
    match answer.get("errorType") {
        Some(_) => Err(answer),
        None => Ok(answer),
    }
}

#[tokio::test]
async fn a_request_that_fits_its_template_creates_its_task() {
    let mut stack = start(template(), &example_mapping(), Faults::default()).await;
    let answer = response(
        stack
            .invoke(
                order("o-1", 149.9, "maria@example.com"),
                Duration::from_secs(20),
            )
            .await,
    );
    assert!(answer["ContactId"].is_string(), "{answer}");
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].request["TaskTemplateId"], TEMPLATE_ID);
    assert_eq!(tasks[0].request["References"]["priority"]["Value"], "high");
    assert!(tasks[0].request.get("ContactFlowId").is_none());
    assert!(
        stack.connect.stats().template_requests >= 1,
        "the template was read"
    );
    stack.function.stop().await;
}

#[tokio::test]
async fn requests_that_do_not_fit_are_refused_before_any_call() {
    let mapping = example_mapping();
    let without_order_id = mapping.replace(
        "        orderId: { type: STRING, value: \"{{ body.orderId }}\" }\n",
        "",
    );
    let wrong_type = mapping.replace("amount: { type: NUMBER", "amount: { type: STRING");
    // The option comes from the event: only the check before the call can see it.
    let option_from_event = mapping.replace(
        "value: \"{{ 'high' if body.amount > 100 else 'normal' }}\"",
        "value: \"{{ body.customer.email }}\"",
    );
    let mut inactive = template();
    inactive["Status"] = json!("INACTIVE");
    let cases = [
        (
            template(),
            without_order_id,
            "orderId: required (TEXT) and not filled",
        ),
        (
            template(),
            wrong_type,
            "amount: a NUMBER field takes a reference of type NUMBER, not STRING",
        ),
        (
            template(),
            option_from_event,
            "priority: not one of the field's options",
        ),
        (
            inactive,
            mapping.clone(),
            "Status: the template is INACTIVE",
        ),
    ];
    for (template, mapping, rule) in cases {
        let mut stack = start(template, &mapping, Faults::default()).await;
        let refused = invoke(&mut stack, order("o-2", 12.0, "vip@example.com"))
            .await
            .expect_err("refused");
        let text = refused.to_string();
        assert!(text.contains("TaskTemplateMismatch"), "{rule}: {text}");
        assert!(text.contains(rule), "{rule}: {text}");
        assert!(
            !text.contains("vip@example.com"),
            "a value was quoted: {text}"
        );
        let stats = stack.connect.stats();
        assert_eq!(stats.requests, 0, "{rule}: StartTaskContact was called");
        assert!(stack.connect.tasks().is_empty());
        let logged = stack.function.logs().join("\n");
        assert!(logged.contains("TaskTemplateMismatch"), "{rule}: {logged}");
        assert!(
            !logged.contains("vip@example.com"),
            "{rule}: a value was logged"
        );
        stack.function.stop().await;
    }
}

/// The role may not read templates (or Connect throttles the read): said once, and the request
/// goes as it would have without the check; Connect (here, the stand-in) still holds it to the
/// template.
#[tokio::test]
async fn a_template_that_cannot_be_read_does_not_stop_the_function() {
    let faults = Faults {
        failing: [(
            "GetTaskTemplate".to_string(),
            "AccessDeniedException".to_string(),
        )]
        .into_iter()
        .collect(),
        ..Faults::default()
    };
    let mut stack = start(template(), &example_mapping(), faults).await;
    for id in ["o-3", "o-4"] {
        let answer = response(
            stack
                .invoke(order(id, 20.0, "a@example.com"), Duration::from_secs(20))
                .await,
        );
        assert!(answer["ContactId"].is_string(), "{answer}");
    }
    assert_eq!(stack.connect.tasks().len(), 2);
    let warnings = stack
        .function
        .logs()
        .iter()
        .filter(|l| l.contains("the task template cannot be read"))
        .count();
    assert_eq!(warnings, 1, "said once");
    stack.function.stop().await;
}

/// A queued webhook is checked before it is answered 202: one that does not fit its template is
/// refused at once (400) and never queued, so that a 202 never turns into a refusal later; one
/// that fits is queued and becomes its task from the queue.
#[tokio::test]
async fn a_queued_webhook_is_checked_before_its_202() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use connect_standin::moto::{moto_server, Moto};
    use connect_standin::surge::{esm_record, queue_arn};

    let moto = Moto::start(&moto_server(&root())).await;
    let sqs = moto.sqs_client();
    let url = sqs
        .create_queue()
        .queue_name("webhooks")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let mapping = format!(
        r#"
routes:
  - name: ticket-form
    when: {{ source: webhook }}
    task:
      task_template_id: {TEMPLATE_ID}
      name: "Ticket {{{{ body.ticket }}}}"
      references:
        orderId: {{ type: STRING, value: "{{{{ body.ticket }}}}" }}
        priority: {{ type: STRING, value: "{{{{ body.priority }}}}" }}
"#
    );
    let mut stack = start_with(
        template(),
        &mapping,
        Faults::default(),
        &[
            ("WEBHOOK_AUTH", "none"),
            ("TASK_QUEUE_URL", &url),
            ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ],
    )
    .await;
    // The sample's priority is "urgent": not one of the template's options.
    let urgent = common::event("apigw-http-ticket");
    let answer = response(stack.invoke(urgent, Duration::from_secs(20)).await);
    assert_eq!(answer["statusCode"], 400, "{answer}");
    assert!(
        answer["body"].as_str().unwrap().contains("priority"),
        "{answer}"
    );
    let receive = || async {
        sqs.receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    };
    assert!(receive().await.is_empty(), "a refused webhook was queued");

    let mut high = common::event("apigw-http-ticket");
    let body = r#"{"ticket": "HD-5522", "priority": "high"}"#;
    high["body"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        body
    ));
    let answer = response(stack.invoke(high, Duration::from_secs(20)).await);
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let records: Vec<Value> = receive()
        .await
        .iter()
        .map(|m| esm_record(m, &queue_arn("webhooks")))
        .collect();
    assert_eq!(records.len(), 1);
    let answer = response(
        stack
            .invoke(json!({ "Records": records }), Duration::from_secs(20))
            .await,
    );
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].request["TaskTemplateId"], TEMPLATE_ID);
    assert_eq!(stack.connect.stats().requests, 1);
    stack.function.stop().await;
}
