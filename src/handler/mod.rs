//! The Lambda handler: open the envelope, run each record through `prepare` and `connect`, log
//! one line per outcome, answer the source. Concurrency and ordering live here: a standard SQS
//! batch runs its records concurrently up to `BATCH_CONCURRENCY`; a FIFO batch runs in order and
//! stops at the first failure. What becomes of one record is decided in `decide`.

mod decide;

use decide::failed;

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{self, StreamExt};
use futures_util::FutureExt;
use serde_json::Value;

use crate::config::Config;
use crate::connect::{CallContext, Paces};
use crate::error::{BridgeError, Cause};
use crate::lifecycle::Lifecycle;
use crate::metrics;
use crate::pace::{Pace, PaceTable};
use crate::plan::Priority;
use crate::queue::{EnvelopeKeys, QueueMessage, TaskQueue};
use crate::record::{Record, SourceKind};
use crate::response::Outcome;
use crate::sources::{self, RecordError};
use crate::table::TaskTable;
use crate::template::book::Book;
use crate::webhook_auth::{SignatureCheck, WebhookAuth, WebhookAuthSetting};

/// The invocation's deadline, if it can be real. Lambda sends an epoch time in milliseconds;
/// local emulators may not (cargo lambda's sends `600000`, ten minutes after 1970), and taken
/// at its word such a deadline has passed before the first call, so every record would fail
/// with DeadlineExceeded. A deadline before the process started is treated as unknown, and
/// said once.
pub fn plausible_deadline(deadline: SystemTime, process_start: SystemTime) -> Option<SystemTime> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if deadline >= process_start {
        return Some(deadline);
    }
    WARNED.call_once(|| {
        tracing::warn!(
            "the runtime's deadline lies before this process started (a local emulator?); invocations run without one"
        )
    });
    None
}

/// Time kept back from the invocation deadline to write the response after the last call.
pub const RESPONSE_MARGIN: Duration = Duration::from_millis(300);

/// Everything built at cold start: the configuration, the Connect client, the pace of calls,
/// the task queue and the webhook authentication (with its secret, for signatures).
pub struct Bridge {
    pub config: Config,
    client: aws_sdk_connect::Client,
    auth: WebhookAuth,
    /// Where the signature secret is fetched again after a failed check.
    secrets: Option<aws_sdk_secretsmanager::Client>,
    /// StartTaskContact's pace: this environment's share of Connect's quota, or the schedule
    /// shared through the pace table; lives as long as the environment.
    pacer: Pace,
    /// Where the paces are shared (`PACE_TABLE`); None: each environment paces alone.
    pace_table: Option<PaceTable>,
    /// Where requests are queued and messages handed back; None: neither (tests, `send`).
    queue: Option<TaskQueue>,
    /// Business keys, actions on open tasks, contact events (see `lifecycle`).
    lifecycle: Lifecycle,
    /// The function's envelope key: signs what it queues, reads it back (see `queue`).
    envelope: Option<std::sync::Arc<EnvelopeKeys>>,
    /// The task templates requests name, read from Connect: each request is checked against
    /// its template before any call (`template`). None: requests are sent unchecked.
    templates: Option<std::sync::Arc<Book>>,
}

impl Bridge {
    /// With `WEBHOOK_AUTH=signature`, webhooks are refused until `with_signature_check` gives
    /// the fetched secret: never open by default.
    pub fn new(config: Config, client: aws_sdk_connect::Client) -> Self {
        let auth = match &config.webhook_auth {
            WebhookAuthSetting::None => WebhookAuth::None,
            WebhookAuthSetting::Iam => WebhookAuth::Iam,
            WebhookAuthSetting::Authorizer => WebhookAuth::Authorizer,
            WebhookAuthSetting::Refuse | WebhookAuthSetting::Signature(_) => WebhookAuth::Refuse,
        };
        let pacer = Pace::local(config.pace);
        let lifecycle = Lifecycle::new(
            None,
            None,
            None,
            Paces::of_quotas(config.pace, &config.quotas, None),
        );
        Bridge {
            config,
            client,
            auth,
            secrets: None,
            pacer,
            pace_table: None,
            queue: None,
            lifecycle,
            envelope: None,
            templates: None,
        }
    }

    /// What the function queues is signed with `keys`, and read back as its own.
    pub fn with_envelope_keys(mut self, keys: Option<EnvelopeKeys>) -> Self {
        self.envelope = keys.map(std::sync::Arc::new);
        self.queue = self
            .queue
            .take()
            .map(|q| q.with_keys(self.envelope.clone()));
        self
    }

    /// Each request that names a task template is checked against it before any call.
    pub fn with_task_templates(mut self, book: Book) -> Self {
        let book = std::sync::Arc::new(book);
        self.lifecycle.templates = Some(book.clone());
        self.templates = Some(book);
        self
    }

