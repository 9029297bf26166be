//! The StartTaskContact call: our request into the SDK's, the SDK's errors into ours.
//!
//! The client is built once at cold start (see `main`); an endpoint URL from the environment
//! (`AWS_ENDPOINT_URL_CONNECT`) is honoured by aws-config itself, which is how tests and the
//! local demo reach the stand-in with no code path special to it here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_connect::operation::start_task_contact::builders::StartTaskContactFluentBuilder;
use aws_sdk_connect::types::{Reference, ReferenceType, SegmentAttributeValue, TaskAttachment};
use aws_sdk_connect::Client;

use crate::error::{BridgeError, Op};
pub use crate::pace::Paces;
use crate::pace::{turns, Pace, Slot};
use crate::plan::Priority;
use crate::task::{SegmentValue, TaskRequest};
use crate::tls::{https_client, TlsRoots};

/// Fills the SDK's call from our request. Fails only for requests validation would already have
/// refused.
pub fn build_call(
    client: &Client,
    req: &TaskRequest,
) -> Result<StartTaskContactFluentBuilder, BridgeError> {
    let references = sdk_references(req)?;
    let attachments = req
        .attachments
        .as_ref()
        .map(|items| {
            items
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    TaskAttachment::builder()
                        .file_name(&a.file_name)
                        .s3_url(&a.s3_url)
                        .build()
                        .map_err(|e| {
                            BridgeError::validation(format!("Attachments[{i}]"), e.to_string())
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let segment_attributes = sdk_segments(req);
    Ok(client
        .start_task_contact()
        .set_instance_id(req.instance_id.clone())
        .set_contact_flow_id(req.contact_flow_id.clone())
        .set_previous_contact_id(req.previous_contact_id.clone())
        .set_related_contact_id(req.related_contact_id.clone())
        .set_attributes(
            req.attributes
                .as_ref()
                .map(|a| a.clone().into_iter().collect()),
        )
        .set_name(req.name.clone())
        .set_references(references)
        .set_description(req.description.clone())
        .set_client_token(req.client_token.clone())
        .set_scheduled_time(req.scheduled_time.map(|t| t.0))
        .set_task_template_id(req.task_template_id.clone())
        .set_quick_connect_id(req.quick_connect_id.clone())
        .set_segment_attributes(segment_attributes)
        .set_attachments(attachments))
}

/// The request's references as the SDK takes them (StartTaskContact, UpdateContact).
pub fn sdk_references(
    req: &TaskRequest,
) -> Result<Option<std::collections::HashMap<String, Reference>>, BridgeError> {
    req.references
        .as_ref()
        .map(|refs| {
            refs.iter()
                .enumerate()
                .map(|(i, (key, r))| {
                    let mut b = Reference::builder()
                        .value(&r.value)
                        .r#type(ReferenceType::from(r.kind.as_str()))
                        .set_arn(r.arn.clone())
                        .set_status_reason(r.status_reason.clone());
                    if let Some(status) = &r.status {
                        b = b.status(status.as_str().into());
                    }
                    let reference = b.build().map_err(|e| {
                        BridgeError::validation(
                            crate::validate::member_field("References", i, key),
                            e.to_string(),
                        )
                    })?;
                    Ok((key.clone(), reference))
                })
                .collect::<Result<_, BridgeError>>()
        })
        .transpose()
}

/// The request's segment attributes as the SDK takes them.
pub fn sdk_segments(
    req: &TaskRequest,
) -> Option<std::collections::HashMap<String, SegmentAttributeValue>> {
    req.segment_attributes.as_ref().map(|segments| {
        segments
            .iter()
            .map(|(k, v)| (k.clone(), segment_value(v)))
            .collect()
    })
}

fn segment_value(v: &SegmentValue) -> SegmentAttributeValue {
    SegmentAttributeValue::builder()
        .set_value_string(v.value_string.clone())
        // Validation has refused anything outside i32 before a request gets here.
        .set_value_integer(v.value_integer.and_then(|i| i32::try_from(i).ok()))
        .set_value_list(
            v.value_list
                .as_ref()
                .map(|l| l.iter().map(segment_value).collect()),
        )
        .set_value_map(v.value_map.as_ref().map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), segment_value(v)))
                .collect()
        }))
        .set_value_arn(v.value_arn.clone())
        .build()
}

