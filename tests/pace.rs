//! The shared pace against DynamoDB as moto serves it: the schedule one conditional write per
//! call books (`src/pace/shared/`), shared by several environments, trimmed once per
//! congestion, overtaken by high-priority calls, and a table that fails falling back to the
//! local pace. Quotas are scaled up (20 calls per second) so that each test takes about a
//! second.

mod common;

use std::time::{Duration, Instant};

use connect_standin::moto::{moto_server, Moto};
use connect_task_bridge::error::Op;
use connect_task_bridge::pace::{PaceSetting, PaceTable, SharedPace, Slot};
use connect_task_bridge::plan::Priority;

const RATE: f64 = 20.0;
const BURST: f64 = 5.0;

async fn moto_with_table(name: &str) -> Moto {
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table(name).await;
    moto
}

fn pace(moto: &Moto, table: &str, op: Op) -> SharedPace {
    pace_at(moto, table, op, RATE)
}

fn pace_at(moto: &Moto, table: &str, op: Op, rate: f64) -> SharedPace {
    SharedPace::new(
        PaceTable::new(moto.dynamodb_client(), table),
        op,
        PaceSetting {
            rate,
            burst: BURST,
            callers: 2,
        },
        0.25,
    )
}

/// The tests run one at a time: each books at 20 calls a second against its own moto, and
/// tests booking at once on two cores delay one another's answers by more than a turn.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Books `n` calls one after another (as one environment's line does) and returns when each
/// may start, in seconds after `t0`, and the longest a booking took to answer.
async fn starts(p: &SharedPace, n: usize, priority: Priority, t0: Instant) -> (Vec<f64>, f64) {
    let mut out = Vec::new();
    let mut slowest: f64 = 0.0;
    for _ in 0..n {
        let asked = Instant::now();
        let slot = p.reserve(None, priority).await.expect("booked");
        slowest = slowest.max(asked.elapsed().as_secs_f64());
        assert!(slot.shared.is_some(), "booked on the shared schedule");
        out.push((Instant::now() + slot.wait - t0).as_secs_f64());
    }
    (out, slowest)
}

/// A call that goes at once goes when its booking answers, not when it was asked: Connect sees
/// it that much late, and the calls after it on time. The schedule keeps half a token of
/// headroom for this; at the tests' 20 calls a second (ten times Connect's default) a slow
/// answer from moto on a loaded machine costs more than that, so the bucket is checked with
/// the tokens the slowest answer's delay is worth (at 2 calls a second a 50 ms answer is a
/// tenth of a token).
fn lateness(slowest: f64) -> f64 {
    RATE * slowest
}

/// Over any window of `w` seconds, at most `burst + rate × w` starts: Connect's bucket.
fn within_the_bucket(times: &[f64], slack: f64) -> Result<(), String> {
    let mut t: Vec<f64> = times.to_vec();
    t.sort_by(f64::total_cmp);
    for (i, a) in t.iter().enumerate() {
        for (j, b) in t.iter().enumerate().skip(i) {
            let allowed = BURST + RATE * (b - a) + slack;
            if (j - i + 1) as f64 > allowed {
                return Err(format!("{} calls within {:.3} s: {t:?}", j - i + 1, b - a));
            }
        }
    }
    Ok(())
}

/// A lone burst takes all but one and a half of the burst at once, then the quota's rate; 10
/// calls take (10 - 5) / rate plus half a turn, not twice that (the local pace's share).
#[tokio::test]
async fn a_lone_burst_uses_the_whole_quota() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let p = pace(&moto, "pace", Op::StartTaskContact);
    let t0 = Instant::now();
    let (times, slowest) = starts(&p, 10, Priority::Normal, t0).await;
    let turn = 1.0 / RATE;
    assert!(times[..4].iter().all(|t| *t < 0.1), "{times:?}");
    let last = times[9];
    let ideal = (10.0 - BURST) / RATE;
    assert!(
        last >= ideal && last <= ideal + turn / 2.0 + 0.1,
        "the tenth call at {last:.3} s, ideal {ideal} s: {times:?}"
    );
    within_the_bucket(&times, lateness(slowest)).unwrap();
}

/// Two environments (or two stacks naming one table) book from one schedule: together they
/// never pass the bucket, and neither takes it all.
#[tokio::test]
async fn two_environments_split_one_schedule() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let (a, b) = (
        pace(&moto, "pace", Op::StartTaskContact),
        pace(&moto, "pace", Op::StartTaskContact),
    );
    let t0 = Instant::now();
    let ((ta, slow_a), (tb, slow_b)) = tokio::join!(
        starts(&a, 20, Priority::Normal, t0),
        starts(&b, 20, Priority::Normal, t0)
    );
    let all: Vec<f64> = ta.iter().chain(&tb).copied().collect();
    within_the_bucket(&all, lateness(slow_a.max(slow_b))).unwrap();
    let ideal = (40.0 - BURST) / RATE;
    let last = all.iter().copied().fold(0.0, f64::max);
    assert!(last <= ideal * 1.15 + 0.1, "{last:.3} s, ideal {ideal} s");
    // Neither finishes much later than the other.
    let (la, lb) = (ta[19], tb[19]);
    // (Which environment takes a contended turn is a draw: 0.35, not 0.2, so that a draw
    // does not fail it; the surge simulation holds two stacks of 300 to 0.2.)
    assert!((la - lb).abs() <= 0.35 * la.max(lb), "{la:.3} {lb:.3}");
}

