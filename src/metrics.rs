//! CloudWatch metrics from the function's own log output, in Embedded Metric Format: every
//! record's outcome counted by source and route, the pace's waits and Connect's throttles, and
//! failures by class and code. `METRICS` is the one list of the names (docs/operations.md and
//! the dashboard are checked against it). CloudWatch turns these lines into metrics with no
//! agent, no API call and no extra dependency.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use crate::error::{BridgeError, Cause};
use crate::pace::PaceStats;
use crate::plan::Did;
use crate::record::SourceKind;
use crate::response::Outcome;

pub const DEFAULT_NAMESPACE: &str = "ConnectTaskBridge";

/// The route dimension of a record that failed before a route was chosen (or a contact
/// event, which no route handles).
pub const NO_ROUTE: &str = "-";

/// What became of one record, as counted: one metric per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counted {
    Started,
    Replayed,
    Found,
    KeyReused,
    Updated,
    Rescheduled,
    Stopped,
    Tagged,
    Ignored,
    Queued,
    Held,
    HandedBack,
    Failed,
    Heard,
}

impl Counted {
    pub const ALL: [Counted; 14] = [
        Counted::Started,
        Counted::Replayed,
        Counted::Found,
        Counted::KeyReused,
        Counted::Updated,
        Counted::Rescheduled,
        Counted::Stopped,
        Counted::Tagged,
        Counted::Ignored,
        Counted::Queued,
        Counted::Held,
        Counted::HandedBack,
        Counted::Failed,
        Counted::Heard,
    ];

    /// The metric that counts it.
    pub fn metric(self) -> &'static str {
        match self {
            Counted::Started => "TasksStarted",
            Counted::Replayed => "TasksReplayed",
            Counted::Found => "TasksFound",
            Counted::KeyReused => "KeyReused",
            Counted::Updated => "TasksUpdated",
            Counted::Rescheduled => "TasksRescheduled",
            Counted::Stopped => "TasksStopped",
            Counted::Tagged => "TasksTagged",
            Counted::Ignored => "RecordsIgnored",
            Counted::Queued => "TasksQueued",
            // The name TasksHeldAlarm watches.
            Counted::Held => "TasksHeld",
            Counted::HandedBack => "TasksHandedBack",
            Counted::Failed => "TasksFailed",
            Counted::Heard => "ContactEventsHeard",
        }
    }

    fn of_did(did: Did) -> Counted {
        match did {
            Did::Started => Counted::Started,
            Did::Queued => Counted::Queued,
            Did::Held => Counted::Held,
            Did::Replayed => Counted::Replayed,
            Did::Found => Counted::Found,
            Did::KeyReused => Counted::KeyReused,
            Did::Updated => Counted::Updated,
            Did::Rescheduled => Counted::Rescheduled,
            Did::Stopped => Counted::Stopped,
            Did::Tagged => Counted::Tagged,
            Did::Ignored => Counted::Ignored,
            Did::Heard => Counted::Heard,
        }
    }
}

/// Why a record went back to the task queue early (`HandBacks`' `Reason`).
pub fn hand_back_reason(err: &BridgeError) -> Option<&'static str> {
    if err.reserved_turn().is_some() {
        return Some("turn");
    }
    match err.cause() {
        Cause::Throttled => Some("pace"),
        Cause::OutOfTime => Some("clock"),
        Cause::Unavailable => Some("fault"),
        _ => None,
    }
}

/// One metric the function emits: its name, unit and dimension sets, what it counts and what
/// an operator does when it moves. docs/operations.md's table is checked against this list.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub dimensions: &'static [&'static [&'static str]],
    pub counts: &'static str,
    pub when_it_moves: &'static str,
}

const BY_ROUTE: &[&[&str]] = &[&["Source", "Route"], &[]];
const BY_SOURCE: &[&[&str]] = &[&["Source"], &[]];

