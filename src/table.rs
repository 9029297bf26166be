//! The task table (`TASK_TABLE`, DynamoDB): a durable record of the tasks the function opened,
//! so that a business key has at most one open task for as long as the task is open (not just
//! for Connect's client-token window), later events can act on the task by key, and Connect's
//! contact events can be traced back to the task and the workflow waiting for it.
//!
//! The table's shape is part of the interface: a string partition key `pk` and nothing else
//! required; TTL on the numeric attribute `expires_at`. Two kinds of item:
//!
//! - `task#<key>`: one per business key (or, for a keyless task a workflow waits for, per client
//!   token): `state` (starting, open, completed, stopped, expired), `generation` (how many tasks
//!   the key has had: the client token derives from key and generation), `contact_id`,
//!   `client_token`, `route`, `origin` (the identity of the event that opened it: its redelivery
//!   is recognised after the task ended), `payload_hash`, `task_token` (never in the task's
//!   attributes: agents see those), `claim_until`, `disconnect_reason`, `notified`,
//!   `notify_until`, timestamps.
//! - `contact#<ContactId>`: `task` names the task item (contact events carry only the ContactId).
//!
//! Written the way Powertools' idempotency utility writes its records: a start is claimed
//! (`starting`, with `claim_until`) by a conditional write before the call and completed after
//! it, so two concurrent deliveries of one key make one call; a claim left by a crash between
//! the call and the write expires and is taken over with the same generation, hence the same
//! client token, and Connect answers with the task it already created. Ending a task and
//! notifying its workflow are claimed the same way, so a completion delivered twice (or out of
//! order) notifies once.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

use crate::error::{BridgeError, Op};
use crate::protocol::{self, Claim, Expect};

/// How long an open task's items are kept: a task lives at most 90 days (`connect:ContactExpiry`)
/// plus the 7 of its default expiry.
const OPEN_TTL_SECS: i64 = 100 * 86_400;
/// How long an ended task's items are kept: SQS keeps a message 14 days, so a start event
/// redelivered within them still finds the task it opened.
const ENDED_TTL_SECS: i64 = 15 * 86_400;
/// How long a mark of a contact event heard before the table knew its contact is kept: the
/// longest its task's start can still be delivered (SQS keeps a message 14 days).
const EARLY_TTL_SECS: i64 = 15 * 86_400;

pub use crate::protocol::{State, TaskItem};

/// What claiming a start gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// Ours to start, with this generation's client token. `retaken`: the claim was taken over
    /// from a start whose call's outcome is unknown (released, or left by a crash), so the same
    /// token goes to Connect again and Connect answers from it if that call made the task.
    Fresh { generation: u64, retaken: bool },
    /// A task exists for the key that this event must not duplicate: the open one, or the one
    /// this very event opened before (a redelivery after the task ended).
    Existing(Box<TaskItem>),
    /// Another delivery is starting the key's task right now.
    Busy,
}

/// What the table learns when a task has been opened.
#[derive(Debug, Clone)]
pub struct Opened<'a> {
    pub contact_id: &'a str,
    pub client_token: &'a str,
    pub route: &'a str,
    pub payload_hash: &'a str,
    pub task_token: Option<&'a str>,
}

pub struct TaskTable {
    client: Client,
    name: String,
}

/// The partition key of a business key's task (a route's `key`).
pub fn task_pk(key: &str) -> String {
    format!("task#{key}")
}

/// The partition key of a keyless task a workflow waits for, by its client token: a namespace
/// of its own, so that no caller-chosen token can name a route's key (a direct request with
/// `ClientToken: order-77` once took the item of the key `order-77`).
pub fn token_pk(token: &str) -> String {
    format!("token#{token}")
}

/// The key or token an item is named by, without its namespace.
pub fn name_of(pk: &str) -> &str {
    pk.strip_prefix("task#")
        .or_else(|| pk.strip_prefix("token#"))
        .unwrap_or(pk)
}

fn early_pk(contact_id: &str) -> String {
    format!("ended#{contact_id}")
}

