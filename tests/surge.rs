//! The surge simulation, shortened (time scaled by 10 instead of 5): the real binary as several
//! execution environments behind an emulated SQS event source mapping (moto's SQS), against the
//! stand-in's token bucket, with the template's defaults. For every scenario: no duplicate,
//! nothing lost, nothing parked, no webhook refused, drained within 1.15 × the ideal time (plus
//! the time the emulation took to deliver the burst: `Report::arrival_secs`), at
//! most 5 % of calls throttled — except the scenario where another caller takes half the quota:
//! its share is found by throttles and then measured (`src/pace/adapt.rs`), three to five
//! throttles a burst of 300 (1.0 to 1.6 % over six runs at scales 5 and 10 on the 2-core VM,
//! shared with other builds), where finding it by trial alone cost 3.2 to 5.4 %. Its bounds here
//! are 1.3 × and 4 %: twice the 2 %, so that CI fails when the measurement regresses to
//! trial and error, not on a draw. `make test-surge`
//! runs the full bursts and prints the table with the bounds. Every scenario books from a
//! pace table in moto's DynamoDB, as the template deploys it.

mod common;

/// The scenarios run one at a time: three at once on two cores made the emulation, not the
/// design, the limit (CI saw a lone batch's call arrive early and a raised quota drain at
/// 1.16 × beside the other two), and each is judged on its own timing.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use connect_standin::moto::moto_server;
use connect_standin::surge::{table, Scenario, Surge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_become_tasks_at_the_quotas_pace_and_nothing_is_parked() {
    let _one = ONE_AT_A_TIME.lock().await;
    let surge = Surge::start(
        &common::function_binary(),
        &moto_server(&common::root()),
        10.0,
    )
    .await;
    let mut reports = Vec::new();
    for (i, scenario) in Scenario::standard(300, 40).iter().enumerate() {
        reports.push(surge.run(scenario, i).await);
    }
    println!("{}", table(&reports));
    let misses: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            let (drain, throttled) = if r.scenario.contains("another caller") {
                (1.3, 0.04)
            } else {
                (1.15, 0.05)
            };
            r.misses_within(drain, throttled)
                .into_iter()
                .map(|m| format!("{}: {m}", r.scenario))
        })
        .collect();
    assert!(misses.is_empty(), "{misses:#?}\n{}", table(&reports));
}

/// Issue #22's scenarios of the shared pace, shortened: a lone batch of 10 (in real time: its
/// 2.5 s are mostly the emulation's at any larger scale), two stacks of 100 messages each on one
/// pace table (each stack drained within 1.2 × the other), and a raised quota of 20/s burst 50
/// with 300 messages (time scaled by 2: moto's DynamoDB and SQS, not the design, would be the
/// limit at 10), and an urgent event arriving on the priority queue behind 200 normal messages
/// (its task within 5 s of its arrival; at most scale 5). Loose bounds (1.15 × the ideal plus
/// the arrival, the lone batch 1.3 ×, 5 % throttled) so that CI fails on a regression, not on
/// a draw; `make test-surge` runs them in full (the urgent event behind 1,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_pace_uses_the_whole_quota_and_splits_it_between_stacks() {
    let _one = ONE_AT_A_TIME.lock().await;
    let surge = Surge::start(
        &common::function_binary(),
        &moto_server(&common::root()),
        10.0,
    )
    .await;
    let scenarios: Vec<Scenario> = Scenario::shared_pace(100, 300)
        .into_iter()
        .filter(|s| {
            s.pace_table && s.other_caller_share == 0.0 && s.urgent_after.is_none() && !s.lifecycle
        })
        .chain([Scenario::urgent_behind(200)])
        .collect();
    assert_eq!(scenarios.len(), 4);
    let mut reports = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        reports.push(surge.run(scenario, 100 + i).await);
    }
    println!("{}", table(&reports));
    let misses: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            // The lone batch's 2.8 s (ideal 2.5) are half a turn of headroom and the
            // emulation's polling: 1.3 × here, 1.15 × in `make test-surge`. Its 10 calls make
            // a share meaningless: one early arrival is 9 % (seen once in CI on a loaded
            // machine), so here it may have one, and `make test-surge` holds it to 5 %.
            let (drain, throttled) = if r.events == 10 {
                (1.3, 1.5 / r.calls.max(1) as f64)
            } else {
                (1.15, 0.05)
            };
            r.misses_within(drain, throttled)
                .into_iter()
                .map(|m| format!("{}: {m}", r.scenario))
        })
        .collect();
    assert!(misses.is_empty(), "{misses:#?}\n{}", table(&reports));
}

/// Issue #22's reschedules and stops at once, shortened: 40 tasks rescheduled and 40 others
/// stopped (their 80 tasks opened first by start events with the key, through the task table),
/// on the task queue at once with two environments, time not scaled (the scenario's cap: SQS's
/// whole seconds are not scaled; about 30 s). Every operation has its own bucket at the
/// stand-in (`Quota::connect`) and its own pace in the function: each is throttled at most
/// 5 %, the reschedules drain within 1.3 × their ideal ((40 − 5) / 2 s), nothing is lost,
/// parked or duplicated, and the stops are not held by the reschedules: a reschedule whose
/// turn is far goes back with it reserved, so the stops drain in well under the reschedules'
/// time (before, their batches held them to the reschedules' pace: the same drain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reschedules_and_stops_at_once_each_keep_their_own_quota() {
    let _one = ONE_AT_A_TIME.lock().await;
    let surge = Surge::start(
        &common::function_binary(),
        &moto_server(&common::root()),
        5.0,
    )
    .await;
    let report = surge.run(&Scenario::reschedules_and_stops(40), 200).await;
    let shown = table(std::slice::from_ref(&report));
    println!("{shown}");
    assert_eq!(
        (report.duplicates, report.parked, report.lost, report.tasks),
        (0, 0, 0, 80),
        "{shown}"
    );
    assert_eq!(report.operations.len(), 2, "{shown}");
    for op in &report.operations {
        assert_eq!((op.done, op.events), (40, 40), "{shown}");
        assert!(op.throttled_share() <= 0.05, "{}: {shown}", op.operation);
        if op.operation == "UpdateContactSchedule" {
            assert!(
                op.drain_secs <= 1.3 * op.ideal_secs + report.arrival_secs,
                "{shown}"
            );
        }
    }
    let drain = |name: &str| {
        let op = report.operations.iter().find(|o| o.operation == name);
        op.map(|o| o.drain_secs).expect(name)
    };
    assert!(
        drain("StopContact") <= 0.6 * drain("UpdateContactSchedule"),
        "the stops held to the reschedules' pace: {shown}"
    );
}