/// Every metric the function emits, in the order docs/operations.md lists them.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "TasksStarted",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "tasks Connect opened for a record (StartTaskContact answered with a ContactId)",
        when_it_moves: "nothing: this is the work; a drop to zero while events arrive means they fail or wait (see TasksFailed, the queue's backlog)",
    },
    Metric {
        name: "TasksReplayed",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "a redelivered event answered with the task it opened before (the task table knows the event; no call), or a start that sent its key's client token again after a call whose outcome is unknown (a released or crashed claim taken over): Connect answered it from the token",
        when_it_moves: "nothing: redeliveries are normal (SQS at-least-once, Lambda retries); a steady high rate means answers get lost (timeouts, a batch failing for one record)",
    },
    Metric {
        name: "TasksFound",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "another event with the same request for a key whose task is open: answered with that task, no call",
        when_it_moves: "nothing if producers send duplicates; otherwise check the route's key",
    },
    Metric {
        name: "KeyReused",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "a start for a key whose open task was opened by a different request: answered with it, no second task",
        when_it_moves: "the second request's workflow is never told: give it its own key (the key_reused warning names the route)",
    },
    Metric {
        name: "TasksUpdated",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "update routes applied to a key's open task",
        when_it_moves: "nothing",
    },
    Metric {
        name: "TasksRescheduled",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "reschedule routes applied to a key's open task",
        when_it_moves: "nothing; Connect allows 20 reschedules per task",
    },
    Metric {
        name: "TasksStopped",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "stop routes applied to a key's open task (or a task already ended)",
        when_it_moves: "nothing",
    },
    Metric {
        name: "TasksTagged",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "tag routes applied to a key's open task",
        when_it_moves: "nothing",
    },
    Metric {
        name: "RecordsIgnored",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "records with nothing to do: an action whose key has no open task (if_missing: ignore), a contact event about a task the table does not know or already heard",
        when_it_moves: "a rise on an action route: its events arrive after their task ended, or before it opened (check the producer's order)",
    },
    Metric {
        name: "TasksQueued",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "requests put on the task queue (queued webhooks, throttled direct requests): their tasks follow from the queue",
        when_it_moves: "nothing: storage-first at work; watch the queue's backlog",
    },
    Metric {
        name: "TasksHeld",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "records held on the task queue because Connect's quota of active tasks (or of tasks per PreviousContactId) is exhausted",
        when_it_moves: "TasksHeldAlarm: close or complete tasks, or raise the quota of active tasks",
    },
    Metric {
        name: "TasksHandedBack",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "task-queue messages that could not be served now (the pace, the clock, a fault of Connect's) and come back at the next turn, or just before their call's turn reserved far ahead, instead of after the visibility timeout",
        when_it_moves: "nothing during a burst; sustained, the quota is too small for the traffic (see HandBacks' Reason)",
    },
    Metric {
        name: "HandBacks",
        unit: "Count",
        dimensions: &[&["Reason"]],
        counts: "records back on the task queue by reason: turn (its call's turn is far ahead and reserved: it comes back just before it instead of holding its batch), pace (no turn before the deadline, throttled), clock (out of time), fault (Connect failed after the retries), quota (held)",
        when_it_moves: "turn: nothing, a burst on a slow operation; pace: raise the quota and ConnectRequestsPerSecond; clock: raise FunctionTimeout; fault: Connect's health; quota: see TasksHeld",
    },
    Metric {
        name: "TasksFailed",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "records that failed and were not handed back (see Failures for the class and code)",
        when_it_moves: "read the record's log line (error_class, error_code): fix the input, the mapping or the deployment; the record is retried, then goes to a dead-letter queue",
    },
    Metric {
        name: "ContactEventsHeard",
        unit: "Count",
        dimensions: BY_ROUTE,
        counts: "contact events that ended a task of the table and told its workflow",
        when_it_moves: "nothing; none while tasks end means the contact event rule does not deliver",
    },
    Metric {
        name: "Throttles",
        unit: "Count",
        dimensions: BY_SOURCE,
        counts: "records that failed for the pace or a throttle (handed back ones included)",
        when_it_moves: "as ConnectThrottles",
    },
    Metric {
        name: "ConnectThrottles",
        unit: "Count",
        dimensions: BY_SOURCE,
        counts: "calls Connect throttled, retried ones included",
        when_it_moves: "ConnectThrottlesAlarm: another caller shares the quota, or the quota is too small for the traffic",
    },
    Metric {
        name: "PacedWaitMs",
        unit: "Milliseconds",
        dimensions: BY_SOURCE,
        counts: "time the invocation's calls waited for the pace's turns",
        when_it_moves: "nothing during a burst; sustained waits near the function timeout mean the quota is too small",
    },
    Metric {
        name: "Failures",
        unit: "Count",
        dimensions: &[&["ErrorClass"], &["ErrorClass", "ErrorCode"]],
        counts: "errors records met, by class and code (handed back ones included)",
        when_it_moves: "input and configuration classes: fix the event or the mapping; throttle and unavailable: see the pace and Connect's health",
    },
];