fn contact_pk(contact_id: &str) -> String {
    format!("contact#{contact_id}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The table's error as a record failure (`Op::error`): throttling, service faults and no answer
/// are transient, a missing table or a denied call is the deployment's (permanent). Only the
/// code is kept: a message could echo item values.
fn store_error<E, R>(op: Op) -> impl FnOnce(aws_sdk_dynamodb::error::SdkError<E, R>) -> BridgeError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    move |err| op.error(err)
}

fn is_condition_failure<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    crate::error::is_condition_failure(err.code())
}

/// A conditional write's outcome: true when it was made, false when its condition did not hold
/// (another delivery got there first), the table's error otherwise.
fn written<T, E, R>(
    op: Op,
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> Result<bool, BridgeError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(store_error(op)(e)),
    }
}

impl TaskTable {
    pub fn new(client: Client, name: String) -> TaskTable {
        TaskTable { client, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task item, read consistently.
    pub async fn get(&self, pk: &str) -> Result<Option<TaskItem>, BridgeError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error(Op::GetItem))?;
        Ok(out.item.as_ref().and_then(|item| read_item(pk, item)))
    }

    /// The task item a contact belongs to, if the function opened it.
    pub async fn by_contact(&self, contact_id: &str) -> Result<Option<TaskItem>, BridgeError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(contact_pk(contact_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error(Op::GetItem))?;
        let Some(task) = out
            .item
            .as_ref()
            .and_then(|i| i.get("task"))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(None);
        };
        let item = self.get(task).await?;
        // A key's later generation is another contact: this event is about an earlier one.
        Ok(item.filter(|i| i.contact_id.as_deref() == Some(contact_id)))
    }

    /// Claims the start of `pk`'s task for the event whose identity is `origin` (see `Claimed`;
    /// the decision is `protocol::claim`'s).
    pub async fn claim(
        &self,
        pk: &str,
        origin: &str,
        now: i64,
        claim_until: i64,
    ) -> Result<Claimed, BridgeError> {
        let created = self
            .client
            .put_item()
            .table_name(&self.name)
            .item("pk", s(pk))
            .item("state", s(State::Starting.as_str()))
            .item("generation", n(1))
            .item("origin", s(origin))
            .item("claim_until", n(claim_until))
            .item("created_at", n(now))
            .item("updated_at", n(now))
            .item("expires_at", n(now + OPEN_TTL_SECS))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if written(Op::PutItem, created)? {
            return Ok(Claimed::Fresh {
                generation: 1,
                retaken: false,
            });
        }
        let Some(item) = self.get(pk).await? else {
            // Gone between the two calls (TTL): the next delivery claims it afresh.
            return Ok(Claimed::Busy);
        };
        match protocol::claim(Some(&item), origin, now) {
            Claim::Existing => Ok(Claimed::Existing(Box::new(item))),
            // Seen absent a moment ago, present now: another delivery's claim.
            Claim::Busy | Claim::Create => Ok(Claimed::Busy),
            Claim::Take { expect, generation } => {
                let next = generation != item.generation;
                // A refused claim opened nothing under its token; a `starting` one may have.
                let retaken = !next && item.state == State::Starting;
                let mut take = self
                    .client
                    .update_item()
                    .table_name(&self.name)
                    .key("pk", s(pk))
                    .expression_attribute_names("#s", "state")
                    .expression_attribute_values(":starting", s(State::Starting.as_str()))
                    .expression_attribute_values(":origin", s(origin))
                    .expression_attribute_values(":until", n(claim_until))
                    .expression_attribute_values(":now", n(now));
                take = if next {
                    // The key's next task: a new generation, the last one's traces removed.
                    take.update_expression(
                        "SET #s = :starting, generation = :next, origin = :origin, \
                         claim_until = :until, updated_at = :now, expires_at = :expires, \
                         notified = :false \
                         REMOVE contact_id, client_token, task_token, disconnect_reason, notify_until",
                    )
                    .expression_attribute_values(":next", n(generation as i64))
                    .expression_attribute_values(":expires", n(now + OPEN_TTL_SECS))
                    .expression_attribute_values(":false", AttributeValue::Bool(false))
                } else {
                    take.update_expression(
                        "SET #s = :starting, origin = :origin, claim_until = :until, updated_at = :now",
                    )
                };
                let taken = expecting(take, &expect).send().await;
                Ok(if written(Op::UpdateItem, taken)? {
                    Claimed::Fresh {
                        generation,
                        retaken,
                    }
                } else {
                    Claimed::Busy
                })
            }
        }
    }

    /// Records the task a claim opened, and the contact's pointer back to it.
    pub async fn opened(
        &self,
        pk: &str,
        generation: u64,
        opened: &Opened<'_>,
        now: i64,
    ) -> Result<(), BridgeError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":open", s(State::Open.as_str()))
            .expression_attribute_values(":contact", s(opened.contact_id))
            .expression_attribute_values(":token", s(opened.client_token))
            .expression_attribute_values(":route", s(opened.route))
            .expression_attribute_values(":hash", s(opened.payload_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(now + OPEN_TTL_SECS));
        let mut set = "SET #s = :open, contact_id = :contact, client_token = :token, \
                       route = :route, payload_hash = :hash, updated_at = :now, \
                       expires_at = :expires"
            .to_string();
        if let Some(token) = opened.task_token {
            set.push_str(", task_token = :task_token");
            update = update.expression_attribute_values(":task_token", s(token));
        }
        // Not written: another delivery finished it first (both calls met the same task).
        let update = expecting(update, &protocol::settle_expect(generation));
        written(Op::UpdateItem, update.update_expression(set).send().await)?;
        self.client
            .put_item()
            .table_name(&self.name)
            .item("pk", s(contact_pk(opened.contact_id)))
            .item("task", s(pk))
            .item("expires_at", n(now + OPEN_TTL_SECS))
            .send()
            .await
            .map_err(store_error(Op::PutItem))?;
        Ok(())
    }

    /// A contact event about a contact the table does not know (yet): a mark that the start
    /// which opens that contact's task reads once it is open (`heard_early`). The event may be
    /// about another function's task, or forged: the mark proves nothing by itself, the start
    /// confirms the ending with Connect before acting on it.
    pub async fn mark_early(&self, contact_id: &str, now: i64) -> Result<(), BridgeError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .item("pk", s(early_pk(contact_id)))
            .item("expires_at", n(now + EARLY_TTL_SECS))
            .send()
            .await
            .map_err(store_error(Op::PutItem))?;
        Ok(())
    }

    /// Whether a contact event about `contact_id` came before the table knew it.
    pub async fn heard_early(&self, contact_id: &str) -> Result<bool, BridgeError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(early_pk(contact_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error(Op::GetItem))?;
        Ok(out.item.is_some())
    }

    /// Lets the next delivery take a claim over at once (the call failed: nothing was opened,
    /// or the same client token will meet what was).
    pub async fn release(&self, pk: &str, generation: u64) -> Result<(), BridgeError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .update_expression("SET claim_until = :zero")
            .expression_attribute_values(":zero", n(0));
        let released = expecting(released, &protocol::settle_expect(generation))
            .send()
            .await;
        written(Op::UpdateItem, released).map(|_| ())
    }

    /// Connect refused the claim's start: the key has no task, and actions on it find none
    /// (a refused start once left the key `starting` for good: every action answered KeyBusy).
    pub async fn refused(&self, pk: &str, generation: u64) -> Result<(), BridgeError> {
        let refused = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .update_expression("SET #s = :refused, claim_until = :zero")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":refused", s(State::Refused.as_str()))
            .expression_attribute_values(":zero", n(0));
        let refused = expecting(refused, &protocol::settle_expect(generation))
            .send()
            .await;
        written(Op::UpdateItem, refused).map(|_| ())
    }

    /// Moves an open task to `state` (ended) and claims its notification. True when this call
    /// made the move; false when the task had ended already (a duplicate or late event).
    /// The notification is held until `hold_until` (the invocation's deadline and a margin: a
    /// notifier still at work is never overtaken; one Lambda ended is).
    pub async fn end(
        &self,
        item: &TaskItem,
        state: State,
        reason: Option<&str>,
        now: i64,
        hold_until: i64,
    ) -> Result<bool, BridgeError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(&item.pk))
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":ended", s(state.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":notify_until", n(hold_until))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":expires", n(now + ENDED_TTL_SECS));
        let mut set = "SET #s = :ended, updated_at = :now, notified = :false, \
                       notify_until = :notify_until, expires_at = :expires"
            .to_string();
        if let Some(reason) = reason {
            set.push_str(", disconnect_reason = :reason");
            update = update.expression_attribute_values(":reason", s(reason));
        }
        let update = expecting(update, &protocol::end_expect(item.generation));
        written(Op::UpdateItem, update.update_expression(set).send().await)
    }

    /// Claims the notification of an ended task whose notifier did not finish (its claim ran
    /// out). True: ours to send.
    pub async fn claim_notification(
        &self,
        item: &TaskItem,
        now: i64,
        hold_until: i64,
    ) -> Result<bool, BridgeError> {
        let Some(expect) = protocol::notification_claim(item, now) else {
            return Ok(false);
        };
        let claimed = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(&item.pk))
            .update_expression("SET notify_until = :until")
            .expression_attribute_values(":until", n(hold_until));
        let claimed = expecting(claimed, &expect).send().await;
        written(Op::UpdateItem, claimed)
    }

    /// Lets the next delivery notify at once: this one failed to (Step Functions or the bus
    /// unreachable), and its event comes back.
    pub async fn release_notification(&self, item: &TaskItem) -> Result<(), BridgeError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(&item.pk))
            .update_expression("SET notify_until = :zero")
            .expression_attribute_values(":zero", n(0));
        let released = expecting(
            released,
            &Expect::Unnotified {
                generation: item.generation,
            },
        )
        .send()
        .await;
        written(Op::UpdateItem, released).map(|_| ())
    }

    /// The task's workflow has been told.
    pub async fn notified(&self, item: &TaskItem) -> Result<(), BridgeError> {
        let told = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(&item.pk))
            .update_expression("SET notified = :true")
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        let told = expecting(
            told,
            &Expect::Generation {
                generation: item.generation,
            },
        )
        .send()
        .await;
        written(Op::UpdateItem, told).map(|_| ())
    }
}

