//! The shared pace's empty-bucket rules (`src/pace/shared/adjust.rs`: `emptied`, the first turn
//! after Connect's bucket was last found empty, against which a throttled call's turn is judged
//! news or old news) attacked against DynamoDB as moto serves it: no item somebody wrote and no
//! kind of slot may make every throttle old news, or another caller goes unnoticed for good.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use connect_standin::moto::{moto_server, Moto};
use connect_task_bridge::error::{BridgeError, Op};
use connect_task_bridge::pace::turns::{first_turn, Ticket};
use connect_task_bridge::pace::{Pace, SharedPace, Slot};
use connect_task_bridge::plan::Priority;

const BURST: f64 = 5.0;
const RATE: f64 = 10.0;
const BASE: i64 = 100_000;

/// One test at a time: each books at its quota against its own moto.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pace(moto: &Moto, op: Op) -> SharedPace {
    common::pace::shared(moto, "pace", op, RATE, BURST)
}

use common::pace::{now_us, num};

async fn moto_with_table() -> Moto {
    let moto = Moto::start(&moto_server(&common::root())).await;
    moto.create_task_table("pace").await;
    moto
}

async fn put(moto: &Moto, key: &str, attributes: &[(&str, AttributeValue)]) {
    let mut item: HashMap<String, AttributeValue> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    item.insert("pk".into(), AttributeValue::S(key.into()));
    moto.dynamodb_client()
        .put_item()
        .table_name("pace")
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn get(moto: &Moto, key: &str) -> HashMap<String, AttributeValue> {
    moto.dynamodb_client()
        .get_item()
        .table_name("pace")
        .key("pk", AttributeValue::S(key.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

/// An `emptied` years ahead (a writer's clock, a hostile or broken item) made every throttle
/// old news (every turn comes before it) and nothing ever wrote it again: a congestion never
/// trimmed the schedule. A turn after the empty bucket lies at most one turn of the slowest
/// schedule ahead of now; beyond, the note is not believed and the next note replaces it.
#[tokio::test]
async fn an_emptied_years_ahead_does_not_make_every_throttle_old_news() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table().await;
    let key = "pace#StartTaskContact";
    let now = now_us();
    let years = now + 5 * 365 * 86_400_000_000;
    put(
        &moto,
        key,
        &[
            ("tat", num(now)),
            ("interval", num(BASE)),
            ("n", num(0)),
            ("emptied", num(years)),
            ("emptied_n", num(0)),
        ],
    )
    .await;
    let p = pace(&moto, Op::StartTaskContact);
    // Ten throttles in a row, each of a call booked after the last: another caller takes
    // every token.
    for _ in 0..10 {
        let slot = p.reserve(None, Priority::Normal).await.unwrap();
        p.on_throttle(slot).await;
    }
    assert!(
        p.rate() < RATE * 0.6,
        "10 throttles in a row, the rate is still {}",
        p.rate()
    );
    let emptied = number(&get(&moto, key).await, "emptied").unwrap();
    assert!(
        emptied < now_us() + 60_000_000,
        "the note still lies {} s ahead",
        (emptied - now_us()) / 1_000_000
    );
}

/// A record handed back with its turn reserved calls at that turn, booked on the schedule like
/// any other; its slot's number was 0, so its throttle was always old news once any bucket had
/// been found empty. In a backlog whose turns are all reserved (a surge on a slow operation),
/// another caller throttled every reserved call and the schedule never slowed. The number is
/// the reserved turn's start, judged as every shared slot's.
#[tokio::test]
async fn throttles_of_reserved_turns_after_the_empty_bucket_are_news() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table().await;
    let op = Op::UpdateContactSchedule;
    let key = format!("pace#{op:?}");
    let now = now_us();
    // A backlog: turns booked three seconds ahead (30 calls at 10 a second).
    put(
        &moto,
        &key,
        &[
            ("tat", num(now + 3_000_000)),
            ("interval", num(BASE)),
            ("n", num(30)),
        ],
    )
    .await;
    let pace = Pace::Shared(Box::new(pace(&moto, op)));
    let Pace::Shared(shared) = &pace else {
        unreachable!()
    };
    let ticket = |id: &str, receive_count| Ticket {
        message_id: id.to_string(),
        receive_count,
    };
    // Three records go back with their turns reserved, then come back and take them.
    let ids = ["m1", "m2", "m3"];
    for id in ids {
        let first = first_turn(&pace, op, Some(&ticket(id, 1)), None, Priority::Normal).await;
        assert!(
            matches!(first, Err(BridgeError::TurnReserved { .. })),
            "{id}: {first:?}"
        );
    }
    let mut reserved = Vec::new();
    for id in ids {
        let slot = first_turn(&pace, op, Some(&ticket(id, 2)), None, Priority::Normal)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id}: no reservation taken"));
        assert!(slot.wait > Duration::from_secs(1), "{id}: {slot:?}");
        reserved.push(slot);
    }
    // A call of the burst is throttled: Connect's bucket is empty now (a lone throttle at the
    // configured rate: the rate is kept, the note written).
    let burst_call = Slot {
        wait: Duration::ZERO,
        number: now_us() as u64,
        shared: Some(BASE),
    };
    shared.on_throttle(burst_call).await;
    assert!((shared.rate() - RATE).abs() < 0.01, "{}", shared.rate());
    let emptied = number(&get(&moto, &key).await, "emptied").unwrap();
    assert!(emptied < now_us() + 1_000_000);
    // Every reserved call, its turn seconds after that, is throttled too: another caller.
    for slot in reserved {
        shared.on_throttle(slot).await;
    }
    assert!(
        shared.rate() < RATE * 0.6,
        "three reserved calls throttled after the empty bucket, the rate is still {}",
        shared.rate()
    );
}

/// Another caller taking a fifth of the quota, the schedule at the configured rate: every
/// fifth call is throttled, four of five turns are given, above `GIVEN_IN_FULL` (0.75), so the
/// first throttles of the window are judged early arrivals. The window's start is kept from the
/// first of them (no lone throttle moves it), so within `MIN_WINDOW` (12) calls the window is
/// measured and the schedule trimmed to the rate left: the rule cannot loop on lone throttles.
#[tokio::test]
async fn another_caller_taking_a_fifth_is_measured_not_taken_for_early_arrivals() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table().await;
    let p = pace(&moto, Op::StartTaskContact);
    let mut throttles = 0;
    for i in 1..=40 {
        let slot = p.reserve(None, Priority::Normal).await.unwrap();
        tokio::time::sleep(slot.wait).await;
        if i % 5 == 0 {
            throttles += 1;
            p.on_throttle(slot).await;
        } else {
            p.on_success(slot).await;
        }
        if p.rate() < RATE * 0.95 {
            break;
        }
    }
    let rate = p.rate();
    eprintln!("trimmed to {rate:.2} a second after {throttles} throttles");
    assert!(
        rate < RATE * 0.95,
        "{throttles} throttles of every fifth call, the rate is still {rate}"
    );
    assert!(
        throttles <= 4,
        "trimmed after {throttles} throttles (the window reaches 12 calls by the fourth)"
    );
    assert!(rate > RATE * 0.5, "measured, not halved: {rate}");
}