/// A call whose turn would come after its latest start books nothing.
#[tokio::test]
async fn a_turn_past_the_latest_start_books_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    // At Connect's own 2 calls a second: a normal call books at most two turns ahead, and a
    // turn (500 ms) is far longer than any booking takes, even on a loaded machine.
    let rate = 2.0;
    let p = pace_at(&moto, "pace", Op::StartTaskContact, rate);
    let t0 = Instant::now();
    let (times, _) = starts(&p, 5, Priority::Normal, t0).await;
    let last = times[4];
    // A start due within 5 ms is refused...
    let soon = Some(Instant::now() + Duration::from_millis(5));
    assert_eq!(p.reserve(soon, Priority::Normal).await, None);
    // ...and booked nothing: the next call gets the turn after the last one booked.
    let next = p.reserve(None, Priority::Normal).await.unwrap();
    let at = (Instant::now() + next.wait - t0).as_secs_f64();
    assert!(
        (at - (last + 1.0 / rate)).abs() < 0.02,
        "{at:.3} after {last:.3}"
    );
}

/// Each operation has its own schedule: spending StartTaskContact's leaves StopContact's.
#[tokio::test]
async fn each_operation_has_its_own_schedule() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let start = pace(&moto, "pace", Op::StartTaskContact);
    starts(&start, 8, Priority::Normal, Instant::now()).await;
    let stop = pace(&moto, "pace", Op::StopContact);
    let slot = stop.reserve(None, Priority::Normal).await.unwrap();
    assert_eq!(slot.wait, Duration::ZERO);
}

/// A lone throttle after a quiet run only empties the schedule's burst (a call that arrived
/// early); a second one is a congestion and slows the schedule for every environment, once:
/// two environments throttled on calls booked at the same interval trim it once.
#[tokio::test]
async fn a_congestion_trims_the_shared_schedule_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let (a, b) = (
        pace(&moto, "pace", Op::StartTaskContact),
        pace(&moto, "pace", Op::StartTaskContact),
    );
    let turn = 1.0 / RATE;
    let sa1 = a.reserve(None, Priority::Normal).await.unwrap();
    let sb1 = b.reserve(None, Priority::Normal).await.unwrap();
    let sa2 = a.reserve(None, Priority::Normal).await.unwrap();
    let sb2 = b.reserve(None, Priority::Normal).await.unwrap();
    // Lone: no trim, but the burst is gone (Connect's bucket is empty): a full turn's wait.
    // (Without it, this fifth call would go half a turn after the first.)
    let throttled_at = Instant::now();
    a.on_throttle(sa1).await;
    let after = b.reserve(None, Priority::Normal).await.unwrap();
    assert_eq!(after.shared, sa1.shared, "not trimmed");
    let starts_after = (Instant::now() + after.wait - throttled_at).as_secs_f64();
    assert!(
        starts_after >= turn * 0.95,
        "the burst was emptied: it starts {starts_after:.3} s after the throttle"
    );
    b.on_throttle(sb1).await;
    // Again within QUIET successes: a congestion, trimmed once for both environments; the
    // first one the schedule meets, with too few calls since the bucket was empty to measure
    // anything: halved.
    a.on_throttle(sa2).await;
    b.on_throttle(sb2).await;
    let next: Slot = b.reserve(None, Priority::Normal).await.unwrap();
    let trimmed = (1e6 / RATE / 0.5) as i64;
    assert_eq!(next.shared, Some(trimmed));
    assert!((b.rate() - RATE * 0.5).abs() < 0.01, "{}", b.rate());
    // Successes bring it back towards the quota, never past it.
    for _ in 0..400 {
        let s = a.reserve(None, Priority::Normal).await.unwrap();
        a.on_success(s).await;
    }
    assert!((a.rate() - RATE).abs() < 1e-6, "{}", a.rate());
    assert_eq!(a.take_stats().throttles + b.take_stats().throttles, 4);
}

/// A congestion after a window of calls (from the bucket found empty to the next throttle,
/// the schedule busy all along) sets the rate to what the window measured, less the margin,
/// instead of halving it: the calls made are the tokens Connect gave. Here nobody else calls,
/// so the window measures the whole quota.
#[tokio::test]
async fn a_congestion_after_a_window_takes_the_measured_rate() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let p = pace(&moto, "pace", Op::StartTaskContact);
    let first = p.reserve(None, Priority::Normal).await.unwrap();
    // Lone: the bucket is empty now, the window starts.
    p.on_throttle(first).await;
    let t0 = Instant::now();
    let mut last = first;
    for _ in 0..30 {
        let slot = p.reserve(None, Priority::Normal).await.unwrap();
        tokio::time::sleep(slot.wait).await;
        last = slot;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Within QUIET successes: a congestion, measured.
    p.on_throttle(last).await;
    let measured = 30.0 / secs;
    let rate = p.rate();
    assert!(
        (rate - 0.97 * measured).abs() < 0.08 * measured && rate <= RATE * 0.97 + 1e-9,
        "30 calls in {secs:.2} s ({measured:.1}/s): the rate is {rate:.2}, not 0.97 × that"
    );
    assert_eq!(p.take_stats().throttles, 2);
}

