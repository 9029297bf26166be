//! Recognises what invoked the function and splits the payload into records.
//!
//! Shapes come from `aws_lambda_events`; this module only decides which shape a payload has
//! (Lambda gives no out-of-band hint) and reduces each to `Record`s.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sns::SnsRecord;
use aws_lambda_events::sqs::SqsMessage;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::BridgeError;
use crate::record::{canonical_json, digest_parts, parse_body, Body, Record, SourceKind};
use crate::task::{TaskRequest, MEMBER_NAMES};
use crate::token::{is_reserved, Identity};
use crate::webhook_auth::{WebhookAuth, WebhookRequest};

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
    "expected an EventBridge event, an SQS or SNS event (Records), an API Gateway \
     REST/HTTP API or function URL request, or a StartTaskContact request in the shape of \
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
) -> Result<Envelope, BridgeError> {
    let mut obj = match payload {
        Value::Object(obj) => obj,
        other => {
            return Err(BridgeError::UnrecognisedPayload(format!(
                "{EXPECTED}; got a JSON {}",
                json_type(&other)
            )))
        }
    };
    if let Some(records) = obj.remove("Records") {
        return open_records(records);
    }
    let payload = Value::Object(obj);
    let obj = payload.as_object().expect("an object, just built");
    if obj.contains_key("detail-type") && obj.contains_key("source") {
        return Ok(single(SourceKind::EventBridge, eventbridge(payload)));
    }
    if obj.contains_key("httpMethod") && obj.contains_key("requestContext") {
        return Ok(single(
            SourceKind::ApiGatewayRest,
            rest_request(payload, limits, auth),
        ));
    }
    if obj.get("version").and_then(Value::as_str) == Some("2.0")
        && payload.pointer("/requestContext/http").is_some()
    {
        let is_function_url = payload
            .pointer("/requestContext/domainName")
            .and_then(Value::as_str)
            .is_some_and(|d| d.contains(".lambda-url."));
        return Ok(if is_function_url {
            single(SourceKind::FunctionUrl, function_url(payload, limits, auth))
        } else {
            single(
                SourceKind::ApiGatewayHttp,
                http_request(payload, limits, auth),
            )
        });
    }
    if obj.keys().any(|k| MEMBER_NAMES.contains(&k.as_str())) {
        return Ok(single(SourceKind::Direct, direct(payload)));
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(10).collect();
    keys.sort_unstable();
    Err(BridgeError::UnrecognisedPayload(format!(
        "{EXPECTED}; got an object with keys [{}]",
        keys.join(", ")
    )))
}

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

fn open_records(records: Value) -> Result<Envelope, BridgeError> {
    let Value::Array(items) = records else {
        return Err(BridgeError::InvalidEvent("Records is not an array".into()));
    };
    let first = items
        .first()
        .ok_or_else(|| BridgeError::InvalidEvent("Records is empty".into()))?;
    let source = first
        .get("eventSource")
        .or_else(|| first.get("EventSource"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match source {
        "aws:sqs" => {
            // A FIFO batch keeps order within each message group. Only a FIFO queue's ARN says
            // so: a standard queue's messages may carry a MessageGroupId too (fair queues), and
            // they are not ordered.
            let fifo = first
                .get("eventSourceARN")
                .and_then(Value::as_str)
                .is_some_and(|arn| arn.ends_with(".fifo"));
            let records = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let id = item
                        .get("messageId")
                        .and_then(Value::as_str)
                        .filter(|id| !id.is_empty())
                        .map(str::to_string);
                    let group = item
                        .pointer("/attributes/MessageGroupId")
                        .and_then(Value::as_str)
                        .filter(|_| fifo)
                        .map(str::to_string);
                    match id {
                        Some(id) => sqs_message(item)
                            .map(|mut record| {
                                record.order_key = group.clone();
                                record
                            })
                            .map_err(|error| RecordError {
                                id: id.clone(),
                                error,
                                order_key: group,
                            }),
                        // Without a messageId (or with an empty one) the record cannot be reported
                        // as a batch item failure, nor told from another: the frame is broken and
                        // the whole batch must be retried.
                        None => Err(RecordError {
                            id: String::new(),
                            order_key: None,
                            error: BridgeError::InvalidEvent(format!(
                                "SQS record {i} has no messageId (missing or empty)"
                            )),
                        }),
                    }
                })
                .collect::<Vec<_>>();
            if let Some(Err(bad)) = records
                .iter()
                .find(|r| matches!(r, Err(e) if e.id.is_empty()))
            {
                return Err(BridgeError::InvalidEvent(bad.error.to_string()));
            }
            Ok(Envelope {
                kind: SourceKind::Sqs,
                fifo,
                records,
            })
        }
        "aws:sns" => Ok(Envelope {
            kind: SourceKind::Sns,
            fifo: false,
            records: items
                .into_iter()
                .map(|item| {
                    let id = item
                        .pointer("/Sns/MessageId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    sns_record(item).map_err(|error| RecordError {
                        id,
                        error,
                        order_key: None,
                    })
                })
                .collect(),
        }),
        other => Err(BridgeError::UnrecognisedPayload(format!(
            "Records with eventSource '{other}' are not supported; {EXPECTED}"
        ))),
    }
}

