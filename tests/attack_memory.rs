//! Attack: payloads whose `record::parsed_cost` estimate sits just under the 40 MiB budget (so
//! they are parsed), in shapes where the estimate undercounts: objects with many small keys
//! (each key a heap String, each entry an IndexMap bucket, the entries Vec grown to the hash
//! table's capacity). Each shape in a fresh process; peak RSS read after the invocation.

mod common;

use std::time::Duration;

use connect_standin::harness::peak_rss_mib;
use connect_task_bridge::record::{parsed_cost, PARSED_BUDGET_BYTES};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

const KEYS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn object_with(keys: usize) -> String {
    let mut s = String::from("{");
    for (i, key) in KEYS.iter().take(keys).enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        s.push(*key as char);
        s.push_str("\":0");
    }
    s.push('}');
    s
}

fn dense(unit: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * (unit.len() + 1) + 2);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(unit);
    }
    s.push(']');
    s
}

fn big_object(n: usize) -> String {
    let mut s = String::with_capacity(n * 10);
    s.push('{');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"{i:x}\":0"));
    }
    s.push('}');
    s
}

/// The largest n whose text stays within the budget.
fn largest_within(build: impl Fn(usize) -> String) -> (usize, String) {
    let (mut lo, mut hi) = (1usize, 4_000_000usize);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if parsed_cost(build(mid).as_bytes()) <= PARSED_BUDGET_BYTES - (64 << 10) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (lo, build(lo))
}

#[tokio::test]
async fn shapes_just_under_the_budget() {
    type Shape = Box<dyn Fn(usize) -> String>;
    let shapes: Vec<(&str, Shape)> = vec![
        ("numbers", Box::new(|n| dense("0", n))),
        ("objects-1-key", Box::new(|n| dense(&object_with(1), n))),
        ("objects-4-keys", Box::new(|n| dense(&object_with(4), n))),
        ("objects-15-keys", Box::new(|n| dense(&object_with(15), n))),
        ("objects-29-keys", Box::new(|n| dense(&object_with(29), n))),
        ("objects-57-keys", Box::new(|n| dense(&object_with(57), n))),
        ("one-object-many-keys", Box::new(big_object)),
    ];
    let mut stack = common::start_function(&[("WEBHOOK_AUTH", "none")]).await;
    let mut worst = 0.0f64;
    for (name, build) in shapes {
        let (n, text) = largest_within(build);
        let estimate = parsed_cost(text.as_bytes()) as f64 / (1 << 20) as f64;
        let payload: Value = serde_json::from_str(&text).unwrap();
        stack.cold_start().await.unwrap();
        let pid = stack.function.pid().unwrap();
        // Let the process reach its first poll.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = peak_rss_mib(pid).unwrap();
        let answer = stack.invoke(payload, TIMEOUT).await;
        let peak = peak_rss_mib(pid).unwrap_or(f64::NAN);
        let alive = stack.function.pid() == Some(pid);
        println!(
            "{name:22} n={n:8} text={:6.2} MB estimate={estimate:5.1} MiB  idle={before:5.1} MiB peak={peak:6.1} MiB alive={alive} answer={}",
            text.len() as f64 / 1e6,
            format!("{answer:?}").chars().take(90).collect::<String>()
        );
        worst = worst.max(peak);
    }
    stack.stop().await;
    assert!(
        worst < 100.0,
        "a payload within the budget peaked at {worst:.1} MiB"
    );
}

/// Four ~1 MiB SQS bodies (a 6 MB synchronous batch) of objects with 29 one-letter keys, under
/// the built-in mapping: each body's estimate is far under the budget.
#[tokio::test]
async fn an_sqs_batch_of_many_key_objects() {
    let unit = object_with(29);
    let n = 1_000_000 / (unit.len() + 1);
    let body = dense(&unit, n);
    println!(
        "body {:.2} MB, estimate {:.1} MiB",
        body.len() as f64 / 1e6,
        parsed_cost(body.as_bytes()) as f64 / (1 << 20) as f64
    );
    let records: Vec<Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "messageId": format!("m-{i}"), "receiptHandle": "h", "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:bulk", "awsRegion": "eu-west-1"
            })
        })
        .collect();
    let mut stack = common::start_function(&[("WEBHOOK_AUTH", "none")]).await;
    let pid = stack.function.pid().unwrap();
    let answer = stack
        .invoke(serde_json::json!({ "Records": records }), TIMEOUT)
        .await;
    let peak = peak_rss_mib(pid).unwrap();
    println!(
        "answer {}  peak {peak:.1} MiB",
        format!("{answer:?}").chars().take(120).collect::<String>()
    );
    stack.stop().await;
    assert!(peak < 100.0, "{peak:.1} MiB");
}
