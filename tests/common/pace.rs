//! The shared pace as the pace suites drive it: a schedule on a table in moto, the clock its
//! items are written in, and a number attribute for the items they write by hand.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use connect_standin::moto::Moto;
use connect_task_bridge::error::Op;
use connect_task_bridge::pace::{PaceSetting, PaceTable, SharedPace};

/// `op`'s schedule on `table` at `rate` calls a second, burst `burst`, as one of two callers,
/// a quarter of the quota kept for normal calls.
pub fn shared(moto: &Moto, table: &str, op: Op, rate: f64, burst: f64) -> SharedPace {
    SharedPace::new(
        PaceTable::new(moto.dynamodb_client(), table),
        op,
        PaceSetting {
            rate,
            burst,
            callers: 2,
        },
        0.25,
    )
}

/// Now in µs since the epoch, the pace items' clock.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A DynamoDB number.
pub fn num(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
