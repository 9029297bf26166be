//! Attack 3: the check before the call must read a request as Connect does (docs/templates.md:
//! "Connect refuses a StartTaskContact that does not fit it; the function refuses it first").
//! Here Connect is the stand-in, which enforces the template (`rules::template_violations`). Where
//! the two disagree, either the function refuses, permanently, a task Connect would create
//! (worse than no check at all: the same event made its task before this change), or it lets
//! through a request Connect then refuses (the check's promise broken).
//!
//! - an optional BOOLEAN / EMAIL / URL / SINGLE_SELECT field whose reference renders empty (the
//!   event lacks the value): the stand-in skips an empty value, the function refuses it as
//!   TaskTemplateMismatch;
//! - an e-mail address with a space: the stand-in refuses it, the function's check lets it by;
//! - a required field whose template default is an empty string: the stand-in does not count
//!   it as defaulted, the function (and `check --task-template`, which says "fits") does.

use crate::common;

use std::process::Command;

use common::{function_binary, INSTANCE};
use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use serde_json::{json, Value};

const TEMPLATE_ID: &str = "7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01";

/// Every optional custom field of the example template filled from the event.
const MAPPING: &str = r#"
routes:
  - name: order-form
    when: { source: eventbridge, detail_type: OrderFailed }
    task:
      task_template_id: 7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01
      name: "Order {{ body.orderId }} failed"
      references:
        orderId: { type: STRING, value: "{{ body.orderId }}" }
        priority: { type: STRING, value: "high" }
        giftWrap: { type: STRING, value: "{{ body.giftWrap }}" }
        customerEmail: { type: EMAIL, value: "{{ body.email }}" }
        orderUrl: { type: URL, value: "{{ body.url }}" }
    client_token: "order-{{ body.orderId }}"
"#;

fn template() -> Value {
    common::example_task_template()
}

async fn start(template: Value) -> LocalStack {
    common::start_function_holding(
        vec![template],
        Faults::default(),
        &[("TASK_MAPPING", MAPPING)],
    )
    .await
}

fn order(id: &str, detail: Value) -> Value {
    let mut detail = detail;
    detail["orderId"] = json!(id);
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "OrderFailed",
        "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T09:14:03Z",
        "region": "eu-west-1", "resources": [], "detail": detail,
    })
}

async fn invoke(stack: &mut LocalStack, event: Value) -> Value {
    common::answer(stack, event).await
}

/// An optional field left empty because the event lacks it: Connect (the stand-in) creates
/// the task; the function must not refuse it.
#[tokio::test]
async fn an_optional_field_rendered_empty_is_not_refused() {
    let mut stack = start(template()).await;
    let full =
        json!({"giftWrap": "true", "email": "a@example.com", "url": "https://shop.example/o"});
    let mut refused = Vec::new();
    for (i, missing) in ["giftWrap", "email", "url"].iter().enumerate() {
        let mut detail = full.clone();
        detail.as_object_mut().unwrap().remove(*missing);
        let answer = invoke(&mut stack, order(&format!("o-{i}"), detail)).await;
        if answer["ContactId"].as_str().is_none() {
            refused.push(format!("without {missing}: {answer}"));
        }
    }
    let created = stack.connect.tasks().len();
    stack.function.stop().await;
    assert!(
        refused.is_empty(),
        "{created} of 3 created; refused although the stand-in accepts them:\n{}",
        refused.join("\n")
    );
}

/// An e-mail address the stand-in refuses for the template's EMAIL field: the function's
/// check must refuse it first, before any StartTaskContact.
#[tokio::test]
async fn an_email_the_template_refuses_is_refused_before_the_call() {
    let mut stack = start(template()).await;
    let answer = invoke(
        &mut stack,
        order(
            "o-9",
            json!({"giftWrap": "true", "email": "maria lopez@example.com", "url": "https://shop.example/o"}),
        ),
    )
    .await;
    let calls = stack.connect.stats().requests;
    stack.function.stop().await;
    assert!(
        answer.to_string().contains("TaskTemplateMismatch") && calls == 0,
        "StartTaskContact called {calls} time(s); the answer: {answer}"
    );
}

/// A required field whose default is an empty string is not filled by the default (the
/// stand-in refuses the task): neither the check before the call nor `check --task-template`
/// may count it as defaulted.
#[tokio::test]
async fn a_blank_default_does_not_fill_a_required_field() {
    let mut blank_default = template();
    blank_default["Defaults"]["DefaultFieldValues"] =
        json!([{"Id": {"Name": "channel"}, "DefaultValue": ""}]);

    let dir = std::env::temp_dir().join(format!("attack3-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let template_file = dir.join("template.json");
    let mapping_file = dir.join("mapping.yaml");
    std::fs::write(&template_file, blank_default.to_string()).unwrap();
    std::fs::write(&mapping_file, MAPPING).unwrap();
    let out = Command::new(function_binary())
        .arg("check")
        .arg("--mapping")
        .arg(&mapping_file)
        .arg("--task-template")
        .arg(&template_file)
        .env_clear()
        .env("CONNECT_INSTANCE_ID", INSTANCE)
        .output()
        .expect("the binary runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut stack = start(blank_default).await;
    let answer = invoke(
        &mut stack,
        order(
            "o-10",
            json!({"giftWrap": "true", "email": "a@example.com", "url": "https://shop.example/o"}),
        ),
    )
    .await;
    let calls = stack.connect.stats().requests;
    stack.function.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(
        out.status.code(),
        Some(1),
        "check --task-template {TEMPLATE_ID} passes a route the template refuses:\n{printed}"
    );
    assert!(
        answer.to_string().contains("TaskTemplateMismatch") && calls == 0,
        "StartTaskContact called {calls} time(s); the answer: {answer}"
    );
}

/// A NUMBER field's value with spaces around the number: the stand-in refuses it (for the
/// NUMBER reference and for the template's NUMBER field alike); the function's check (and
/// `validate`) trims before parsing, so the request goes to Connect and is refused there.
#[tokio::test]
async fn a_number_with_spaces_is_refused_before_the_call() {
    const NUMBER: &str = r#"
routes:
  - name: order-form
    when: { source: eventbridge, detail_type: OrderFailed }
    task:
      task_template_id: 7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01
      name: "Order {{ body.orderId }} failed"
      references:
        orderId: { type: STRING, value: "{{ body.orderId }}" }
        priority: { type: STRING, value: "high" }
        amount: { type: NUMBER, value: "{{ body.amount }}" }
    client_token: "order-{{ body.orderId }}"
"#;
    let mut stack = common::start_function_holding(
        vec![template()],
        Faults::default(),
        &[("TASK_MAPPING", NUMBER)],
    )
    .await;
    let answer = invoke(&mut stack, order("o-11", json!({"amount": " 12.5 "}))).await;
    let calls = stack.connect.stats().requests;
    stack.function.stop().await;
    assert!(
        calls == 0 && !answer.to_string().contains("Connect rejected"),
        "StartTaskContact called {calls} time(s); the answer: {answer}"
    );
}
