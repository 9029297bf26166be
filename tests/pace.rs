//! The shared pace against DynamoDB as moto serves it: the schedule one conditional write per
//! call books (`src/pace/shared/`), shared by several environments, trimmed once per
//! congestion, overtaken by high-priority calls, and a table that fails falling back to the
//! local pace. Quotas are scaled up (20 calls per second) so that each test takes about a
//! second.

mod common;

use std::time::{Duration, Instant};

use connect_standin::moto::{moto_server, Moto};
use connect_task_bridge::error::Op;
use connect_task_bridge::pace::{SharedPace, Slot};
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
    common::pace::shared(moto, table, op, rate, BURST)
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
    // Calls booked before the burst was emptied are that empty bucket's news: nothing more.
    b.on_throttle(sb1).await;
    a.on_throttle(sa2).await;
    b.on_throttle(sb2).await;
    let again = a.reserve(None, Priority::Normal).await.unwrap();
    assert_eq!(again.shared, sa1.shared, "still not trimmed");
    // A call booked after it, throttled within QUIET calls: a congestion, trimmed once for
    // both environments (`again` was booked before the trim: the same congestion); the first
    // one the schedule meets, with too few calls since the bucket was empty to measure
    // anything: halved.
    b.on_throttle(after).await;
    a.on_throttle(again).await;
    let next: Slot = b.reserve(None, Priority::Normal).await.unwrap();
    let trimmed = (1e6 / RATE / 0.5) as i64;
    assert_eq!(next.shared, Some(trimmed));
    assert!((b.rate() - RATE * 0.5).abs() < 0.01, "{}", b.rate());
    // Successes bring it back to the plateau, 0.97 of the rate that was throttled, and hold it
    // there (no probe before 512 calls).
    for _ in 0..400 {
        let s = a.reserve(None, Priority::Normal).await.unwrap();
        a.on_success(s).await;
    }
    assert!((a.rate() - RATE * 0.97).abs() < 0.01, "{}", a.rate());
    assert_eq!(a.take_stats().throttles + b.take_stats().throttles, 6);
}

/// Below the configured rate the quota is known to be shared: a throttle there is a congestion
/// however many calls went well since the last one (a lone early arrival is only judged so at
/// the configured rate). Otherwise a schedule climbing back past the other caller's level would
/// take each throttle for an early arrival and never trim again.
#[tokio::test]
async fn below_the_configured_rate_every_throttle_is_a_congestion() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let p = pace(&moto, "pace", Op::StartTaskContact);
    let lone = p.reserve(None, Priority::Normal).await.unwrap();
    p.on_throttle(lone).await;
    let congested = p.reserve(None, Priority::Normal).await.unwrap();
    p.on_throttle(congested).await;
    assert!((p.rate() - RATE * 0.5).abs() < 0.01, "halved: {}", p.rate());
    // More than QUIET (20) calls go well, climbing back.
    for _ in 0..25 {
        let slot = p.reserve(None, Priority::Normal).await.unwrap();
        tokio::time::sleep(slot.wait).await;
        p.on_success(slot).await;
    }
    let climbed = p.rate();
    assert!(climbed > RATE * 0.5, "climbed: {climbed}");
    let slot = p.reserve(None, Priority::Normal).await.unwrap();
    tokio::time::sleep(slot.wait).await;
    p.on_throttle(slot).await;
    assert!(
        p.rate() < climbed,
        "trimmed from {climbed:.2}: the rate is {:.2}",
        p.rate()
    );
}

/// Two early arrivals within QUIET calls of each other are not a congestion when the calls
/// between them show Connect gave the schedule its whole rate: halving the quota for them cost
/// a surge of 300 messages a third of its speed (`SQS messages at once`, 1.34 × its ideal).
#[tokio::test]
async fn early_arrivals_at_the_whole_rate_are_not_a_congestion() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    let p = pace(&moto, "pace", Op::StartTaskContact);
    let first = p.reserve(None, Priority::Normal).await.unwrap();
    p.on_throttle(first).await;
    // 10 calls at the schedule's pace (9 made, the last arrives early too): 10 turns, fewer
    // than QUIET (20) calls and MIN_WINDOW (12), too few to measure but enough to judge.
    let mut last = first;
    for _ in 0..10 {
        let slot = p.reserve(None, Priority::Normal).await.unwrap();
        tokio::time::sleep(slot.wait).await;
        last = slot;
    }
    p.on_throttle(last).await;
    assert_eq!(
        last.shared,
        p.reserve(None, Priority::Normal).await.unwrap().shared
    );
    assert!((p.rate() - RATE).abs() < 0.01, "not trimmed: {}", p.rate());
    assert_eq!(p.take_stats().throttles, 2);
}

