//! One record's way: prepared, then one decision (queue it, call Connect, or go through the
//! task table; a contact event is heard), each arm one function, and what may stand in for a
//! failed call (queued when throttled, held while Connect's quota of active tasks is spent).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use aws_smithy_types::DateTime;
use serde_json::Value;

use super::{Bridge, RESPONSE_MARGIN};
use crate::config::WebhookMode;
use crate::connect::{start_task, CallContext};
use crate::error::{BridgeError, Cause};
use crate::pace::turns::Ticket;
use crate::plan::{Action, Did, Priority};
use crate::prepare::{prepare, Prepared};
use crate::queue::TaskQueue;
use crate::record::{Record, Work};
use crate::response::{Done, Outcome};
use crate::sources::{self, RecordError, Storage};

impl Bridge {
    /// One record: one decision (`decide`: hear it, queue it, call Connect, or go through the
    /// task table), each arm one function, and what may stand in for a failed call (`instead`).
    pub(super) async fn process_unguarded(
        &self,
        record: Result<Record, RecordError>,
        deadline: Option<SystemTime>,
    ) -> (Outcome, Option<(String, String)>) {
        let record = match record {
            Err(RecordError { id, error, .. }) => {
                return (failed(id, error), None);
            }
            Ok(record) => record,
        };
        let latest = deadline.map(|d| {
            let left = d.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left.saturating_sub(RESPONSE_MARGIN)
        });
        if let Work::Heard(ending) = &record.work {
            let call = self.call_context(latest, Priority::Normal);
            let result = self.lifecycle.hear(&call, ending.as_ref()).await;
            return (
                Outcome {
                    record_id: record.id.clone(),
                    result,
                },
                None,
            );
        }
        let record_id = record.id.clone();
        let ready = match self.ready(record) {
            Err(error) => return (failed(record_id, error), None),
            Ok(ready) => ready,
        };
        let result = match self.decide(&ready) {
            Decision::Queue(queue) => self.enqueue(queue, &ready).await,
            Decision::Call => match self.call(&ready, latest).await {
                Err(e) => self.instead(e, &ready).await,
                done => done,
            },
            Decision::Table => match self.through_table(&ready, latest).await {
                Err(e) => self.instead(e, &ready).await,
                done => done,
            },
        };
        let route = (ready.prepared.route, ready.client_token);
        (Outcome { record_id, result }, Some(route))
    }

