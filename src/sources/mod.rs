//! The sources: one module each, owning everything about it — how a payload of it is
//! recognised, how it splits into records, each record's identity and ordering, what templates
//! see of it, and the answer it expects. The registry below lists them in one place; nothing
//! else in the crate needs to know a source by name. Adding a source is one module plus one
//! line in `REGISTRY`.
//!
//! Shapes come from `aws_lambda_events`; Lambda gives no out-of-band hint of what invoked the
//! function, so each source recognises its own shape.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::BridgeError;
use crate::plan::Did;
use crate::record::{Record, SourceKind};
use crate::response::Outcome;
use crate::webhook_auth::WebhookAuth;

mod contact_event;
mod contact_flow;
mod direct;
mod dynamodb;
mod eventbridge;
mod kinesis;
mod s3;
mod sns;
mod sqs;
mod webhook;

/// A source: how to recognise it, read it and answer it.
pub struct Source {
    /// The kinds of record it produces (what `when.source` matches).
    pub kinds: &'static [SourceKind],
    /// Whether the payload (a JSON object) is this source's.
    pub recognise: fn(&Map<String, Value>) -> bool,
    /// Reads the payload into records.
    pub open: fn(Value, &OpenContext<'_>) -> Result<Envelope, BridgeError>,
    /// The answer the source expects from the outcome of every record.
    pub respond: fn(SourceKind, Vec<Outcome>) -> Result<Value, BridgeError>,
    /// Whether its payloads go on the task queue rather than to Connect in the invocation.
    pub storage: Storage,
    /// Whether its records may be held on the task queue while Connect's quota of active tasks
    /// is exhausted (`handler`): not when its caller needs the task in the answer (a contact
    /// flow) or reads nothing of it (Connect's own contact events).
    pub holdable: bool,
    /// The name the built-in mapping gives its tasks (a template over the record's `meta`), or
    /// None for a source no route renders.
    pub task_name: Option<&'static str>,
}

/// When a source's payload is put on the task queue (storage-first, see `queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Never: it is a queue or stream already, its sender retries by itself, or its caller needs
    /// the task at once.
    Never,
    /// Before any call, when `WEBHOOK_MODE` is `queued` (webhooks): answered 202.
    First,
    /// When Connect throttles it (direct requests, often invoked asynchronously).
    OnThrottle,
}

/// Whether records of `kind` may be held (see `Source::holdable`).
pub fn holdable(kind: SourceKind) -> bool {
    REGISTRY
        .iter()
        .find(|s| s.kinds.contains(&kind))
        .is_some_and(|s| s.holdable)
}

/// The storage rule of the source that produces `kind`.
pub fn storage_of(kind: SourceKind) -> Storage {
    REGISTRY
        .iter()
        .find(|s| s.kinds.contains(&kind))
        .map_or(Storage::Never, |s| s.storage)
}

/// Reads a payload the function put on the task queue itself: one request of a source that is
/// ever queued, opened as it was the first time (`ctx.now` is when it was queued).
pub(crate) fn open_queued(payload: Value, ctx: &OpenContext<'_>) -> Result<Record, BridgeError> {
    let not_queueable = || {
        BridgeError::InvalidEvent(
            "a queued payload must be one webhook request or one direct request".into(),
        )
    };
    // Only the function's signed envelope may carry what it held or redrove (any source's
    // record, with its identity); an unsigned one, only what may be queued on the way in. An
    // unsigned envelope around a record only a signature may carry claims an identity the
    // function never vouched for: refused as a forged signature is.
    let source = match &payload {
        Value::Object(obj) => {
            let allowed = |s: &&&Source| ctx.verified || s.storage != Storage::Never;
            match REGISTRY.iter().filter(allowed).find(|s| (s.recognise)(obj)) {
                Some(s) => s,
                None if REGISTRY.iter().any(|s| (s.recognise)(obj)) => {
                    return Err(BridgeError::Unauthorized)
                }
                None => return Err(not_queueable()),
            }
        }
        _ => return Err(not_queueable()),
    };
    let mut envelope = (source.open)(payload, ctx)?;
    match (envelope.records.pop(), envelope.records.is_empty()) {
        (Some(record), true) => record.map_err(|e| e.error),
        _ => Err(not_queueable()),
    }
}