/// An urgent call behind a backlog of normal ones goes within the horizon: normal calls book
/// at most two turns ahead, and it books past them at once.
#[tokio::test]
async fn a_high_priority_call_overtakes_the_normal_backlog() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let p = std::sync::Arc::new(pace(&moto, "pace", Op::StartTaskContact));
    let t0 = Instant::now();
    // 40 normal calls queue in this environment's line (two seconds of the quota).
    let backlog = {
        let p = p.clone();
        tokio::spawn(async move {
            let mut done = Vec::new();
            let calls = (0..40).map(|_| {
                let p = p.clone();
                async move {
                    let slot = p.reserve(None, Priority::Normal).await.unwrap();
                    tokio::time::sleep(slot.wait).await;
                    Instant::now()
                }
            });
            for t in futures_util::future::join_all(calls).await {
                done.push((t - t0).as_secs_f64());
            }
            done
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let arrived = Instant::now();
    let urgent = p.reserve(None, Priority::High).await.unwrap();
    let urgent_after = (arrived.elapsed() + urgent.wait).as_secs_f64();
    let normal = backlog.await.unwrap();
    let last = normal.iter().copied().fold(0.0, f64::max);
    // Three turns and the round trips, where the backlog's end is more than a second away.
    assert!(
        urgent_after <= 3.0 / RATE + 0.1,
        "the urgent call waited {urgent_after:.3} s"
    );
    assert!(last > 1.5, "the backlog ended at {last:.3} s");
}

/// A pace table that fails (here: none of that name) never stops a call: the environment
/// paces alone on its share.
#[tokio::test]
async fn a_failing_table_falls_back_to_the_local_pace() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let p = pace(&moto, "no-such-table", Op::StartTaskContact);
    let t0 = Instant::now();
    let slot = p.reserve(None, Priority::Normal).await.unwrap();
    assert_eq!(slot.shared, None, "booked on the local pace");
    assert_eq!(slot.wait, Duration::ZERO);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The local share: 20 / 2 per second, burst (5 - 1) / 2.
    let second = p.reserve(None, Priority::Normal).await.unwrap();
    let third = p.reserve(None, Priority::Normal).await.unwrap();
    assert_eq!((second.shared, third.shared), (None, None));
    assert_eq!(second.wait, Duration::ZERO);
    let w = third.wait.as_secs_f64();
    assert!((0.09..=0.13).contains(&w), "{w}");
}

/// Three EventBridge events, each a task (`events/eventbridge-order-failed.json` with ids of
/// their own).
fn events(tag: &str) -> Vec<serde_json::Value> {
    (0..3)
        .map(|i| {
            let mut e = common::event("eventbridge-order-failed");
            e["id"] = serde_json::json!(format!("{tag}-{i}"));
            e
        })
        .collect()
}

/// The binary with a pace table books every call there; with moto stopped mid-run, it paces
/// alone on its share and every record still becomes its task (none is lost or handed back),
/// saying so once in a log line that names the error code and nothing of the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_books_from_the_pace_table_and_falls_back_when_it_fails() {
    let moto = moto_with_table("pace").await;
    let mut stack = common::start_function(&[
        ("PACE_TABLE", "pace"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("CONNECT_REQUESTS_PER_SECOND", "2"),
        ("CONNECT_BURST", "5"),
        ("METRICS_NAMESPACE", "off"),
    ])
    .await;
    for e in events("before") {
        let answer = common::answer(&mut stack, e).await;
        assert!(answer.get("errorType").is_none(), "{answer}");
    }
    assert_eq!(stack.connect.tasks().len(), 3);
    let booked = common::sent(&moto, "DynamoDB_20120810.UpdateItem");
    assert_eq!(booked.len(), 3, "one booking per call: {booked:?}");
    assert!(booked
        .iter()
        .all(|b| b["Key"]["pk"]["S"] == "pace#StartTaskContact"));

    drop(moto);
    let t0 = Instant::now();
    for e in events("after") {
        let answer = common::answer(&mut stack, e).await;
        assert!(answer.get("errorType").is_none(), "{answer}");
    }
    assert_eq!(stack.connect.tasks().len(), 6, "no record lost");
    // The local share at once (burst (5 - 1) / 2, then 1/s): no timeout per call.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let warnings: Vec<String> = stack
        .function
        .logs()
        .into_iter()
        .filter(|l| l.contains("the pace table failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(!warnings[0].contains("before-") && !warnings[0].contains("after-"));
    stack.stop().await;
}
