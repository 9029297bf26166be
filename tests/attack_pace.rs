//! The shared pace attacked through its table (`src/pace/item.rs`, `src/pace/shared/`),
//! against DynamoDB as moto serves it: an item somebody else wrote (a hostile or broken
//! schedule, another stack's quota) must neither hammer Connect past the quota, nor refuse
//! every call, nor push every environment onto its local share for good.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use connect_standin::moto::{moto_server, Moto};
use connect_task_bridge::error::Op;
use connect_task_bridge::pace::{PaceSetting, PaceTable, SharedPace};
use connect_task_bridge::plan::Priority;

const BURST: f64 = 5.0;
const KEY: &str = "pace#StartTaskContact";

/// One test at a time: each books at its quota against its own moto, and two at once on two
/// cores delay one another's answers by more than a turn.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pace_at(moto: &Moto, rate: f64) -> SharedPace {
    common::pace::shared(moto, "pace", Op::StartTaskContact, rate, BURST)
}

use common::pace::{now_us, num};

async fn put(moto: &Moto, attributes: &[(&str, AttributeValue)]) {
    let mut item: HashMap<String, AttributeValue> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    item.insert("pk".into(), AttributeValue::S(KEY.into()));
    moto.dynamodb_client()
        .put_item()
        .table_name("pace")
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn get(moto: &Moto) -> HashMap<String, AttributeValue> {
    moto.dynamodb_client()
        .get_item()
        .table_name("pace")
        .key("pk", AttributeValue::S(KEY.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

/// Books `n` calls of one environment, each with 3 s to find its turn, as the handler does;
/// each start in seconds after `t0`, or an error naming what went wrong.
async fn book(p: &SharedPace, n: usize, t0: Instant) -> Result<Vec<f64>, String> {
    book_within(p, n, t0, Duration::from_secs(3)).await
}

/// `book`, each call with `within` to find its turn.
async fn book_within(
    p: &SharedPace,
    n: usize,
    t0: Instant,
    within: Duration,
) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for i in 0..n {
        let latest = Instant::now() + within;
        let Some(slot) = p.reserve(Some(latest), Priority::Normal).await else {
            return Err(format!("call {i} refused: no turn within {within:?}"));
        };
        if slot.shared.is_none() {
            return Err(format!("call {i} paced alone: the table was given up"));
        }
        out.push((Instant::now() + slot.wait - t0).as_secs_f64());
    }
    Ok(out)
}

/// Over any window of `w` seconds, at most `burst + rate × w + slack` starts.
fn within_the_bucket(times: &[f64], rate: f64, slack: f64) -> Result<(), String> {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    for (i, a) in t.iter().enumerate() {
        for (j, b) in t.iter().enumerate().skip(i) {
            if (j - i + 1) as f64 > BURST + rate * (b - a) + slack {
                return Err(format!("{} calls within {:.3} s: {t:?}", j - i + 1, b - a));
            }
        }
    }
    Ok(())
}

/// Every bad item a writer could leave, then 12 calls at 10 a second: all booked on the
/// shared schedule, within Connect's bucket, and the item back within bounds after.
#[tokio::test]
async fn a_bad_schedule_item_neither_hammers_nor_stalls() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    let rate = 10.0;
    let base = 100_000;
    let now = now_us();
    let years = now + 5 * 365 * 86_400_000_000;
    let text = || AttributeValue::S("x".into());
    let cases: Vec<(&str, Vec<(&str, AttributeValue)>)> = vec![
        ("interval 0", vec![("tat", num(now)), ("interval", num(0))]),
        (
            "interval negative",
            vec![("tat", num(now)), ("interval", num(-base))],
        ),
        (
            "interval 1 µs",
            vec![("tat", num(now)), ("interval", num(1))],
        ),
        (
            "interval huge",
            vec![("tat", num(now)), ("interval", num(1e15))],
        ),
        (
            "tat years ahead",
            vec![("tat", num(years)), ("interval", num(base))],
        ),
        (
            "tat not a number",
            vec![("tat", text()), ("interval", num(base))],
        ),
        (
            "interval not a number",
            vec![("tat", num(now)), ("interval", text())],
        ),
        (
            "n not a number",
            vec![("tat", num(now)), ("interval", num(base)), ("n", text())],
        ),
        (
            "no interval (an old item)",
            vec![("tat", num(now + 2 * base))],
        ),
        (
            "ceiling 0, marks not numbers",
            vec![
                ("tat", num(now)),
                ("interval", num(base)),
                ("ceiling", num(0)),
                ("mark_n", text()),
                ("mark_at", text()),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, item) in cases {
        put(&moto, &item).await;
        let p = pace_at(&moto, rate);
        let t0 = Instant::now();
        let outcome = match book(&p, 12, t0).await {
            // Slack: a booking's answer on a loaded machine (a tenth of a turn at 10 a second
            // is 10 ms) and the whole burst of a repaired schedule (at most its tolerance).
            Ok(times) => within_the_bucket(&times, rate, 1.0),
            Err(e) => Err(e),
        };
        let after = get(&moto).await;
        let interval = match after.get("interval") {
            Some(AttributeValue::N(i)) => i.parse::<f64>().unwrap_or(-1.0),
            _ => -1.0,
        };
        let outcome = outcome.and_then(|()| {
            (base as f64..=base as f64 / 0.4)
                .contains(&interval)
                .then_some(())
                .ok_or(format!("interval left at {interval}"))
        });
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Two stacks on one table, configured at 2 and 20 calls a second (Connect's quota is one per
/// account and Region: one of them is wrong). Both run at the stricter: the faster stack's
/// schedule never carries the slower one's calls past its quota, its successes never lower the
/// interval below it, and neither keeps rewriting the other's interval.
#[tokio::test]
async fn two_stacks_with_different_quotas_run_at_the_stricter() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    let (slow, fast) = (pace_at(&moto, 2.0), pace_at(&moto, 20.0));
    // The fast stack made the schedule, and ran it at its own quota.
    let t0 = Instant::now();
    book(&fast, 6, t0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The slow stack books once, then both at once: from the slow stack's first call, every
    // call of both within the 2/s bucket (slack: the bookings' answers, late by a little).
    let t1 = Instant::now();
    let first = book(&slow, 1, t1).await.unwrap();
    // (Each stack books its next call as soon as the last is booked, not gone: two lines
    // racing for turns two ahead, a call can lose a few draws in a row; 10 s, not 3.)
    let within = Duration::from_secs(10);
    let (a, b) = tokio::join!(
        book_within(&slow, 6, t1, within),
        book_within(&fast, 6, t1, within)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: Vec<f64> = first.iter().chain(&a).chain(&b).copied().collect();
    let over = within_the_bucket(&all, 2.0, 0.5);
    // The fast stack's successes try to lower the interval: not below the slow stack's quota.
    for _ in 0..16 {
        let slot = fast
            .reserve(
                Some(Instant::now() + Duration::from_secs(30)),
                Priority::Normal,
            )
            .await
            .expect("booked");
        fast.on_success(slot).await;
    }
    let interval = match get(&moto).await.get("interval") {
        Some(AttributeValue::N(i)) => i.parse::<f64>().unwrap(),
        other => panic!("interval {other:?}"),
    };
    assert!(
        over.is_ok() && interval >= 500_000.0,
        "{over:?}; interval after the fast stack's successes: {interval}"
    );
}

/// A pace table that hangs (moto frozen by SIGSTOP: connections accepted, nothing answered)
/// costs one timeout, not one per write: the throttle's and the successes' writes that follow
/// a booking made before the freeze, and the next booking, find the environment pacing alone
/// instead of each waiting for the table's timeout (1 s an attempt, two attempts).
#[tokio::test]
async fn a_frozen_table_costs_one_timeout() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(connect_standin::LOCAL_REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            connect_standin::LOCAL_ACCESS_KEY,
            connect_standin::LOCAL_SECRET_KEY,
            None,
            None,
            "local",
        ))
        .endpoint_url(&moto.url)
        .load()
        .await;
    let p = SharedPace::new(
        PaceTable::from_config(&sdk, "pace"),
        Op::StartTaskContact,
        PaceSetting {
            rate: 2.0,
            burst: BURST,
            callers: 2,
        },
        0.25,
    );
    let latest = || Some(Instant::now() + Duration::from_secs(20));
    let mut slots = Vec::new();
    for _ in 0..10 {
        slots.push(p.reserve(latest(), Priority::Normal).await.expect("booked"));
    }
    assert!(slots.iter().all(|s| s.shared.is_some()));
    let freeze = |signal: &str| {
        std::process::Command::new("kill")
            .args([signal, &moto.pid().to_string()])
            .status()
            .unwrap()
    };
    assert!(freeze("-STOP").success());
    let t0 = Instant::now();
    // Calls booked before the freeze come back: two throttles (a congestion), eight successes
    // (a climb's write), then the next bookings.
    p.on_throttle(slots[0]).await;
    p.on_throttle(slots[1]).await;
    for slot in &slots[2..] {
        p.on_success(*slot).await;
    }
    let after: Vec<_> = [(); 3]
        .iter()
        .map(|()| p.reserve(latest(), Priority::Normal))
        .collect();
    let mut fallback = true;
    for booking in after {
        fallback &= booking.await.is_some_and(|s| s.shared.is_none());
    }
    let spent = t0.elapsed();
    freeze("-CONT");
    assert!(fallback, "paced alone while the table hangs");
    assert!(
        spent < Duration::from_secs(4),
        "{spent:?} waiting for a frozen table"
    );
}

/// Through the binary against the stand-in throttling at Connect's quota (2/s, burst 5): moto
/// frozen (SIGSTOP) after three events, six more answered, moto thawed, three more once the
/// fallback's 10 s are over. Every event its one task (none lost, none twice), one warning, the frozen
/// table costing one timeout, and the bookings back on the table once the fallback ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_rides_out_a_frozen_pace_table() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    let faults = connect_standin::connect::Faults {
        rate: Some(2.0),
        burst: Some(5),
        ..Default::default()
    };
    let mut stack = common::start_function_holding(
        Vec::new(),
        faults,
        &[
            ("PACE_TABLE", "pace"),
            ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
            ("CONNECT_REQUESTS_PER_SECOND", "2"),
            ("CONNECT_BURST", "5"),
            ("METRICS_NAMESPACE", "off"),
        ],
    )
    .await;
    let event = |id: String| {
        let mut e = common::event("eventbridge-order-failed");
        e["id"] = serde_json::json!(id);
        e
    };
    let signal = |s: &str| {
        std::process::Command::new("kill")
            .args([s, &moto.pid().to_string()])
            .status()
            .unwrap()
    };
    let bookings = || common::sent(&moto, "DynamoDB_20120810.UpdateItem").len();
    for i in 0..3 {
        let answer = common::answer(&mut stack, event(format!("before-{i}"))).await;
        assert!(answer.get("errorType").is_none(), "{answer}");
    }
    assert!(signal("-STOP").success());
    let t0 = Instant::now();
    for i in 0..6 {
        let answer = common::answer(&mut stack, event(format!("frozen-{i}"))).await;
        assert!(answer.get("errorType").is_none(), "{answer}");
    }
    let frozen = t0.elapsed();
    assert!(signal("-CONT").success());
    // The requests that waited in moto's socket are answered (to nobody) first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_thaw = bookings();
    // The fallback lasts 10 s from the first timeout (about 2 s after the freeze).
    tokio::time::sleep(Duration::from_secs(13).saturating_sub(t0.elapsed())).await;
    for i in 0..3 {
        let answer = common::answer(&mut stack, event(format!("after-{i}"))).await;
        assert!(answer.get("errorType").is_none(), "{answer}");
    }
    let tasks = stack.connect.tasks();
    let warnings = stack
        .function
        .logs()
        .into_iter()
        .filter(|l| l.contains("the pace table failed"))
        .count();
    let back = bookings() - before_thaw;
    stack.stop().await;
    assert_eq!(tasks.len(), 12, "one task per event");
    // The local share after one timeout (two attempts of 1 s): 1/s, burst 2.
    assert!(frozen < Duration::from_secs(9), "{frozen:?}");
    assert_eq!(warnings, 1);
    assert!(back >= 3, "{back} bookings on the table after the fallback");
}

/// High-priority calls take at most `1 - CONNECT_NORMAL_SHARE` of the schedule's rate, also
/// when a congestion has slowed it (here to 0.4 of a 20/s quota, as another caller taking the
/// rest would): normal calls booking all along keep their quarter.
#[tokio::test]
async fn urgent_calls_leave_normal_ones_their_share_of_a_slowed_schedule() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    let base: i64 = 50_000;
    put(
        &moto,
        &[("tat", num(now_us())), ("interval", num(base * 5 / 2))],
    )
    .await;
    let (urgent, normal) = (pace_at(&moto, 20.0), pace_at(&moto, 20.0));
    let t0 = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let latest = || Some(Instant::now() + Duration::from_secs(20));
    let high = async {
        let mut starts = Vec::new();
        for _ in 0..40 {
            let slot = urgent
                .reserve(latest(), Priority::High)
                .await
                .expect("booked");
            starts.push((Instant::now() + slot.wait - t0).as_secs_f64());
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        starts
    };
    let low = async {
        let mut starts = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            // As an environment's line does: the next call books when this one goes.
            let slot = normal
                .reserve(latest(), Priority::Normal)
                .await
                .expect("booked");
            starts.push((Instant::now() + slot.wait - t0).as_secs_f64());
            tokio::time::sleep(slot.wait).await;
        }
        starts
    };
    let (high, low) = tokio::join!(high, low);
    let end = high.iter().copied().fold(0.0, f64::max);
    let normal_calls = low.iter().filter(|t| **t <= end).count();
    let share = normal_calls as f64 / (normal_calls + high.len()) as f64;
    assert!(
        share >= 0.2,
        "normal calls {normal_calls} of {} by {end:.2} s: {share:.2}",
        normal_calls + high.len()
    );
}
