//! The error types of the bridge and their classification.
//!
//! Every failure is either *permanent* (retrying the same event can never succeed: bad input,
//! a mapping that matches nothing, a request Connect rejects) or *transient* (the same event may
//! succeed later: throttling, Connect faults, timeouts). The class alone decides how a source is
//! answered: the HTTP status of a webhook, whether an SQS record is reported as a batch item
//! failure (both are; the class only changes the log), and whether an async invocation errors.

use std::fmt;

mod codes;
mod op;
mod redact;

pub use codes::{is_condition_failure, Kind, Service};
pub use op::{Failure, Op};
pub use redact::without_data;

/// Whether retrying the same event could ever succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    Permanent,
    Transient,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
        })
    }
}

/// What went wrong with one record (or the whole payload, when it could not be split).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The payload is not any event shape the function accepts.
    #[error("unrecognised payload: {0}")]
    UnrecognisedPayload(String),

    /// The payload has a recognised shape but a part of it is malformed.
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// A webhook body over the configured size limit.
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },

    /// A JSON text that would take more memory parsed than the function may spend on one
    /// document (`record::PARSED_BUDGET_BYTES`): refused before it is parsed.
    #[error(
        "the {what} would take about {estimate_mib} MiB once parsed; the limit is {limit_mib} MiB"
    )]
    TooComplex {
        what: &'static str,
        estimate_mib: usize,
        limit_mib: usize,
    },

    /// No route of the mapping matched the record and there is no catch-all route.
    #[error("no route matched this {source_kind} record and the mapping has no catch-all route")]
    NoRoute { source_kind: &'static str },

    /// A template failed while rendering this record (e.g. it ran out of fuel).
    #[error("route '{route}', field {field}: {message}")]
    Render {
        route: String,
        field: String,
        message: String,
    },

    /// The request would break one of Connect's documented limits.
    #[error("{field}: {message}")]
    Validation { field: String, message: String },

    /// The request does not fit the task template it names: refused before any call, naming
    /// the template's fields and the rules they break (never the request's values).
    #[error("task template {template}: {problems}")]
    TemplateMismatch { template: String, problems: String },

    /// Connect answered with an error code (its class and cause follow from the code alone:
    /// `Service::Connect.kind_of`).
    #[error("Connect rejected the request ({code}): {message}")]
    Connect { code: String, message: String },

    /// A call got no answer (timeout, connection failure, unparsable response), or a call to the
    /// task queue or Secrets Manager failed.
    #[error("the call failed ({code}): {message}")]
    Dispatch { code: &'static str, message: String },

    /// A FIFO record that was not tried because an earlier record of its batch failed; it must
    /// come back after that one, never before it.
    #[error("not attempted: an earlier message of this FIFO batch failed, and order must be kept")]
    FifoBlocked,

    /// Not attempted: the pace kept to Connect's quota gives this record no turn before the
    /// invocation ends. It goes back to its queue (or its caller) untried.
    #[error(
        "not attempted: the pace of Connect's quota leaves no call before the invocation ends"
    )]
    Paced,

    /// Not attempted yet: the call's turn lies far ahead, is reserved for the record (see
    /// `pace::turns`), and the record goes back to its queue for `after`, to come back just
    /// before it instead of holding its batch.
    #[error("not attempted yet: the call's turn is reserved, {} s ahead", after.as_secs())]
    TurnReserved { after: std::time::Duration },

    /// The invocation's deadline left no time to start another call.
    #[error("the invocation deadline is too close to start a call")]
    DeadlineExceeded,

    /// A webhook whose signature is missing or wrong. Deliberately without detail.
    #[error("invalid signature")]
    Unauthorized,

    /// A webhook refused by `WEBHOOK_AUTH` (unset, or the request context lacks the caller
    /// the mode requires). Deliberately without detail.
    #[error("forbidden")]
    Forbidden,

    /// The task table (`TASK_TABLE`) failed; only the service's error code is kept.
    #[error("the task table failed ({code})")]
    Store { code: String, class: ErrorClass },

    /// Another delivery is starting the task of the same business key right now; this one is
    /// answered once that one has finished (a retry finds its task).
    #[error("another delivery is starting the task of this business key")]
    KeyBusy,

    /// An action on a business key that has no open task, on a route whose `if_missing` is
    /// `fail`.
    #[error("no open task for this business key (route '{route}' has if_missing: fail)")]
    NoOpenTask { route: String },

    /// Telling the waiting workflow (Step Functions, the completion event bus) failed.
    #[error("notifying the task's workflow failed ({code})")]
    Notify { code: String },

    /// A defect of ours hit while handling this record (a panic, caught). The record fails alone;
    /// retrying the same input would hit the same defect.
    #[error("internal error while handling this record")]
    Internal,
}

