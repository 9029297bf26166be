//! Webhooks: API Gateway REST APIs (payload 1.0), HTTP APIs (2.0), function URLs and Application
//! Load Balancer targets. One record
//! per request; the caller is authenticated (`WEBHOOK_AUTH`) before the body is read; the
//! identity is the signed body under signatures, else the caller's Idempotency-Key or a digest of
//! the request (in namespaces of their own, see `token`). Answered with an HTTP response whose
//! status tells the caller whether to fix or retry.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::alb::{AlbTargetGroupRequest, AlbTargetGroupResponse};
use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as HttpBody;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{parse, single, Envelope, OpenContext, Source, Storage};
use crate::error::{BridgeError, Cause};
use crate::plan::Did;
use crate::record::{parse_body, within_budget, Body, Content, Record, SourceKind, SourceMeta};
use crate::response::Outcome;
use crate::senders::Scheme;
use crate::token::{digest_parts, Identity};
use crate::webhook_auth::{WebhookAuth, WebhookRequest};

/// API Gateway REST API (payload format 1.0).
pub const REST: SourceKind = SourceKind::http("apigw_rest");
/// API Gateway HTTP API (payload format 2.0).
pub const HTTP: SourceKind = SourceKind::http("apigw_http");
pub const FUNCTION_URL: SourceKind = SourceKind::http("function_url");
/// Application Load Balancer target group.
pub const ALB: SourceKind = SourceKind::http("alb");

pub const SOURCE: Source = Source {
    kinds: &[REST, HTTP, FUNCTION_URL, ALB],
    recognise,
    open,
    respond,
    storage: Storage::First,
    holdable: true,
    task_name: Some("{{ meta.method }} {{ meta.path }}"),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    let rest = obj.contains_key("httpMethod") && obj.contains_key("requestContext");
    let v2 = obj.get("version").and_then(Value::as_str) == Some("2.0")
        && obj
            .get("requestContext")
            .is_some_and(|c| c.get("http").is_some());
    rest || v2
}

fn open(payload: Value, ctx: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    // A request refused after its signature passed (a body that is not JSON, or not text) keeps
    // the request's id: under a sender's preset it is answered 200 "recorded", and its log line
    // is then the only trace of the delivery (an ALB request carries its trace id instead).
    let request_id = payload
        .pointer("/requestContext/requestId")
        .or_else(|| payload.pointer("/headers/x-amzn-trace-id"))
        .and_then(Value::as_str)
        .filter(|id| id.len() <= 256)
        .unwrap_or_default()
        .to_string();
    let one = |kind, record| {
        let mut envelope = single(kind, record);
        for failed in envelope.records.iter_mut().filter_map(|r| r.as_mut().err()) {
            if failed.id.is_empty() {
                failed.id.clone_from(&request_id);
            }
        }
        envelope
    };
    // An ALB request has `httpMethod` too: its `requestContext.elb` tells it from a REST API's.
    if payload.pointer("/requestContext/elb").is_some() {
        return Ok(one(ALB, alb_request(payload, ctx)));
    }
    if payload.get("httpMethod").is_some() {
        return Ok(one(REST, rest_request(payload, ctx)));
    }
    let is_function_url = payload
        .pointer("/requestContext/domainName")
        .and_then(Value::as_str)
        .is_some_and(|d| d.contains(".lambda-url."));
    Ok(if is_function_url {
        one(FUNCTION_URL, function_url(payload, ctx))
    } else {
        one(HTTP, http_request(payload, ctx))
    })
}

fn respond(kind: SourceKind, outcomes: Vec<Outcome>) -> Result<Value, BridgeError> {
    let outcome = outcomes.into_iter().next();
    let http = match outcome {
        Some(Outcome {
            result: Ok(done), ..
        }) => match (done.did, done.contact_id) {
            // On the task queue: accepted, the task follows at the pace Connect allows (or
            // when Connect's quota of active tasks frees up).
            (Did::Queued | Did::Held, _) => HttpAnswer {
                status: 202,
                body: json!({"queued": true, "clientToken": done.client_token}),
                retry_after: None,
            },
            (Did::Started, Some(contact_id)) => HttpAnswer {
                status: 201,
                body: json!({"contactId": contact_id, "clientToken": done.client_token}),
                retry_after: None,
            },
            (did, contact_id) => HttpAnswer {
                status: 200,
                body: json!({"outcome": did.as_str(), "contactId": contact_id, "clientToken": done.client_token}),
                retry_after: None,
            },
        },
        Some(Outcome {
            result: Err(err), ..
        }) => http_error(&err),
        None => http_error(&BridgeError::InvalidEvent("empty request".into())),
    };
    Ok(http.into_response(kind))
}