    /// The task table and the workflows to notify (`TASK_TABLE`, Step Functions,
    /// `COMPLETION_EVENT_BUS`).
    pub fn with_lifecycle(
        mut self,
        table: Option<TaskTable>,
        sfn: Option<aws_sdk_sfn::Client>,
        bus: Option<(aws_sdk_eventbridge::Client, String)>,
    ) -> Self {
        let paces = Paces::of_quotas(
            self.config.pace,
            &self.config.quotas,
            self.pace_table.as_ref(),
        );
        self.lifecycle = Lifecycle::new(table, sfn, bus, paces);
        self.lifecycle.templates = self.templates.clone();
        self
    }

    /// The task table and the workflows to notify as the configuration names them, with clients
    /// from `sdk_config` (the function's cold start and `send` alike: the CLI does what the
    /// function does).
    pub fn with_lifecycle_from(self, sdk_config: &aws_config::SdkConfig) -> Self {
        let pace_table = self
            .config
            .quotas
            .table
            .as_deref()
            .map(|name| PaceTable::from_config(sdk_config, name));
        let this = self.with_pace_table(pace_table);
        let table = this
            .config
            .task_table
            .clone()
            .map(|name| TaskTable::new(aws_sdk_dynamodb::Client::new(sdk_config), name));
        // Step Functions is told only about tasks in the table.
        let sfn = table.as_ref().map(|_| aws_sdk_sfn::Client::new(sdk_config));
        let bus = this
            .config
            .completion_event_bus
            .clone()
            .map(|bus| (aws_sdk_eventbridge::Client::new(sdk_config), bus));
        this.with_lifecycle(table, sfn, bus)
    }

    /// Every pace is booked from `table`'s schedules (None: each environment paces alone).
    /// Called before `with_lifecycle`, which builds the lifecycle's paces.
    pub fn with_pace_table(mut self, table: Option<PaceTable>) -> Self {
        self.pacer = self
            .config
            .quotas
            .pace(
                self.config.pace,
                crate::error::Op::StartTaskContact,
                table.as_ref(),
            )
            .unwrap_or_else(|| Pace::local(self.config.pace));
        self.pace_table = table;
        self
    }