/// Another caller taking a tenth of the quota, our calls in bursts of 37 with the schedule idle
/// between them (a batch every few seconds): in each burst Connect's bucket, refilled while
/// idle, runs out at the 18th call and every tenth call after is throttled. The first throttle
/// of a burst is lone (more than `QUIET` calls since the last), and the idle booking dropped the
/// window's start, so the window began at it and the next, 9 of 10 turns given, was judged an
/// early arrival too: burst after burst, two throttles in 37 calls (5.4 %) and never a trim.
/// Two early arrivals are let off once; a window that begins afresh does not let them off again
/// before `PROBE_AFTER` calls have passed.
#[tokio::test]
async fn bursts_beside_another_caller_are_not_let_off_as_early_arrivals_again_and_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let moto = moto_with_table().await;
    let p = pace(&moto, Op::StartTaskContact);
    let mut throttles = 0;
    for burst in 0..3 {
        for i in 1..=37 {
            let slot = p.reserve(None, Priority::Normal).await.unwrap();
            tokio::time::sleep(slot.wait).await;
            if i == 18 || i == 28 {
                throttles += 1;
                p.on_throttle(slot).await;
            } else {
                p.on_success(slot).await;
            }
        }
        if p.rate() < RATE * 0.95 {
            eprintln!("trimmed in burst {burst} after {throttles} throttles");
            break;
        }
        // Idle: the schedule's turns all past (a turn and its tolerance, 0.45 s here).
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        p.rate() < RATE * 0.95,
        "{throttles} throttles in 3 bursts of 37 calls, the rate is still {}",
        p.rate()
    );
}