/// Slack's URL verification handshake, answered at once with its challenge (see
/// `sources::answer_at_once`). Only a request that passed the `slack` preset's check is a
/// record here: an unsigned one is a 401 and never reaches this.
pub(super) fn at_once(auth: &WebhookAuth, envelope: &Envelope) -> Option<Value> {
    let WebhookAuth::Signature(check) = auth else {
        return None;
    };
    if check.scheme() != Scheme::Slack || !envelope.kind.is_webhook() {
        return None;
    }
    let [Ok(record)] = envelope.records.as_slice() else {
        return None;
    };
    let challenge = crate::senders::slack_challenge(record.content()?.body.get())?;
    let answer = HttpAnswer {
        status: 200,
        body: json!({ "challenge": challenge }),
        retry_after: None,
    };
    Some(answer.into_response(envelope.kind))
}

/// Under a sender's preset, a delivery refused for its content (400: it can never become a
/// task, however often the sender retries) is answered 200 with what was wrong, so the sender
/// neither retries it for days nor counts the endpoint as failing; the outcome's log line (and
/// its metric) records it. Everything else keeps its answer: 401, 413, and 429/5xx, which a
/// retry can help.
pub(super) fn for_sender(
    auth: &WebhookAuth,
    kind: SourceKind,
    outcomes: &[Outcome],
) -> Option<Value> {
    let WebhookAuth::Signature(check) = auth else {
        return None;
    };
    if !check.scheme().is_preset() || !kind.is_webhook() {
        return None;
    }
    let [Outcome {
        result: Err(err),
        record_id,
    }] = outcomes
    else {
        return None;
    };
    // What this body says decides the refusal (its content, or the mapping's route and
    // templates over it: a missing part of its identity): the same answer on every retry.
    let for_its_content =
        err.cause() == Cause::CallersInput || matches!(err, BridgeError::Render { .. });
    if !for_its_content {
        return None;
    }
    tracing::warn!(
        record_id = %record_id,
        code = err.code(),
        scheme = check.scheme().as_str(),
        "webhook delivery can never become a task: answered 200 so the sender does not retry it"
    );
    let answer = HttpAnswer {
        status: 200,
        body: json!({"accepted": false, "recorded": true, "message": err.to_string(), "code": err.code()}),
        retry_after: None,
    };
    Some(answer.into_response(kind))
}

struct HttpAnswer {
    status: u16,
    body: Value,
    retry_after: Option<u32>,
}

/// The status and message a webhook caller sees. Faults that are ours or Connect's are named
/// only by their class: a caller has no use for our internals, and an attacker less.
fn http_error(err: &BridgeError) -> HttpAnswer {
    let cause = err.cause();
    let message = match cause {
        Cause::Unauthenticated | Cause::Forbidden | Cause::TooLarge | Cause::CallersInput => {
            err.to_string()
        }
        Cause::Throttled => "Amazon Connect is throttling task creation; retry later".into(),
        Cause::OutOfTime => "the task could not be created in time; retry later".into(),
        Cause::QuotaExhausted => "an Amazon Connect quota is exhausted; retry later".into(),
        // Unavailable is any service the record needs (the task queue, the task table), not
        // Connect alone: the caller is told which only when it is Connect.
        Cause::Unavailable => match err {
            BridgeError::Connect { .. } => "Amazon Connect is unavailable; retry later".into(),
            _ => "a service the task depends on is unavailable; retry later".into(),
        },
        Cause::Configuration => {
            "the task could not be created because of a configuration error".into()
        }
    };
    HttpAnswer {
        status: cause.http_status(),
        body: json!({"message": message, "code": err.code()}),
        retry_after: cause.retry_after_secs(),
    }
}