/// The write's condition as `expect` says (the model checks the same with `Expect::holds`).
/// Its values are named `:c_*`, apart from the update's own.
fn expecting(update: UpdateItemFluentBuilder, expect: &Expect) -> UpdateItemFluentBuilder {
    let with_state = |u: UpdateItemFluentBuilder, state: &State, generation: &u64| {
        u.expression_attribute_names("#s", "state")
            .expression_attribute_values(":c_state", s(state.as_str()))
            .expression_attribute_values(":c_generation", n(*generation as i64))
    };
    match expect {
        Expect::Absent => update.condition_expression("attribute_not_exists(pk)"),
        Expect::Claimed {
            state,
            generation,
            claim_until,
        } => with_state(update, state, generation)
            .expression_attribute_values(":c_claim", n(*claim_until))
            .condition_expression(
                "#s = :c_state AND generation = :c_generation AND claim_until = :c_claim",
            ),
        Expect::At { state, generation } => with_state(update, state, generation)
            .condition_expression("#s = :c_state AND generation = :c_generation"),
        Expect::Notifiable {
            generation,
            notify_until,
        } => update
            .expression_attribute_values(":c_generation", n(*generation as i64))
            .expression_attribute_values(":c_false", AttributeValue::Bool(false))
            .expression_attribute_values(":c_notify", n(*notify_until))
            .condition_expression(
                "generation = :c_generation AND notified = :c_false AND notify_until = :c_notify",
            ),
        Expect::Unnotified { generation } => update
            .expression_attribute_values(":c_generation", n(*generation as i64))
            .expression_attribute_values(":c_false", AttributeValue::Bool(false))
            .condition_expression("generation = :c_generation AND notified = :c_false"),
        Expect::Generation { generation } => update
            .expression_attribute_values(":c_generation", n(*generation as i64))
            .condition_expression("generation = :c_generation"),
    }
}

fn read_item(pk: &str, item: &HashMap<String, AttributeValue>) -> Option<TaskItem> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    Some(TaskItem {
        pk: pk.to_string(),
        state: State::parse(&text("state")?)?,
        generation: number("generation").unwrap_or(1).max(1) as u64,
        contact_id: text("contact_id"),
        client_token: text("client_token"),
        route: text("route"),
        origin: text("origin"),
        payload_hash: text("payload_hash"),
        task_token: text("task_token"),
        claim_until: number("claim_until").unwrap_or(0),
        disconnect_reason: text("disconnect_reason"),
        notified: item
            .get("notified")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        notify_until: number("notify_until").unwrap_or(0),
    })
}
