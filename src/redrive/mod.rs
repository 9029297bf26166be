//! `redrive`: moves the messages of a dead-letter place back to a queue the function drains,
//! each keeping the identity it had, so a message whose task exists is answered with that task.
//! SQS's own redrive (`StartMessageMoveTask`, the console's "Start DLQ redrive") gives every
//! message a new `messageId`, and a producer's raw message has no other identity.
//!
//! This module owns what becomes of each message (`plan`: recognised, then moved as it is, in
//! the function's signed envelope, or refused with a reason), the command's arguments and its
//! summary; `run` owns the SQS calls (send before delete) and the progress shown.
//!
//! What each body becomes:
//! - a producer's raw message: the function's signed envelope around the message as Lambda
//!   delivered it (`{"Records": [message]}`, its `messageId`, attributes and body), the very
//!   envelope a quota hold writes (`handler`), so it opens as the same record, same token;
//! - a body that carries its own identity (an EventBridge event, from the rule's DLQ or the task
//!   queue's; an SNS notification; a contact event) or the function's own envelope: as it is,
//!   since its identity is in the body (no envelope needed, none added);
//! - a Lambda failure record (the asynchronous failure queue): its `requestPayload`, as it is
//!   when it is such an event, else in the signed envelope (one per record of a batch), as the
//!   function would have held it; a webhook's or a contact flow's request is refused (those
//!   are synchronous: their caller was answered and retries by itself);
//! - an envelope that is not the function's own (forged, or signed with a key no longer kept),
//!   an unreadable one, a failure record without its payload: refused, left in place.

mod run;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::BridgeError;
use crate::queue::{queued_payload, EnvelopeKeys};
use crate::sources;

pub use run::{command, redrive, Redrive, RedriveError};

pub const USAGE: &str = "\
usage: connect-task-bridge redrive --from DLQ_URL [--to QUEUE_URL] [--rate N] [--max N] [--dry-run]
                                   [--envelope-secret-id SECRET] [--rule-arn RULE_ARN]
  Moves the messages of a dead-letter queue back to the queue the function drains, each keeping
  its identity (a message whose task exists is answered with that task, never a second one).
  Use it instead of SQS's own redrive (the console's \"Start DLQ redrive\"), which gives every
  message a new messageId: a producer's message, whose identity is its messageId, would become
  a second task.
  --from DLQ_URL     the task queue's DLQ (standard or FIFO), the asynchronous failure queue
                     (FailureQueueUrl) or the EventBridge rule's DLQ
  --to QUEUE_URL     where to (default: the DLQ's source queue, from ListDeadLetterSourceQueues;
                     the failure queue and the rule's DLQ have none: give the TaskQueueUrl)
  --rate N           at most N messages a second, at least 0.001 (default: as fast as SQS
                     answers)
  --max N            at most N messages (default: all)
  --dry-run          move nothing; say what each message would become
  --rule-arn RULE_ARN
                     only the events of this EventBridge rule (their RULE_ARN attribute): the
                     rule's DLQ is shared by the event rule (back to TaskQueueUrl) and the
                     priority rule (back to PriorityQueueUrl); the others stay, skipped
  --envelope-secret-id SECRET
                     the secret holding the function's envelope key (default: ENVELOPE_SECRET_ID,
                     as the function reads it; the stack's EnvelopeKey). A raw message travels
                     in the function's envelope signed with it; without it such messages are left
                     in place.
  Each message is sent before it is deleted: a stop in between leaves a duplicate, never a loss,
  and the kept identity makes the duplicate harmless. Ctrl-C stops between two messages, with
  the summary. Progress on stderr (a bar on a terminal, one line per message otherwise); the
  summary on stdout. Exit 0 when nothing failed, 1 when a message was left in place, 2 on a
  usage or setup error, 130 when stopped.";

/// The slowest `--rate`: a receive's visibility stays well within SQS's 12 hours.
pub const MIN_RATE: f64 = 0.001;

/// The command's arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub from: String,
    pub to: Option<String>,
    pub rate: Option<f64>,
    pub max: Option<u64>,
    pub dry_run: bool,
    pub envelope_secret_id: Option<String>,
    /// Only the events of this rule (`RULE_ARN` message attribute, as EventBridge's DLQ sets it).
    pub rule_arn: Option<String>,
}