/// The least time worth starting a call with.
pub const MIN_CALL_BUDGET: Duration = Duration::from_millis(200);

/// How the SDK retries and times out calls, chosen for Connect's small quota (about 2 calls/s,
/// burst 5): a few attempts with jittered exponential backoff (standard mode, whose retry quota
/// stops retry storms), each attempt bounded so one stuck connection cannot eat the invocation.
/// The invocation's deadline bounds the whole call on top of this (see `start_task`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    /// The roots the HTTPS client trusts (`TLS_ROOTS`).
    pub tls_roots: TlsRoots,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(4),
            tls_roots: TlsRoots::default(),
        }
    }
}

impl CallPolicy {
    /// The wait before attempt `attempt` (1: the second) after a fault: exponential from
    /// `initial_backoff`, capped at `max_backoff`, with full jitter so retries of a batch spread.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// The SDK configuration of a cold start: credentials, region and endpoint from the
/// environment (`AWS_ENDPOINT_URL_CONNECT` included), retries and timeouts from `policy`.
pub async fn load_sdk_config(
    policy: CallPolicy,
    endpoint_url: Option<&str>,
) -> aws_config::SdkConfig {
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(policy.max_attempts)
        .with_initial_backoff(policy.initial_backoff)
        .with_max_backoff(policy.max_backoff);
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(policy.connect_timeout)
        .operation_attempt_timeout(policy.attempt_timeout)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts)
        .http_client(https_client(policy.tls_roots));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The Connect client. Connect is called in the instance's Region: the one its ARN names when
/// `CONNECT_INSTANCE_ID` is an ARN (a stack deployed in another Region than the instance would
/// otherwise call the wrong Region and find no instance), else the function's own.
pub fn connect_client(sdk_config: &aws_config::SdkConfig, region: Option<&str>) -> Client {
    // Attempts are ours (`start_task`), each through the pacer.
    let mut builder = aws_sdk_connect::config::Builder::from(sdk_config)
        .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled());
    if let Some(region) = region {
        builder = builder.region(aws_sdk_connect::config::Region::new(region.to_string()));
    }
    Client::from_conf(builder.build())
}

/// What a call needs from the invocation.
pub struct CallContext<'a> {
    pub client: &'a aws_sdk_connect::Client,
    /// StartTaskContact's pace.
    pub start_pace: &'a Pace,
    pub policy: &'a CallPolicy,
    pub deadline: Option<Instant>,
    pub instance_id: &'a str,
    /// The record's route's priority: high-priority calls take the pace's turns first.
    pub priority: Priority,
    /// The record's task-queue message, when a far turn may hand it back (`pace::turns`).
    pub ticket: Option<&'a turns::Ticket>,
    /// A call of this record went to Connect: its later calls wait for their turns instead of
    /// handing the record back, which would make the next delivery call the first one again
    /// (an update's UpdateContact repeated before its UpdateContactAttributes).
    pub called: std::sync::atomic::AtomicBool,
}

/// Starts the task: each attempt waits for its turn in the pace, retries follow `policy`, and
/// nothing starts that could not finish before `deadline`.
pub async fn start_task(
    client: &Client,
    req: &TaskRequest,
    pacer: &Pace,
    deadline: Option<Instant>,
    policy: &CallPolicy,
    priority: Priority,
) -> Result<String, BridgeError> {
    paced(pacer, deadline, policy, priority, |budget| {
        call_once(client, req, budget)
    })
    .await
}