/// Every source, in the order they are tried (Connect's contact events before other EventBridge
/// events; direct payloads last: they are recognised by member names alone).
pub const REGISTRY: &[&Source] = &[
    &contact_event::SOURCE,
    &eventbridge::SOURCE,
    &sqs::SOURCE,
    &sns::SOURCE,
    &kinesis::SOURCE,
    &dynamodb::SOURCE,
    &s3::SOURCE,
    &webhook::SOURCE,
    &contact_flow::SOURCE,
    &direct::SOURCE,
];

/// The built-in mapping's task name, per source: one template that picks each routable kind's
/// own (`Source::task_name`), so the mapping names no source itself.
pub fn default_task_name() -> String {
    let mut text = String::new();
    for source in REGISTRY {
        let Some(name) = source.task_name else {
            continue;
        };
        let kinds: Vec<String> = source
            .kinds
            .iter()
            .map(|k| format!("{:?}", k.as_str()))
            .collect();
        let keyword = if text.is_empty() { "if" } else { "elif" };
        text.push_str(&format!(
            "{{%- {keyword} source in [{}] %}}{name}\n",
            kinds.join(", ")
        ));
    }
    text.push_str("{%- endif %}");
    text
}

/// The source whose shape `payload` has, as an invocation would find it (None: nobody's).
pub fn source_of(payload: &Value) -> Option<&'static Source> {
    let obj = payload.as_object()?;
    REGISTRY.iter().copied().find(|s| (s.recognise)(obj))
}

/// Whether a payload of `source`, found outside the function (a Lambda failure record read by
/// `redrive`), may travel back in the function's signed envelope: only what the function would
/// itself hold (`holdable`), and only what Lambda invokes asynchronously (so what a failure
/// record Lambda wrote can carry). Never a webhook's request (authenticated only on arrival),
/// nor an event source mapping's batch (SQS, Kinesis, DynamoDB Streams: invoked synchronously,
/// so in a failure record only by someone who wrote it, and signing it would vouch for its
/// claim on a queue message's or a stream record's identity).
pub fn may_sign(source: &Source) -> bool {
    let mapped = [sqs::KIND, kinesis::KIND, dynamodb::KIND];
    source.holdable
        && source.storage != Storage::First
        && !source.kinds.iter().any(|k| mapped.contains(k))
}

pub use sqs::wrapped_event;
/// The kind of an SQS batch: where the function's envelopes are read back.
pub use sqs::KIND as SQS_KIND;

/// Every kind of record the registered sources produce.
pub fn all_kinds() -> impl Iterator<Item = SourceKind> {
    REGISTRY.iter().flat_map(|s| s.kinds.iter().copied())
}

/// The kinds a route can match: all but direct requests (requests already) and Connect's
/// contact events (heard by the lifecycle, never routed).
pub fn routable_kinds() -> impl Iterator<Item = SourceKind> {
    all_kinds().filter(|k| *k != direct::KIND && *k != contact_event::KIND)
}

/// The kinds a `when.source` name selects: a kind's own name, or `webhook` for every HTTP kind.
pub fn kinds_named(name: &str) -> Option<Vec<SourceKind>> {
    let kinds: Vec<SourceKind> = all_kinds()
        .filter(|k| k.as_str() == name || (name == "webhook" && k.is_webhook()))
        .collect();
    (!kinds.is_empty()).then_some(kinds)
}

/// What opening a payload needs besides the payload.
#[derive(Clone, Copy)]
pub struct OpenContext<'a> {
    /// The moment checks that depend on time are made for: now, or when a queued payload was
    /// queued.
    pub now: std::time::SystemTime,
    pub limits: EnvelopeLimits,
    /// Who may call a webhook; checked before its body is read.
    pub auth: &'a WebhookAuth,
    /// The function's envelope key: reads what it queued itself (see `queue`).
    pub envelope: Option<&'a crate::queue::EnvelopeKeys>,
    /// The payload comes from an envelope the function signed: it was checked when it came
    /// in, and its webhook signature is not checked again.
    pub verified: bool,
    /// The payload comes from an unsigned envelope (queued before the function had its key, or
    /// written by a producer): what it says of its caller is nobody's word.
    pub unsigned: bool,
}