impl Args {
    /// `--envelope-secret-id` defaults to `ENVELOPE_SECRET_ID` (`env` answers it).
    pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
        let mut from = None;
        let mut parsed = Args {
            from: String::new(),
            to: None,
            rate: None,
            max: None,
            dry_run: false,
            envelope_secret_id: None,
            rule_arn: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .filter(|v| !v.starts_with("--"))
                    .cloned()
                    .ok_or(format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--from" => from = Some(value("--from")?),
                "--to" => parsed.to = Some(value("--to")?),
                "--rate" => {
                    let rate: f64 = value("--rate")?
                        .parse()
                        .map_err(|_| "--rate needs a number".to_string())?;
                    if !(rate.is_finite() && rate > 0.0) {
                        return Err("--rate must be above 0".into());
                    }
                    // A receive holds its batch invisible for the batch's share of time at
                    // this pace: slower than this, beyond SQS's 12 hours.
                    if rate < MIN_RATE {
                        return Err(format!(
                            "--rate must be at least {MIN_RATE} (a message in about 17 minutes)"
                        ));
                    }
                    parsed.rate = Some(rate);
                }
                "--max" => {
                    parsed.max = Some(
                        value("--max")?
                            .parse()
                            .map_err(|_| "--max needs a whole number".to_string())?,
                    )
                }
                "--dry-run" => parsed.dry_run = true,
                "--rule-arn" => parsed.rule_arn = Some(value("--rule-arn")?),
                "--envelope-secret-id" => {
                    parsed.envelope_secret_id = Some(value("--envelope-secret-id")?)
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        parsed.from = from.ok_or("--from DLQ_URL is required")?;
        if parsed.envelope_secret_id.is_none() {
            // The function's own variable, read as its configuration reads it.
            parsed.envelope_secret_id = crate::config::Vars::new(&env).get("ENVELOPE_SECRET_ID");
        }
        Ok(parsed)
    }
}

/// A message received from the dead-letter queue, as the plan reads it.
#[derive(Debug, Clone, Default)]
pub struct DlqMessage {
    pub message_id: String,
    pub body: String,
    /// System attributes (`SentTimestamp`, `MessageGroupId`, ...).
    pub attributes: BTreeMap<String, String>,
    /// Message attributes, in the shape Lambda delivers them (`stringValue`, `dataType`).
    pub message_attributes: Map<String, Value>,
    pub md5_of_body: Option<String>,
}

impl DlqMessage {
    pub fn group(&self) -> Option<&str> {
        self.attributes.get("MessageGroupId").map(String::as_str)
    }

    /// The rule whose event this is, as EventBridge's DLQ says (`RULE_ARN`).
    pub fn rule_arn(&self) -> Option<&str> {
        self.message_attributes
            .get("RULE_ARN")?
            .get("stringValue")?
            .as_str()
    }
}

/// What a message is, as recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A producer's message: its identity is its `messageId`.
    Raw,
    /// An event carrying its own identity (EventBridge, SNS, contact event).
    Event,
    /// The function's own signed envelope (a queued webhook, a hold, an earlier redrive).
    Envelope,
    /// The function's unsigned envelope: opened and checked again as the first time.
    UnsignedEnvelope,
    /// A Lambda failure record (the asynchronous failure queue).
    FailureRecord,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Raw => "raw message, in the signed envelope",
            Kind::Event => "event with its own identity, as it is",
            Kind::Envelope => "the function's envelope, as it is",
            Kind::UnsignedEnvelope => "unsigned envelope, as it is",
            Kind::FailureRecord => "failure record's request",
        }
    }
}

/// Why a message is left where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
pub enum Refusal {
    #[error("raw message and no envelope key (--envelope-secret-id or ENVELOPE_SECRET_ID)")]
    NoKey,
    #[error("envelope not signed with the function's key (forged, or a key no longer kept)")]
    Forged,
    #[error("unreadable envelope")]
    BadEnvelope,
    #[error("unreadable event")]
    BadEvent,
    #[error("failure record without its requestPayload")]
    NoRequestPayload,
    #[error("failure record of a synchronous request (webhook, contact flow, a queue's or stream's batch)")]
    Synchronous,
    #[error("failure record of an unrecognised payload")]
    UnknownPayload,
    #[error("a FIFO queue needs the message's group, and it has none")]
    NoGroup,
    #[error("send failed ({0})")]
    SendFailed(String),
}

