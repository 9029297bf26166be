//! The one list of error codes per service (`CODES`), and the kind each code is: throttled,
//! unavailable, a quota, the caller's input, our configuration, or gone. Every code the function
//! acts on is named here and nowhere else.

use super::{BridgeError, Cause, ErrorClass, Op};

impl BridgeError {
    /// Connect answered that it knows no contact of that id (an ended task, or none at all):
    /// StopContact says `ContactNotFoundException`, DescribeContact `ResourceNotFoundException`.
    pub fn no_such_contact(&self, op: Op) -> bool {
        let BridgeError::Connect { code, .. } = self else {
            return false;
        };
        match op {
            Op::StopContact => Service::Connect.kind_of(code) == Kind::Gone,
            Op::DescribeContact => code == "ResourceNotFoundException",
            _ => false,
        }
    }
}

/// DynamoDB's answer to a conditional write whose condition did not hold: another delivery got
/// there first (`table::written` reads it as an answer, not a failure).
pub fn is_condition_failure(code: Option<&str>) -> bool {
    code == Some("ConditionalCheckFailedException")
}

/// What an AWS error code means, whichever operation answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Slow down: the operation's rate quota is spent for now.
    Throttled,
    /// The service failed or is busy; the same call may work in a moment.
    Unavailable,
    /// A quota that is not a rate (Connect's concurrent active tasks, 12 tasks per
    /// PreviousContactId): it frees up, but not within seconds.
    QuotaExhausted,
    /// The request itself is refused: retrying the same request cannot help.
    CallersInput,
    /// Our deployment (a missing resource, a denied action, a wrong Region).
    Configuration,
    /// What the call was about has ended or gone (a contact that ended, a workflow that stopped
    /// waiting): the caller decides whether that is success.
    Gone,
}

impl Kind {
    pub fn class(self) -> ErrorClass {
        match self {
            Kind::Throttled | Kind::Unavailable | Kind::QuotaExhausted => ErrorClass::Transient,
            Kind::CallersInput | Kind::Configuration | Kind::Gone => ErrorClass::Permanent,
        }
    }

    pub fn cause(self) -> Cause {
        match self {
            Kind::Throttled => Cause::Throttled,
            Kind::Unavailable => Cause::Unavailable,
            Kind::QuotaExhausted => Cause::QuotaExhausted,
            Kind::CallersInput => Cause::CallersInput,
            Kind::Configuration | Kind::Gone => Cause::Configuration,
        }
    }
}

/// The AWS services the function calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Connect,
    DynamoDb,
    Sqs,
    StepFunctions,
    EventBridge,
    SecretsManager,
}