    fn call_context(&self, deadline: Option<Instant>, priority: Priority) -> CallContext<'_> {
        CallContext {
            priority,
            client: &self.client,
            start_pace: &self.pacer,
            policy: &self.config.call_policy,
            deadline,
            instance_id: &self.config.defaults.instance_id,
            ticket: None,
            called: Default::default(),
        }
    }

    /// Requests are queued on `queue` (webhooks in `queued` mode, throttled direct requests) and
    /// queue messages the pace cannot serve are handed back through it.
    pub fn with_queue(mut self, queue: TaskQueue) -> Self {
        self.queue = Some(queue);
        self
    }

    fn enqueuing(&self) -> Option<&TaskQueue> {
        self.queue.as_ref().filter(|q| q.can_enqueue())
    }

    /// Webhooks must then carry a valid signature; other sources are unaffected. `secrets` is
    /// where the key is fetched again after a failed check (a rotation), at most once a minute.
    pub fn with_signature_check(
        mut self,
        check: SignatureCheck,
        secrets: Option<aws_sdk_secretsmanager::Client>,
    ) -> Self {
        self.auth = WebhookAuth::Signature(check);
        self.secrets = secrets;
        self
    }

    /// A webhook whose signature failed may have been signed with a key rotated since the last
    /// fetch: fetch again (at most once a minute) and, if that brought new keys, check it again.
    async fn open_with_refresh(&self, payload: Value) -> Result<sources::Envelope, BridgeError> {
        let (WebhookAuth::Signature(check), Some(secrets)) = (&self.auth, &self.secrets) else {
            return self.open(payload);
        };
        // Only webhooks are kept for a second look (their bodies are bounded by MAX_BODY_BYTES).
        let looks_like_webhook = payload.get("requestContext").is_some();
        let retry = looks_like_webhook.then(|| payload.clone());
        let envelope = self.open(payload)?;
        let unsigned = envelope.records.len() == 1
            && matches!(&envelope.records[0], Err(e) if matches!(e.error, BridgeError::Unauthorized));
        match retry {
            Some(payload) if unsigned && check.refresh(secrets).await => self.open(payload),
            _ => Ok(envelope),
        }
    }

    fn open(&self, payload: Value) -> Result<sources::Envelope, BridgeError> {
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
            sources::open(
                payload,
                self.config.limits,
                &self.auth,
                self.envelope.as_deref(),
            )
        }));
        opened.unwrap_or(Err(BridgeError::Internal))
    }

    /// Handles one invocation given as its JSON text: parsed only when its parsed form fits the
    /// memory budget (a 6 MB payload of small objects would take over 500 MiB), and the text
    /// dropped before the records are handled.
    pub async fn handle_raw(
        &self,
        raw: Box<serde_json::value::RawValue>,
        deadline: Option<SystemTime>,
    ) -> Result<Value, BridgeError> {
        let parsed = crate::record::within_budget(raw.get(), "payload").and_then(|()| {
            serde_json::from_str::<Value>(raw.get())
                .map_err(|e| BridgeError::InvalidEvent(crate::error::without_data(&e.to_string())))
        });
        drop(raw);
        match parsed {
            Ok(payload) => self.handle(payload, deadline).await,
            Err(err) => Err(rejected(err)),
        }
    }

    /// Handles one invocation. `deadline` is the invocation's (None: unbounded, as in `send`).
    pub async fn handle(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
    ) -> Result<Value, BridgeError> {
        let envelope = match self.open_with_refresh(payload).await {
            Ok(envelope) => envelope,
            Err(err) => return Err(rejected(err)),
        };
        let kind = envelope.kind;
        // An envelope that did not verify may be signed with a version of the key rotated since
        // the cold start (a redrive, a newer environment): read again (at most once a minute),
        // its next delivery is opened with it. A forged one fails again.
        let unverified = |r: &Result<_, sources::RecordError>| matches!(r, Err(e) if matches!(e.error, BridgeError::Unauthorized));
        if kind == sources::SQS_KIND && envelope.records.iter().any(unverified) {
            if let Some(keys) = &self.envelope {
                keys.refresh().await;
            }
        }
        if let Some(answer) = sources::answer_at_once(&self.auth, &envelope) {
            return Ok(answer);
        }
        let messages: HashMap<String, QueueMessage> = envelope
            .records
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter_map(|r| r.queue_message.clone().map(|m| (r.id.clone(), m)))
            .collect();
        let outcomes = if envelope.fifo {
            // Each order key (FIFO message group) in order, the keys side by side.
            let groups = group_by_order_key(envelope.records);
            stream::iter(groups)
                .map(|group| self.process_in_order(kind, group, deadline))
                .buffer_unordered(self.config.batch_concurrency)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .flatten()
                .collect()
        } else {
            stream::iter(envelope.records)
                .map(|record| self.process(kind, record, deadline))
                .buffer_unordered(self.config.batch_concurrency)
                .collect::<Vec<_>>()
                .await
        };
        let handed_back = self.hand_back(&outcomes, messages).await;
        // Taken whether or not metrics are on, so that nothing piles up across invocations.
        let retaken = self.lifecycle.take_retaken();
        if let Some(namespace) = &self.config.metrics_namespace {
            let stats = self.pacer.take_stats();
            metrics::emit(namespace, kind, &outcomes, &handed_back, &retaken, &stats);
        }
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(o, _)| o).collect();
        if let Some(answer) = sources::answer_for_sender(&self.auth, kind, &outcomes) {
            return Ok(answer);
        }
        sources::respond(kind, outcomes)
    }

    /// Queue messages that failed for the pace or the clock (throttled, no turn before the
    /// deadline, a call cut short by it) come back at this environment's next turn, and those
    /// that met a Connect fault after the longest backoff, instead of after the queue's whole
    /// visibility timeout (6 × the function timeout): the event source mapping gives them to
    /// whichever environment asks next, and it paces them. (Spreading them over this
    /// environment's own future turns left them waiting while the other environment ran dry:
    /// drain times up to 1.3 × the ideal in the surge simulation; leaving faulted ones to the
    /// visibility timeout, 1.8 ×.) A record whose turn is reserved far ahead comes back just
    /// before it (`pace::turns`). Input and configuration errors keep the visibility timeout:
    /// retrying them soon cannot help. Returns the ids of the records handed back (counted by
    /// reason in the metrics).
    async fn hand_back(
        &self,
        outcomes: &[(Outcome, Option<String>)],
        messages: HashMap<String, QueueMessage>,
    ) -> HashSet<String> {
        let Some(queue) = &self.queue else {
            return HashSet::new();
        };
        let next_turn = self.pacer.time_for(1);
        let after_fault = next_turn.max(self.config.call_policy.max_backoff);
        let delayed: Vec<(String, (QueueMessage, Duration))> = outcomes
            .iter()
            .filter_map(|(o, _)| {
                let delay = match &o.result {
                    Err(e) if e.reserved_turn().is_some() => e.reserved_turn()?,
                    Err(e) => match e.cause() {
                        Cause::Throttled | Cause::OutOfTime => next_turn,
                        Cause::Unavailable => after_fault,
                        _ => return None,
                    },
                    Ok(_) => return None,
                };
                messages
                    .get(&o.record_id)
                    .filter(|m| queue.is_task_queue(&m.queue_arn))
                    .map(|m| (o.record_id.clone(), (m.clone(), delay)))
            })
            .collect();
        let (ids, delayed): (HashSet<String>, Vec<(QueueMessage, Duration)>) =
            delayed.into_iter().unzip();
        if !delayed.is_empty() {
            queue.postpone(delayed).await;
        }
        ids
    }

    /// The records of one order key, one after the other; after the first failure the rest are
    /// not tried (`FifoBlocked`) so that none overtakes it. Other keys are not affected.
    async fn process_in_order(
        &self,
        kind: SourceKind,
        records: Vec<Result<Record, RecordError>>,
        deadline: Option<SystemTime>,
    ) -> Vec<(Outcome, Option<String>)> {
        let mut outcomes = Vec::with_capacity(records.len());
        let mut blocked = false;
        for record in records {
            let outcome = if blocked {
                let id = match &record {
                    Ok(r) => r.id.clone(),
                    Err(e) => e.id.clone(),
                };
                let outcome = failed(id, BridgeError::FifoBlocked);
                log_outcome(kind, &outcome, None, Duration::ZERO);
                (outcome, None)
            } else {
                self.process(kind, record, deadline).await
            };
            blocked |= outcome.0.result.is_err();
            outcomes.push(outcome);
        }
        outcomes
    }

    /// One record, isolated: a panic anywhere in its handling (ours or a library's) fails this
    /// record alone as a permanent `InternalError`, and the other records of the batch go on.
    /// Returns the outcome with the route the record took, if it got that far.
    async fn process(
        &self,
        kind: SourceKind,
        record: Result<Record, RecordError>,
        deadline: Option<SystemTime>,
    ) -> (Outcome, Option<String>) {
        let started_at = Instant::now();
        let record_id = match &record {
            Ok(r) => r.id.clone(),
            Err(e) => e.id.clone(),
        };
        let work = AssertUnwindSafe(self.process_unguarded(record, deadline)).catch_unwind();
        let (outcome, route) = work
            .await
            .unwrap_or((failed(record_id, BridgeError::Internal), None));
        log_outcome(kind, &outcome, route.as_ref(), started_at.elapsed());
        let route = match &outcome.result {
            Ok(done) => Some(done.route.clone()),
            Err(_) => route.map(|(route, _)| route),
        };
        (outcome, route)
    }
}