fn parse<'a, T: Deserialize<'a>>(value: &'a Value, what: &str) -> Result<T, BridgeError> {
    T::deserialize(value).map_err(|e| BridgeError::InvalidEvent(format!("{what}: {e}")))
}

fn eventbridge(payload: Value) -> Result<Record, BridgeError> {
    let event: EventBridgeEvent<Value> = parse(&payload, "EventBridge event")?;
    // Every event EventBridge delivers has an id. One without (typed by hand, invoked directly)
    // has no identity to tell its redelivery from another event: refused, never guessed.
    let id = event
        .id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| {
            BridgeError::InvalidEvent("EventBridge event: id is missing or empty".into())
        })?;
    let mut meta = serde_json::Map::new();
    meta.insert("source".into(), json!(event.source));
    meta.insert("detail_type".into(), json!(event.detail_type));
    meta.insert("account".into(), json!(event.account));
    meta.insert("region".into(), json!(event.region));
    // The time as EventBridge wrote it, not as re-formatted by a date library.
    meta.insert(
        "time".into(),
        payload.get("time").cloned().unwrap_or(Value::Null),
    );
    meta.insert("resources".into(), json!(event.resources));
    Ok(Record {
        kind: SourceKind::EventBridge,
        identity: Identity::Service(id.clone()),
        id,
        body: Body::value(event.detail),
        raw_body: None,
        headers: BTreeMap::new(),
        attributes: BTreeMap::new(),
        meta,
        event: payload,
        direct: None,
        order_key: None,
    })
}

fn sqs_message(item: Value) -> Result<Record, BridgeError> {
    let msg: SqsMessage = parse(&item, "SQS record")?;
    let id = msg.message_id.clone().unwrap_or_default();
    let attributes = msg
        .message_attributes
        .iter()
        .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
        .collect();
    // The messageId, which SQS keeps across redeliveries, FIFO queues included. Never the
    // MessageDeduplicationId: SQS holds it unique for five minutes only (and per group with
    // per-group deduplication), so two different messages can share it.
    let identity = Identity::Service(id.clone());
    let queue_arn = msg.event_source_arn.clone().unwrap_or_default();
    let mut meta = serde_json::Map::new();
    meta.insert(
        "queue_name".into(),
        json!(queue_arn.rsplit(':').next().unwrap_or_default()),
    );
    meta.insert("queue_arn".into(), json!(queue_arn));
    meta.insert("fifo".into(), json!(queue_arn.ends_with(".fifo")));
    for (key, name) in [
        ("MessageGroupId", "message_group_id"),
        ("SentTimestamp", "sent_timestamp"),
        ("ApproximateReceiveCount", "receive_count"),
    ] {
        if let Some(v) = msg.attributes.get(key) {
            meta.insert(name.into(), json!(v));
        }
    }
    Ok(Record {
        kind: SourceKind::Sqs,
        id,
        identity,
        body: Body::text(msg.body.unwrap_or_default()),
        raw_body: None,
        headers: BTreeMap::new(),
        attributes,
        meta,
        event: item,
        direct: None,
        order_key: None,
    })
}

