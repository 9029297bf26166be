//! Every AWS operation the function calls (`Op`), what each names (service, quota, IAM action),
//! and `Failure`: how a call of any SDK failed, read once into a `BridgeError`.

use super::{BridgeError, ErrorClass, Service};

/// Every AWS operation the function calls: the one list the failure-path test walks, so an
/// operation added here without its row there fails that test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    StartTaskContact,
    StopContact,
    UpdateContact,
    UpdateContactAttributes,
    UpdateContactSchedule,
    TagContact,
    GetContactAttributes,
    DescribeContact,
    GetTaskTemplate,
    GetItem,
    PutItem,
    UpdateItem,
    SendMessage,
    ChangeMessageVisibilityBatch,
    SendTaskSuccess,
    SendTaskFailure,
    PutEvents,
    GetSecretValue,
}

impl Op {
    pub const ALL: [Op; 18] = [
        Op::StartTaskContact,
        Op::StopContact,
        Op::UpdateContact,
        Op::UpdateContactAttributes,
        Op::UpdateContactSchedule,
        Op::TagContact,
        Op::GetContactAttributes,
        Op::DescribeContact,
        Op::GetTaskTemplate,
        Op::GetItem,
        Op::PutItem,
        Op::UpdateItem,
        Op::SendMessage,
        Op::ChangeMessageVisibilityBatch,
        Op::SendTaskSuccess,
        Op::SendTaskFailure,
        Op::PutEvents,
        Op::GetSecretValue,
    ];

    /// Connect's documented quota of the operation for the account and Region (requests per
    /// second, burst; `../shared/connect/README.md`), None outside Connect. Each operation has
    /// its own: a reschedule burst never slows a stop, and a stop never spends a start's token.
    pub fn connect_quota(self) -> Option<(f64, f64)> {
        match self {
            Op::StartTaskContact | Op::UpdateContactSchedule | Op::GetTaskTemplate => {
                Some((2.0, 5.0))
            }
            Op::StopContact
            | Op::UpdateContact
            | Op::UpdateContactAttributes
            | Op::GetContactAttributes
            | Op::DescribeContact => Some((10.0, 15.0)),
            Op::TagContact => Some((20.0, 25.0)),
            _ => None,
        }
    }

    /// The IAM action the function's role needs for the operation (the template grants each:
    /// tests/template.rs checks it, since moto's services do not enforce IAM).
    pub fn iam_action(self) -> String {
        let (prefix, name) = match self.service() {
            Service::Connect => ("connect", format!("{self:?}")),
            Service::DynamoDb => ("dynamodb", format!("{self:?}")),
            // The batch call is authorised by the single call's action.
            Service::Sqs if self == Op::ChangeMessageVisibilityBatch => {
                ("sqs", "ChangeMessageVisibility".to_string())
            }
            Service::Sqs => ("sqs", format!("{self:?}")),
            Service::StepFunctions => ("states", format!("{self:?}")),
            Service::EventBridge => ("events", format!("{self:?}")),
            Service::SecretsManager => ("secretsmanager", format!("{self:?}")),
        };
        format!("{prefix}:{name}")
    }

    pub fn service(self) -> Service {
        match self {
            Op::StartTaskContact
            | Op::StopContact
            | Op::UpdateContact
            | Op::UpdateContactAttributes
            | Op::UpdateContactSchedule
            | Op::TagContact
            | Op::GetContactAttributes
            | Op::DescribeContact
            | Op::GetTaskTemplate => Service::Connect,
            Op::GetItem | Op::PutItem | Op::UpdateItem => Service::DynamoDb,
            Op::SendMessage | Op::ChangeMessageVisibilityBatch => Service::Sqs,
            Op::SendTaskSuccess | Op::SendTaskFailure => Service::StepFunctions,
            Op::PutEvents => Service::EventBridge,
            Op::GetSecretValue => Service::SecretsManager,
        }
    }

    /// The error of a call of this operation, as the function handles it: Connect's as
    /// `Connect` (a code) or `Dispatch` (no answer), the task table's as `Store`, the
    /// workflow's as `Notify`, the queue's and Secrets Manager's as `Dispatch` with the
    /// operation's own code. Only codes are kept: SDK messages of some services quote
    /// resource names or item values.
    pub fn error<E, R>(self, err: aws_sdk_connect::error::SdkError<E, R>) -> BridgeError
    where
        E: aws_sdk_connect::error::ProvideErrorMetadata + std::error::Error,
        R: std::fmt::Debug,
    {
        self.failed(Failure::of(err))
    }

