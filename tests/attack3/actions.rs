//! Attack 3: the task-template check runs on every prepared request that carries a
//! TaskTemplateId, whatever the route's action. With the default set as a template
//! (`CONNECT_TASK_TEMPLATE_ID`, the deploy parameter `TaskTemplateId`, which the README offers in
//! place of `ContactFlowId`), `apply_defaults` puts the template on update / stop / tag /
//! reschedule requests too, and the check then holds them to the template's *creation* rules
//! (required Name, required custom fields): every action on an open task is refused as a
//! permanent TaskTemplateMismatch, although none of them creates a task and Connect never sees
//! the template on those calls. `check --task-template` says nothing about these routes (it
//! checks only routes that start tasks), so the first sign is the refusals in production.

use crate::common;

use std::time::Duration;

use common::{order_event, response, root};
use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use serde_json::{json, Value};

const TEMPLATE_ID: &str = "7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01";
const TABLE: &str = "tasks";
const TIMEOUT: Duration = Duration::from_secs(15);

/// Start routes fill the template; the actions say only what they change. No route names a
/// flow: every request falls back on CONNECT_TASK_TEMPLATE_ID.
const MAPPING: &str = r#"
routes:
  - name: order-failed
    when: { detail_type: OrderFailed }
    key: "order-{{ body.orderId }}"
    task:
      name: "Order {{ body.orderId }} failed"
      references:
        orderId: { type: STRING, value: "{{ body.orderId }}" }
        priority: { type: STRING, value: "high" }
  - name: order-note
    when: { detail_type: OrderNote }
    action: update
    key: "order-{{ body.orderId }}"
    task:
      description: "{{ body.note }}"
  - name: order-recovered
    when: { detail_type: OrderRecovered }
    action: stop
    key: "order-{{ body.orderId }}"
"#;

fn template() -> Value {
    common::example_task_template()
}

async fn stack(moto: &Moto) -> LocalStack {
    moto.create_task_table(TABLE).await;
    common::start_function_holding(
        vec![template()],
        Faults::default(),
        &[
            ("CONNECT_CONTACT_FLOW_ID", ""),
            ("CONNECT_TASK_TEMPLATE_ID", TEMPLATE_ID),
            ("TASK_MAPPING", MAPPING),
            ("TASK_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
            ("AWS_ENDPOINT_URL_SFN", &moto.url),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", &moto.url),
        ],
    )
    .await
}

async fn answer(stack: &mut LocalStack, event: Value) -> Value {
    common::answer(stack, event).await
}

#[tokio::test]
async fn actions_on_an_open_task_are_not_held_to_the_default_templates_creation_rules() {
    let moto = Moto::start(&moto_server(&root())).await;
    let mut stack = stack(&moto).await;

    let opened = response(
        stack
            .invoke(
                order_event("ev-1", "OrderFailed", json!({"orderId": "o-1"})),
                TIMEOUT,
            )
            .await,
    );
    let contact = opened["ContactId"].as_str().expect("opened").to_string();
    assert_eq!(stack.connect.tasks().len(), 1);

    // An update (a description only) and a stop: neither creates a task.
    let note = answer(
        &mut stack,
        order_event(
            "ev-2",
            "OrderNote",
            json!({"orderId": "o-1", "note": "called back"}),
        ),
    )
    .await;
    let stop = answer(
        &mut stack,
        order_event("ev-3", "OrderRecovered", json!({"orderId": "o-1"})),
    )
    .await;
    let logs = stack.function.logs().join("\n");
    stack.function.stop().await;

    assert!(
        !note.to_string().contains("TaskTemplateMismatch"),
        "an update was held to the template's creation rules: {note}\n{logs}"
    );
    assert_eq!(note["ContactId"], contact.as_str(), "{note}");
    assert!(
        !stop.to_string().contains("TaskTemplateMismatch"),
        "a stop was held to the template's creation rules: {stop}"
    );
    assert_eq!(stop["ContactId"], contact.as_str(), "{stop}");
}