/// What to send for a message: one body or more (a failure record of a batch), each with its
/// FIFO deduplication id.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub kind: Kind,
    pub bodies: Vec<Outgoing>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub body: String,
    /// From the original identity: a second send of the same message within SQS's five-minute
    /// window (a rerun after a stop) is dropped by a FIFO queue.
    pub deduplication_id: String,
}

/// Where the messages go, as the plan needs it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its ARN: a raw message's `eventSourceARN` in its envelope when SQS does not say which
    /// queue the message came from (`DeadLetterQueueSourceArn`).
    pub arn: String,
    pub fifo: bool,
    pub region: String,
    /// Whether the dead-letter place is a queue's DLQ (`ListDeadLetterSourceQueues` names one):
    /// everything in it is a message the function read from that queue, one whose body looks
    /// like a Lambda destination record included (a producer's message: its `messageId` is its
    /// identity). Only a place that is no queue's DLQ (the failure queue) holds Lambda's records.
    pub dlq_of_a_queue: bool,
}

/// What `message` becomes on its way to `target`.
pub fn plan(
    message: &DlqMessage,
    keys: Option<&EnvelopeKeys>,
    target: &Target,
) -> Result<Move, Refusal> {
    if target.fifo && message.group().is_none() {
        return Err(Refusal::NoGroup);
    }
    let (kind, payloads) = recognise(message, keys, target)?;
    let bodies = payloads
        .into_iter()
        .enumerate()
        .map(|(i, body)| Outgoing {
            deduplication_id: deduplication_id(&message.message_id, i),
            body,
        })
        .collect();
    Ok(Move { kind, bodies })
}

