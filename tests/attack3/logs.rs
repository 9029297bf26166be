//! Attack 3: a `task_template_id` rendered per event is an event value, and the template book
//! logs it. When the template it names cannot be read (an id Connect does not know, a typo in
//! the producer, or anything a caller puts in the field: validation bounds only its length),
//! `Book::get` writes `task_template_id = <the rendered value>` into its warning, so up to 500
//! characters of event data reach the log (docs/security.md: no event data at any log level;
//! docs/templates.md: "never a value").

use crate::common;

use std::time::Duration;

use connect_standin::connect::Faults;
use serde_json::{json, Value};

const CANARY: &str = "CANARY-from-the-event-7f3a";

const MAPPING: &str = r#"
routes:
  - name: per-event-template
    when: { source: eventbridge, detail_type: OrderFailed }
    task:
      task_template_id: "{{ body.form }}"
      name: "Order {{ body.orderId }} failed"
      references:
        orderId: { type: STRING, value: "{{ body.orderId }}" }
        priority: { type: STRING, value: "high" }
    client_token: "order-{{ body.orderId }}"
"#;

fn template() -> Value {
    common::example_task_template()
}

#[tokio::test]
async fn a_per_event_template_id_that_cannot_be_read_is_not_logged() {
    let mut stack = common::start_function_holding(
        vec![template()],
        Faults::default(),
        &[("TASK_MAPPING", MAPPING), ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")],
    )
    .await;
    let event = json!({
        "version": "0", "id": "evt-1", "detail-type": "OrderFailed",
        "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T09:14:03Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"orderId": "o-1", "form": format!("{CANARY}-{}", "x".repeat(400))},
    });
    let result = stack.invoke(event, Duration::from_secs(10)).await;
    // Let the log readers drain.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs();
    stack.function.stop().await;
    let answer = format!("{result:?}");
    assert!(!answer.contains(CANARY), "the answer quotes it: {answer}");
    let quoting: Vec<&String> = logs.iter().filter(|l| l.contains(CANARY)).collect();
    assert!(
        quoting.is_empty(),
        "{} log line(s) quote the event's task_template_id:\n{}",
        quoting.len(),
        quoting
            .iter()
            .map(|l| l.chars().take(400).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