fn sns_record(item: Value) -> Result<Record, BridgeError> {
    let rec: SnsRecord = parse(&item, "SNS record")?;
    let sns = rec.sns;
    if sns.message_id.trim().is_empty() {
        return Err(BridgeError::InvalidEvent(
            "SNS record: MessageId is missing or empty".into(),
        ));
    }
    let attributes = sns
        .message_attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let mut meta = serde_json::Map::new();
    meta.insert("topic_arn".into(), json!(sns.topic_arn));
    meta.insert("subject".into(), json!(sns.subject));
    meta.insert(
        "timestamp".into(),
        item.pointer("/Sns/Timestamp")
            .cloned()
            .unwrap_or(Value::Null),
    );
    Ok(Record {
        kind: SourceKind::Sns,
        id: sns.message_id.clone(),
        identity: Identity::Service(sns.message_id),
        body: Body::text(sns.message),
        raw_body: None,
        headers: BTreeMap::new(),
        attributes,
        meta,
        event: item,
        direct: None,
        order_key: None,
    })
}

/// The parts of an HTTP request that all three webhook shapes share.
struct HttpParts<'a> {
    kind: SourceKind,
    method: String,
    path: String,
    headers: &'a aws_lambda_events::http::HeaderMap,
    query: Value,
    body: Option<&'a str>,
    base64: bool,
    request_id: Option<String>,
}

fn rest_request(
    payload: Value,
    limits: EnvelopeLimits,
    auth: &WebhookAuth,
) -> Result<Record, BridgeError> {
    let req: ApiGatewayProxyRequest = parse(&payload, "API Gateway REST request")?;
    webhook(
        HttpParts {
            kind: SourceKind::ApiGatewayRest,
            method: req.http_method.to_string(),
            path: req.path.clone().unwrap_or_default(),
            headers: &req.headers,
            query: query(&payload),
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            request_id: req.request_context.request_id.clone(),
        },
        payload,
        limits,
        auth,
    )
}

fn http_request(
    payload: Value,
    limits: EnvelopeLimits,
    auth: &WebhookAuth,
) -> Result<Record, BridgeError> {
    let req: ApiGatewayV2httpRequest = parse(&payload, "API Gateway HTTP API request")?;
    webhook(
        HttpParts {
            kind: SourceKind::ApiGatewayHttp,
            method: req.request_context.http.method.to_string(),
            path: req
                .request_context
                .http
                .path
                .clone()
                .or(req.raw_path.clone())
                .unwrap_or_default(),
            headers: &req.headers,
            query: query(&payload),
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            request_id: req.request_context.request_id.clone(),
        },
        payload,
        limits,
        auth,
    )
}

fn function_url(
    payload: Value,
    limits: EnvelopeLimits,
    auth: &WebhookAuth,
) -> Result<Record, BridgeError> {
    let req: LambdaFunctionUrlRequest = parse(&payload, "function URL request")?;
    webhook(
        HttpParts {
            kind: SourceKind::FunctionUrl,
            method: req.request_context.http.method.clone().unwrap_or_default(),
            path: req
                .request_context
                .http
                .path
                .clone()
                .or(req.raw_path.clone())
                .unwrap_or_default(),
            headers: &req.headers,
            query: query(&payload),
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            request_id: req.request_context.request_id.clone(),
        },
        payload,
        limits,
        auth,
    )
}

/// The query parameters as templates see them (`meta.query`): name → first value. Read from the
/// payload rather than through aws_lambda_events' QueryMap, whose iterator indexes the first
/// value without checking and panics on a parameter with an empty list (found by `make fuzz`).
fn query(payload: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(Value::Object(params)) = payload.get("queryStringParameters") {
        for (name, value) in params {
            let first = match value {
                Value::String(s) => Some(s.as_str()),
                Value::Array(items) => items.iter().find_map(Value::as_str),
                _ => None,
            };
            if let Some(v) = first {
                out.insert(name.clone(), Value::String(v.to_string()));
            }
        }
    }
    Value::Object(out)
}