impl BridgeError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        BridgeError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            BridgeError::UnrecognisedPayload(_)
            | BridgeError::InvalidEvent(_)
            | BridgeError::BodyTooLarge { .. }
            | BridgeError::TooComplex { .. }
            | BridgeError::NoRoute { .. }
            | BridgeError::Render { .. }
            | BridgeError::Validation { .. }
            | BridgeError::TemplateMismatch { .. }
            | BridgeError::Unauthorized
            | BridgeError::Forbidden
            | BridgeError::Internal
            | BridgeError::NoOpenTask { .. } => ErrorClass::Permanent,
            BridgeError::Connect { code, .. } => Service::Connect.kind_of(code).class(),
            BridgeError::Store { class, .. } => *class,
            BridgeError::KeyBusy | BridgeError::Notify { .. } => ErrorClass::Transient,
            BridgeError::Dispatch { .. }
            | BridgeError::FifoBlocked
            | BridgeError::Paced
            | BridgeError::TurnReserved { .. }
            | BridgeError::DeadlineExceeded => ErrorClass::Transient,
        }
    }

    /// A short machine-readable code for logs, metrics and the Lambda error type.
    pub fn code(&self) -> &str {
        match self {
            BridgeError::UnrecognisedPayload(_) => "UnrecognisedPayload",
            BridgeError::InvalidEvent(_) => "InvalidEvent",
            BridgeError::BodyTooLarge { .. } => "BodyTooLarge",
            BridgeError::TooComplex { .. } => "TooComplex",
            BridgeError::NoRoute { .. } => "NoRoute",
            BridgeError::Render { .. } => "RenderError",
            BridgeError::Validation { .. } => "ValidationError",
            BridgeError::TemplateMismatch { .. } => "TaskTemplateMismatch",
            BridgeError::Connect { code, .. } => code,
            BridgeError::Dispatch { code, .. } => code,
            BridgeError::FifoBlocked => "FifoBlocked",
            BridgeError::DeadlineExceeded => "DeadlineExceeded",
            BridgeError::Paced => "Paced",
            BridgeError::TurnReserved { .. } => "TurnReserved",
            BridgeError::Unauthorized => "InvalidSignature",
            BridgeError::Forbidden => "Forbidden",
            BridgeError::Internal => "InternalError",
            BridgeError::Store { code, .. } => code,
            BridgeError::KeyBusy => "KeyBusy",
            BridgeError::NoOpenTask { .. } => "NoOpenTask",
            BridgeError::Notify { code } => code,
        }
    }

    /// The one classification of a failure beside its class: what it is owed to. The HTTP
    /// status and Retry-After of a webhook, the throttle metric and the caller-or-us split all
    /// follow from it (`Cause`), so no answer re-derives them from codes.
    pub fn cause(&self) -> Cause {
        match self {
            BridgeError::Unauthorized => Cause::Unauthenticated,
            BridgeError::Forbidden => Cause::Forbidden,
            BridgeError::BodyTooLarge { .. } | BridgeError::TooComplex { .. } => Cause::TooLarge,
            BridgeError::UnrecognisedPayload(_)
            | BridgeError::InvalidEvent(_)
            | BridgeError::NoRoute { .. }
            | BridgeError::Validation { .. }
            | BridgeError::TemplateMismatch { .. } => Cause::CallersInput,
            BridgeError::Connect { code, .. } => Service::Connect.kind_of(code).cause(),
            BridgeError::DeadlineExceeded => Cause::OutOfTime,
            BridgeError::Paced | BridgeError::TurnReserved { .. } => Cause::Throttled,
            BridgeError::Dispatch { code, .. } => match *code {
                "DeadlineExceeded" | "TimeoutError" => Cause::OutOfTime,
                _ => Cause::Unavailable,
            },
            BridgeError::FifoBlocked => Cause::Unavailable,
            BridgeError::Render { .. } | BridgeError::Internal => Cause::Configuration,
            BridgeError::Store { class, .. } if *class == ErrorClass::Transient => {
                Cause::Unavailable
            }
            BridgeError::Store { .. } => Cause::Configuration,
            BridgeError::KeyBusy | BridgeError::Notify { .. } => Cause::Unavailable,
            BridgeError::NoOpenTask { .. } => Cause::CallersInput,
        }
    }

    /// Whether a second attempt within the invocation may mend it: a throttle or a fault of
    /// Connect's, a call that got no answer. (A call cut off by the invocation's deadline, and
    /// a quota that frees up in minutes, wait for the record's next delivery.)
    pub fn worth_another_attempt(&self) -> bool {
        match self {
            BridgeError::Connect { code, .. } => matches!(
                Service::Connect.kind_of(code),
                Kind::Throttled | Kind::Unavailable
            ),
            BridgeError::Dispatch { code, .. } => {
                matches!(*code, "DispatchFailure" | "TimeoutError")
            }
            _ => false,
        }
    }

    /// Whether the call certainly opened nothing: Connect answered with a refusal (its input,
    /// our configuration, a throttle, an exhausted quota), or the request was never sent. A
    /// fault of Connect's (InternalServiceException) or a call without an answer may have
    /// opened the task.
    pub fn refused_by_connect(&self) -> bool {
        match self {
            BridgeError::Connect { code, .. } => {
                Service::Connect.kind_of(code) != Kind::Unavailable
            }
            BridgeError::Validation { .. }
            | BridgeError::TemplateMismatch { .. }
            | BridgeError::Paced
            | BridgeError::TurnReserved { .. } => true,
            _ => false,
        }
    }

    /// How long the record goes back to its queue for when its turn is reserved far ahead.
    pub fn reserved_turn(&self) -> Option<std::time::Duration> {
        match self {
            BridgeError::TurnReserved { after } => Some(*after),
            _ => None,
        }
    }

    /// Whether the error is Connect asking us to slow down.
    pub fn is_throttle(&self) -> bool {
        self.cause() == Cause::Throttled
    }

    /// The message, unless it may quote event data: serde's messages for malformed input can
    /// contain the offending value, which may be personal data.
    pub fn loggable_message(&self) -> Option<String> {
        match self {
            BridgeError::InvalidEvent(_) | BridgeError::UnrecognisedPayload(_) => None,
            other => Some(other.to_string()),
        }
    }

    /// Whether the fault lies with the caller's input (as opposed to our configuration or Connect).
    pub fn is_callers_fault(&self) -> bool {
        matches!(
            self.cause(),
            Cause::CallersInput | Cause::TooLarge | Cause::Unauthenticated | Cause::Forbidden
        )
    }
}

