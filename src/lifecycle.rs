//! The task lifecycle: what a route does besides opening a task (`action`), the business key
//! that names a task across events, the task table that remembers it, and what happens when
//! Connect says the task ended (its contact events): the table is updated and the workflow
//! that waits for the task is told (Step Functions, the completion event bus).
//!
//! Guarantees (README, "Lifecycle"): a start with a key opens at most one task per key while it
//! is open (claimed in the table before the call, same client token on a retry); each action is
//! idempotent under redelivery (stopping a stopped task is success, an update reapplied is
//! harmless); a task's workflow is notified once, whatever the order or number of its events.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::connect::{paced, sdk_references, sdk_segments, CallPolicy};
use crate::error::{BridgeError, Kind, Op, Service};
use crate::pace::Pacer;
use crate::protocol;
use crate::record::digest_parts;
use crate::table::{name_of, task_pk, token_pk, Claimed, Opened, State, TaskItem, TaskTable};
use crate::task::TaskRequest;

/// How long past its invocation's deadline a claim holds: Lambda has ended the invocation by
/// then, so a claim still `starting` is a crash's, and the next delivery takes it over.
const CLAIM_MARGIN_SECS: i64 = 2;
/// A claim's hold when the invocation has no deadline (local runs).
const UNBOUNDED_CLAIM_SECS: i64 = 120;

/// What a route does with its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// StartTaskContact (with a key: at most one open task per key).
    #[default]
    Start,
    /// UpdateContact (name, description, references, segment attributes) and
    /// UpdateContactAttributes (attributes) on the key's open task.
    Update,
    /// UpdateContactSchedule (scheduled_time or delay) on the key's open task.
    Reschedule,
    /// StopContact on the key's open task.
    Stop,
    /// TagContact (`tags`) on the key's open task.
    Tag,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Update => "update",
            Action::Reschedule => "reschedule",
            Action::Stop => "stop",
            Action::Tag => "tag",
        }
    }
}

/// What an action does when its key has no open task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfMissing {
    /// Success, nothing done (the task ended already, or never was).
    #[default]
    Ignore,
    /// A permanent failure of the record (NoOpenTask).
    Fail,
    /// Open the task from the route's `task:` block (update and reschedule routes).
    Start,
}

/// What a record asks of the lifecycle besides its request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub action: Action,
    /// The business key (rendered `key`).
    pub key: Option<String>,
    pub if_missing: IfMissing,
    /// The Step Functions task token waiting for the task (never sent to Connect).
    pub task_token: Option<String>,
    /// For `tag`.
    pub tags: BTreeMap<String, String>,
    /// The request's ScheduledTime was derived from the clock (a `delay:`, or a queued
    /// request's time moved forward): it is not part of what the request says, so the payload
    /// hash leaves it out (a redelivery computes another time and is still the same request).
    pub clock_time: bool,
}

impl Plan {
    /// Whether the plan needs the task table.
    pub fn needs_table(&self) -> bool {
        self.action != Action::Start || self.task_token.is_some()
    }
}

/// What the lifecycle did for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Did {
    Started,
    /// Put on the task queue: the task follows at Connect's pace.
    Queued,
    /// Connect's quota of active tasks was exhausted: the record went back on the task queue,
    /// in the function's signed envelope with its identity, after a growing delay (a hand-back
    /// would spend one of the message's receives, and the DLQ would follow in minutes).
    Held,
    /// The key's task exists (open, or opened by this very event): no call.
    Replayed,
    /// The key's task is open and was opened by a different request: answered with it, no
    /// second task (logged, and counted as `KeyReused`).
    KeyReused,
    Updated,
    Rescheduled,
    Stopped,
    Tagged,
    /// Nothing to do (no open task and `if_missing: ignore`; a contact event about a contact
    /// the table does not know, or already heard).
    Ignored,
    /// A contact event ended a task and its workflow was told.
    Heard,
}