/// docs/operations.md's table of the metrics, generated from `METRICS` (a test checks the page
/// holds it as generated).
pub fn markdown() -> String {
    let mut table = String::from(
        "| metric | dimensions | counts | when it moves |\n| --- | --- | --- | --- |\n",
    );
    for m in METRICS {
        let sets: Vec<String> = m
            .dimensions
            .iter()
            .map(|s| match s {
                [] => "none".to_string(),
                names => names.join("+"),
            })
            .collect();
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            sets.join(", "),
            m.counts,
            m.when_it_moves
        ));
    }
    table
}

/// The counts of one invocation.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    pub by_route: BTreeMap<(String, Counted), u64>,
    pub hand_backs: BTreeMap<&'static str, u64>,
    pub throttled: u64,
    pub by_error: BTreeMap<(String, String), u64>,
}

impl Tally {
    /// `outcomes` with the route each record took (None: it failed before one was chosen), the
    /// ids of the records handed back to the task queue for their next turn, and the client
    /// tokens of starts that sent a token again after a call whose outcome is unknown (Connect
    /// answered them from the token: replays, though the answer is a start's).
    pub fn of(
        outcomes: &[(Outcome, Option<String>)],
        handed_back: &HashSet<String>,
        retaken: &HashSet<String>,
    ) -> Tally {
        let mut tally = Tally::default();
        for (outcome, route) in outcomes {
            let route = route
                .as_deref()
                .filter(|r| !r.is_empty())
                .unwrap_or(NO_ROUTE);
            let counted = match &outcome.result {
                Ok(done) => {
                    if done.did == Did::Held {
                        *tally.hand_backs.entry("quota").or_default() += 1;
                    }
                    match done.did {
                        Did::Started if retaken.contains(&done.client_token) => Counted::Replayed,
                        did => Counted::of_did(did),
                    }
                }
                Err(err) => {
                    if err.is_throttle() && err.reserved_turn().is_none() {
                        tally.throttled += 1;
                    }
                    *tally
                        .by_error
                        .entry((err.class().to_string(), err.code().to_string()))
                        .or_default() += 1;
                    match hand_back_reason(err).filter(|_| handed_back.contains(&outcome.record_id))
                    {
                        Some(reason) => {
                            *tally.hand_backs.entry(reason).or_default() += 1;
                            Counted::HandedBack
                        }
                        None => Counted::Failed,
                    }
                }
            };
            *tally
                .by_route
                .entry((route.to_string(), counted))
                .or_default() += 1;
        }
        tally
    }

    /// How many records of the invocation were counted as `counted`.
    pub fn total(&self, counted: Counted) -> u64 {
        self.by_route
            .iter()
            .filter(|((_, c), _)| *c == counted)
            .map(|(_, n)| n)
            .sum()
    }
}

fn header(namespace: &str, timestamp_ms: u64, dimensions: Value, metrics: Vec<Value>) -> Value {
    json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": dimensions,
            "Metrics": metrics,
        }],
    })
}

fn count(name: &str) -> Value {
    json!({"Name": name, "Unit": "Count"})
}