/// A payload refused as a whole: its one log line.
fn rejected(err: BridgeError) -> BridgeError {
    tracing::warn!(
        outcome = "rejected",
        error_class = %err.class(),
        error_code = err.code(),
        error = err.loggable_message(),
        "payload not accepted"
    );
    err
}

/// A record as the envelope gives it: ready to route, or already failed.
type Unit = Result<Record, RecordError>;

/// Splits records by order key, keeping their order within each key and the keys in the order
/// they first appear. Records without a key share one group (nothing says they may overtake).
fn group_by_order_key(records: Vec<Unit>) -> Vec<Vec<Unit>> {
    let mut groups: Vec<(Option<String>, Vec<Unit>)> = Vec::new();
    for record in records {
        let key = match &record {
            Ok(r) => r.order_key.clone(),
            Err(e) => e.order_key.clone(),
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(record),
            None => groups.push((key, vec![record])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// The one log line of a record. Names, descriptions, attribute and reference values never
/// appear: only ids, the route, the token and the error's class, code and (data-free) message.
fn log_outcome(
    kind: SourceKind,
    outcome: &Outcome,
    route: Option<&(String, String)>,
    elapsed: Duration,
) {
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    match &outcome.result {
        Ok(started) => match &started.contact_id {
            Some(contact_id) => tracing::info!(
                outcome = started.did.as_str(),
                source = kind.as_str(),
                record_id = %outcome.record_id,
                route = %started.route,
                client_token = %started.client_token,
                contact_id = %contact_id,
                duration_ms,
                "task started"
            ),
            None => tracing::info!(
                outcome = started.did.as_str(),
                source = kind.as_str(),
                record_id = %outcome.record_id,
                route = %started.route,
                client_token = %started.client_token,
                duration_ms,
                "no contact to name"
            ),
        },
        Err(err) => tracing::warn!(
            outcome = "failed",
            source = kind.as_str(),
            record_id = %outcome.record_id,
            route = route.map(|r| r.0.as_str()),
            client_token = route.map(|r| r.1.as_str()),
            error_class = %err.class(),
            error_code = err.code(),
            error = err.loggable_message(),
            duration_ms,
            "task not started"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deadline_after_the_process_started_is_real() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let later = start + Duration::from_secs(30);
        assert_eq!(plausible_deadline(later, start), Some(later));
        let emulator = SystemTime::UNIX_EPOCH + Duration::from_millis(600_000);
        assert_eq!(plausible_deadline(emulator, start), None);
    }
}