/// A payload, recognised.
#[derive(Debug)]
pub struct Envelope {
    pub kind: SourceKind,
    /// Records of one `order_key` must be handled in order (a FIFO queue's message groups).
    pub fifo: bool,
    pub records: Vec<Result<Record, RecordError>>,
}

/// A record that could not be read, with the id needed to report it (SQS batch item failure).
#[derive(Debug)]
pub struct RecordError {
    pub id: String,
    pub error: BridgeError,
    /// As `Record::order_key`: a failed record still holds back the later ones of its key.
    pub order_key: Option<String>,
}

/// Limits applied while reading a payload.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeLimits {
    /// Largest webhook body accepted, after base64 decoding.
    pub max_body_bytes: usize,
}

impl Default for EnvelopeLimits {
    fn default() -> Self {
        EnvelopeLimits {
            max_body_bytes: 256 * 1024,
        }
    }
}

const EXPECTED: &str =
    "expected an EventBridge event, an SQS, SNS, S3, Kinesis or DynamoDB Streams event (Records, \
     or a bare array of them from EventBridge Pipes), \
     an API Gateway REST/HTTP API, function URL or Application Load Balancer request, an \
     Amazon Connect contact flow event, or a \
     StartTaskContact request in the shape of \
     `aws connect start-task-contact --generate-cli-skeleton`";

/// Recognises the payload and reads its records. Fails as a whole only when the payload's shape
/// is unknown or its frame is broken; a bad record inside a good batch fails alone.
///
/// Takes the payload by value: each record keeps its part of it as `event` without a copy.
///
/// A webhook's caller is checked (`auth`) before its body is decoded as text or parsed: an
/// unauthenticated request learns nothing about its body. Only the size limit comes first
/// (413), as it needs no parsing.
pub fn open(
    payload: Value,
    limits: EnvelopeLimits,
    auth: &WebhookAuth,
    envelope: Option<&crate::queue::EnvelopeKeys>,
) -> Result<Envelope, BridgeError> {
    // EventBridge Pipes sends its source's records (SQS, Kinesis, DynamoDB Streams) as a bare
    // array, each in the shape the source's event source mapping uses, and takes the same
    // partial batch answer: read as that source's batch.
    let payload = match payload {
        Value::Array(items) if !items.is_empty() => Value::Object(Map::from_iter([(
            "Records".to_string(),
            Value::Array(items),
        )])),
        other => other,
    };
    let Value::Object(obj) = &payload else {
        return Err(BridgeError::UnrecognisedPayload(format!(
            "{EXPECTED}; got a JSON {}",
            json_type(&payload)
        )));
    };
    if let Some(source) = REGISTRY.iter().find(|s| (s.recognise)(obj)) {
        let now = std::time::SystemTime::now();
        let ctx = OpenContext {
            now,
            limits,
            auth,
            envelope,
            verified: false,
            unsigned: false,
        };
        return (source.open)(payload, &ctx);
    }
    Err(unrecognised(obj))
}

/// An answer given before any record is handled: Slack's URL verification handshake, for a
/// request checked under the `slack` preset (even when webhooks are queued).
pub fn answer_at_once(auth: &WebhookAuth, envelope: &Envelope) -> Option<Value> {
    webhook::at_once(auth, envelope)
}

/// The answer a sender's preset gets instead of `respond`'s, where they differ: a delivery
/// that can never become a task is answered 200 (recorded in its outcome's log line), so the
/// sender neither retries it for days nor disables the endpoint; every other answer is
/// `respond`'s (401, 2xx, and 5xx/429 where a retry can help).
pub fn answer_for_sender(
    auth: &WebhookAuth,
    kind: SourceKind,
    outcomes: &[Outcome],
) -> Option<Value> {
    webhook::for_sender(auth, kind, outcomes)
}

/// The answer the record's source expects.
pub fn respond(kind: SourceKind, outcomes: Vec<Outcome>) -> Result<Value, BridgeError> {
    let source = REGISTRY
        .iter()
        .find(|s| s.kinds.contains(&kind))
        .expect("every kind belongs to a registered source");
    (source.respond)(kind, outcomes)
}