impl Did {
    pub fn as_str(self) -> &'static str {
        match self {
            Did::Started => "started",
            Did::Queued => "queued",
            Did::Held => "held",
            Did::Replayed => "replayed",
            Did::KeyReused => "key_reused",
            Did::Updated => "updated",
            Did::Rescheduled => "rescheduled",
            Did::Stopped => "stopped",
            Did::Tagged => "tagged",
            Did::Ignored => "ignored",
            Did::Heard => "heard",
        }
    }
}

/// The result of an action: what was done and the task it was done to.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub did: Did,
    pub contact_id: Option<String>,
    pub client_token: Option<String>,
}

/// How a task ended, from its contact event.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub contact_id: String,
    /// DISCONNECTED or COMPLETED.
    pub event_type: String,
    pub disconnect_reason: Option<String>,
    /// The instance the event says the contact is on (`instanceArn`).
    pub instance_arn: Option<String>,
}

impl Ending {
    /// Whether the event names `instance` (an instance ID or ARN) as the contact's.
    fn on_instance(&self, instance: &str) -> bool {
        let id_of = |text: &str| {
            text.rsplit_once("instance/")
                .map_or(text, |(_, id)| id)
                .to_string()
        };
        let ours = id_of(instance);
        self.instance_arn
            .as_deref()
            .and_then(|arn| arn.rsplit_once("instance/"))
            .is_some_and(|(_, id)| !ours.is_empty() && id == ours)
    }

    /// Connect's disconnect reasons for a task (the contact record's data model): `EXPIRED`
    /// when it expired, `API` when StopContact ended it; anything else (an agent, a flow)
    /// completed it.
    fn state(&self) -> State {
        match self.disconnect_reason.as_deref() {
            Some("EXPIRED") => State::Expired,
            Some("API") => State::Stopped,
            _ => State::Completed,
        }
    }
}

/// The clients and the table the lifecycle needs, built once at cold start.
pub struct Lifecycle {
    pub table: Option<TaskTable>,
    sfn: Option<aws_sdk_sfn::Client>,
    bus: Option<(aws_sdk_eventbridge::Client, String)>,
    /// Each lifecycle operation has its own quota (per account and Region): its own pace.
    paces: Paces,
}

/// One pace per Connect operation the lifecycle calls, each at the operation's own quota
/// shared by `callers` environments.
pub struct Paces {
    paces: Vec<(Op, Pacer)>,
}

impl Paces {
    pub fn new(callers: u32) -> Paces {
        let paces = Op::ALL
            .iter()
            .filter(|op| **op != Op::StartTaskContact)
            .filter_map(|op| {
                let (rate, burst) = op.connect_quota()?;
                Some((
                    *op,
                    Pacer::new(crate::pace::PaceSetting {
                        rate,
                        burst,
                        callers,
                    }),
                ))
            })
            .collect();
        Paces { paces }
    }

    /// The pace `op` draws from.
    pub fn of(&self, op: Op) -> &Pacer {
        &self
            .paces
            .iter()
            .find(|(o, _)| *o == op)
            .expect("every lifecycle operation has a pace")
            .1
    }
}

/// What a call needs from the invocation.
pub struct CallContext<'a> {
    pub client: &'a aws_sdk_connect::Client,
    /// StartTaskContact's pace.
    pub start_pace: &'a Pacer,
    pub policy: &'a CallPolicy,
    pub deadline: Option<Instant>,
    pub instance_id: &'a str,
}