/// The EMF documents for one invocation, one per line to print: one per route with the
/// outcomes it had (only those: a metric with no data costs nothing), one with the pace's and
/// throttles' numbers, one per hand-back reason and one per error class and code. Each carries
/// the function's version as a property (searchable in Logs Insights, not a dimension: that
/// would multiply the metrics by the releases).
pub fn documents(
    namespace: &str,
    source: SourceKind,
    tally: &Tally,
    pace: &PaceStats,
    timestamp_ms: u64,
) -> Vec<Value> {
    let version = crate::VERSION;
    let mut docs = Vec::new();
    let mut routes: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for ((route, counted), n) in &tally.by_route {
        routes
            .entry(route.as_str())
            .or_default()
            .insert(counted.metric().to_string(), json!(n));
    }
    for (route, counts) in routes {
        let metrics = counts.keys().map(|name| count(name)).collect();
        let mut doc = counts;
        doc.insert(
            "_aws".into(),
            header(
                namespace,
                timestamp_ms,
                json!([["Source", "Route"], []]),
                metrics,
            ),
        );
        doc.insert("Source".into(), json!(source.as_str()));
        doc.insert("Route".into(), json!(route));
        doc.insert("Version".into(), json!(version));
        docs.push(Value::Object(doc));
    }
    docs.push(json!({
        "_aws": header(namespace, timestamp_ms, json!([["Source"], []]), vec![
            count("Throttles"),
            count("ConnectThrottles"),
            json!({"Name": "PacedWaitMs", "Unit": "Milliseconds"}),
        ]),
        "Source": source.as_str(),
        "Version": version,
        // Records that failed for the pace or a throttle, and every call Connect throttled.
        "Throttles": tally.throttled,
        "ConnectThrottles": pace.throttles,
        "PacedWaitMs": pace.waited.as_millis() as u64,
    }));
    for (reason, n) in &tally.hand_backs {
        docs.push(json!({
            "_aws": header(namespace, timestamp_ms, json!([["Reason"]]), vec![count("HandBacks")]),
            "Reason": reason,
            "Version": version,
            "HandBacks": n,
        }));
    }
    for ((class, code), n) in &tally.by_error {
        docs.push(json!({
            "_aws": header(namespace, timestamp_ms, json!([["ErrorClass"], ["ErrorClass", "ErrorCode"]]), vec![count("Failures")]),
            "ErrorClass": class,
            "ErrorCode": code,
            "Version": version,
            "Failures": n,
        }));
    }
    docs
}