fn unrecognised(obj: &Map<String, Value>) -> BridgeError {
    if let Some(records) = obj.get("Records") {
        let Some(items) = records.as_array() else {
            return BridgeError::InvalidEvent("Records is not an array".into());
        };
        let Some(first) = items.first() else {
            return BridgeError::InvalidEvent("Records is empty".into());
        };
        // Named only when it has the shape of an AWS event source: the text is the caller's.
        let source = records_source(first);
        let source = if source.is_empty()
            || source.len() <= 64
                && source.strip_prefix("aws:").is_some_and(|s| {
                    s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                }) {
            source.to_string()
        } else {
            "(not an AWS source)".to_string()
        };
        return BridgeError::UnrecognisedPayload(format!(
            "Records with eventSource '{source}' are not supported; {EXPECTED}"
        ));
    }
    // The keys are the caller's text (they may be data): counted, not quoted.
    BridgeError::UnrecognisedPayload(format!(
        "{EXPECTED}; got an object with {} keys, none of them a recognised event's",
        obj.len()
    ))
}

/// The `eventSource` (or SNS's `EventSource`) of a `Records` item.
fn records_source(item: &Value) -> &str {
    item.get("eventSource")
        .or_else(|| item.get("EventSource"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether the payload is a `Records` batch whose first item comes from `source`.
fn is_records_of(obj: &Map<String, Value>, source: &str) -> bool {
    obj.get("Records")
        .and_then(Value::as_array)
        .and_then(|items| items.first())
        .is_some_and(|first| records_source(first) == source)
}

/// The `Records` array of a payload `is_records_of` recognised.
fn take_records(payload: Value) -> Vec<Value> {
    match payload {
        Value::Object(mut obj) => match obj.remove("Records") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// An envelope of one record.
fn single(kind: SourceKind, record: Result<Record, BridgeError>) -> Envelope {
    Envelope {
        kind,
        fifo: false,
        records: vec![record.map_err(|error| RecordError {
            id: String::new(),
            error,
            order_key: None,
        })],
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn parse<'a, T: Deserialize<'a>>(value: &'a Value, what: &str) -> Result<T, BridgeError> {
    T::deserialize(value).map_err(|e| {
        BridgeError::InvalidEvent(format!(
            "{what}: {}",
            crate::error::without_data(&e.to_string())
        ))
    })
}

/// The answer of sources read by an event source mapping (SQS, Kinesis, DynamoDB Streams): a
/// partial batch response listing every failed record by its id (messageId, sequence number),
/// permanent or transient, so it is retried or reaches the DLQ / on-failure destination.
fn batch_answer(_kind: SourceKind, outcomes: Vec<Outcome>) -> Result<Value, BridgeError> {
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    response.batch_item_failures = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| {
            let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
            failure.item_identifier = o.record_id.clone();
            failure
        })
        .collect();
    Ok(serde_json::to_value(response).expect("a batch response serialises"))
}

/// A stream's records (Kinesis, DynamoDB Streams): each read by `read` into its record and the
/// id a batch item failure names it by (the sequence number). A record without one cannot be
/// reported: the frame is broken, and the whole batch is retried.
fn stream_envelope(
    kind: SourceKind,
    items: Vec<Value>,
    sequence_pointer: &str,
    key_of: fn(&Value) -> Option<String>,
    read: fn(Value) -> Result<Record, BridgeError>,
) -> Result<Envelope, BridgeError> {
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Some(id) = item
            .pointer(sequence_pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
        else {
            return Err(BridgeError::InvalidEvent(format!(
                "{} record {i} has no sequence number",
                kind.as_str()
            )));
        };
        // The key is read from the record as sent, so a record that fails to read still holds
        // back the later records of its key.
        let key = key_of(&item);
        records.push(
            read(item)
                .map(|mut r| {
                    r.id = id.clone();
                    r.order_key = key.clone();
                    r
                })
                .map_err(|error| RecordError {
                    id,
                    error,
                    order_key: key,
                }),
        );
    }
    Ok(Envelope {
        kind,
        fifo: true,
        records,
    })
}

/// The answer of sources invoked asynchronously (EventBridge, SNS, direct): the ContactId and
/// ClientToken, or an error, so Lambda's async retries and on-failure destination take over.
fn async_answer(_kind: SourceKind, outcomes: Vec<Outcome>) -> Result<Value, BridgeError> {
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let done = outcome.result?;
        results.push(match (done.did, done.contact_id) {
            (Did::Queued | Did::Held, _) => {
                serde_json::json!({"Queued": true, "ClientToken": done.client_token})
            }
            (Did::Started, Some(contact_id)) => {
                serde_json::json!({"ContactId": contact_id, "ClientToken": done.client_token})
            }
            (did, contact_id) => serde_json::json!({
                "Outcome": did.as_str(), "ContactId": contact_id, "ClientToken": done.client_token
            }),
        });
    }
    Ok(match results.len() {
        1 => results.remove(0),
        _ => serde_json::json!({ "Results": results }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Identity;
    use serde_json::json;

    fn open_default(v: Value) -> Result<Envelope, BridgeError> {
        open(v, EnvelopeLimits::default(), &WebhookAuth::None, None)
    }

    fn only_err(env: Envelope) -> BridgeError {
        env.records.into_iter().next().unwrap().unwrap_err().error
    }

    #[test]
    fn records_without_an_id_are_refused_never_given_a_shared_one() {
        let eb = |id: Value| json!({"version": "0", "id": id, "detail-type": "T", "source": "s", "detail": {}});
        for id in [json!(""), json!("  "), Value::Null] {
            let err = only_err(open_default(eb(id)).unwrap());
            assert!(err.to_string().contains("id is missing or empty"), "{err}");
        }
        let sns = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn", "Sns": {"Type": "Notification", "MessageId": "",
            "TopicArn": "arn:aws:sns:eu-west-1:1:t", "Message": "m", "Timestamp": "2026-11-24T10:00:00.000Z",
            "SignatureVersion": "1", "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": "",
            "MessageAttributes": {}}}]});
        let err = only_err(open_default(sns).unwrap());
        assert!(err.to_string().contains("MessageId"), "{err}");
        let sqs = json!({"Records": [{"messageId": "", "body": "x", "eventSource": "aws:sqs"}]});
        assert!(open_default(sqs).is_err());
    }

    #[test]
    fn a_standard_queue_with_message_groups_is_not_ordered() {
        let env = open_default(json!({"Records": [{
            "messageId": "m-1", "receiptHandle": "h", "body": "x",
            "attributes": {"MessageGroupId": "g"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:fair"
        }]}))
        .unwrap();
        assert!(!env.fifo);
        assert_eq!(only(env).order_key, None);
    }

    fn only(env: Envelope) -> Record {
        assert_eq!(env.records.len(), 1);
        env.records.into_iter().next().unwrap().unwrap()
    }

    #[test]
    fn eventbridge_event_is_one_record_with_its_id() {
        let env = open_default(json!({
            "version": "0", "id": "ev-1", "detail-type": "OrderFailed", "source": "shop.orders",
            "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": {"orderId": "o-9"}
        }))
        .unwrap();
        assert_eq!(env.kind, eventbridge::KIND);
        let r = only(env);
        assert_eq!(r.identity, Identity::Service("ev-1".into()));
        assert_eq!(r.content().unwrap().body["orderId"], "o-9");
        assert_eq!(
            r.content().unwrap().meta.to_json()["detail_type"],
            "OrderFailed"
        );
        assert_eq!(
            r.content().unwrap().meta.to_json()["time"],
            "2026-11-24T10:00:00Z"
        );
    }

    /// An EventBridge or SNS id inside an SQS message is the sender's word: two different
    /// messages with one id are two events (they once made one task); the same event delivered
    /// directly and through the queue is one.
    #[test]
    fn an_aws_id_in_a_message_is_not_an_identity_alone() {
        let event = |detail: Value| {
            json!({
                "version": "0", "id": "ev-1", "detail-type": "OrderFailed", "source": "shop",
                "account": "123456789012", "time": "2026-12-02T10:00:00Z", "region": "eu-west-1",
                "resources": [], "detail": detail
            })
        };
        let notification = |message: &str| {
            json!({
                "Type": "Notification", "MessageId": "n-1", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
                "Subject": null, "Message": message, "Timestamp": "2026-12-02T10:00:00.000Z",
                "SignatureVersion": "1", "Signature": "x", "SigningCertURL": "https://x",
                "UnsubscribeURL": "https://x"
            })
        };
        let queued = |body: &Value, id: &str| {
            only(
                open_default(json!({"Records": [{
                    "messageId": id, "receiptHandle": "h", "body": body.to_string(),
                    "attributes": {"SentTimestamp": "1"}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:q"
                }]}))
                .unwrap(),
            )
            .identity
        };
        let (a, b) = (
            event(json!({"orderId": "o-1"})),
            event(json!({"orderId": "o-2"})),
        );
        assert_ne!(queued(&a, "m-1"), queued(&b, "m-2"));
        assert_eq!(queued(&a, "m-1"), queued(&a, "m-3"));
        assert_eq!(
            queued(&a, "m-1"),
            only(open_default(a.clone()).unwrap()).identity
        );
        let (x, y) = (notification("{\"a\":1}"), notification("{\"a\":2}"));
        assert_ne!(queued(&x, "m-4"), queued(&y, "m-5"));
        let direct = json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:eu-west-1:1:t:s",
            "Sns": {
                "Type": "Notification", "MessageId": "n-1", "TopicArn": "arn:aws:sns:eu-west-1:1:t",
                "Subject": null, "Message": "{\"a\":1}", "Timestamp": "2026-12-02T10:00:00.000Z",
                "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x",
                "UnsubscribeUrl": "https://x", "MessageAttributes": {}
            }
        }]});
        assert_eq!(
            queued(&x, "m-4"),
            only(open_default(direct).unwrap()).identity
        );
    }

    #[test]
    fn sqs_fifo_identity_is_the_message_id_never_the_deduplication_id() {
        let env = open_default(json!({"Records": [{
            "messageId": "m-1", "receiptHandle": "h", "body": "{\"a\":1}",
            "attributes": {"MessageGroupId": "g", "MessageDeduplicationId": "d-1"},
            "messageAttributes": {"team": {"stringValue": "billing", "dataType": "String"}},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:q.fifo"
        }]}))
        .unwrap();
        assert!(env.fifo);
        let r = only(env);
        assert_eq!(r.id, "m-1");
        assert_eq!(r.identity, Identity::Service("m-1".into()));
        assert_eq!(r.order_key.as_deref(), Some("g"));
        assert_eq!(r.content().unwrap().attributes["team"], "billing");
        assert_eq!(r.content().unwrap().meta.to_json()["queue_name"], "q.fifo");
    }

    #[test]
    fn sqs_record_without_message_id_fails_the_batch() {
        let err = open_default(json!({"Records": [{"body": "x", "eventSource": "aws:sqs"}]}))
            .unwrap_err();
        assert!(err.to_string().contains("messageId"), "{err}");
    }

    #[test]
    fn webhook_base64_body_is_decoded_and_idempotency_key_wins() {
        let env = open_default(json!({
            "version": "2.0", "routeKey": "POST /hook", "rawPath": "/hook",
            "headers": {"Idempotency-Key": "key-1", "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/hook"}, "requestId": "r-1",
                                "domainName": "abc.execute-api.eu-west-1.amazonaws.com", "timeEpoch": 0},
            "body": "eyJhIjoxfQ==", "isBase64Encoded": true
        }))
        .unwrap();
        assert_eq!(env.kind, webhook::HTTP);
        let r = only(env);
        assert_eq!(r.content().unwrap().body, json!({"a": 1}));
        assert_eq!(
            r.identity,
            Identity::Caller {
                namespace: "webhook-key",
                value: "key-1".into()
            }
        );
        assert_eq!(
            r.content().unwrap().headers["content-type"],
            "application/json"
        );
    }

    #[test]
    fn webhook_without_key_hashes_method_path_and_body() {
        let event = |body: &str| {
            json!({
                "version": "2.0", "rawPath": "/h", "headers": {},
                "requestContext": {"http": {"method": "POST", "path": "/h"},
                                    "domainName": "x.lambda-url.eu-west-1.on.aws", "timeEpoch": 0},
                "body": body, "isBase64Encoded": false
            })
        };
        let a = only(open_default(event("one")).unwrap());
        let b = only(open_default(event("two")).unwrap());
        assert_eq!(a.kind, webhook::FUNCTION_URL);
        assert_ne!(a.identity, b.identity);
        assert_eq!(
            a.identity,
            only(open_default(event("one")).unwrap()).identity
        );
    }

    #[test]
    fn oversized_and_broken_bodies_are_rejected() {
        let limits = EnvelopeLimits { max_body_bytes: 4 };
        let req = json!({"httpMethod": "POST", "path": "/", "headers": {}, "requestContext": {"httpMethod": "POST"},
                          "body": "0123456789", "isBase64Encoded": false});
        let env = open(req, limits, &WebhookAuth::None, None).unwrap();
        let err = env.records.into_iter().next().unwrap().unwrap_err().error;
        assert!(matches!(err, BridgeError::BodyTooLarge { .. }), "{err}");

        let bad = json!({"httpMethod": "POST", "path": "/", "headers": {}, "requestContext": {"httpMethod": "POST"},
                          "body": "!!!", "isBase64Encoded": true});
        let env = open(bad, EnvelopeLimits::default(), &WebhookAuth::None, None).unwrap();
        let err = env.records.into_iter().next().unwrap().unwrap_err().error;
        assert!(err.to_string().contains("base64"), "{err}");
    }

    #[test]
    fn direct_payload_uses_its_own_token_or_a_canonical_hash() {
        let r = only(open_default(json!({"Name": "n", "ClientToken": "tok"})).unwrap());
        assert_eq!(r.identity.value(), "tok");
        let err = only_err(open_default(json!({"Name": "n", "ClientToken": "ctb1-abc"})).unwrap());
        assert!(err.to_string().contains("reserved"), "{err}");
        let a = only(open_default(json!({"Name": "n", "Description": "d"})).unwrap());
        let b = only(open_default(json!({"Description": "d", "Name": "n"})).unwrap());
        assert_eq!(a.identity, b.identity);
        assert!(matches!(a.work, crate::record::Work::Direct { .. }));
    }

    #[test]
    fn unknown_shapes_name_what_was_expected() {
        let err = open_default(json!({"foo": 1})).unwrap_err().to_string();
        assert!(
            err.contains("EventBridge") && !err.contains("foo") && err.contains("1 keys"),
            "{err}"
        );
        let err = open_default(json!([])).unwrap_err().to_string();
        assert!(err.contains("array"), "{err}");
        let err = open_default(json!([1, 2])).unwrap_err().to_string();
        assert!(err.contains("eventSource ''"), "{err}");
        let err = open_default(json!({"Records": [{"eventSource": "aws:kafka"}]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws:kafka"), "{err}");
    }

    /// aws_lambda_events' QueryMap iterator panics on a parameter whose value is an empty list
    /// (`make fuzz` found it); the query is read from the payload instead.
    #[test]
    fn a_query_parameter_with_no_values_is_left_out_not_a_panic() {
        let mut req = json!({
            "version": "2.0", "rawPath": "/h", "headers": {},
            "queryStringParameters": {"empty": [], "many": ["a", "b"], "one": "x"},
            "requestContext": {"http": {"method": "POST", "path": "/h"},
                                "domainName": "x.execute-api.eu-west-1.amazonaws.com", "timeEpoch": 0},
            "body": "hi", "isBase64Encoded": false
        });
        let r = only(open_default(req.clone()).unwrap());
        assert_eq!(
            r.content().unwrap().meta.to_json()["query"],
            json!({"many": "a", "one": "x"})
        );
        req["httpMethod"] = json!("POST");
        req["requestContext"]["httpMethod"] = json!("POST");
        req.as_object_mut().unwrap().remove("version");
        let r = only(open_default(req).unwrap());
        assert_eq!(
            r.content().unwrap().meta.to_json()["query"],
            json!({"many": "a", "one": "x"})
        );
    }

    #[test]
    fn direct_payload_with_a_typo_names_the_field() {
        let env = open_default(json!({"Name": "n", "Descripton": "d"})).unwrap();
        let err = env.records.into_iter().next().unwrap().unwrap_err().error;
        assert!(err.to_string().contains("Descripton"), "{err}");
    }

    #[test]
    fn source_selectors() {
        assert_eq!(kinds_named("webhook").unwrap().len(), 4);
        assert_eq!(kinds_named("sqs").unwrap(), vec![sqs::KIND]);
        assert!(kinds_named("kafka").is_none());
        assert!(routable_kinds().all(|k| k != direct::KIND));
        let names: Vec<&str> = all_kinds().map(SourceKind::as_str).collect();
        let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "a kind's name is one source's: {names:?}"
        );
    }
}

#[cfg(test)]
mod answers {
    //! Each source's answer to outcomes (what `response::Outcome` becomes).
    use super::*;
    use crate::plan::Did;
    use crate::response::Done;
    use serde_json::json;

    fn ok(id: &str) -> Outcome {
        Outcome {
            record_id: id.into(),
            result: Ok(Done {
                contact_id: Some(format!("c-{id}")),
                client_token: format!("t-{id}"),
                route: "r".into(),
                did: Did::Started,
            }),
        }
    }

    fn failed(id: &str, err: BridgeError) -> Outcome {
        Outcome {
            record_id: id.into(),
            result: Err(err),
        }
    }

    fn throttled() -> BridgeError {
        BridgeError::Connect {
            code: "ThrottlingException".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn sqs_lists_every_failure_permanent_or_transient() {
        let v = respond(
            SourceKind::new("sqs"),
            vec![
                ok("a"),
                failed("b", throttled()),
                failed("c", BridgeError::validation("Name", "x")),
            ],
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]})
        );
    }

    #[test]
    fn async_sources_return_the_contact_or_an_error() {
        let v = respond(SourceKind::new("eventbridge"), vec![ok("a")]).unwrap();
        assert_eq!(v, json!({"ContactId": "c-a", "ClientToken": "t-a"}));
        let err = respond(SourceKind::new("sns"), vec![failed("a", throttled())]).unwrap_err();
        assert!(err.is_throttle());
    }

    fn webhook(kind: SourceKind, err: BridgeError) -> Value {
        respond(kind, vec![failed("x", err)]).unwrap()
    }

    #[test]
    fn webhook_statuses() {
        let v = respond(SourceKind::http("apigw_http"), vec![ok("a")]).unwrap();
        assert_eq!(v["statusCode"], 201);
        let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"contactId": "c-a", "clientToken": "t-a"}));

        let v = webhook(
            SourceKind::http("apigw_rest"),
            BridgeError::validation("Name", "is required"),
        );
        assert_eq!(v["statusCode"], 400);
        assert!(
            v["body"].as_str().unwrap().contains("Name: is required"),
            "{v}"
        );

        let v = webhook(SourceKind::http("function_url"), throttled());
        assert_eq!(v["statusCode"], 429);
        assert_eq!(v["headers"]["retry-after"], "2");

        let v = webhook(
            SourceKind::http("apigw_http"),
            BridgeError::BodyTooLarge { size: 10, limit: 4 },
        );
        assert_eq!(v["statusCode"], 413);

        let v = webhook(
            SourceKind::http("apigw_http"),
            BridgeError::DeadlineExceeded,
        );
        assert_eq!(v["statusCode"], 503);
        assert_eq!(v["headers"]["retry-after"], "5");

        let internal = BridgeError::Connect {
            code: "InternalServiceException".into(),
            message: "stack trace at line 3".into(),
        };
        let v = webhook(SourceKind::http("apigw_http"), internal);
        assert_eq!(v["statusCode"], 502);
        assert!(!v["body"].as_str().unwrap().contains("stack trace"));

        let missing = BridgeError::Connect {
            code: "ResourceNotFoundException".into(),
            message: "flow arn:aws:connect:... not found".into(),
        };
        let v = webhook(SourceKind::http("apigw_http"), missing);
        assert_eq!(v["statusCode"], 500);
        assert!(!v["body"].as_str().unwrap().contains("arn:"));
    }
}
