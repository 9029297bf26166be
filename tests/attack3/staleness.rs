//! Attack 3: a template the function can no longer read. docs/templates.md: "A template the
//! function cannot read (no permission, throttled, deleted) is logged once ... and its requests
//! are sent unchecked". `Book::get` used to keep the copy it read last when a refresh failed, and
//! stamp it as read *now*: every failed refresh bought the old copy another refresh interval, so
//! the function kept refusing, permanently, requests that fit the template as Connect holds it
//! today (here: an option added in the console while GetTaskTemplate is denied or throttled).
//! The refresh interval is configured short here (`TASK_TEMPLATE_REFRESH_SECONDS`).

use crate::common;

use std::time::Duration;

use connect_standin::connect::Faults;
use connect_standin::harness::LocalStack;
use serde_json::{json, Value};

const MAPPING: &str = r#"
routes:
  - name: order-form
    when: { source: eventbridge, detail_type: OrderFailed }
    task:
      task_template_id: 7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01
      name: "Order {{ body.orderId }} failed"
      references:
        orderId: { type: STRING, value: "{{ body.orderId }}" }
        priority: { type: STRING, value: "{{ body.priority }}" }
    client_token: "order-{{ body.orderId }}"
"#;

fn template() -> Value {
    common::example_task_template()
}

fn order(id: &str, priority: &str) -> Value {
    json!({
        "version": "0", "id": format!("evt-{id}"), "detail-type": "OrderFailed",
        "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T09:14:03Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"orderId": id, "priority": priority},
    })
}

async fn invoke(stack: &mut LocalStack, event: Value) -> Value {
    common::answer(stack, event).await
}

#[tokio::test]
async fn a_template_that_can_no_longer_be_read_is_not_enforced_from_a_stale_copy() {
    let mut stack = common::start_function_holding(
        vec![template()],
        Faults::default(),
        &[
            ("TASK_MAPPING", MAPPING),
            ("TASK_TEMPLATE_REFRESH_SECONDS", "2"),
        ],
    )
    .await;

    let first = invoke(&mut stack, order("o-1", "high")).await;
    assert!(first["ContactId"].is_string(), "{first}");

    // In the console: the field gains an option. The role loses GetTaskTemplate (or it is
    // throttled) at the same time.
    let mut edited = template();
    edited["Fields"][4]["SingleSelectOptions"] = json!(["low", "normal", "high", "urgent"]);
    stack.connect.put_task_template(edited).unwrap();
    stack.connect.set_faults(Faults {
        failing: [(
            "GetTaskTemplate".to_string(),
            "AccessDeniedException".to_string(),
        )]
        .into_iter()
        .collect(),
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let urgent = invoke(&mut stack, order("o-2", "urgent")).await;
    let logs = stack.function.logs().join("\n");
    stack.function.stop().await;
    assert!(
        urgent["ContactId"].is_string(),
        "a request that fits the template Connect holds was refused against the copy read \
         before the read failed: {urgent}\n{logs}"
    );
}