/// What a failure is owed to (see `BridgeError::cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A webhook without a valid signature.
    Unauthenticated,
    /// A webhook its authentication mode refuses.
    Forbidden,
    /// A webhook body over the limit.
    TooLarge,
    /// The event or request itself: fix it, retrying cannot help.
    CallersInput,
    /// Connect's quota for the call is spent for now.
    Throttled,
    /// The invocation ran out of time for the call.
    OutOfTime,
    /// A Connect quota that is not a rate (ServiceQuotaExceeded).
    QuotaExhausted,
    /// Connect or the way to it failed; it may work later.
    Unavailable,
    /// Our configuration (mapping, flow, instance) or a defect of ours.
    Configuration,
}

/// Seconds a throttled webhook caller should wait.
pub const THROTTLE_RETRY_AFTER_SECS: u32 = 2;
/// Seconds a caller should wait when we ran out of time or Connect's quota is exhausted.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

impl Cause {
    /// The HTTP status a webhook caller gets.
    pub fn http_status(self) -> u16 {
        match self {
            Cause::Unauthenticated => 401,
            Cause::Forbidden => 403,
            Cause::TooLarge => 413,
            Cause::CallersInput => 400,
            Cause::Throttled => 429,
            Cause::OutOfTime | Cause::QuotaExhausted => 503,
            Cause::Unavailable => 502,
            Cause::Configuration => 500,
        }
    }

