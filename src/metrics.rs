//! CloudWatch metrics from the function's own log output, in Embedded Metric Format: one JSON
//! line per invocation with the tasks started, failed and throttled for its source, and one per
//! error class and code seen. CloudWatch turns these lines into metrics with no agent, no API
//! call and no extra dependency.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::pace::PaceStats;
use crate::plan::Did;
use crate::record::SourceKind;
use crate::response::Outcome;

pub const DEFAULT_NAMESPACE: &str = "ConnectTaskBridge";

/// The counts of one invocation.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub started: u64,
    /// Requests put on the task queue instead (their tasks follow from the queue).
    pub queued: u64,
    /// Starts whose business key had an open task opened by a different request (answered
    /// with that task, never a second one).
    pub key_reused: u64,
    /// Records put back on the task queue because Connect's quota of active tasks (or of
    /// tasks per PreviousContactId) was exhausted: alarmed on, since a quota that stays
    /// exhausted holds them for good.
    pub held: u64,
    pub failed: u64,
    pub throttled: u64,
    pub by_error: BTreeMap<(String, String), u64>,
}

impl Tally {
    pub fn of(outcomes: &[Outcome]) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            match &outcome.result {
                Ok(done) if done.did == Did::Queued => tally.queued += 1,
                Ok(done) if done.did == Did::KeyReused => tally.key_reused += 1,
                Ok(done) if done.did == Did::Held => tally.held += 1,
                Ok(_) => tally.started += 1,
                Err(err) => {
                    tally.failed += 1;
                    if err.is_throttle() {
                        tally.throttled += 1;
                    }
                    *tally
                        .by_error
                        .entry((err.class().to_string(), err.code().to_string()))
                        .or_default() += 1;
                }
            }
        }
        tally
    }
}

/// The EMF documents for one invocation, one per line to print.
pub fn documents(
    namespace: &str,
    source: SourceKind,
    tally: &Tally,
    pace: &PaceStats,
    timestamp_ms: u64,
) -> Vec<Value> {
    let metric = |name: &str| json!({"Name": name, "Unit": "Count"});
    let mut docs = vec![json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Source"], []],
                "Metrics": [
                    metric("TasksStarted"),
                    metric("TasksQueued"),
                    metric("TasksFailed"),
                    metric("Throttles"),
                    metric("ConnectThrottles"),
                    metric("KeyReused"),
                    metric("TasksHeld"),
                    {"Name": "PacedWaitMs", "Unit": "Milliseconds"},
                ],
            }],
        },
        "Source": source.as_str(),
        "TasksStarted": tally.started,
        "TasksQueued": tally.queued,
        "TasksFailed": tally.failed,
        // Records that failed for the pace or a throttle, and every call Connect throttled.
        "Throttles": tally.throttled,
        "ConnectThrottles": pace.throttles,
        "KeyReused": tally.key_reused,
        "TasksHeld": tally.held,
        "PacedWaitMs": pace.waited.as_millis() as u64,
    })];
    for ((class, code), count) in &tally.by_error {
        docs.push(json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["ErrorClass"], ["ErrorClass", "ErrorCode"]],
                    "Metrics": [metric("Failures")],
                }],
            },
            "ErrorClass": class,
            "ErrorCode": code,
            "Failures": count,
        }));
    }
    docs
}

/// Prints the invocation's EMF lines on stdout, where Lambda's log capture finds them.
pub fn emit(namespace: &str, source: SourceKind, outcomes: &[Outcome], pace: &PaceStats) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let tally = Tally::of(outcomes);
    for doc in documents(namespace, source, &tally, pace, now) {
        println!("{doc}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BridgeError;
    use crate::response::Done;

    fn outcome(result: Result<(), BridgeError>) -> Outcome {
        Outcome {
            record_id: "r".into(),
            result: result.map(|_| Done {
                contact_id: Some("c".into()),
                client_token: "t".into(),
                route: "r".into(),
                did: Did::Started,
            }),
        }
    }

    #[test]
    fn counts_by_outcome_class_and_code() {
        let throttled = || BridgeError::Connect {
            code: "ThrottlingException".into(),
            message: "m".into(),
        };
        let outcomes = vec![
            outcome(Ok(())),
            outcome(Ok(())),
            outcome(Err(throttled())),
            outcome(Err(throttled())),
            outcome(Err(BridgeError::FifoBlocked)),
        ];
        let tally = Tally::of(&outcomes);
        assert_eq!((tally.started, tally.failed, tally.throttled), (2, 3, 2));
        let docs = documents(
            "NS",
            SourceKind::new("sqs"),
            &tally,
            &PaceStats::default(),
            1_000,
        );
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["Source"], "sqs");
        assert_eq!(docs[0]["TasksStarted"], 2);
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NS");
        let codes: Vec<(&str, u64)> = docs[1..]
            .iter()
            .map(|d| {
                (
                    d["ErrorCode"].as_str().unwrap(),
                    d["Failures"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(codes, [("FifoBlocked", 1), ("ThrottlingException", 2)]);
        // Every metric a document declares is a member of the document, as EMF requires.
        for doc in &docs {
            for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                assert!(doc[m["Name"].as_str().unwrap()].is_u64(), "{doc}");
            }
        }
    }
}