    /// `error`, for a failure already taken apart.
    pub fn failed(self, failure: Failure) -> BridgeError {
        let service = self.service();
        match (service, failure) {
            (Service::Connect, Failure::Answered { code, message }) => {
                BridgeError::Connect { code, message }
            }
            (Service::Connect, Failure::Construction(message)) => BridgeError::Connect {
                code: "ConstructionFailure".into(),
                message,
            },
            (Service::Connect, other) => BridgeError::Dispatch {
                code: other.transport_code(),
                message: other.transport_message(),
            },
            (Service::DynamoDb, failure) => {
                let (code, class) = failure.coded(service);
                BridgeError::Store { code, class }
            }
            (Service::StepFunctions | Service::EventBridge, failure) => {
                let (code, _) = failure.coded(service);
                BridgeError::Notify { code }
            }
            (Service::Sqs | Service::SecretsManager, failure) => {
                let (code, _) = failure.coded(service);
                BridgeError::Dispatch {
                    code: match self {
                        Op::SendMessage => "EnqueueFailed",
                        Op::ChangeMessageVisibilityBatch => "HandBackFailed",
                        _ => "SecretUnreadable",
                    },
                    message: format!("{self:?} failed ({code})"),
                }
            }
        }
    }
}

/// How an AWS call failed, whichever SDK made it: an answer with a code, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service answered with an error code.
    Answered { code: String, message: String },
    /// No answer in time.
    Timeout,
    /// No connection (refused, reset, DNS, TLS).
    Dispatch(String),
    /// An answer that could not be read.
    Response(String),
    /// The request could not be built or signed (no region, no credentials).
    Construction(String),
}

impl Failure {
    pub fn of<E, R>(err: aws_sdk_connect::error::SdkError<E, R>) -> Failure
    where
        E: aws_sdk_connect::error::ProvideErrorMetadata + std::error::Error,
        R: std::fmt::Debug,
    {
        use aws_sdk_connect::error::SdkError;
        match err {
            SdkError::ServiceError(service) => {
                let err = service.into_err();
                // Parsed responses carry the message in the metadata; errors built in code only
                // in the exception itself, which Display shows.
                let message = err
                    .message()
                    .map_or_else(|| err.to_string(), str::to_string);
                // Errors built in code (not parsed from an answer) carry no metadata: their
                // Display starts with the exception's name.
                let shown = err.to_string();
                let named = shown
                    .split(':')
                    .next()
                    .filter(|n| n.ends_with("Exception") && !n.contains(' '));
                Failure::Answered {
                    code: err.code().or(named).unwrap_or("UnknownError").to_string(),
                    message,
                }
            }
            SdkError::TimeoutError(_) => Failure::Timeout,
            SdkError::DispatchFailure(e) => {
                Failure::Dispatch(format!("{:?}", e.as_connector_error()))
            }
            SdkError::ResponseError(e) => Failure::Response(format!("{:?}", e.raw())),
            other => Failure::Construction(format!("{other:?}")),
        }
    }

    fn transport_code(&self) -> &'static str {
        match self {
            Failure::Answered { .. } => "ServiceError",
            Failure::Timeout => "TimeoutError",
            Failure::Dispatch(_) => "DispatchFailure",
            Failure::Response(_) => "ResponseError",
            Failure::Construction(_) => "ConstructionFailure",
        }
    }

    fn transport_message(&self) -> String {
        match self {
            Failure::Answered { message, .. } => message.clone(),
            Failure::Timeout => "the call timed out".into(),
            Failure::Dispatch(detail) => detail.clone(),
            Failure::Response(detail) => format!("unreadable response: {detail}"),
            Failure::Construction(detail) => detail.clone(),
        }
    }

    /// The failure's code and class under `service`'s list: no answer is transient (the call
    /// may work in a moment), an unbuildable request is the deployment's.
    fn coded(&self, service: Service) -> (String, ErrorClass) {
        match self {
            Failure::Answered { code, .. } => (code.clone(), service.kind_of(code).class()),
            Failure::Construction(_) => (self.transport_code().into(), ErrorClass::Permanent),
            other => (other.transport_code().into(), ErrorClass::Transient),
        }
    }
}