/// The one list of error codes: what each service's codes mean. Codes a service does not list
/// here are read by their name (a throttle, an internal fault or an unavailable service is
/// transient) and are otherwise the deployment's problem: nothing suggests a retry would help.
pub(super) const CODES: &[(Service, &str, Kind)] = &[
    // Connect (the model slices in ../shared/connect: StartTaskContact, the lifecycle
    // operations, DescribeContact, task templates).
    (Service::Connect, "ThrottlingException", Kind::Throttled),
    (
        Service::Connect,
        "TooManyRequestsException",
        Kind::Throttled,
    ),
    (
        Service::Connect,
        "InternalServiceException",
        Kind::Unavailable,
    ),
    // UpdateContact met a concurrent change of the same contact.
    (Service::Connect, "ConflictException", Kind::Unavailable),
    (
        Service::Connect,
        "ServiceQuotaExceededException",
        Kind::QuotaExhausted,
    ),
    (
        Service::Connect,
        "InvalidParameterException",
        Kind::CallersInput,
    ),
    (
        Service::Connect,
        "InvalidRequestException",
        Kind::CallersInput,
    ),
    (
        Service::Connect,
        "PropertyValidationException",
        Kind::CallersInput,
    ),
    // UpdateContactSchedule: a task is rescheduled at most 20 times (HTTP 429, but no wait
    // lifts it).
    (
        Service::Connect,
        "LimitExceededException",
        Kind::CallersInput,
    ),
    (
        Service::Connect,
        "ResourceNotFoundException",
        Kind::Configuration,
    ),
    (
        Service::Connect,
        "AccessDeniedException",
        Kind::Configuration,
    ),
    (
        Service::Connect,
        "InvalidActiveRegionException",
        Kind::Configuration,
    ),
    (Service::Connect, "ContactNotFoundException", Kind::Gone),
    // DynamoDB (the task table).
    (
        Service::DynamoDb,
        "ProvisionedThroughputExceededException",
        Kind::Throttled,
    ),
    (Service::DynamoDb, "RequestLimitExceeded", Kind::Throttled),
    (Service::DynamoDb, "ThrottlingException", Kind::Throttled),
    (Service::DynamoDb, "InternalServerError", Kind::Unavailable),
    (
        Service::DynamoDb,
        "TransactionConflictException",
        Kind::Unavailable,
    ),
    // Another delivery got there first: `table::written` reads it as an answer, not a failure.
    (
        Service::DynamoDb,
        "ConditionalCheckFailedException",
        Kind::Gone,
    ),
    (
        Service::DynamoDb,
        "ResourceNotFoundException",
        Kind::Configuration,
    ),
    (
        Service::DynamoDb,
        "AccessDeniedException",
        Kind::Configuration,
    ),
    (
        Service::DynamoDb,
        "ValidationException",
        Kind::Configuration,
    ),
    (
        Service::DynamoDb,
        "ItemCollectionSizeLimitExceededException",
        Kind::Configuration,
    ),
    // SQS (the task queue).
    (Service::Sqs, "RequestThrottled", Kind::Throttled),
    (Service::Sqs, "KmsThrottled", Kind::Throttled),
    (
        Service::Sqs,
        "AWS.SimpleQueueService.NonExistentQueue",
        Kind::Configuration,
    ),
    (Service::Sqs, "QueueDoesNotExist", Kind::Configuration),
    (Service::Sqs, "AccessDenied", Kind::Configuration),
    (Service::Sqs, "AccessDeniedException", Kind::Configuration),
    (Service::Sqs, "KmsAccessDenied", Kind::Configuration),
    (Service::Sqs, "KmsDisabled", Kind::Configuration),
    (Service::Sqs, "InvalidMessageContents", Kind::CallersInput),
    // A message handed back after its visibility ran out (another receive holds it now).
    (Service::Sqs, "ReceiptHandleIsInvalid", Kind::Gone),
    (Service::Sqs, "MessageNotInflight", Kind::Gone),
    // Step Functions (the workflow waiting for a task).
    (
        Service::StepFunctions,
        "ThrottlingException",
        Kind::Throttled,
    ),
    (Service::StepFunctions, "TaskDoesNotExist", Kind::Gone),
    (Service::StepFunctions, "TaskTimedOut", Kind::Gone),
    (Service::StepFunctions, "InvalidToken", Kind::Gone),
    (Service::StepFunctions, "InvalidOutput", Kind::CallersInput),
    (
        Service::StepFunctions,
        "AccessDeniedException",
        Kind::Configuration,
    ),
    (
        Service::StepFunctions,
        "KmsAccessDeniedException",
        Kind::Configuration,
    ),
    (
        Service::StepFunctions,
        "KmsThrottlingException",
        Kind::Throttled,
    ),
    // EventBridge (the completion bus).
    (Service::EventBridge, "ThrottlingException", Kind::Throttled),
    (Service::EventBridge, "InternalException", Kind::Unavailable),
    (
        Service::EventBridge,
        "ResourceNotFoundException",
        Kind::Configuration,
    ),
    (
        Service::EventBridge,
        "AccessDeniedException",
        Kind::Configuration,
    ),
    // Secrets Manager (the webhook key, the envelope key).
    (
        Service::SecretsManager,
        "InternalServiceError",
        Kind::Unavailable,
    ),
    (
        Service::SecretsManager,
        "ThrottlingException",
        Kind::Throttled,
    ),
    (
        Service::SecretsManager,
        "ResourceNotFoundException",
        Kind::Configuration,
    ),
    (
        Service::SecretsManager,
        "AccessDeniedException",
        Kind::Configuration,
    ),
    (
        Service::SecretsManager,
        "DecryptionFailure",
        Kind::Configuration,
    ),
    (
        Service::SecretsManager,
        "InvalidRequestException",
        Kind::Configuration,
    ),
    (
        Service::SecretsManager,
        "InvalidParameterException",
        Kind::Configuration,
    ),
];

impl Service {
    /// What `code` means when this service answers it.
    pub fn kind_of(self, code: &str) -> Kind {
        if let Some((_, _, kind)) = CODES.iter().find(|(s, c, _)| *s == self && *c == code) {
            return *kind;
        }
        if code.contains("Throttl") || code.contains("TooManyRequests") {
            Kind::Throttled
        } else if code.contains("Internal") || code.contains("Unavailable") {
            Kind::Unavailable
        } else {
            Kind::Configuration
        }
    }

    /// The codes this service's list names (the failure-path test walks them).
    pub fn listed_codes(self) -> impl Iterator<Item = &'static str> {
        CODES
            .iter()
            .filter(move |(s, _, _)| *s == self)
            .map(|(_, c, _)| *c)
    }
}