impl HttpAnswer {
    fn into_response(self, kind: SourceKind) -> Value {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        let body = self.body.to_string();
        let status = i64::from(self.status);
        let response = match kind {
            REST => {
                let mut r = ApiGatewayProxyResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(HttpBody::Text(body));
                serde_json::to_value(r)
            }
            ALB => {
                // ALB needs the status line's text and says whether the body is base64.
                let mut r = AlbTargetGroupResponse::default();
                r.status_code = status;
                r.status_description = Some(format!("{} {}", self.status, reason(self.status)));
                r.headers = headers;
                r.body = Some(HttpBody::Text(body));
                r.is_base64_encoded = false;
                serde_json::to_value(r)
            }
            FUNCTION_URL => {
                let mut r = LambdaFunctionUrlResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(body);
                serde_json::to_value(r)
            }
            _ => {
                let mut r = ApiGatewayV2httpResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(HttpBody::Text(body));
                serde_json::to_value(r)
            }
        };
        response.expect("an HTTP response serialises")
    }
}

/// The parts of an HTTP request that all three webhook shapes share.
struct HttpParts<'a> {
    kind: SourceKind,
    method: String,
    path: String,
    headers: &'a aws_lambda_events::http::HeaderMap,
    body: Option<&'a str>,
    base64: bool,
    request_id: Option<String>,
}