/// Prints the invocation's EMF lines on stdout, where Lambda's log capture finds them.
pub fn emit(
    namespace: &str,
    source: SourceKind,
    outcomes: &[(Outcome, Option<String>)],
    handed_back: &HashSet<String>,
    retaken: &HashSet<String>,
    pace: &PaceStats,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let tally = Tally::of(outcomes, handed_back, retaken);
    for doc in documents(namespace, source, &tally, pace, now) {
        println!("{doc}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BridgeError;
    use crate::response::Done;

    fn outcome(
        id: &str,
        route: &str,
        result: Result<Did, BridgeError>,
    ) -> (Outcome, Option<String>) {
        (
            Outcome {
                record_id: id.into(),
                result: result.map(|did| Done {
                    contact_id: Some("c".into()),
                    client_token: format!("t{id}"),
                    route: route.into(),
                    did,
                }),
            },
            Some(route.to_string()).filter(|r| !r.is_empty()),
        )
    }

    fn throttled() -> BridgeError {
        BridgeError::Connect {
            code: "ThrottlingException".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn a_record_handed_back_with_its_turn_reserved_is_no_throttle() {
        let reserved = BridgeError::TurnReserved {
            after: std::time::Duration::from_secs(4),
        };
        let outcomes = vec![
            outcome("1", "moves", Err(reserved)),
            outcome("2", "moves", Err(throttled())),
        ];
        let handed_back: HashSet<String> = ["1", "2"].map(String::from).into();
        let tally = Tally::of(&outcomes, &handed_back, &HashSet::new());
        assert_eq!(tally.total(Counted::HandedBack), 2);
        assert_eq!(tally.throttled, 1);
        let reasons: Vec<_> = tally.hand_backs.iter().map(|(r, n)| (*r, *n)).collect();
        assert_eq!(reasons, [("pace", 1), ("turn", 1)]);
    }

    #[test]
    fn counts_each_outcome_by_route_and_hand_backs_by_reason() {
        let outcomes = vec![
            outcome("1", "orders", Ok(Did::Started)),
            outcome("2", "orders", Ok(Did::Started)),
            outcome("3", "orders", Ok(Did::Replayed)),
            outcome("4", "refunds", Ok(Did::Held)),
            outcome("5", "orders", Err(throttled())),
            outcome("6", "orders", Err(throttled())),
            outcome("7", "", Err(BridgeError::FifoBlocked)),
            outcome("8", "orders", Err(BridgeError::DeadlineExceeded)),
        ];
        // 6 was not a task-queue message: it fails as before.
        let handed_back: HashSet<String> = ["5", "8"].map(String::from).into();
        // 2 sent its token again after a call without an answer: Connect answered from it.
        let retaken: HashSet<String> = ["t2".to_string()].into();
        let tally = Tally::of(&outcomes, &handed_back, &retaken);
        assert_eq!(tally.total(Counted::Started), 1);
        assert_eq!(tally.total(Counted::Replayed), 2);
        assert_eq!(tally.total(Counted::Held), 1);
        assert_eq!(tally.total(Counted::HandedBack), 2);
        assert_eq!(tally.total(Counted::Failed), 2);
        assert_eq!(tally.by_route[&(NO_ROUTE.to_string(), Counted::Failed)], 1);
        assert_eq!(tally.throttled, 2);
        let reasons: Vec<_> = tally.hand_backs.iter().map(|(r, n)| (*r, *n)).collect();
        assert_eq!(reasons, [("clock", 1), ("pace", 1), ("quota", 1)]);

        let docs = documents(
            "NS",
            SourceKind::new("sqs"),
            &tally,
            &PaceStats::default(),
            1_000,
        );
        // Three routes, the invocation's, three reasons, three error codes.
        assert_eq!(docs.len(), 3 + 1 + 3 + 3, "{docs:#?}");
        let orders = docs.iter().find(|d| d["Route"] == "orders").unwrap();
        assert_eq!(orders["Source"], "sqs");
        assert_eq!(orders["TasksStarted"], 1);
        assert_eq!(orders["TasksReplayed"], 2);
        assert_eq!(orders["TasksHandedBack"], 2);
        assert!(
            orders.get("TasksHeld").is_none(),
            "only the route's outcomes"
        );
        assert_eq!(orders["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NS");
        let codes: Vec<(&str, u64)> = docs
            .iter()
            .filter(|d| d.get("Failures").is_some())
            .map(|d| {
                (
                    d["ErrorCode"].as_str().unwrap(),
                    d["Failures"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            codes,
            [
                ("DeadlineExceeded", 1),
                ("FifoBlocked", 1),
                ("ThrottlingException", 2)
            ]
        );
        for doc in &docs {
            assert_eq!(doc["Version"], crate::VERSION);
            let declared = &doc["_aws"]["CloudWatchMetrics"][0];
            // Every metric a document declares is a member of the document, as EMF requires,
            // and one of METRICS with one of its dimension sets.
            for m in declared["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(doc[name].is_u64(), "{doc}");
                let metric = METRICS.iter().find(|x| x.name == name).expect(name);
                assert_eq!(m["Unit"], metric.unit);
                let sets: Vec<Vec<&str>> = declared["Dimensions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        s.as_array()
                            .unwrap()
                            .iter()
                            .map(|d| d.as_str().unwrap())
                            .collect()
                    })
                    .collect();
                let documented: Vec<Vec<&str>> =
                    metric.dimensions.iter().map(|s| s.to_vec()).collect();
                assert_eq!(sets, documented, "{name}");
                for set in &sets {
                    for dimension in set {
                        assert!(doc[*dimension].is_string(), "{doc}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_outcome_has_its_metric_and_every_metric_its_row_in_the_operations_page() {
        let page = include_str!("../docs/operations.md");
        for counted in Counted::ALL {
            assert!(
                METRICS.iter().any(|m| m.name == counted.metric()),
                "{counted:?}"
            );
        }
        let names: HashSet<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), METRICS.len(), "a name listed twice");
        assert!(
            page.contains(&markdown()),
            "docs/operations.md's metrics table is not the one METRICS makes; it is:\n{}",
            markdown()
        );
        // At most CloudWatch's 30 dimensions per metric (and far fewer here).
        assert!(METRICS
            .iter()
            .all(|m| m.dimensions.iter().all(|s| s.len() <= 30)));
    }
}