/// The throttle's note and the emptied burst are one write: a call another environment booked
/// between the two went into the empty bucket with a turn given out before the burst was
/// emptied, and its throttle, judged as news of a second empty bucket, halved the rate. The
/// race is timing's: thirty schedules, the other environment starting 0 to 15 ms after the
/// throttle (a few of moto's round trips).
#[tokio::test]
async fn no_turn_is_given_out_between_the_note_and_the_emptied_burst() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start(&moto_server(&common::root())).await;
    let turn = Duration::from_secs_f64(1.0 / RATE);
    for i in 0..30u64 {
        let table = format!("pace{i}");
        moto.create_task_table(&table).await;
        let (a, b) = (
            pace(&moto, &table, Op::StartTaskContact),
            pace(&moto, &table, Op::StartTaskContact),
        );
        let first = a.reserve(None, Priority::Normal).await.unwrap();
        let t0 = Instant::now();
        // `b` books as fast as it can while `a` takes the throttle in.
        let booking = async {
            tokio::time::sleep(Duration::from_micros(500 * i)).await;
            let mut early = Vec::new();
            for _ in 0..4 {
                let slot = b.reserve(None, Priority::Normal).await.unwrap();
                if Instant::now() + slot.wait < t0 + turn.mul_f64(0.9) {
                    early.push(slot);
                }
            }
            early
        };
        let ((), early) = tokio::join!(a.on_throttle(first), booking);
        // Every call whose turn came before the emptied burst meets the same empty bucket.
        for slot in &early {
            b.on_throttle(*slot).await;
        }
        assert!(
            (b.rate() - RATE).abs() < 0.01,
            "{} ms: {} calls into the empty bucket, the rate is {}",
            i as f64 / 2.0,
            early.len(),
            b.rate()
        );
    }
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
    // 16 calls: a window of 15 made (the last one throttled) is long enough to believe, and
    // within QUIET (20) calls of the empty bucket the throttle is a congestion.
    for _ in 0..16 {
        let slot = p.reserve(None, Priority::Normal).await.unwrap();
        tokio::time::sleep(slot.wait).await;
        last = slot;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Within QUIET successes: a congestion, measured.
    p.on_throttle(last).await;
    let measured = 15.0 / secs;
    let rate = p.rate();
    assert!(
        (rate - 0.97 * measured).abs() < 0.08 * measured && rate <= RATE * 0.97 + 1e-9,
        "15 calls in {secs:.2} s ({measured:.1}/s): the rate is {rate:.2}, not 0.97 × that"
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

/// Issue #22's lanes: each key's task opened, then rescheduled or stopped through the table.
const LIFECYCLE_MAPPING: &str = r#"
routes:
  - name: open
    when: { body: { action: open } }
    key: "{{ body.key }}"
    task:
      name: "Turns {{ body.key }}"
  - name: reschedule
    when: { body: { action: reschedule } }
    action: reschedule
    key: "{{ body.key }}"
    task:
      delay: 1h
  - name: stop
    when: { body: { action: stop } }
    action: stop
    key: "{{ body.key }}"
"#;

/// A batch of reschedules (1 call a second here) and stops: the stops are done at once, and the
/// reschedules whose turns lie more than a second ahead go back to the queue with their turns
/// reserved in the pace table, hidden until just before them (not the queue's minute); back,
/// each calls on its reservation: UpdateContactSchedule exactly once per reschedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_turn_hands_its_record_back_with_the_turn_reserved() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table("pace").await;
    moto.create_task_table("tasks").await;
    let sqs = moto.sqs_client();
    let (url, arn) = common::queue::create(&sqs, "turns", 60).await;
    let mut stack = common::start_function(&[
        ("PACE_TABLE", "pace"),
        ("TASK_TABLE", "tasks"),
        ("TASK_QUEUE_URL", &url),
        ("TASK_MAPPING", LIFECYCLE_MAPPING),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
        ("AWS_ENDPOINT_URL_SQS", &moto.url),
        ("CONNECT_REQUESTS_PER_SECOND", "50"),
        ("CONNECT_BURST", "20"),
        ("CONNECT_SCHEDULE_RATE", "1"),
        ("CONNECT_SCHEDULE_BURST", "2"),
        ("BATCH_CONCURRENCY", "2"),
    ])
    .await;
    let timeout = Duration::from_secs(30);
    let action = |i: usize| if i % 2 == 0 { "reschedule" } else { "stop" };
    let opens = (0..10)
        .map(|i| serde_json::json!({"action": "open", "key": format!("k{i}")}))
        .collect();
    let records = common::queue::through_queue(&sqs, &url, &arn, opens).await;
    let answer = common::response(
        stack
            .invoke(serde_json::json!({ "Records": records }), timeout)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    assert_eq!(stack.connect.tasks().len(), 10);

    let actions = (0..10)
        .map(|i| serde_json::json!({"action": action(i), "key": format!("k{i}")}))
        .collect();
    let records = common::queue::through_queue(&sqs, &url, &arn, actions).await;
    assert_eq!(records.len(), 10);
    let reschedules: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r["body"].as_str().unwrap().contains("reschedule"))
        .map(|r| r["messageId"].as_str().unwrap().to_string())
        .collect();
    let t0 = Instant::now();
    let answer = common::response(
        stack
            .invoke(serde_json::json!({ "Records": records }), timeout)
            .await,
    );
    let answered_after = t0.elapsed();
    let failures = common::batch_failures(&answer);
    // 1/s with a burst of 2: turns at once, ½ s, 1½ s, 2½ s, 3½ s; the last three are far.
    assert!(failures.len() >= 2, "far turns handed back: {answer}");
    assert!(failures.is_subset(&reschedules), "{answer}");
    let stopped = stack
        .connect
        .tasks()
        .iter()
        .filter(|t| t.ended_at.is_some())
        .count();
    assert_eq!(stopped, 5, "the stops are done in the same batch");
    assert!(
        answered_after < Duration::from_millis(2500),
        "the batch did not wait for the far turns: {answered_after:?}"
    );
    // Each handed-back record's turn is in the pace table under its message id.
    let writes = common::sent(&moto, "DynamoDB_20120810.UpdateItem");
    for id in &failures {
        let key = format!("turn#UpdateContactSchedule#{id}");
        assert!(
            writes.iter().any(|w| w["Key"]["pk"]["S"] == key.as_str()
                && w["UpdateExpression"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("SET")),
            "{key} reserved"
        );
    }
    let changed = common::sent(&moto, "AmazonSQS.ChangeMessageVisibilityBatch");
    let hidden: Vec<i64> = changed
        .iter()
        .flat_map(|c| c["Entries"].as_array().cloned().unwrap_or_default())
        .map(|e| e["VisibilityTimeout"].as_i64().unwrap())
        .collect();
    assert_eq!(hidden.len(), failures.len(), "{changed:?}");
    assert!(hidden.iter().all(|s| (1..=4).contains(s)), "{hidden:?}");

    // Back within seconds (not the queue's minute), each takes its reservation and calls once.
    let again =
        common::queue::received(&sqs, &url, &arn, failures.len(), Duration::from_secs(8)).await;
    let back: std::collections::BTreeSet<String> = again
        .iter()
        .map(|r| r["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(back, failures);
    let answer = common::response(
        stack
            .invoke(serde_json::json!({ "Records": again }), timeout)
            .await,
    );
    assert!(common::batch_failures(&answer).is_empty(), "{answer}");
    let writes = common::sent(&moto, "DynamoDB_20120810.UpdateItem");
    let taken = writes
        .iter()
        .filter(|w| w["UpdateExpression"] == "REMOVE #at")
        .count();
    assert_eq!(taken, failures.len(), "one take per record back");
    let calls = stack.connect.stats().operations["UpdateContactSchedule"].requests;
    assert_eq!(calls, 5, "each reschedule called exactly once");
    stack.stop().await;
}