    /// Prepares the record (route, render, defaults, client token, validation) and decides
    /// where it may go when the call cannot be made now; the record itself (its event and
    /// parsed body, up to a few MiB) is dropped here, so the concurrent calls of a batch hold
    /// only their requests.
    fn ready(&self, mut record: Record) -> Result<Ready<'_>, BridgeError> {
        // What the table remembers of the event that opened a task (its redelivery after the
        // task ended is recognised by it).
        let origin = crate::token::origin(&record.identity);
        let prepared = prepare(&record, &self.config, DateTime::from(SystemTime::now()));
        // What may go on the task queue: never a record that came from a queue.
        let storage = match record.queue_message {
            Some(_) => Storage::Never,
            None => sources::storage_of(record.kind),
        };
        let queue_first =
            storage == Storage::First && self.config.webhook_mode == WebhookMode::Queued;
        let queue = self
            .enqueuing()
            .filter(|_| queue_first || storage == Storage::OnThrottle);
        // A record may be held for Connect's exhausted quota (see `hold`), its event kept:
        // not one whose order must be kept (a FIFO group, a shard's partition key: the held
        // copy would let the next one overtake it), not one whose caller needs the task in
        // the answer, and not forever (after `MAX_HOLDS` it fails as any other record).
        let holding = self.queue.as_ref().filter(|q| {
            q.can_hold()
                && record.order_key.is_none()
                && sources::holdable(record.kind)
                && record.holds < MAX_HOLDS
        });
        // A far turn may hand the record back with the turn reserved (`pace::turns`): only a
        // message of the function's own queues, with no order to keep, and a receive count to
        // tell a first delivery from one that comes back for its reservation.
        let ticket = record
            .queue_message
            .as_ref()
            .filter(|m| {
                record.order_key.is_none()
                    && !m.message_id.is_empty()
                    && self.pace_table.is_some()
                    && self
                        .queue
                        .as_ref()
                        .is_some_and(|q| q.is_task_queue(&m.queue_arn))
            })
            .and_then(|m| {
                Some(Ticket {
                    message_id: m.message_id.clone(),
                    receive_count: m.receive_count?,
                })
            });
        let payload =
            (queue.is_some() || holding.is_some()).then(|| std::mem::take(&mut record.event));
        let holds = record.holds;
        drop(record);
        let prepared = prepared?;
        Ok(Ready {
            origin,
            client_token: prepared.client_token().to_string(),
            prepared,
            payload: payload.unwrap_or_default(),
            queue_first: queue.filter(|_| queue_first),
            on_throttle: queue.filter(|_| !queue_first),
            holding,
            holds,
            ticket,
        })
    }

    /// The record's one decision.
    fn decide<'a>(&self, ready: &Ready<'a>) -> Decision<'a> {
        if let Some(queue) = ready.queue_first {
            return Decision::Queue(queue);
        }
        let plan = &ready.prepared.plan;
        if plan.needs_table() || (plan.key.is_some() && self.lifecycle.table.is_some()) {
            Decision::Table
        } else {
            Decision::Call
        }
    }

    /// Onto the task queue: checked and rendered, so bad input has had its answer; the task
    /// follows from the queue at the pace Connect allows.
    async fn enqueue(&self, queue: &TaskQueue, ready: &Ready<'_>) -> Result<Done, BridgeError> {
        // A webhook is held to its task template before its 202 (the same check its call
        // makes from the queue), so a 202 is not followed by a refusal the template foretold.
        if ready.queue_first.is_some() && ready.prepared.plan.action == Action::Start {
            self.check_template(ready, None).await?;
        }
        queue
            .enqueue(&ready.payload, ready.prepared.plan.priority)
            .await
            .map(|()| ready.done(Did::Queued))
    }

    /// StartTaskContact, paced.
    async fn call(&self, ready: &Ready<'_>, latest: Option<Instant>) -> Result<Done, BridgeError> {
        self.check_template(ready, latest).await?;
        let contact_id = start_task(
            &self.client,
            &ready.prepared.request,
            &self.pacer,
            latest,
            &self.config.call_policy,
            ready.prepared.plan.priority,
        )
        .await?;
        Ok(Done {
            contact_id: Some(contact_id),
            ..ready.done(Did::Started)
        })
    }

    /// A request that will create a task, held to the task template it names (if it names one
    /// the function can read): refused before any call when it does not fit.
    async fn check_template(
        &self,
        ready: &Ready<'_>,
        latest: Option<Instant>,
    ) -> Result<(), BridgeError> {
        match &self.templates {
            Some(book) => book.check(&ready.prepared.request, latest).await,
            None => Ok(()),
        }
    }

    /// Through the task table: the key's task opened or acted on (see `lifecycle`).
    async fn through_table(
        &self,
        ready: &Ready<'_>,
        latest: Option<Instant>,
    ) -> Result<Done, BridgeError> {
        let call = CallContext {
            ticket: ready.ticket.as_ref(),
            ..self.call_context(latest, ready.prepared.plan.priority)
        };
        let Prepared {
            route,
            request,
            plan,
        } = &ready.prepared;
        match plan.action {
            Action::Start => {
                self.lifecycle
                    .start(&call, route, request, plan, &ready.origin)
                    .await
            }
            _ => {
                self.lifecycle
                    .act(&call, route, request, plan, &ready.origin)
                    .await
            }
        }
    }

    /// What stands in for a failed call: a throttled request the invocation could not wait for
    /// is queued, not failed; a record that met Connect's exhausted quota of active tasks is
    /// held on the task queue. Otherwise the failure stands.
    async fn instead(&self, error: BridgeError, ready: &Ready<'_>) -> Result<Done, BridgeError> {
        if let Some(queue) = ready.on_throttle.filter(|_| error.is_throttle()) {
            return self.enqueue(queue, ready).await;
        }
        let Some(queue) = ready
            .holding
            .filter(|_| error.cause() == Cause::QuotaExhausted)
        else {
            return Err(error);
        };
        let held = held_payload(&ready.payload);
        match queue
            .hold(
                &held,
                ready.holds.saturating_add(1),
                ready.prepared.plan.priority,
            )
            .await
        {
            Ok(()) => Ok(ready.done(Did::Held)),
            // Not held: the record fails as it would have.
            Err(hold) => {
                tracing::warn!(error_code = hold.code(), "record not held");
                Err(error)
            }
        }
    }
}

/// What a record calls for, decided once (`Bridge::decide`; a contact event is heard before).
enum Decision<'a> {
    /// Onto the task queue before any call (a webhook in queued mode).
    Queue(&'a TaskQueue),
    /// StartTaskContact, paced.
    Call,
    /// Through the task table: a business key, a workflow waiting for the task, or an action on
    /// a key's open task.
    Table,
}

/// A record prepared for its decision, without the record.
struct Ready<'a> {
    prepared: Prepared,
    client_token: String,
    /// The event's identity as the table records who opened a task (`token::origin`).
    origin: String,
    /// The event as delivered when it may go on the task queue (queued or held), else null.
    payload: Arc<Value>,
    /// The queue it goes to before any call (a webhook in queued mode).
    queue_first: Option<&'a TaskQueue>,
    /// The queue it goes to when throttled beyond what the invocation could wait.
    on_throttle: Option<&'a TaskQueue>,
    /// The queue it is held on while Connect's quota of active tasks is exhausted.
    holding: Option<&'a TaskQueue>,
    holds: u32,
    /// Its task-queue message, when a far turn may hand it back (`pace::turns`).
    ticket: Option<Ticket>,
}

impl Ready<'_> {
    /// `did`, without a contact (queued, held) unless the caller names one.
    fn done(&self, did: Did) -> Done {
        Done {
            did,
            contact_id: None,
            client_token: self.client_token.clone(),
            route: self.prepared.route.clone(),
        }
    }
}

pub(super) fn failed(record_id: String, error: BridgeError) -> Outcome {
    Outcome {
        record_id,
        result: Err(error),
    }
}

/// How many times a record is held before it fails like any other (a chain of 12 tasks per
/// PreviousContactId never frees up): about a day at the longest delay.
pub const MAX_HOLDS: u32 = 100;

/// What holding a record puts in the function's envelope: the event as its source delivered it,
/// a record of a batch (SQS, Kinesis, DynamoDB Streams: it has an event source) in a batch of
/// its own, so that it is opened again as the same record with the same identity.
fn held_payload(event: &serde_json::Value) -> serde_json::Value {
    let is_batch_item = event.get("eventSource").is_some() || event.get("EventSource").is_some();
    if is_batch_item {
        serde_json::json!({ "Records": [event] })
    } else {
        event.clone()
    }
}
