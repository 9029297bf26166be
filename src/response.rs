//! The answer each source expects, built from the outcome of every record.
//!
//! - SQS: a partial batch response listing every failed message, permanent or transient, so it
//!   is retried or reaches the DLQ; nothing is dropped.
//! - EventBridge, SNS, direct: the ContactId and ClientToken, or an error, so Lambda's async
//!   retries and on-failure destination take over.
//! - Webhooks: an HTTP response whose status tells the caller whether to fix or retry.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlResponse;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse};
use serde_json::{json, Value};

use crate::error::{BridgeError, ErrorClass};
use crate::record::SourceKind;

/// A task Connect started (or had already started for this client token).
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub contact_id: String,
    pub client_token: String,
    pub route: String,
}

#[derive(Debug)]
pub struct Outcome {
    /// The source's id of the record (SQS messageId for batch item failures).
    pub record_id: String,
    pub result: Result<Started, BridgeError>,
}

/// Seconds a throttled webhook caller should wait.
pub const THROTTLE_RETRY_AFTER_SECS: u32 = 2;
/// Seconds a caller should wait when we ran out of time or Connect's quota is exhausted.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

pub fn respond(kind: SourceKind, outcomes: Vec<Outcome>) -> Result<Value, BridgeError> {
    if kind == SourceKind::Sqs {
        return Ok(sqs_response(&outcomes));
    }
    if kind.is_webhook() {
        let outcome = outcomes.into_iter().next();
        let http = match outcome {
            Some(Outcome {
                result: Ok(started),
                ..
            }) => HttpAnswer {
                status: 201,
                body: json!({"contactId": started.contact_id, "clientToken": started.client_token}),
                retry_after: None,
            },
            Some(Outcome {
                result: Err(err), ..
            }) => http_error(&err),
            None => http_error(&BridgeError::InvalidEvent("empty request".into())),
        };
        return Ok(http.into_response(kind));
    }
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let started = outcome.result?;
        results.push(json!({"ContactId": started.contact_id, "ClientToken": started.client_token}));
    }
    Ok(match results.len() {
        1 => results.remove(0),
        _ => json!({ "Results": results }),
    })
}

fn sqs_response(outcomes: &[Outcome]) -> Value {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = o.record_id.clone();
            failure
        })
        .collect();
    serde_json::to_value(response).expect("an SQS batch response serialises")
}

struct HttpAnswer {
    status: u16,
    body: Value,
    retry_after: Option<u32>,
}

/// The status and message a webhook caller sees. Faults that are ours or Connect's are named
/// only by their class: a caller has no use for our internals, and an attacker less.
fn http_error(err: &BridgeError) -> HttpAnswer {
    let answer = |status: u16, message: String, retry_after: Option<u32>| HttpAnswer {
        status,
        body: json!({"message": message, "code": err.code()}),
        retry_after,
    };
    match err {
        BridgeError::BodyTooLarge { .. } => answer(413, err.to_string(), None),
        BridgeError::Unauthorized => answer(401, err.to_string(), None),
        BridgeError::Forbidden => answer(403, err.to_string(), None),
        e if e.is_throttle() => answer(
            429,
            "Amazon Connect is throttling task creation; retry later".into(),
            Some(THROTTLE_RETRY_AFTER_SECS),
        ),
        e if e.is_callers_fault() => answer(400, e.to_string(), None),
        BridgeError::DeadlineExceeded
        | BridgeError::Dispatch {
            code: "DeadlineExceeded",
            ..
        }
        | BridgeError::Dispatch {
            code: "TimeoutError",
            ..
        } => answer(
            503,
            "the task could not be created in time; retry later".into(),
            Some(UNAVAILABLE_RETRY_AFTER_SECS),
        ),
        BridgeError::Connect { code, .. } if code == "ServiceQuotaExceededException" => answer(
            503,
            "an Amazon Connect quota is exhausted; retry later".into(),
            Some(UNAVAILABLE_RETRY_AFTER_SECS),
        ),
        e if e.class() == ErrorClass::Transient => answer(
            502,
            "Amazon Connect is unavailable; retry later".into(),
            None,
        ),
        _ => answer(
            500,
            "the task could not be created because of a configuration error".into(),
            None,
        ),
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
            SourceKind::ApiGatewayRest => {
                let mut r = ApiGatewayProxyResponse::default();
                r.status_code = status;
                r.headers = headers;
                r.body = Some(Body::Text(body));
                serde_json::to_value(r)
            }
            SourceKind::FunctionUrl => {
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
                r.body = Some(Body::Text(body));
                serde_json::to_value(r)
            }
        };
        response.expect("an HTTP response serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(id: &str) -> Outcome {
        Outcome {
            record_id: id.into(),
            result: Ok(Started {
                contact_id: format!("c-{id}"),
                client_token: format!("t-{id}"),
                route: "r".into(),
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
            class: ErrorClass::Transient,
        }
    }

    #[test]
    fn sqs_lists_every_failure_permanent_or_transient() {
        let v = respond(
            SourceKind::Sqs,
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
        let v = respond(SourceKind::EventBridge, vec![ok("a")]).unwrap();
        assert_eq!(v, json!({"ContactId": "c-a", "ClientToken": "t-a"}));
        let err = respond(SourceKind::Sns, vec![failed("a", throttled())]).unwrap_err();
        assert!(err.is_throttle());
    }

    fn webhook(kind: SourceKind, err: BridgeError) -> Value {
        respond(kind, vec![failed("x", err)]).unwrap()
    }

    #[test]
    fn webhook_statuses() {
        let v = respond(SourceKind::ApiGatewayHttp, vec![ok("a")]).unwrap();
        assert_eq!(v["statusCode"], 201);
        let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"contactId": "c-a", "clientToken": "t-a"}));

        let v = webhook(
            SourceKind::ApiGatewayRest,
            BridgeError::validation("Name", "is required"),
        );
        assert_eq!(v["statusCode"], 400);
        assert!(
            v["body"].as_str().unwrap().contains("Name: is required"),
            "{v}"
        );

        let v = webhook(SourceKind::FunctionUrl, throttled());
        assert_eq!(v["statusCode"], 429);
        assert_eq!(v["headers"]["retry-after"], "2");

        let v = webhook(
            SourceKind::ApiGatewayHttp,
            BridgeError::BodyTooLarge { size: 10, limit: 4 },
        );
        assert_eq!(v["statusCode"], 413);

        let v = webhook(SourceKind::ApiGatewayHttp, BridgeError::DeadlineExceeded);
        assert_eq!(v["statusCode"], 503);
        assert_eq!(v["headers"]["retry-after"], "5");

        let internal = BridgeError::Connect {
            code: "InternalServiceException".into(),
            message: "stack trace at line 3".into(),
            class: ErrorClass::Transient,
        };
        let v = webhook(SourceKind::ApiGatewayHttp, internal);
        assert_eq!(v["statusCode"], 502);
        assert!(!v["body"].as_str().unwrap().contains("stack trace"));

        let missing = BridgeError::Connect {
            code: "ResourceNotFoundException".into(),
            message: "flow arn:aws:connect:... not found".into(),
            class: ErrorClass::Permanent,
        };
        let v = webhook(SourceKind::ApiGatewayHttp, missing);
        assert_eq!(v["statusCode"], 500);
        assert!(!v["body"].as_str().unwrap().contains("arn:"));
    }
}