fn recognise(
    message: &DlqMessage,
    keys: Option<&EnvelopeKeys>,
    target: &Target,
) -> Result<(Kind, Vec<String>), Refusal> {
    let body = &message.body;
    if let Some(queued) = queued_payload(body, keys) {
        return match queued {
            Ok(q) if q.signed => Ok((Kind::Envelope, vec![body.clone()])),
            Ok(_) => Ok((Kind::UnsignedEnvelope, vec![body.clone()])),
            Err(BridgeError::Unauthorized) => Err(Refusal::Forged),
            // A signed envelope with no key to check it: not moved unchecked.
            Err(_) if keys.is_none() && body.contains("\"mac\"") => Err(Refusal::NoKey),
            Err(_) => Err(Refusal::BadEnvelope),
        };
    }
    match sources::wrapped_event(body) {
        Some(Ok(_)) => return Ok((Kind::Event, vec![body.clone()])),
        Some(Err(_)) => return Err(Refusal::BadEvent),
        None => {}
    }
    // A message SQS moved from a queue (it says which, or the place is a queue's DLQ) is one the
    // function read as a producer's message, whatever its body looks like.
    let from_a_queue = target.dlq_of_a_queue || message.attributes.contains_key(DLQ_SOURCE_ARN);
    if let Some(record) = failure_record(body).filter(|_| !from_a_queue) {
        let payload = record.ok_or(Refusal::NoRequestPayload)?;
        return failure_payload(payload, keys).map(|bodies| (Kind::FailureRecord, bodies));
    }
    let keys = keys.ok_or(Refusal::NoKey)?;
    // The queue it was first delivered from, when SQS says (a redrive policy's move does): the
    // record as Lambda delivered it then, which `meta` and routes read.
    let mut attributes = message.attributes.clone();
    let source_arn = attributes
        .remove(DLQ_SOURCE_ARN)
        .unwrap_or_else(|| target.arn.clone());
    let delivered = json!({
        "messageId": message.message_id,
        "body": body,
        "attributes": attributes,
        "messageAttributes": message.message_attributes,
        "md5OfBody": message.md5_of_body.clone().unwrap_or_default(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": target.region,
    });
    Ok((
        Kind::Raw,
        vec![crate::queue::envelope(
            &json!({ "Records": [delivered] }),
            Some(keys),
        )],
    ))
}

/// The attribute SQS sets on a message its redrive policy moved: the queue it came from.
const DLQ_SOURCE_ARN: &str = "DeadLetterQueueSourceArn";

/// A Lambda destination record (`requestContext.condition`, `requestPayload`): Some(payload),
/// or Some(None) when the payload is missing; None for any other body.
fn failure_record(body: &str) -> Option<Option<Value>> {
    if !body.contains("\"requestContext\"") || !body.contains("\"condition\"") {
        return None;
    }
    let Value::Object(mut record) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    let context = record.get("requestContext")?;
    let is_record = context.get("condition").is_some_and(Value::is_string)
        && context.get("functionArn").is_some()
        && record.contains_key("version");
    is_record.then(|| record.remove("requestPayload").filter(|p| !p.is_null()))
}

/// The bodies that carry a failure record's payload back: an event with its own identity as
/// it is, any other payload the function would hold in its signed envelope, a batch one record
/// per envelope (as a hold splits it).
fn failure_payload(payload: Value, keys: Option<&EnvelopeKeys>) -> Result<Vec<String>, Refusal> {
    let text = payload.to_string();
    match sources::wrapped_event(&text) {
        Some(Ok(_)) => return Ok(vec![text]),
        Some(Err(_)) => return Err(Refusal::BadEvent),
        None => {}
    }
    let source = sources::source_of(&payload).ok_or(Refusal::UnknownPayload)?;
    if !sources::may_sign(source) {
        return Err(Refusal::Synchronous);
    }
    let keys = keys.ok_or(Refusal::NoKey)?;
    let parts = match payload.get("Records").and_then(Value::as_array) {
        Some(records) if records.len() > 1 => {
            records.iter().map(|r| json!({ "Records": [r] })).collect()
        }
        _ => vec![payload],
    };
    Ok(parts
        .iter()
        .map(|p| crate::queue::envelope(p, Some(keys)))
        .collect())
}

/// A FIFO deduplication id from the message's `messageId` in the dead-letter queue (a raw
/// message's original one on its first redrive: a redrive policy's move keeps it) and the part's
/// place. Never from the identity inside an envelope: redriven, failed and redriven again within
/// SQS's five minutes, the message would be dropped as a duplicate of its first redrive, then
/// deleted from the DLQ.
fn deduplication_id(message_id: &str, part: usize) -> String {
    let mut hash = Sha256::new();
    hash.update(b"ctb-redrive\n");
    hash.update(message_id.as_bytes());
    hash.update(format!("\n{part}").as_bytes());
    hex::encode(hash.finalize())
}

/// How a run went, by outcome and reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub moved: BTreeMap<String, u64>,
    pub skipped: BTreeMap<String, u64>,
    pub failed: BTreeMap<String, u64>,
    pub dry_run: bool,
    /// Stopped by Ctrl-C before the DLQ was empty.
    pub stopped: bool,
    /// Ended by a failed call before the DLQ was empty.
    pub broken: Option<String>,
    pub seconds: f64,
}

impl Summary {
    pub fn total(map: &BTreeMap<String, u64>) -> u64 {
        map.values().sum()
    }

    pub fn handled(&self) -> u64 {
        Self::total(&self.moved) + Self::total(&self.skipped) + Self::total(&self.failed)
    }

    /// The summary as printed at the end.
    pub fn render(&self) -> String {
        let moved = if self.dry_run { "would move" } else { "moved" };
        let mut out = format!(
            "redrive{}: {moved} {}, skipped {}, failed {} in {:.1} s\n",
            if self.dry_run { " (dry run)" } else { "" },
            Self::total(&self.moved),
            Self::total(&self.skipped),
            Self::total(&self.failed),
            self.seconds,
        );
        for (label, map) in [
            (moved, &self.moved),
            ("skipped", &self.skipped),
            ("failed", &self.failed),
        ] {
            for (reason, n) in map {
                out.push_str(&format!("  {label:<10} {n:>6}  {reason}\n"));
            }
        }
        if Self::total(&self.failed) > 0 {
            out.push_str("  (failed messages are left in the dead-letter queue)\n");
        }
        if self.stopped {
            out.push_str("  stopped (Ctrl-C): the rest is still in the dead-letter queue\n");
        }
        if let Some(why) = &self.broken {
            out.push_str(&format!(
                "  stopped: {why}; the rest is still in the dead-letter queue\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