/// The calls on a task the lifecycle acts on, beside `start_task`: each through its operation's
/// own pace (`Paces`), with the same retries and deadline as a start.
async fn paced_op<T, E, R, F, Fut>(
    call: &CallContext<'_>,
    paces: &Paces,
    op: Op,
    mut attempt: F,
) -> Result<T, BridgeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, aws_sdk_connect::error::SdkError<E, R>>>,
    E: aws_sdk_connect::error::ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    let pace = paces.of(op);
    let ticket = call
        .ticket
        .filter(|_| !call.called.load(std::sync::atomic::Ordering::Relaxed));
    let first = turns::first_turn(pace, op, ticket, call.deadline, call.priority).await?;
    call.called
        .store(true, std::sync::atomic::Ordering::Relaxed);
    paced_from(
        pace,
        first,
        call.deadline,
        call.policy,
        call.priority,
        |_| {
            let fut = attempt();
            async move { fut.await.map_err(|e| op.error(e)) }
        },
    )
    .await
}

/// UpdateContact (name, description, references, segment attributes: only when the request
/// says any) and UpdateContactAttributes (attributes) on an open task.
pub async fn update_task(
    call: &CallContext<'_>,
    paces: &Paces,
    contact_id: &str,
    request: &TaskRequest,
) -> Result<(), BridgeError> {
    let (client, instance) = (call.client, call.instance_id);
    let touches_contact = request.name.is_some()
        || request.description.is_some()
        || request.references.is_some()
        || request.segment_attributes.is_some();
    if touches_contact {
        let references = sdk_references(request)?;
        paced_op(call, paces, Op::UpdateContact, || {
            client
                .update_contact()
                .instance_id(instance)
                .contact_id(contact_id)
                .set_name(request.name.clone())
                .set_description(request.description.clone())
                .set_references(references.clone())
                .set_segment_attributes(sdk_segments(request))
                .send()
        })
        .await?;
    }
    if let Some(attributes) = &request.attributes {
        paced_op(call, paces, Op::UpdateContactAttributes, || {
            client
                .update_contact_attributes()
                .instance_id(instance)
                .initial_contact_id(contact_id)
                .set_attributes(Some(attributes.clone().into_iter().collect()))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// UpdateContactSchedule: the task's new time.
pub async fn reschedule_task(
    call: &CallContext<'_>,
    paces: &Paces,
    contact_id: &str,
    when: aws_smithy_types::DateTime,
) -> Result<(), BridgeError> {
    paced_op(call, paces, Op::UpdateContactSchedule, || {
        call.client
            .update_contact_schedule()
            .instance_id(call.instance_id)
            .contact_id(contact_id)
            .scheduled_time(when)
            .send()
    })
    .await
    .map(drop)
}

/// TagContact.
pub async fn tag_task(
    call: &CallContext<'_>,
    paces: &Paces,
    contact_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), BridgeError> {
    paced_op(call, paces, Op::TagContact, || {
        call.client
            .tag_contact()
            .instance_id(call.instance_id)
            .contact_id(contact_id)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
    })
    .await
    .map(drop)
}

/// StopContact. False when Connect answers that it knows no such contact (an ended task): the
/// caller confirms with `describe_task` what that means.
pub async fn stop_task(
    call: &CallContext<'_>,
    paces: &Paces,
    contact_id: &str,
) -> Result<bool, BridgeError> {
    let stopped = paced_op(call, paces, Op::StopContact, || {
        call.client
            .stop_contact()
            .instance_id(call.instance_id)
            .contact_id(contact_id)
            .send()
    })
    .await;
    match stopped {
        Ok(_) => Ok(true),
        Err(e) if e.no_such_contact(Op::StopContact) => Ok(false),
        Err(e) => Err(e),
    }
}

/// DescribeContact: the contact as Connect knows it, None when it knows no such contact.
pub async fn describe_task(
    call: &CallContext<'_>,
    paces: &Paces,
    contact_id: &str,
) -> Result<Option<aws_sdk_connect::types::Contact>, BridgeError> {
    let described = paced_op(call, paces, Op::DescribeContact, || {
        call.client
            .describe_contact()
            .instance_id(call.instance_id)
            .contact_id(contact_id)
            .send()
    })
    .await;
    match described {
        Ok(out) => Ok(out.contact),
        Err(e) if e.no_such_contact(Op::DescribeContact) => Ok(None),
        Err(e) => Err(e),
    }
}

/// GetContactAttributes: the attributes an agent's work left on the task.
pub async fn task_attributes(
    call: &CallContext<'_>,
    paces: &Paces,
    contact_id: &str,
) -> Result<BTreeMap<String, String>, BridgeError> {
    let out = paced_op(call, paces, Op::GetContactAttributes, || {
        call.client
            .get_contact_attributes()
            .instance_id(call.instance_id)
            .initial_contact_id(contact_id)
            .send()
    })
    .await?;
    Ok(out.attributes.unwrap_or_default().into_iter().collect())
}

/// One call of any Connect operation through `pacer`: each attempt waits for its turn, failures
/// worth it are retried with `policy`'s backoff, throttles trim the pace, and no attempt starts
/// that could not finish before `deadline`. `attempt` gets the time left for it.
pub async fn paced<T, F, Fut>(
    pacer: &Pace,
    deadline: Option<Instant>,
    policy: &CallPolicy,
    priority: Priority,
    attempt: F,
) -> Result<T, BridgeError>
where
    F: FnMut(Option<Duration>) -> Fut,
    Fut: std::future::Future<Output = Result<T, BridgeError>>,
{
    paced_from(pacer, None, deadline, policy, priority, attempt).await
}

/// `paced`, its first attempt on `first` (a turn reserved or booked already) when given.
async fn paced_from<T, F, Fut>(
    pacer: &Pace,
    mut first: Option<Slot>,
    deadline: Option<Instant>,
    policy: &CallPolicy,
    priority: Priority,
    mut attempt: F,
) -> Result<T, BridgeError>
where
    F: FnMut(Option<Duration>) -> Fut,
    Fut: std::future::Future<Output = Result<T, BridgeError>>,
{
    let latest_start = deadline.map(|d| d.checked_sub(MIN_CALL_BUDGET).unwrap_or(d));
    let mut last_error = None;
    // The first attempt whose outcome is unknown (no answer, a fault of Connect's): the call
    // may have been applied, and what the caller is told must say so even if a later attempt
    // was plainly refused (a throttle): `settle` then releases the claim, never frees the key.
    let mut unknown: Option<BridgeError> = None;
    for attempt_no in 0..policy.max_attempts.max(1) {
        if attempt_no > 0
            && last_error
                .as_ref()
                .is_some_and(|e: &BridgeError| !e.is_throttle())
        {
            let backoff = policy.backoff(attempt_no);
            if latest_start.is_some_and(|l| Instant::now() + backoff > l) {
                break;
            }
            tokio::time::sleep(backoff).await;
        }
        // A call started with almost no time left would most likely be cut off after Connect
        // acted but before we could report it; better not to start it at all.
        if latest_start.is_some_and(|l| Instant::now() >= l) {
            return Err(outcome_error(
                unknown,
                last_error,
                BridgeError::DeadlineExceeded,
            ));
        }
        let booked = match first.take() {
            Some(slot) => Some(slot),
            None => pacer.reserve(latest_start, priority).await,
        };
        let Some(mut slot) = booked else {
            break;
        };
        tokio::time::sleep(slot.wait).await;
        // Booked at a rate a throttle has since trimmed: booked again at the new one.
        while pacer.rebook(slot) {
            let Some(again) = pacer.reserve(latest_start, priority).await else {
                return Err(outcome_error(unknown, last_error, BridgeError::Paced));
            };
            slot = again;
            tokio::time::sleep(slot.wait).await;
        }
        let budget = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if budget.is_some_and(|b| b < MIN_CALL_BUDGET) {
            return Err(BridgeError::DeadlineExceeded);
        }
        let result = match budget {
            None => attempt(None).await,
            Some(budget) => match tokio::time::timeout(budget, attempt(Some(budget))).await {
                Ok(result) => result,
                Err(_) => Err(BridgeError::Dispatch {
                    code: "DeadlineExceeded",
                    message: format!(
                        "no answer within the {} ms the invocation had left",
                        budget.as_millis()
                    ),
                }),
            },
        };
        match result {
            Ok(value) => {
                pacer.on_success(slot).await;
                return Ok(value);
            }
            Err(err) => {
                if err.is_throttle() {
                    pacer.on_throttle(slot).await;
                }
                if !err.worth_another_attempt() {
                    return Err(unknown.unwrap_or(err));
                }
                if unknown.is_none() && !err.refused_by_connect() {
                    unknown = Some(clone_unknown(&err));
                }
                last_error = Some(err);
            }
        }
    }
    Err(outcome_error(unknown, last_error, BridgeError::Paced))
}

/// What a call that failed is answered with: its last error, unless an earlier attempt's
/// outcome is unknown and the last one says nothing was opened (that would free a key whose
/// task may exist); `none` when no attempt was made.
fn outcome_error(
    unknown: Option<BridgeError>,
    last: Option<BridgeError>,
    none: BridgeError,
) -> BridgeError {
    match (unknown, last) {
        (Some(unknown), Some(last)) if last.refused_by_connect() => unknown,
        (_, Some(last)) => last,
        (unknown, None) => unknown.unwrap_or(none),
    }
}

/// The error of an attempt whose outcome is unknown, kept beside the later ones (errors of
/// such attempts are answers without data: a code and a message).
fn clone_unknown(err: &BridgeError) -> BridgeError {
    match err {
        BridgeError::Connect { code, message } => BridgeError::Connect {
            code: code.clone(),
            message: message.clone(),
        },
        BridgeError::Dispatch { code, message } => BridgeError::Dispatch {
            code,
            message: message.clone(),
        },
        other => BridgeError::Dispatch {
            code: "UnknownOutcome",
            message: other.to_string(),
        },
    }
}

/// One attempt (`paced` bounds its time).
async fn call_once(
    client: &Client,
    req: &TaskRequest,
    _budget: Option<Duration>,
) -> Result<String, BridgeError> {
    let output = build_call(client, req)?
        .send()
        .await
        .map_err(|e| Op::StartTaskContact.error(e))?;
    output.contact_id.ok_or_else(|| BridgeError::Dispatch {
        code: "ResponseError",
        message: "Connect answered without a ContactId".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::pace::PaceSetting;
    use crate::task::{
        ScheduledTime, TaskAttachment as OurAttachment, TaskReference, CONTACT_EXPIRY,
    };
    use aws_sdk_connect::operation::start_task_contact::{
        StartTaskContactError, StartTaskContactOutput,
    };
    use aws_sdk_connect::types::error::{
        InternalServiceException, InvalidParameterException, InvalidRequestException,
        ResourceNotFoundException, ServiceQuotaExceededException, ThrottlingException,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use std::collections::BTreeMap;

    fn unpaced() -> Pace {
        Pace::local(PaceSetting {
            rate: 1000.0,
            burst: 1000.0,
            callers: 1,
        })
    }

    fn policy() -> CallPolicy {
        CallPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            ..CallPolicy::default()
        }
    }

    fn throttled() -> StartTaskContactError {
        StartTaskContactError::ThrottlingException(
            ThrottlingException::builder().message("slow down").build(),
        )
    }

    #[tokio::test]
    async fn a_throttled_call_is_tried_again_at_the_next_turn_and_slows_the_pace() {
        let errors = std::sync::Mutex::new(vec![throttled(), throttled()]);
        let failing = mock!(Client::start_task_contact)
            .match_requests(|r| r.client_token() == Some("tok"))
            .sequence()
            .error(move || errors.lock().unwrap().remove(0))
            .times(2)
            .output(|| StartTaskContactOutput::builder().contact_id("c-2").build())
            .build();
        let client = mock_client!(aws_sdk_connect, RuleMode::Sequential, [&failing], |c| c
            .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled()));
        let pacer = Pace::local(PaceSetting {
            rate: 50.0,
            burst: 5.0,
            callers: 1,
        });
        let id = start_task(
            &client,
            &full_request(),
            &pacer,
            None,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap();
        assert_eq!(id, "c-2");
        assert_eq!(failing.num_calls(), 3);
        assert!(pacer.rate() < 50.0, "{}", pacer.rate());
        assert_eq!(pacer.take_stats().throttles, 2);
    }

    #[tokio::test]
    async fn attempts_stop_at_the_limit_and_at_the_deadline_with_the_last_error() {
        let rule = mock!(Client::start_task_contact).then_error(throttled);
        let client = mock_client!(aws_sdk_connect, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled()));
        let err = start_task(
            &client,
            &full_request(),
            &unpaced(),
            None,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "ThrottlingException");
        assert_eq!(rule.num_calls(), 3);

        // A pace of one call per second leaves no second turn before a deadline 700 ms away:
        // one call, then the record goes back as it is.
        let slow = Pace::local(PaceSetting {
            rate: 1.0,
            burst: 1.0,
            callers: 1,
        });
        let deadline = Some(Instant::now() + Duration::from_millis(700));
        let err = start_task(
            &client,
            &full_request(),
            &slow,
            deadline,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "ThrottlingException");
        assert_eq!(rule.num_calls(), 4);
        // With no turn at all, nothing is called.
        let err = start_task(
            &client,
            &full_request(),
            &slow,
            deadline,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "Paced");
        assert!(err.is_throttle());
        assert_eq!(rule.num_calls(), 4);
    }

    fn full_request() -> TaskRequest {
        TaskRequest {
            instance_id: Some("inst".into()),
            contact_flow_id: Some("flow".into()),
            previous_contact_id: Some("prev".into()),
            related_contact_id: Some("rel".into()),
            attributes: Some(BTreeMap::from([("k".into(), "v".into())])),
            name: Some("n".into()),
            references: Some(BTreeMap::from([(
                "link".into(),
                TaskReference {
                    value: "https://x".into(),
                    kind: "URL".into(),
                    ..Default::default()
                },
            )])),
            description: Some("d".into()),
            client_token: Some("tok".into()),
            scheduled_time: Some(ScheduledTime::from_epoch_secs(1_800_000_000)),
            task_template_id: None,
            quick_connect_id: None,
            segment_attributes: Some(BTreeMap::from([(
                CONTACT_EXPIRY.into(),
                SegmentValue::contact_expiry(60),
            )])),
            attachments: Some(vec![OurAttachment {
                file_name: "f.pdf".into(),
                s3_url: "https://s3/x".into(),
            }]),
        }
    }

    #[tokio::test]
    async fn every_member_reaches_the_sdk() {
        let rule = mock!(Client::start_task_contact)
            .match_requests(|r| {
                r.instance_id() == Some("inst")
                    && r.contact_flow_id() == Some("flow")
                    && r.previous_contact_id() == Some("prev")
                    && r.related_contact_id() == Some("rel")
                    && r.attributes().unwrap()["k"] == "v"
                    && r.name() == Some("n")
                    && r.references().unwrap()["link"].r#type() == &ReferenceType::Url
                    && r.description() == Some("d")
                    && r.client_token() == Some("tok")
                    && r.scheduled_time().unwrap().secs() == 1_800_000_000
                    && r.segment_attributes().unwrap()["connect:ContactExpiry"]
                        .value_map()
                        .unwrap()["ExpiryDuration"]
                        .value_integer()
                        == Some(60)
                    && r.attachments()[0].file_name() == "f.pdf"
            })
            .then_output(|| StartTaskContactOutput::builder().contact_id("c-1").build());
        let client = mock_client!(aws_sdk_connect, [&rule]);
        let id = start_task(
            &client,
            &full_request(),
            &unpaced(),
            None,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap();
        assert_eq!(id, "c-1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn every_connect_error_is_classified() {
        let cases: Vec<(StartTaskContactError, &str, ErrorClass)> = vec![
            (
                StartTaskContactError::ThrottlingException(
                    ThrottlingException::builder().message("m").build(),
                ),
                "ThrottlingException",
                ErrorClass::Transient,
            ),
            (
                StartTaskContactError::InternalServiceException(
                    InternalServiceException::builder().message("m").build(),
                ),
                "InternalServiceException",
                ErrorClass::Transient,
            ),
            (
                StartTaskContactError::ServiceQuotaExceededException(
                    ServiceQuotaExceededException::builder()
                        .message("m")
                        .build(),
                ),
                "ServiceQuotaExceededException",
                ErrorClass::Transient,
            ),
            (
                StartTaskContactError::InvalidParameterException(
                    InvalidParameterException::builder().message("m").build(),
                ),
                "InvalidParameterException",
                ErrorClass::Permanent,
            ),
            (
                StartTaskContactError::InvalidRequestException(
                    InvalidRequestException::builder().message("m").build(),
                ),
                "InvalidRequestException",
                ErrorClass::Permanent,
            ),
            (
                StartTaskContactError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().message("m").build(),
                ),
                "ResourceNotFoundException",
                ErrorClass::Permanent,
            ),
        ];
        for (error, code, class) in cases {
            let error = std::sync::Mutex::new(Some(error));
            let rule = mock!(Client::start_task_contact)
                .then_error(move || error.lock().unwrap().take().expect("called once"));
            // Retries are the SDK's business; here one attempt shows the classification.
            let client = mock_client!(aws_sdk_connect, RuleMode::MatchAny, [&rule], |c| c
                .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled()));
            let once = CallPolicy {
                max_attempts: 1,
                ..policy()
            };
            let err = start_task(
                &client,
                &full_request(),
                &unpaced(),
                None,
                &once,
                Priority::Normal,
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), code);
            assert_eq!(err.class(), class, "{code}");
            assert!(err.to_string().ends_with(": m"), "{err}");
        }
    }

    /// A call whose first attempt met a fault of Connect's (the task may exist) and whose later
    /// attempts were throttled is answered with the fault: a throttle alone would say nothing
    /// was opened and free a key whose task may exist.
    #[tokio::test]
    async fn an_unknown_outcome_is_never_hidden_by_a_later_refusal() {
        let errors = std::sync::Mutex::new(vec![
            StartTaskContactError::InternalServiceException(
                InternalServiceException::builder().message("m").build(),
            ),
            throttled(),
            throttled(),
        ]);
        let rule =
            mock!(Client::start_task_contact).then_error(move || errors.lock().unwrap().remove(0));
        let client = mock_client!(aws_sdk_connect, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled()));
        let err = start_task(
            &client,
            &full_request(),
            &unpaced(),
            None,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap_err();
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(err.code(), "InternalServiceException");
        assert!(!err.refused_by_connect());
    }

    /// The backoff grows exponentially from the initial delay, is capped, and is jittered
    /// within its upper half (pins `CallPolicy::backoff`, a cargo-mutants survivor).
    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = CallPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..CallPolicy::default()
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[tokio::test]
    async fn no_call_is_started_without_time_left() {
        let rule = mock!(Client::start_task_contact)
            .then_output(|| StartTaskContactOutput::builder().contact_id("late").build());
        let client = mock_client!(aws_sdk_connect, [&rule]);
        let soon = Some(Instant::now() + Duration::from_millis(10));
        let err = start_task(
            &client,
            &full_request(),
            &unpaced(),
            soon,
            &policy(),
            Priority::Normal,
        )
        .await
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
        assert_eq!(err.code(), "DeadlineExceeded");
        assert_eq!(rule.num_calls(), 0);
    }
}