/// The reason phrase of the statuses this function answers with.
fn reason(status: u16) -> &'static str {
    match status {
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn rest_request(payload: Value, ctx: &OpenContext<'_>) -> Result<Record, BridgeError> {
    let req: ApiGatewayProxyRequest = parse(&payload, "API Gateway REST request")?;
    webhook(
        HttpParts {
            kind: REST,
            method: req.http_method.to_string(),
            path: req.path.clone().unwrap_or_default(),
            headers: &req.headers,
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            request_id: req.request_context.request_id.clone(),
        },
        payload,
        ctx,
    )
}

fn alb_request(payload: Value, ctx: &OpenContext<'_>) -> Result<Record, BridgeError> {
    let req: AlbTargetGroupRequest = parse(&payload, "Application Load Balancer request")?;
    // With multi-value headers on, the target group sends `multiValueHeaders` instead.
    let headers = if req.headers.is_empty() {
        &req.multi_value_headers
    } else {
        &req.headers
    };
    webhook(
        HttpParts {
            kind: ALB,
            method: req.http_method.to_string(),
            path: req.path.clone().unwrap_or_default(),
            headers,
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            // ALB gives no request id; the trace header names the request.
            request_id: headers
                .get("x-amzn-trace-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        },
        payload,
        ctx,
    )
}

fn http_request(payload: Value, ctx: &OpenContext<'_>) -> Result<Record, BridgeError> {
    let req: ApiGatewayV2httpRequest = parse(&payload, "API Gateway HTTP API request")?;
    webhook(
        HttpParts {
            kind: HTTP,
            method: req.request_context.http.method.to_string(),
            path: req
                .request_context
                .http
                .path
                .clone()
                .or(req.raw_path.clone())
                .unwrap_or_default(),
            headers: &req.headers,
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            request_id: req.request_context.request_id.clone(),
        },
        payload,
        ctx,
    )
}

fn function_url(payload: Value, ctx: &OpenContext<'_>) -> Result<Record, BridgeError> {
    let req: LambdaFunctionUrlRequest = parse(&payload, "function URL request")?;
    webhook(
        HttpParts {
            kind: FUNCTION_URL,
            method: req.request_context.http.method.clone().unwrap_or_default(),
            path: req
                .request_context
                .http
                .path
                .clone()
                .or(req.raw_path.clone())
                .unwrap_or_default(),
            headers: &req.headers,
            body: req.body.as_deref(),
            base64: req.is_base64_encoded,
            request_id: req.request_context.request_id.clone(),
        },
        payload,
        ctx,
    )
}

/// The query parameters as templates see them (`meta.query`): name → first value. Read from the
/// payload rather than through aws_lambda_events' QueryMap, whose iterator indexes the first
/// value without checking and panics on a parameter with an empty list (found by `make fuzz`).
fn query(payload: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(params)) = payload.get("queryStringParameters") {
        for (name, value) in params {
            let first = match value {
                Value::String(s) => Some(s.as_str()),
                Value::Array(items) => items.iter().find_map(Value::as_str),
                _ => None,
            };
            if let Some(v) = first {
                out.insert(name.clone(), v.to_string());
            }
        }
    }
    out
}

/// `meta` of a webhook request.
#[derive(Debug, Serialize)]
struct WebhookMeta {
    method: String,
    path: String,
    /// Name → first value.
    query: BTreeMap<String, String>,
}

impl SourceMeta for WebhookMeta {}

fn webhook(
    parts: HttpParts<'_>,
    payload: Value,
    ctx: &OpenContext<'_>,
) -> Result<Record, BridgeError> {
    let (limits, auth) = (ctx.limits, ctx.auth);
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
    let request = WebhookRequest {
        headers: &headers,
        body: decoded.as_deref().unwrap_or(raw.as_bytes()),
        request_context: payload.get("requestContext"),
    };
    let principal = if ctx.verified {
        // The function queued it after this very check (its signed envelope says so): a
        // secret rotated since must not refuse what was answered 202. Who the caller was is
        // read again from the request context it carries.
        match auth {
            WebhookAuth::Iam | WebhookAuth::Authorizer => {
                auth.check(&request, ctx.now).ok().flatten()
            }
            _ => None,
        }
    } else if ctx.unsigned {
        // An unsigned envelope: anyone who may send to the queue writes its request context.
        // Checked as before, but its caller scopes nothing: its identity is the namespace the
        // version that wrote unsigned envelopes gave it, which no authenticated caller's
        // request shares (a producer once took a tenant's Idempotency-Key this way).
        auth.check(&request, ctx.now)?;
        None
    } else {
        auth.check(&request, ctx.now)?
    };
    let text = String::from_utf8(decoded?)
        .map_err(|_| BridgeError::InvalidEvent("body is not valid UTF-8".into()))?;

    // A sender that says JSON must send JSON: a broken body is its error to fix (400), not a
    // text to turn into a task.
    let says_json = headers
        .get("content-type")
        .filter(|ct| ct.to_ascii_lowercase().contains("json"));
    within_budget(&text, "request body")?;
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
    // With signatures on, only what is signed may make the identity: a replay that changes a
    // header, the path or the method is the same event (a sender's preset names it by the
    // sender's own id where the signature covers that id, see `senders`). Otherwise the caller's Idempotency-Key,
    // else a digest of method, path and body; both in namespaces of their own (see `token`),
    // and both the authenticated caller's own: two tenants sending `Idempotency-Key: 1` are two
    // requests (they were one, and the second tenant was answered with the first's task).
    let identity = match (auth, headers.get("idempotency-key"), &principal) {
        (WebhookAuth::Signature(check), _, _) => {
            let (namespace, value) = check.identity(&headers, &text, &body);
            Identity::Signed { namespace, value }
        }
        (_, Some(key), None) if !key.trim().is_empty() => Identity::Caller {
            namespace: "webhook-key",
            value: key.clone(),
        },
        (_, Some(key), Some(who)) if !key.trim().is_empty() => Identity::Caller {
            namespace: "webhook-key-of",
            value: digest_parts(&[who.0.as_bytes(), key.as_bytes()]),
        },
        (_, _, None) => Identity::Caller {
            namespace: "webhook-digest",
            value: digest_parts(&[
                parts.method.as_bytes(),
                parts.path.as_bytes(),
                text.as_bytes(),
            ]),
        },
        (_, _, Some(who)) => Identity::Caller {
            namespace: "webhook-digest-of",
            value: digest_parts(&[
                who.0.as_bytes(),
                parts.method.as_bytes(),
                parts.path.as_bytes(),
                text.as_bytes(),
            ]),
        },
    };
    let meta = WebhookMeta {
        query: query(&payload),
        method: parts.method,
        path: parts.path,
    };
    Ok(Record::event(
        parts.kind,
        parts
            .request_id
            .unwrap_or_else(|| identity.value().to_string()),
        identity,
        Arc::new(payload),
        Content {
            headers,
            ..Content::new(Body::value(body), Arc::new(meta))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_queue_is_not_called_connect() {
        let queue = BridgeError::Dispatch {
            code: "QueueNotConfigured",
            message: "no queue".into(),
        };
        let answer = http_error(&queue);
        assert_eq!(answer.status, 502);
        let message = answer.body["message"].as_str().unwrap();
        assert!(!message.contains("Connect"), "{message}");
        let connect = BridgeError::Connect {
            code: "InternalServiceException".into(),
            message: "fault".into(),
        };
        let message = http_error(&connect).body["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.contains("Amazon Connect is unavailable"),
            "{message}"
        );
    }
}