fn webhook(
    parts: HttpParts<'_>,
    payload: Value,
    limits: EnvelopeLimits,
    auth: &WebhookAuth,
) -> Result<Record, BridgeError> {
    let raw = parts.body.unwrap_or_default();
    // Cheap early check: a base64 body decodes to at most 3/4 of its length.
    let bound = if parts.base64 {
        raw.len() / 4 * 3
    } else {
        raw.len()
    };
    if bound > limits.max_body_bytes {
        return Err(BridgeError::BodyTooLarge {
            size: bound,
            limit: limits.max_body_bytes,
        });
    }
    let decoded = if parts.base64 {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| BridgeError::InvalidEvent("body is not valid base64".into()))
    } else {
        Ok(raw.as_bytes().to_vec())
    };

    let mut headers = BTreeMap::new();
    for (name, value) in parts.headers {
        if let Ok(v) = value.to_str() {
            headers
                .entry(name.as_str().to_ascii_lowercase())
                .or_insert_with(|| v.to_string());
        }
    }
    // Who is calling, before anything is said about what they sent. A body that is not even
    // base64 is checked as sent: no signature covers it, so an unsigned one gets 401, not 400.
    auth.check(
        &WebhookRequest {
            headers: &headers,
            body: decoded.as_deref().unwrap_or(raw.as_bytes()),
            request_context: payload.get("requestContext"),
        },
        std::time::SystemTime::now(),
    )?;
    let text = String::from_utf8(decoded?)
        .map_err(|_| BridgeError::InvalidEvent("body is not valid UTF-8".into()))?;

    // A sender that says JSON must send JSON: a broken body is its error to fix (400), not a
    // text to turn into a task.
    let says_json = headers
        .get("content-type")
        .filter(|ct| ct.to_ascii_lowercase().contains("json"));
    let body = match says_json {
        Some(content_type) if !text.trim().is_empty() => {
            let parsed: Value = serde_json::from_str(&text).map_err(|_| {
                BridgeError::InvalidEvent(format!(
                    "body is not valid JSON although Content-Type is {content_type}"
                ))
            })?;
            // As `parse_body` has it: a bare JSON scalar stays text.
            if parsed.is_object() || parsed.is_array() {
                parsed
            } else {
                Value::String(text.clone())
            }
        }
        _ => parse_body(&text),
    };
    // With signatures on, only the signed body may make the identity: a replay that changes a
    // header, the path or the method is the same event. Otherwise the caller's Idempotency-Key,
    // else a digest of method, path and body; both in namespaces of their own (see `token`).
    let identity = match (auth, headers.get("idempotency-key")) {
        (WebhookAuth::Signature(_), _) => Identity::Signed {
            namespace: "webhook-signed-body",
            value: digest_parts(&[text.as_bytes()]),
        },
        (_, Some(key)) if !key.trim().is_empty() => Identity::Caller {
            namespace: "webhook-key",
            value: key.clone(),
        },
        _ => Identity::Caller {
            namespace: "webhook-digest",
            value: digest_parts(&[
                parts.method.as_bytes(),
                parts.path.as_bytes(),
                text.as_bytes(),
            ]),
        },
    };
    let mut meta = serde_json::Map::new();
    meta.insert("method".into(), json!(parts.method));
    meta.insert("path".into(), json!(parts.path));
    meta.insert("query".into(), parts.query);
    Ok(Record {
        kind: parts.kind,
        id: parts
            .request_id
            .unwrap_or_else(|| identity.value().to_string()),
        identity,
        body: Body::value(body),
        raw_body: Some(text),
        headers,
        attributes: BTreeMap::new(),
        meta,
        event: payload,
        direct: None,
        order_key: None,
    })
}

