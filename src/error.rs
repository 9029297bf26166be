//! The error types of the bridge and their classification.
//!
//! Every failure is either *permanent* (retrying the same event can never succeed: bad input,
//! a mapping that matches nothing, a request Connect rejects) or *transient* (the same event may
//! succeed later: throttling, Connect faults, timeouts). The class alone decides how a source is
//! answered: the HTTP status of a webhook, whether an SQS record is reported as a batch item
//! failure (both are; the class only changes the log), and whether an async invocation errors.

use std::fmt;

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

    /// Connect answered with a modelled error.
    #[error("Connect rejected the request ({code}): {message}")]
    Connect {
        code: String,
        message: String,
        class: ErrorClass,
    },

    /// The call did not get a modelled answer: timeout, connection failure, unparsable response.
    #[error("calling Connect failed ({code}): {message}")]
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
            | BridgeError::NoRoute { .. }
            | BridgeError::Render { .. }
            | BridgeError::Validation { .. }
            | BridgeError::Unauthorized
            | BridgeError::Forbidden
            | BridgeError::Internal
            | BridgeError::NoOpenTask { .. } => ErrorClass::Permanent,
            BridgeError::Connect { class, .. } | BridgeError::Store { class, .. } => *class,
            BridgeError::KeyBusy | BridgeError::Notify { .. } => ErrorClass::Transient,
            BridgeError::Dispatch { .. }
            | BridgeError::FifoBlocked
            | BridgeError::Paced
            | BridgeError::DeadlineExceeded => ErrorClass::Transient,
        }
    }

    /// A short machine-readable code for logs, metrics and the Lambda error type.
    pub fn code(&self) -> &str {
        match self {
            BridgeError::UnrecognisedPayload(_) => "UnrecognisedPayload",
            BridgeError::InvalidEvent(_) => "InvalidEvent",
            BridgeError::BodyTooLarge { .. } => "BodyTooLarge",
            BridgeError::NoRoute { .. } => "NoRoute",
            BridgeError::Render { .. } => "RenderError",
            BridgeError::Validation { .. } => "ValidationError",
            BridgeError::Connect { code, .. } => code,
            BridgeError::Dispatch { code, .. } => code,
            BridgeError::FifoBlocked => "FifoBlocked",
            BridgeError::DeadlineExceeded => "DeadlineExceeded",
            BridgeError::Paced => "Paced",
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
            BridgeError::BodyTooLarge { .. } => Cause::TooLarge,
            BridgeError::UnrecognisedPayload(_)
            | BridgeError::InvalidEvent(_)
            | BridgeError::NoRoute { .. }
            | BridgeError::Validation { .. } => Cause::CallersInput,
            BridgeError::Connect { code, class, .. } => match code.as_str() {
                "ThrottlingException" => Cause::Throttled,
                "InvalidParameterException" | "InvalidRequestException" => Cause::CallersInput,
                "ServiceQuotaExceededException" => Cause::QuotaExhausted,
                _ if *class == ErrorClass::Transient => Cause::Unavailable,
                _ => Cause::Configuration,
            },
            BridgeError::DeadlineExceeded => Cause::OutOfTime,
            BridgeError::Paced => Cause::Throttled,
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
            class: ErrorClass::Transient,
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
        let connect = |code: &str, class| BridgeError::Connect {
            code: code.into(),
            message: String::new(),
            class,
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

    #[test]
    fn lambda_diagnostic_carries_class_and_code() {
        let d: lambda_runtime::Diagnostic = BridgeError::validation("Name", "required").into();
        assert_eq!(d.error_type, "permanent.ValidationError");
        assert_eq!(d.error_message, "Name: required");
    }
}
