//! Attack (second review): the `ended#<contact>` mark is not atomic with the lookup that
//! decided to write it. `hear` reads `contact#<id>` (absent: the start's answer is still in
//! flight), then writes the mark; the start writes `contact#<id>`, then reads the mark. When the
//! start's read falls between the event's read and its write, neither sees the other: the event
//! is answered `ignored` (success, never redelivered), the start answers `started`, and the key
//! stays open on a task Connect has ended; its workflow is never told. (The model checker takes
//! `hear`'s lookup and mark as one step, so it cannot see this interleaving.)
//!
//! Reproduced with two function processes on one table: the start's StartTaskContact answer is
//! late (the stand-in's hang: the task exists), the task expires meanwhile (one DISCONNECTED
//! event, EXPIRED: nothing else comes later to repair it), and the event's process reaches
//! DynamoDB through a proxy that delays the write of the mark by a few seconds, standing in for
//! an ordinary scheduling delay.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::root;
use connect_standin::connect::Faults;
use connect_standin::moto::{moto_server, Moto};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(20);

const MAPPING: &str = r#"
routes:
  - name: order-failed
    when: { detail_type: OrderFailed }
    key: "order-{{ body.orderId }}"
    task_token: "{{ body.taskToken }}"
    task: { name: "Order {{ body.orderId }} failed" }
"#;

fn order_event(id: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "OrderFailed", "source": "shop.orders",
        "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": detail
    })
}

/// A TCP proxy to `upstream` that holds back, by `delay`, any client bytes naming `needle`.
async fn delaying_proxy(upstream: String, needle: &'static [u8], delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if buf[..n].windows(needle.len()).any(|w| w == needle) {
                        tokio::time::sleep(delay).await;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn env<'a>(dynamodb: &'a str, moto: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TASK_MAPPING", MAPPING),
        ("TASK_TABLE", "tasks"),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
        ("AWS_ENDPOINT_URL_SFN", moto),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto),
        ("WEBHOOK_AUTH", "none"),
    ]
}

#[tokio::test]
async fn an_early_event_whose_mark_lands_after_the_start_read_it_is_lost() {
    let moto = Moto::start(&moto_server(&root())).await;
    moto.create_task_table("tasks").await;
    let upstream = moto.url.trim_start_matches("http://").to_string();
    let proxy = delaying_proxy(upstream, b"ended#", Duration::from_secs(3)).await;
    let mut starter = common::start_function(&env(&moto.url, &moto.url)).await;
    // The hearer is another environment of the same function: the same Connect (the
    // starter's stand-in), the table through the delaying proxy.
    let mut hearer_env: Vec<(String, String)> = [
        ("CONNECT_INSTANCE_ID", common::INSTANCE),
        ("CONNECT_CONTACT_FLOW_ID", common::FLOW),
        ("CONNECT_REQUESTS_PER_SECOND", "1000"),
        ("CONNECT_BURST", "1000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    hearer_env.extend(
        env(&proxy, &moto.url)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut hearer = connect_standin::harness::LocalFunction::start(
        &common::function_binary(),
        &starter.connect.url(),
        &hearer_env,
    )
    .await
    .unwrap();
    // Connect creates the task and answers 1.5 s later.
    starter.connect.set_faults(Faults {
        hang: 1.0,
        hang_ms: 1_500,
        ..Faults::default()
    });
    let connect = &starter.connect;
    let function = &mut starter.function;
    let (started, heard) = tokio::join!(
        function.invoke(
            order_event("e1", json!({"orderId": "o-1", "taskToken": "wf-1"})),
            TIMEOUT
        ),
        async {
            let contact = loop {
                if let Some(t) = connect.tasks().first() {
                    break t.contact_id.clone();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // The task expires at once (a short expiry): one DISCONNECTED event, EXPIRED.
            let events = connect.agent(&contact, "expire", json!({})).unwrap();
            assert_eq!(events.len(), 1);
            hearer.invoke(events[0].clone(), TIMEOUT).await
        }
    );
    println!("start: {started:?}");
    println!("contact event: {heard:?}");
    let item = moto
        .dynamodb_client()
        .get_item()
        .table_name("tasks")
        .key("pk", AttributeValue::S("task#order-o-1".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let state = item["state"].as_s().unwrap().clone();
    let told: Vec<_> = moto
        .recorded()
        .into_iter()
        .filter(|(t, _)| t.starts_with("AWSStepFunctions.SendTask"))
        .collect();
    let ended = starter.connect.tasks()[0].ended_at.is_some();
    println!("table: {state}; ended in Connect: {ended}; workflow told: {told:?}");
    // A later event for the key (a start redelivered would repair it; a different event does
    // not): answered with the dead task.
    let later = starter
        .invoke(
            order_event("e2", json!({"orderId": "o-1", "taskToken": "wf-2"})),
            TIMEOUT,
        )
        .await;
    println!("a later start of the key: {later:?}");
    starter.stop().await;
    hearer.stop().await;
    assert!(
        !(ended && state == "open" && told.is_empty()),
        "Connect ended the task (EXPIRED) and said so once; the table still has it {state}, the \
         workflow was never told, and the key's next start is answered with the dead task"
    );
}