fn direct(payload: Value) -> Result<Record, BridgeError> {
    let request = TaskRequest::deserialize(&payload)
        .map_err(|e| BridgeError::InvalidEvent(format!("StartTaskContact request: {e}")))?;
    let identity = match &request.client_token {
        Some(token) if is_reserved(token) => {
            return Err(BridgeError::InvalidEvent(
                "ClientToken: the prefixes ctb<N>- are reserved for the tokens this function derives from events".into(),
            ))
        }
        // Sent to Connect unchanged (see `prepare`); the identity only names the record.
        Some(token) => Identity::Caller {
            namespace: "direct-token",
            value: token.clone(),
        },
        None => Identity::Caller {
            namespace: "direct",
            value: digest_parts(&[canonical_json(&payload).as_bytes()]),
        },
    };
    Ok(Record {
        kind: SourceKind::Direct,
        id: identity.value().to_string(),
        identity,
        body: Body::value(Value::Null),
        raw_body: None,
        headers: BTreeMap::new(),
        attributes: BTreeMap::new(),
        meta: serde_json::Map::new(),
        event: payload,
        direct: Some(request),
        order_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_default(v: Value) -> Result<Envelope, BridgeError> {
        open(v, EnvelopeLimits::default(), &WebhookAuth::None)
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
        assert_eq!(env.kind, SourceKind::EventBridge);
        let r = only(env);
        assert_eq!(r.identity, Identity::Service("ev-1".into()));
        assert_eq!(r.body["orderId"], "o-9");
        assert_eq!(r.meta["detail_type"], "OrderFailed");
        assert_eq!(r.meta["time"], "2026-11-24T10:00:00Z");
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
        assert_eq!(r.attributes["team"], "billing");
        assert_eq!(r.meta["queue_name"], "q.fifo");
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
        assert_eq!(env.kind, SourceKind::ApiGatewayHttp);
        let r = only(env);
        assert_eq!(r.body, json!({"a": 1}));
        assert_eq!(
            r.identity,
            Identity::Caller {
                namespace: "webhook-key",
                value: "key-1".into()
            }
        );
        assert_eq!(r.headers["content-type"], "application/json");
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
        assert_eq!(a.kind, SourceKind::FunctionUrl);
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
        let env = open(req, limits, &WebhookAuth::None).unwrap();
        let err = env.records.into_iter().next().unwrap().unwrap_err().error;
        assert!(matches!(err, BridgeError::BodyTooLarge { .. }), "{err}");

        let bad = json!({"httpMethod": "POST", "path": "/", "headers": {}, "requestContext": {"httpMethod": "POST"},
                          "body": "!!!", "isBase64Encoded": true});
        let env = open(bad, EnvelopeLimits::default(), &WebhookAuth::None).unwrap();
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
        assert!(a.direct.is_some());
    }

    #[test]
    fn unknown_shapes_name_what_was_expected() {
        let err = open_default(json!({"foo": 1})).unwrap_err().to_string();
        assert!(
            err.contains("EventBridge") && err.contains("[foo]"),
            "{err}"
        );
        let err = open_default(json!([1, 2])).unwrap_err().to_string();
        assert!(err.contains("array"), "{err}");
        let err = open_default(json!({"Records": [{"eventSource": "aws:kinesis"}]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("aws:kinesis"), "{err}");
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
        assert_eq!(r.meta["query"], json!({"many": "a", "one": "x"}));
        req["httpMethod"] = json!("POST");
        req["requestContext"]["httpMethod"] = json!("POST");
        req.as_object_mut().unwrap().remove("version");
        let r = only(open_default(req).unwrap());
        assert_eq!(r.meta["query"], json!({"many": "a", "one": "x"}));
    }

    #[test]
    fn direct_payload_with_a_typo_names_the_field() {
        let env = open_default(json!({"Name": "n", "Descripton": "d"})).unwrap();
        let err = env.records.into_iter().next().unwrap().unwrap_err().error;
        assert!(err.to_string().contains("Descripton"), "{err}");
    }
}