    /// How long a webhook caller should wait before retrying, when waiting helps.
    pub fn retry_after_secs(self) -> Option<u32> {
        match self {
            Cause::Throttled => Some(THROTTLE_RETRY_AFTER_SECS),
            Cause::OutOfTime | Cause::QuotaExhausted => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

/// A configuration problem found at cold start. The function refuses to start with one, so a
/// broken deployment fails its init instead of failing every event.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },

    #[error("mapping: {0}")]
    Mapping(String),

    #[error("mapping, route '{route}', field {field}: {message}")]
    Template {
        route: String,
        field: String,
        message: String,
    },
}

impl From<BridgeError> for lambda_runtime::Diagnostic {
    fn from(err: BridgeError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: format!("{}.{}", err.class(), err.code()),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact::edits;
    use super::*;

    #[test]
    fn validation_and_input_errors_are_permanent_and_the_callers_fault() {
        let e = BridgeError::validation("Name", "too long");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.is_callers_fault());
        assert_eq!(e.to_string(), "Name: too long");
    }

    #[test]
    fn connect_errors_keep_their_class_and_code() {
        let e = BridgeError::Connect {
            code: "ThrottlingException".into(),
            message: "slow down".into(),
        };
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.is_throttle());
        assert!(!e.is_callers_fault());
        assert_eq!(e.code(), "ThrottlingException");
    }

    #[test]
    fn dispatch_and_deadline_are_transient() {
        let e = BridgeError::Dispatch {
            code: "TimeoutError",
            message: "x".into(),
        };
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(BridgeError::DeadlineExceeded.class(), ErrorClass::Transient);
    }

    /// Every failure has one cause, and the webhook status follows from it alone.
    #[test]
    fn one_classification_gives_every_status() {
        let connect = |code: &str, _class: ErrorClass| BridgeError::Connect {
            code: code.into(),
            message: String::new(),
        };
        let cases: Vec<(BridgeError, Cause, u16)> = vec![
            (BridgeError::Unauthorized, Cause::Unauthenticated, 401),
            (BridgeError::Forbidden, Cause::Forbidden, 403),
            (
                BridgeError::BodyTooLarge { size: 2, limit: 1 },
                Cause::TooLarge,
                413,
            ),
            (
                BridgeError::validation("Name", "x"),
                Cause::CallersInput,
                400,
            ),
            (
                connect("InvalidParameterException", ErrorClass::Permanent),
                Cause::CallersInput,
                400,
            ),
            (
                connect("ThrottlingException", ErrorClass::Transient),
                Cause::Throttled,
                429,
            ),
            (
                connect("ServiceQuotaExceededException", ErrorClass::Transient),
                Cause::QuotaExhausted,
                503,
            ),
            (BridgeError::DeadlineExceeded, Cause::OutOfTime, 503),
            (
                BridgeError::TurnReserved {
                    after: std::time::Duration::from_secs(3),
                },
                Cause::Throttled,
                429,
            ),
            (
                BridgeError::Dispatch {
                    code: "TimeoutError",
                    message: String::new(),
                },
                Cause::OutOfTime,
                503,
            ),
            (
                connect("InternalServiceException", ErrorClass::Transient),
                Cause::Unavailable,
                502,
            ),
            (
                connect("ResourceNotFoundException", ErrorClass::Permanent),
                Cause::Configuration,
                500,
            ),
            (BridgeError::Internal, Cause::Configuration, 500),
        ];
        for (err, cause, status) in cases {
            assert_eq!(err.cause(), cause, "{err}");
            assert_eq!(cause.http_status(), status, "{err}");
        }
        assert_eq!(
            Cause::Throttled.retry_after_secs(),
            Some(THROTTLE_RETRY_AFTER_SECS)
        );
        assert_eq!(Cause::Configuration.retry_after_secs(), None);
    }

    /// Which failures certainly opened nothing (the claim of a start is then settled as refused,
    /// and the key is free), and which may have opened the task (the claim is released for the
    /// same token). Pins `refused_by_connect` (a cargo-mutants survivor).
    #[test]
    fn only_an_answer_that_opened_nothing_frees_the_key() {
        let connect = |code: &str| BridgeError::Connect {
            code: code.into(),
            message: String::new(),
        };
        for code in [
            "ThrottlingException",
            "ServiceQuotaExceededException",
            "InvalidParameterException",
            "InvalidRequestException",
            "ResourceNotFoundException",
            "ConstructionFailure",
        ] {
            assert!(connect(code).refused_by_connect(), "{code}");
        }
        for code in [
            "InternalServiceException",
            "ConflictException",
            "SomethingUnavailable",
        ] {
            assert!(!connect(code).refused_by_connect(), "{code}");
        }
        assert!(BridgeError::validation("Name", "x").refused_by_connect());
        assert!(BridgeError::Paced.refused_by_connect());
        for unknown in [
            BridgeError::Dispatch {
                code: "TimeoutError",
                message: String::new(),
            },
            BridgeError::DeadlineExceeded,
            BridgeError::Internal,
        ] {
            assert!(!unknown.refused_by_connect(), "{unknown}");
        }
    }

    /// Messages that may quote input are never logged; the others are.
    #[test]
    fn only_messages_without_input_are_loggable() {
        assert_eq!(
            BridgeError::InvalidEvent("x".into()).loggable_message(),
            None
        );
        assert_eq!(
            BridgeError::UnrecognisedPayload("x".into()).loggable_message(),
            None
        );
        assert_eq!(
            BridgeError::validation("Name", "too long").loggable_message(),
            Some("Name: too long".into())
        );
    }

    /// An escaped quote inside a quoted input does not end the quote early (the rest of the
    /// input would leak); a typo within two edits is kept, a word further away is not.
    #[test]
    fn quoted_input_with_escapes_and_typos() {
        let message = r#"invalid type: string "a\"SSN-123\" b", expected a map"#;
        let clean = without_data(message);
        assert!(!clean.contains("SSN"), "{clean}");
        assert_eq!(clean, r#"invalid type: string "…", expected a map"#);
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
        assert_eq!(edits("abc", ""), 3);
        assert_eq!(edits("Descripton", "Description"), 1);
        let far = without_data("unknown field `Descr`, expected `Description`");
        assert!(far.contains("`…`"), "{far}");
        let near = without_data("unknown field `Descrption`, expected `Description`");
        assert!(near.contains("`Descrption`"), "{near}");
    }

    /// serde quotes what the event said; nothing of it may reach the log or the runtime.
    #[test]
    fn serde_messages_lose_the_input_they_quote() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        #[serde(deny_unknown_fields)]
        struct Shape {
            attributes: Option<std::collections::BTreeMap<String, String>>,
            kind: Option<Mode>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Start,
        }
        for (input, kept) in [
            (
                r#"{"attributes": "SSN-123-45-6789-JANE"}"#,
                "expected a map",
            ),
            (r#"{"attributes": {"k": 6789123}}"#, "expected a string"),
            (r#"{"kind": "SSN-123-45-6789-JANE"}"#, "expected `start`"),
            (
                r#"{"SSN-123-45-6789-JANE": 1}"#,
                "expected `attributes` or `kind`",
            ),
            (
                r#"{"attributes": {"k": "a\"SSN-123-45-6789-JANE"}, "x": 1}"#,
                "expected `attributes`",
            ),
        ] {
            let err = serde_json::from_str::<Shape>(input)
                .unwrap_err()
                .to_string();
            let clean = without_data(&err);
            assert!(
                !clean.contains("SSN") && !clean.contains("6789"),
                "{err} -> {clean}"
            );
            assert!(clean.contains(kept), "{err} -> {clean}");
        }
        // A misspelt key is named: it is a typo of ours, not data.
        let err = serde_json::from_str::<Shape>(r#"{"atributes": {}}"#).unwrap_err();
        assert!(without_data(&err.to_string()).contains("`atributes`"));
    }

    #[test]
    fn lambda_diagnostic_carries_class_and_code() {
        let d: lambda_runtime::Diagnostic = BridgeError::validation("Name", "required").into();
        assert_eq!(d.error_type, "permanent.ValidationError");
        assert_eq!(d.error_message, "Name: required");
    }

    // ---- The failure-path table: every way every operation's call can fail, classified ----

    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use std::collections::{BTreeMap, BTreeSet};

    /// How a call failed, as the test builds it.
    #[derive(Debug, Clone)]
    enum Way {
        Code(String),
        Timeout,
        NoConnection,
        Unreadable,
        Unbuildable,
    }

    fn raw(status: u16) -> Response {
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    /// The SDK's error of `$error` (an operation's own error type) failing `way`, through `op`.
    macro_rules! fail {
        ($op:expr, $error:ty, $way:expr) => {{
            let err: SdkError<$error, Response> = match $way {
                Way::Code(code) => SdkError::service_error(
                    <$error>::generic(ErrorMetadata::builder().code(code).message("m").build()),
                    raw(400),
                ),
                Way::Timeout => SdkError::timeout_error("slow"),
                Way::NoConnection => SdkError::dispatch_failure(ConnectorError::io(
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                )),
                Way::Unreadable => SdkError::response_error("garbled", raw(200)),
                Way::Unbuildable => SdkError::construction_failure("no region"),
            };
            $op.error(err)
        }};
    }

    /// Each operation with its SDK's own error type. The match is exhaustive: an operation
    /// added to `Op` does not compile until it has its row here.
    fn failing(op: Op, way: Way) -> BridgeError {
        use aws_sdk_connect::operation as connect;
        use aws_sdk_dynamodb::operation as dynamodb;
        match op {
            Op::StartTaskContact => {
                fail!(op, connect::start_task_contact::StartTaskContactError, way)
            }
            Op::StopContact => fail!(op, connect::stop_contact::StopContactError, way),
            Op::UpdateContact => fail!(op, connect::update_contact::UpdateContactError, way),
            Op::UpdateContactAttributes => fail!(
                op,
                connect::update_contact_attributes::UpdateContactAttributesError,
                way
            ),
            Op::UpdateContactSchedule => fail!(
                op,
                connect::update_contact_schedule::UpdateContactScheduleError,
                way
            ),
            Op::TagContact => fail!(op, connect::tag_contact::TagContactError, way),
            Op::GetContactAttributes => fail!(
                op,
                connect::get_contact_attributes::GetContactAttributesError,
                way
            ),
            Op::DescribeContact => {
                fail!(op, connect::describe_contact::DescribeContactError, way)
            }
            Op::GetTaskTemplate => {
                fail!(op, connect::get_task_template::GetTaskTemplateError, way)
            }
            Op::GetItem => fail!(op, dynamodb::get_item::GetItemError, way),
            Op::PutItem => fail!(op, dynamodb::put_item::PutItemError, way),
            Op::UpdateItem => fail!(op, dynamodb::update_item::UpdateItemError, way),
            Op::SendMessage => fail!(
                op,
                aws_sdk_sqs::operation::send_message::SendMessageError,
                way
            ),
            Op::ChangeMessageVisibilityBatch => fail!(
                op,
                aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchError,
                way
            ),
            Op::SendTaskSuccess => fail!(
                op,
                aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError,
                way
            ),
            Op::SendTaskFailure => fail!(
                op,
                aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError,
                way
            ),
            Op::PutEvents => fail!(
                op,
                aws_sdk_eventbridge::operation::put_events::PutEventsError,
                way
            ),
            Op::GetSecretValue => fail!(
                op,
                aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
                way
            ),
        }
    }

    /// What a failure must become, written down independently of `CODES`: class, cause,
    /// whether the call is tried again within the invocation, the webhook's status.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Expect(ErrorClass, Cause, bool, u16);

    const THROTTLED: Expect = Expect(ErrorClass::Transient, Cause::Throttled, true, 429);
    const FAULT: Expect = Expect(ErrorClass::Transient, Cause::Unavailable, true, 502);
    const QUOTA: Expect = Expect(ErrorClass::Transient, Cause::QuotaExhausted, false, 503);
    const REFUSED: Expect = Expect(ErrorClass::Permanent, Cause::CallersInput, false, 400);
    const OURS: Expect = Expect(ErrorClass::Permanent, Cause::Configuration, false, 500);
    /// A call to something other than Connect that failed in a way a retry may mend: the
    /// record fails transiently, its source retries it (never within the invocation).
    const LATER: Expect = Expect(ErrorClass::Transient, Cause::Unavailable, false, 502);
    const STORE_OURS: Expect = Expect(ErrorClass::Permanent, Cause::Configuration, false, 500);

    /// Connect's codes (every code the model slices list for an operation must be here).
    fn connect_expectations() -> BTreeMap<&'static str, Expect> {
        BTreeMap::from([
            ("ThrottlingException", THROTTLED),
            ("TooManyRequestsException", THROTTLED),
            ("InternalServiceException", FAULT),
            ("ConflictException", FAULT),
            ("ServiceQuotaExceededException", QUOTA),
            ("InvalidParameterException", REFUSED),
            ("InvalidRequestException", REFUSED),
            ("PropertyValidationException", REFUSED),
            ("LimitExceededException", REFUSED),
            ("ResourceNotFoundException", OURS),
            ("AccessDeniedException", OURS),
            ("InvalidActiveRegionException", OURS),
            ("ContactNotFoundException", OURS),
            ("SomethingNewException", OURS),
            ("SomethingNewThrottledException", THROTTLED),
            ("SomethingUnavailableException", FAULT),
        ])
    }

    /// The codes the official model slices list for each Connect operation.
    fn modelled_codes() -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        let start: serde_json::Value =
            serde_json::from_str(connect_standin::model::MODEL_JSON).unwrap();
        let errors = |op: &serde_json::Value| -> BTreeSet<String> {
            op["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["shape"].as_str().unwrap().to_string())
                .collect()
        };
        out.insert("StartTaskContact".to_string(), errors(&start["operation"]));
        let lifecycle: serde_json::Value =
            serde_json::from_str(connect_standin::model::LIFECYCLE_MODEL_JSON).unwrap();
        for (name, op) in lifecycle["operations"].as_object().unwrap() {
            out.insert(name.clone(), errors(op));
        }
        // Of the task-template slice the function calls GetTaskTemplate only.
        let templates: serde_json::Value =
            serde_json::from_str(include_str!("../../standin/model/task-template.model.json"))
                .unwrap();
        out.insert(
            "GetTaskTemplate".to_string(),
            errors(&templates["operations"]["GetTaskTemplate"]),
        );
        out
    }

    /// Every operation, every code its service lists (and the model lists for it), unknown
    /// codes, and every way a call can fail without an answer: classified as written down.
    #[test]
    fn every_failure_of_every_operation_is_classified() {
        let modelled = modelled_codes();
        let connect = connect_expectations();
        let dynamodb = BTreeMap::from([
            ("ProvisionedThroughputExceededException", LATER),
            ("RequestLimitExceeded", LATER),
            ("ThrottlingException", LATER),
            ("InternalServerError", LATER),
            ("TransactionConflictException", LATER),
            ("SomethingNewThrottledException", LATER),
            ("SomethingUnavailableException", LATER),
            ("ConditionalCheckFailedException", STORE_OURS),
            ("ResourceNotFoundException", STORE_OURS),
            ("AccessDeniedException", STORE_OURS),
            ("ValidationException", STORE_OURS),
            ("ItemCollectionSizeLimitExceededException", STORE_OURS),
            ("SomethingNewException", STORE_OURS),
        ]);
        let mut rows = 0;
        for op in Op::ALL {
            let service = op.service();
            let mut codes: BTreeSet<String> = service.listed_codes().map(str::to_string).collect();
            codes.insert("SomethingNewException".into());
            codes.insert("SomethingNewThrottledException".into());
            codes.insert("SomethingUnavailableException".into());
            if service == Service::Connect {
                let name = format!("{op:?}");
                let model = modelled
                    .get(&name)
                    .unwrap_or_else(|| panic!("{name} not in the model"));
                codes.extend(model.iter().cloned());
            }
            for code in codes {
                let err = failing(op, Way::Code(code.clone()));
                let expect = match service {
                    Service::Connect => *connect
                        .get(code.as_str())
                        .unwrap_or_else(|| panic!("{op:?}: no expectation for {code}")),
                    Service::DynamoDb => *dynamodb
                        .get(code.as_str())
                        .unwrap_or_else(|| panic!("{op:?}: no expectation for {code}")),
                    _ => LATER,
                };
                let got = Expect(
                    err.class(),
                    err.cause(),
                    err.worth_another_attempt(),
                    err.cause().http_status(),
                );
                assert_eq!(got, expect, "{op:?} answered {code}: {err}");
                // Only the code travels: a message may quote what the event said.
                if service != Service::Connect {
                    assert!(!err.to_string().contains(": m"), "{op:?} {code}: {err}");
                }
                rows += 1;
            }
            let transport = [
                (Way::Timeout, Cause::OutOfTime, true, ErrorClass::Transient),
                (
                    Way::NoConnection,
                    Cause::Unavailable,
                    true,
                    ErrorClass::Transient,
                ),
                (
                    Way::Unreadable,
                    Cause::Unavailable,
                    false,
                    ErrorClass::Transient,
                ),
                (
                    Way::Unbuildable,
                    Cause::Configuration,
                    false,
                    ErrorClass::Permanent,
                ),
            ];
            for (way, cause, retry, class) in transport {
                let err = failing(op, way.clone());
                if service == Service::Connect {
                    assert_eq!(
                        (err.class(), err.cause(), err.worth_another_attempt()),
                        (class, cause, retry),
                        "{op:?} {way:?}: {err}"
                    );
                } else {
                    // Outside Connect nothing is retried within the invocation; no answer is
                    // transient, an unbuildable call is the deployment's.
                    let expect = if class == ErrorClass::Permanent && service == Service::DynamoDb {
                        STORE_OURS
                    } else {
                        LATER
                    };
                    let got = Expect(
                        err.class(),
                        err.cause(),
                        err.worth_another_attempt(),
                        err.cause().http_status(),
                    );
                    assert_eq!(got, expect, "{op:?} {way:?}: {err}");
                }
                rows += 1;
            }
        }
        assert!(rows > 200, "{rows}");
    }

    /// The role's action for each operation, and the code a failed queue or secret call
    /// carries (cargo-mutants survivors under `--lib`; tests/template.rs checks the grants).
    #[test]
    fn operations_name_their_action_and_their_failure() {
        assert_eq!(Op::StopContact.iam_action(), "connect:StopContact");
        assert_eq!(Op::UpdateItem.iam_action(), "dynamodb:UpdateItem");
        assert_eq!(
            Op::ChangeMessageVisibilityBatch.iam_action(),
            "sqs:ChangeMessageVisibility"
        );
        assert_eq!(Op::SendMessage.iam_action(), "sqs:SendMessage");
        assert_eq!(Op::SendTaskSuccess.iam_action(), "states:SendTaskSuccess");
        assert_eq!(Op::PutEvents.iam_action(), "events:PutEvents");
        assert_eq!(
            Op::GetSecretValue.iam_action(),
            "secretsmanager:GetSecretValue"
        );
        for (op, code) in [
            (Op::SendMessage, "EnqueueFailed"),
            (Op::ChangeMessageVisibilityBatch, "HandBackFailed"),
            (Op::GetSecretValue, "SecretUnreadable"),
        ] {
            assert_eq!(failing(op, Way::Timeout).code(), code, "{op:?}");
        }
    }

    /// The list the failure-path test walks is the list the code uses: every Connect operation
    /// the model slices hold that the function calls is in `Op`.
    #[test]
    fn every_connect_operation_called_is_in_the_list() {
        let listed: BTreeSet<String> = Op::ALL
            .iter()
            .filter(|op| op.service() == Service::Connect)
            .map(|op| format!("{op:?}"))
            .collect();
        let modelled: BTreeSet<String> = modelled_codes().into_keys().collect();
        assert_eq!(listed, modelled);
    }
}