/// Until when a claim this invocation takes holds: past its deadline (Lambda has ended the
/// invocation by then), so that a claim is never taken over while its holder still works.
fn hold_until(call: &CallContext<'_>, now: i64) -> i64 {
    call.deadline
        .map(|d| {
            now + d.saturating_duration_since(Instant::now()).as_secs() as i64 + CLAIM_MARGIN_SECS
        })
        .unwrap_or(now + UNBOUNDED_CLAIM_SECS)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The client token of a business key's `generation`-th task: independent of the route (every
/// route that names the key means the same task) and of the event.
pub fn business_token(instance_id: &str, key: &str, generation: u64) -> String {
    format!(
        "ctb3-{}",
        digest_parts(&[
            instance_id.as_bytes(),
            b"business-key",
            key.as_bytes(),
            generation.to_string().as_bytes(),
        ])
    )
}

impl Lifecycle {
    pub fn new(
        table: Option<TaskTable>,
        sfn: Option<aws_sdk_sfn::Client>,
        bus: Option<(aws_sdk_eventbridge::Client, String)>,
        paces: Paces,
    ) -> Lifecycle {
        Lifecycle {
            table,
            sfn,
            bus,
            paces,
        }
    }

    /// Opens the task of a keyed (or awaited) start through the table: claims the key, calls
    /// StartTaskContact with the key's token, records the task. `origin` is the event's
    /// identity; `payload_hash` what the request says.
    pub async fn start(
        &self,
        call: &CallContext<'_>,
        route: &str,
        request: &TaskRequest,
        plan: &Plan,
        origin: &str,
    ) -> Result<Acted, BridgeError> {
        let table = self.table.as_ref().ok_or_else(no_table)?;
        let token = request.client_token.clone().unwrap_or_default();
        let pk = match &plan.key {
            Some(key) => task_pk(key),
            None => self.token_item(table, &token).await?,
        };
        // What the task was opened with: the request, and the workflow waiting for it (a second
        // workflow on an open key would never be told: that matters too).
        let said = if plan.clock_time {
            let mut said = request.clone();
            said.scheduled_time = None;
            serde_json::to_string(&said)
        } else {
            serde_json::to_string(request)
        };
        let payload_hash = digest_parts(&[
            said.unwrap_or_default().as_bytes(),
            plan.task_token.as_deref().unwrap_or_default().as_bytes(),
        ]);
        let now = now_secs();
        let claim_until = hold_until(call, now);
        match table.claim(&pk, origin, now, claim_until).await? {
            Claimed::Busy => Err(BridgeError::KeyBusy),
            Claimed::Existing(item) => {
                self.settle_ending(call, table, &item).await?;
                let reused = item.state == State::Open
                    && item.payload_hash.as_deref() != Some(payload_hash.as_str());
                if reused {
                    // The key's task stands; the later event is answered with it. Said so,
                    // and counted (KeyReused), never a second task.
                    tracing::warn!(
                        route,
                        contact_id = item.contact_id.as_deref(),
                        "a business key that has an open task came with a different request; answered with the open task"
                    );
                }
                Ok(Acted {
                    did: if reused {
                        Did::KeyReused
                    } else {
                        Did::Replayed
                    },
                    contact_id: item.contact_id,
                    client_token: item.client_token,
                })
            }
            Claimed::Fresh { generation } => {
                let mut request = request.clone();
                if let Some(key) = &plan.key {
                    request.client_token = Some(business_token(call.instance_id, key, generation));
                }
                let token = request.client_token.clone().unwrap_or_default();
                let started = crate::connect::start_task(
                    call.client,
                    &request,
                    call.start_pace,
                    call.deadline,
                    call.policy,
                )
                .await;
                match (protocol::settle(&started), started) {
                    (_, Ok(contact_id)) => {
                        let opened = Opened {
                            contact_id: &contact_id,
                            client_token: &token,
                            route,
                            payload_hash: &payload_hash,
                            task_token: plan.task_token.as_deref(),
                        };
                        table.opened(&pk, generation, &opened, now_secs()).await?;
                        if let Some(item) = table.get(&pk).await? {
                            self.settle_ending(call, table, &item).await?;
                        }
                        Ok(Acted {
                            did: Did::Started,
                            contact_id: Some(contact_id),
                            client_token: Some(token),
                        })
                    }
                    (settle, Err(e)) => {
                        // Connect's own refusal (or ours before the call) opened nothing under
                        // the token: the key has no task. Anything else may have opened one:
                        // the next delivery takes over at once, with the same token.
                        let settled = match settle {
                            protocol::Settle::Refused => table.refused(&pk, generation).await,
                            _ => table.release(&pk, generation).await,
                        };
                        if let Err(release) = settled {
                            tracing::warn!(error_code = release.code(), "claim not released");
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// The item of a keyless task named by its client token. Before tokens had a namespace of
    /// their own (`token#`), such a task was written under `task#<token>`: a task opened then
    /// is found there (its item carries that very token; a route key's item carries a `ctb3-`
    /// token, which no caller may send), so an upgrade never opens a second task.
    async fn token_item(&self, table: &TaskTable, token: &str) -> Result<String, BridgeError> {
        let pk = token_pk(token);
        if table.get(&pk).await?.is_none() {
            let legacy = task_pk(token);
            if let Some(item) = table.get(&legacy).await? {
                if item.client_token.as_deref() == Some(token) {
                    return Ok(legacy);
                }
            }
        }
        Ok(pk)
    }

    /// An action on the key's open task (update, reschedule, stop, tag).
    pub async fn act(
        &self,
        call: &CallContext<'_>,
        route: &str,
        request: &TaskRequest,
        plan: &Plan,
        origin: &str,
    ) -> Result<Acted, BridgeError> {
        let table = self.table.as_ref().ok_or_else(no_table)?;
        let key = plan.key.as_deref().unwrap_or_default();
        let item = table.get(&task_pk(key)).await?;
        let item = match (
            protocol::act(item.as_ref(), plan.action == Action::Stop),
            item,
        ) {
            (protocol::Act::OnTask, Some(item)) => item,
            (protocol::Act::Busy, _) => return Err(BridgeError::KeyBusy),
            // Stopping a task that has ended is done already (and if its workflow was not told
            // yet, a stop that failed to tell it, it is told now).
            (protocol::Act::StopEnded, Some(item)) => {
                let ending = Ending {
                    contact_id: item.contact_id.clone().unwrap_or_default(),
                    event_type: "DISCONNECTED".into(),
                    disconnect_reason: item.disconnect_reason.clone(),
                    instance_arn: None,
                };
                self.finish(call, table, &item, &ending).await?;
                return Ok(Acted {
                    did: Did::Stopped,
                    contact_id: item.contact_id,
                    client_token: item.client_token,
                });
            }
            _ => {
                return match plan.if_missing {
                    IfMissing::Ignore => Ok(Acted {
                        did: Did::Ignored,
                        contact_id: None,
                        client_token: None,
                    }),
                    IfMissing::Fail => Err(BridgeError::NoOpenTask {
                        route: route.to_string(),
                    }),
                    IfMissing::Start => {
                        let started = Plan {
                            action: Action::Start,
                            ..plan.clone()
                        };
                        Box::pin(self.start(call, route, request, &started, origin)).await
                    }
                }
            }
        };
        let contact_id = item.contact_id.clone().unwrap_or_default();
        let instance = call.instance_id;
        let client = call.client;
        let did = match plan.action {
            Action::Start => unreachable!("starts go through `start`"),
            Action::Update => {
                let touches_contact = request.name.is_some()
                    || request.description.is_some()
                    || request.references.is_some()
                    || request.segment_attributes.is_some();
                if touches_contact {
                    let references = sdk_references(request)?;
                    self.paced(call, Op::UpdateContact, || {
                        client
                            .update_contact()
                            .instance_id(instance)
                            .contact_id(&contact_id)
                            .set_name(request.name.clone())
                            .set_description(request.description.clone())
                            .set_references(references.clone())
                            .set_segment_attributes(sdk_segments(request))
                            .send()
                    })
                    .await?;
                }
                if let Some(attributes) = &request.attributes {
                    self.paced(call, Op::UpdateContactAttributes, || {
                        client
                            .update_contact_attributes()
                            .instance_id(instance)
                            .initial_contact_id(&contact_id)
                            .set_attributes(Some(attributes.clone().into_iter().collect()))
                            .send()
                    })
                    .await?;
                }
                Did::Updated
            }
            Action::Reschedule => {
                let when = request.scheduled_time.ok_or_else(|| {
                    BridgeError::validation("ScheduledTime", "a reschedule needs a time")
                })?;
                self.paced(call, Op::UpdateContactSchedule, || {
                    client
                        .update_contact_schedule()
                        .instance_id(instance)
                        .contact_id(&contact_id)
                        .scheduled_time(when.0)
                        .send()
                })
                .await?;
                Did::Rescheduled
            }
            Action::Tag => {
                self.paced(call, Op::TagContact, || {
                    client
                        .tag_contact()
                        .instance_id(instance)
                        .contact_id(&contact_id)
                        .set_tags(Some(plan.tags.clone().into_iter().collect()))
                        .send()
                })
                .await?;
                Did::Tagged
            }
            Action::Stop => {
                let stopped = self
                    .paced(call, Op::StopContact, || {
                        client
                            .stop_contact()
                            .instance_id(instance)
                            .contact_id(&contact_id)
                            .send()
                    })
                    .await;
                let stop = Ending {
                    contact_id: contact_id.clone(),
                    event_type: "DISCONNECTED".into(),
                    disconnect_reason: Some("API".into()),
                    instance_arn: None,
                };
                let ending = match stopped {
                    Ok(_) => stop,
                    // It ended meanwhile (an agent completed it, it expired): stopped is what
                    // was asked, but the workflow is told how it really ended, as Connect
                    // describes it (an agent's completion once reached it as "stopped", and the
                    // agent's decision was lost).
                    // Connect says it has ended, but must also describe it so: a "not found"
                    // Connect contradicts (the task still open) ends nothing, and is tried
                    // again (it once ended the item while the task stayed open, and the key's
                    // next start opened a second task).
                    Err(BridgeError::Connect { code, .. })
                        if code == "ContactNotFoundException" =>
                    {
                        self.confirm(call, &stop)
                            .await?
                            .ok_or(BridgeError::Dispatch {
                                code: "StopUnconfirmed",
                                message: "StopContact found no contact, and Connect does not describe it as ended".into(),
                            })?
                    }
                    Err(e) => return Err(e),
                };
                self.finish(call, table, &item, &ending).await?;
                Did::Stopped
            }
        };
        Ok(Acted {
            did,
            contact_id: Some(contact_id),
            client_token: item.client_token,
        })
    }

    /// A contact event: a task the table knows has ended. Marks it and tells its workflow,
    /// once; events about other contacts, other states or tasks already heard are ignored.
    pub async fn hear(
        &self,
        call: &CallContext<'_>,
        ending: &Ending,
    ) -> Result<Acted, BridgeError> {
        let ignored = Acted {
            did: Did::Ignored,
            contact_id: Some(ending.contact_id.clone()),
            client_token: None,
        };
        let Some(table) = &self.table else {
            return Ok(ignored);
        };
        if !matches!(ending.event_type.as_str(), "DISCONNECTED" | "COMPLETED") {
            return Ok(ignored);
        }
        // Another instance's contact (or an event that names none): not ours to act on.
        if !ending.on_instance(call.instance_id) {
            tracing::warn!(
                contact_id = %ending.contact_id,
                "a contact event for another instance (or none) was ignored"
            );
            return Ok(ignored);
        }
        let item = match table.by_contact(&ending.contact_id).await? {
            Some(item) => item,
            None => {
                // Not a contact the table knows, or not yet: its start may still be recording
                // it (its answer in flight, or lost to a crash and taken over later). A mark
                // for that start to find, then a second look: the start writes the contact
                // before it reads the mark, this writes the mark before it looks again, so one
                // of the two sees the other.
                table.mark_early(&ending.contact_id, now_secs()).await?;
                match table.by_contact(&ending.contact_id).await? {
                    Some(item) => item,
                    None => return Ok(ignored),
                }
            }
        };
        // A message is not Connect: anyone who can send to a queue wired to the function can
        // write one. The ending is acted on only as Connect confirms it, with Connect's reason.
        let Some(confirmed) = self.confirm(call, ending).await? else {
            tracing::warn!(
                contact_id = %ending.contact_id,
                "a contact event said a task ended, and Connect does not confirm it: ignored"
            );
            return Ok(ignored);
        };
        let told = self.finish(call, table, &item, &confirmed).await?;
        Ok(Acted {
            did: if told { Did::Heard } else { Did::Ignored },
            contact_id: Some(ending.contact_id.clone()),
            client_token: item.client_token,
        })
    }

    /// What a start leaves of its task's ending, finished (found by the protocol's model):
    /// - a contact event about the task's contact came before the table knew it (`hear` left a
    ///   mark): the task is ended now, as Connect confirms it (the event was ignored for good:
    ///   the key stayed open on an ended task, its workflow was never told);
    /// - the task ended and its notification was not done (its notifier, this very event the
    ///   last time, was cut short): it is done now.
    async fn settle_ending(
        &self,
        call: &CallContext<'_>,
        table: &TaskTable,
        item: &TaskItem,
    ) -> Result<(), BridgeError> {
        if item.state.ended() && !item.notified {
            let ending = Ending {
                contact_id: item.contact_id.clone().unwrap_or_default(),
                event_type: "DISCONNECTED".into(),
                disconnect_reason: item.disconnect_reason.clone(),
                instance_arn: None,
            };
            self.finish(call, table, item, &ending).await?;
            return Ok(());
        }
        let Some(contact) = item.contact_id.as_deref() else {
            return Ok(());
        };
        if item.state != State::Open || !table.heard_early(contact).await? {
            return Ok(());
        }
        let probe = Ending {
            contact_id: contact.to_string(),
            event_type: "DISCONNECTED".into(),
            disconnect_reason: None,
            instance_arn: None,
        };
        if let Some(confirmed) = self.confirm(call, &probe).await? {
            self.finish(call, table, item, &confirmed).await?;
        }
        Ok(())
    }

    /// The ending as Connect describes the contact (DescribeContact): a task on our instance
    /// with a disconnect timestamp, and Connect's disconnect reason. None when Connect says
    /// otherwise (not ended, not a task, not on the instance).
    async fn confirm(
        &self,
        call: &CallContext<'_>,
        ending: &Ending,
    ) -> Result<Option<Ending>, BridgeError> {
        let client = call.client;
        let described = self
            .paced(call, Op::DescribeContact, || {
                client
                    .describe_contact()
                    .instance_id(call.instance_id)
                    .contact_id(&ending.contact_id)
                    .send()
            })
            .await;
        let contact = match described {
            Ok(out) => out.contact,
            Err(BridgeError::Connect { code, .. }) if code == "ResourceNotFoundException" => None,
            Err(e) => return Err(e),
        };
        let Some(contact) = contact else {
            return Ok(None);
        };
        let ended = contact.channel == Some(aws_sdk_connect::types::Channel::Task)
            && contact.id.as_deref() == Some(ending.contact_id.as_str())
            && contact.disconnect_timestamp.is_some();
        Ok(ended.then(|| Ending {
            contact_id: ending.contact_id.clone(),
            event_type: ending.event_type.clone(),
            disconnect_reason: contact.disconnect_reason.clone(),
            instance_arn: ending.instance_arn.clone(),
        }))
    }

    /// Ends `item` as `ending` says and notifies its workflow, unless that was done already.
    /// True when this call notified.
    async fn finish(
        &self,
        call: &CallContext<'_>,
        table: &TaskTable,
        item: &TaskItem,
        ending: &Ending,
    ) -> Result<bool, BridgeError> {
        let now = now_secs();
        let state = ending.state();
        let ours = if item.state == State::Open {
            table
                .end(
                    item,
                    state,
                    ending.disconnect_reason.as_deref(),
                    now,
                    hold_until(call, now),
                )
                .await?
        } else {
            false
        };
        // Ended by another delivery whose notification did not finish: taken over once its
        // claim ran out.
        let (ours, item) = if ours {
            (true, item.clone())
        } else {
            match table.get(&item.pk).await? {
                Some(fresh) if fresh.generation == item.generation => {
                    let held = hold_until(call, now);
                    (table.claim_notification(&fresh, now, held).await?, fresh)
                }
                _ => (false, item.clone()),
            }
        };
        if !ours {
            return Ok(false);
        }
        let (state, reason) = if item.state.ended() {
            (item.state, item.disconnect_reason.clone())
        } else {
            (state, ending.disconnect_reason.clone())
        };
        if let Err(e) = self.notify(call, &item, state, reason.as_deref()).await {
            // The event comes back (its record failed): the next delivery notifies.
            if let Err(release) = table.release_notification(&item).await {
                tracing::warn!(
                    error_code = release.code(),
                    "notification claim not released"
                );
            }
            return Err(e);
        }
        table.notified(&item).await?;
        Ok(true)
    }

    async fn notify(
        &self,
        call: &CallContext<'_>,
        item: &TaskItem,
        state: State,
        reason: Option<&str>,
    ) -> Result<(), BridgeError> {
        let contact_id = item.contact_id.clone().unwrap_or_default();
        let key = name_of(&item.pk);
        let outcome = json!({
            "contactId": contact_id,
            "key": key,
            "outcome": state.as_str(),
            "disconnectReason": reason,
        });
        if let (Some(token), Some(sfn)) = (&item.task_token, &self.sfn) {
            let sent = if state == State::Completed {
                // Contact events do not carry the attributes: read them back. Without them
                // the workflow would be told the agent's decision is empty: the notification
                // waits for the event's next delivery instead.
                let client = call.client;
                let attributes = self
                    .paced(call, Op::GetContactAttributes, || {
                        client
                            .get_contact_attributes()
                            .instance_id(call.instance_id)
                            .initial_contact_id(&contact_id)
                            .send()
                    })
                    .await?
                    .attributes
                    .unwrap_or_default();
                let mut output = outcome.clone();
                output["attributes"] =
                    json!(attributes.into_iter().collect::<BTreeMap<String, String>>());
                sfn.send_task_success()
                    .task_token(token)
                    .output(output.to_string())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| Op::SendTaskSuccess.error(e))
            } else {
                sfn.send_task_failure()
                    .task_token(token)
                    .error(if state == State::Expired {
                        "TaskExpired"
                    } else {
                        "TaskStopped"
                    })
                    .cause(outcome.to_string())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| Op::SendTaskFailure.error(e))
            };
            match sent {
                Ok(()) => {}
                // The workflow stopped waiting, or was told already: nothing left to tell.
                Err(BridgeError::Notify { code })
                    if Service::StepFunctions.kind_of(&code) == Kind::Gone =>
                {
                    tracing::warn!(error_code = code, "the waiting workflow is gone");
                }
                Err(e) => return Err(e),
            }
        }
        if let Some((events, bus)) = &self.bus {
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source("connect-task-bridge")
                .detail_type("Connect Task Completed")
                .detail(outcome.to_string())
                .build();
            let out = events
                .put_events()
                .entries(entry)
                .send()
                .await
                .map_err(|e| Op::PutEvents.error(e))?;
            if out.failed_entry_count > 0 {
                return Err(BridgeError::Notify {
                    code: "PutEventsFailedEntry".into(),
                });
            }
        }
        Ok(())
    }

    /// A lifecycle call through its own pace.
    async fn paced<T, E, R, F, Fut>(
        &self,
        call: &CallContext<'_>,
        op: Op,
        mut attempt: F,
    ) -> Result<T, BridgeError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, aws_sdk_connect::error::SdkError<E, R>>>,
        E: aws_sdk_connect::error::ProvideErrorMetadata + std::error::Error,
        R: std::fmt::Debug,
    {
        paced(self.paces.of(op), call.deadline, call.policy, |_| {
            let fut = attempt();
            async move { fut.await.map_err(|e| op.error(e)) }
        })
        .await
    }
}

fn no_table() -> BridgeError {
    BridgeError::Store {
        code: "NoTaskTable".into(),
        class: crate::error::ErrorClass::Permanent,
    }
}

/// A contact event's detail, as far as the lifecycle reads it.
pub fn ending_of(detail: &Value) -> Option<Ending> {
    Some(Ending {
        contact_id: detail.get("contactId")?.as_str()?.to_string(),
        event_type: detail.get("eventType")?.as_str()?.to_string(),
        disconnect_reason: detail
            .get("disconnectReason")
            .and_then(Value::as_str)
            .map(str::to_string),
        instance_arn: detail
            .get("instanceArn")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Each operation draws from its own bucket at its own quota (a shared 10/s bucket let
    /// reschedules run at five times UpdateContactSchedule's quota).
    #[test]
    fn each_operation_draws_from_its_own_quota() {
        let paces = Paces::new(1);
        let quota = |op| {
            let pacer = paces.of(op);
            (pacer.rate(), pacer.time_for(100))
        };
        assert_eq!(quota(Op::UpdateContactSchedule).0, 2.0);
        assert_eq!(quota(Op::StopContact).0, 10.0);
        assert_eq!(quota(Op::UpdateContact).0, 10.0);
        assert_eq!(quota(Op::UpdateContactAttributes).0, 10.0);
        assert_eq!(quota(Op::GetContactAttributes).0, 10.0);
        assert_eq!(quota(Op::DescribeContact).0, 10.0);
        assert_eq!(quota(Op::TagContact).0, 20.0);
        // Spending one operation's bucket leaves the others as they were.
        let stop_before = paces.of(Op::StopContact).time_for(1);
        for _ in 0..50 {
            paces.of(Op::UpdateContactSchedule).reserve(None);
        }
        assert!(paces.of(Op::UpdateContactSchedule).time_for(1) > Duration::from_secs(10));
        assert_eq!(paces.of(Op::StopContact).time_for(1), stop_before);
        // Two environments share each quota.
        assert_eq!(Paces::new(2).of(Op::TagContact).rate(), 10.0);
    }

    #[test]
    fn business_tokens_depend_on_key_and_generation_only() {
        let a = business_token("inst", "order-1", 1);
        assert!(a.starts_with("ctb3-") && a.len() == 69);
        assert_eq!(a, business_token("inst", "order-1", 1));
        assert_ne!(a, business_token("inst", "order-1", 2));
        assert_ne!(a, business_token("inst", "order-2", 1));
        assert_ne!(a, business_token("other", "order-1", 1));
    }

    #[test]
    fn an_ending_is_ours_only_on_our_instance() {
        let on = |arn: Option<&str>| Ending {
            contact_id: "c".into(),
            event_type: "DISCONNECTED".into(),
            disconnect_reason: None,
            instance_arn: arn.map(str::to_string),
        };
        let arn = "arn:aws:connect:eu-west-1:1:instance/abc-1";
        assert!(on(Some(arn)).on_instance("abc-1"));
        assert!(on(Some(arn)).on_instance(arn));
        assert!(!on(Some(arn)).on_instance("abc-2"));
        assert!(!on(Some("arn:aws:connect:eu-west-1:1:instance/abc-10")).on_instance("abc-1"));
        assert!(!on(None).on_instance("abc-1"));
        assert!(!on(Some("abc-1")).on_instance("abc-1"));
        assert!(!on(Some(arn)).on_instance(""));
    }

    #[test]
    fn disconnect_reasons_say_how_a_task_ended() {
        let ending = |reason: Option<&str>| Ending {
            contact_id: "c".into(),
            event_type: "DISCONNECTED".into(),
            disconnect_reason: reason.map(str::to_string),
            instance_arn: None,
        };
        assert_eq!(ending(Some("EXPIRED")).state(), State::Expired);
        assert_eq!(ending(Some("API")).state(), State::Stopped);
        assert_eq!(ending(Some("AGENT_DISCONNECT")).state(), State::Completed);
        assert_eq!(ending(None).state(), State::Completed);
    }
}
