//! The outcome of a record, from which each source builds the answer it expects (see the
//! source modules); `respond` picks the record's source.

use serde_json::Value;

use crate::error::BridgeError;
use crate::lifecycle::Did;
use crate::record::SourceKind;

/// A task Connect started (or had already started for this client token), or a request put on
/// the task queue to become one (`contact_id` None).
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub contact_id: Option<String>,
    pub client_token: String,
    pub route: String,
    /// What was done: started, queued, or a lifecycle action (see `lifecycle::Did`).
    pub did: Did,
}

#[derive(Debug)]
pub struct Outcome {
    /// The source's id of the record (SQS messageId for batch item failures).
    pub record_id: String,
    pub result: Result<Started, BridgeError>,
}

/// The answer the record's source expects.
pub fn respond(kind: SourceKind, outcomes: Vec<Outcome>) -> Result<Value, BridgeError> {
    crate::sources::respond(kind, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(id: &str) -> Outcome {
        Outcome {
            record_id: id.into(),
            result: Ok(Started {
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
