//! The task lifecycle: what a route does besides opening a task (`action`), the business key
//! that names a task across events, the task table that remembers it, and what happens when
//! Connect says the task ended (its contact events): the table is updated and the workflow
//! that waits for the task is told (Step Functions, the completion event bus).
//!
//! Guarantees (docs/lifecycle.md, "Guarantees"): a start with a key opens at most one task per key while it
//! is open (claimed in the table before the call, same client token on a retry); each action is
//! idempotent under redelivery (stopping a stopped task is success, an update reapplied is
//! harmless); a task's workflow is notified once, whatever the order or number of its events.
//! The notification itself (Step Functions, the completion event bus) is `notify`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

mod notify;

use crate::connect::{self, CallContext, Paces};
use crate::error::BridgeError;
use crate::plan::{Action, Did, Ending, IfMissing, Plan};
use crate::protocol;
use crate::response::Done;
use crate::table::{task_pk, token_pk, Claimed, Opened, State, TaskItem, TaskTable};
use crate::task::TaskRequest;
use crate::template::book::Book;
use crate::token::{business_token, request_digest};

/// How long past its invocation's deadline a claim holds: Lambda has ended the invocation by
/// then, so a claim still `starting` is a crash's, and the next delivery takes it over.
const CLAIM_MARGIN_SECS: i64 = 2;
/// A claim's hold when the invocation has no deadline (local runs).
const UNBOUNDED_CLAIM_SECS: i64 = 120;

/// Connect's disconnect reasons for a task (the contact record's data model): `EXPIRED`
/// when it expired, `API` when StopContact ended it; anything else (an agent, a flow)
/// completed it.
fn ended_state(ending: &Ending) -> State {
    match ending.disconnect_reason.as_deref() {
        Some("EXPIRED") => State::Expired,
        Some("API") => State::Stopped,
        _ => State::Completed,
    }
}

/// The clients and the table the lifecycle needs, built once at cold start.
pub struct Lifecycle {
    pub table: Option<TaskTable>,
    sfn: Option<aws_sdk_sfn::Client>,
    bus: Option<(aws_sdk_eventbridge::Client, String)>,
    /// Each lifecycle operation has its own quota (per account and Region): its own pace.
    paces: Paces,
    /// The task templates a start is checked against before its call (`template::book`).
    pub templates: Option<std::sync::Arc<Book>>,
    /// The client tokens of this invocation's starts that sent a token again after a call
    /// whose outcome is unknown (`Claimed::Fresh::retaken`): Connect answered them from the
    /// token if that call made the task. Counted as replays (`take_retaken`).
    retaken: std::sync::Mutex<Vec<String>>,
}

/// Until when a claim this invocation takes holds: past its deadline (Lambda has ended the
/// invocation by then), so that a claim is never taken over while its holder still works.
fn hold_until(deadline: Option<Instant>, now: i64) -> i64 {
    deadline
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
            templates: None,
            retaken: Default::default(),
        }
    }

    /// The client tokens of the starts that sent a token again since the last call (one
    /// invocation's, as the handler takes them after each).
    pub fn take_retaken(&self) -> std::collections::HashSet<String> {
        let mut retaken = self.retaken.lock().unwrap_or_else(|e| e.into_inner());
        retaken.drain(..).collect()
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
    ) -> Result<Done, BridgeError> {
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
        let payload_hash = request_digest(
            &said.unwrap_or_default(),
            plan.task_token.as_deref().unwrap_or_default(),
        );
        let now = now_secs();
        let claim_until = hold_until(call.deadline, now);
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
                // The same request: this event again (its redelivery), or another event
                // asking for the task the key already has.
                let did = if reused {
                    Did::KeyReused
                } else if item.origin.as_deref() == Some(origin) {
                    Did::Replayed
                } else {
                    Did::Found
                };
                Ok(done(
                    route,
                    request,
                    did,
                    item.contact_id,
                    item.client_token,
                ))
            }
            Claimed::Fresh {
                generation,
                retaken,
            } => {
                let mut request = request.clone();
                if let Some(key) = &plan.key {
                    request.client_token = Some(business_token(call.instance_id, key, generation));
                }
                let token = request.client_token.clone().unwrap_or_default();
                // Held to its task template only now that it will create a task: a key whose
                // task is open is answered with it, whatever the template says today.
                let checked = match &self.templates {
                    Some(book) => book.check(&request, call.deadline).await,
                    None => Ok(()),
                };
                let started = match checked {
                    Ok(()) => {
                        crate::connect::start_task(
                            call.client,
                            &request,
                            call.start_pace,
                            call.deadline,
                            call.policy,
                            call.priority,
                        )
                        .await
                    }
                    Err(refused) => Err(refused),
                };
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
                        if retaken {
                            self.retaken
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(token.clone());
                        }
                        if let Some(item) = table.get(&pk).await? {
                            self.settle_ending(call, table, &item).await?;
                        }
                        Ok(done(
                            route,
                            &request,
                            Did::Started,
                            Some(contact_id),
                            Some(token),
                        ))
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
    ) -> Result<Done, BridgeError> {
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
                return Ok(done(
                    route,
                    request,
                    Did::Stopped,
                    item.contact_id,
                    item.client_token,
                ));
            }
            _ => {
                return match plan.if_missing {
                    IfMissing::Ignore => Ok(done(route, request, Did::Ignored, None, None)),
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
        let paces = &self.paces;
        let did = match plan.action {
            Action::Start => unreachable!("starts go through `start`"),
            Action::Update => {
                connect::update_task(call, paces, &contact_id, request).await?;
                Did::Updated
            }
            Action::Reschedule => {
                let when = request.scheduled_time.ok_or_else(|| {
                    BridgeError::validation("ScheduledTime", "a reschedule needs a time")
                })?;
                connect::reschedule_task(call, paces, &contact_id, when.0).await?;
                Did::Rescheduled
            }
            Action::Tag => {
                connect::tag_task(call, paces, &contact_id, &plan.tags).await?;
                Did::Tagged
            }
            Action::Stop => {
                let stop = Ending {
                    contact_id: contact_id.clone(),
                    event_type: "DISCONNECTED".into(),
                    disconnect_reason: Some("API".into()),
                    instance_arn: None,
                };
                let ending = if connect::stop_task(call, paces, &contact_id).await? {
                    stop
                } else {
                    // It ended meanwhile (an agent completed it, it expired): stopped is what
                    // was asked, but the workflow is told how it really ended, as Connect
                    // describes it (an agent's completion once reached it as "stopped", and the
                    // agent's decision was lost).
                    // Connect says it has ended, but must also describe it so: a "not found"
                    // Connect contradicts (the task still open) ends nothing, and is tried
                    // again (it once ended the item while the task stayed open, and the key's
                    // next start opened a second task).
                    self.confirm(call, &stop)
                        .await?
                        .ok_or(BridgeError::Dispatch {
                            code: "StopUnconfirmed",
                            message: "StopContact found no contact, and Connect does not describe it as ended".into(),
                        })?
                };
                self.finish(call, table, &item, &ending).await?;
                Did::Stopped
            }
        };
        Ok(done(
            route,
            request,
            did,
            Some(contact_id),
            item.client_token,
        ))
    }

    /// A contact event: a task the table knows has ended. Marks it and tells its workflow,
    /// once; events about other contacts, other states or tasks already heard are ignored.
    pub async fn hear(
        &self,
        call: &CallContext<'_>,
        ending: Option<&Ending>,
    ) -> Result<Done, BridgeError> {
        let ignored = Done {
            did: Did::Ignored,
            contact_id: ending.map(|e| e.contact_id.clone()),
            client_token: String::new(),
            route: HEARD.into(),
        };
        // A contact event that is not about a contact's ending (or not Connect's at all).
        let Some(ending) = ending else {
            return Ok(ignored);
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
        Ok(Done {
            did: if told { Did::Heard } else { Did::Ignored },
            contact_id: Some(ending.contact_id.clone()),
            client_token: item.client_token.unwrap_or_default(),
            route: HEARD.into(),
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
        let contact = connect::describe_task(call, &self.paces, &ending.contact_id).await?;
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
        let state = ended_state(ending);
        let ours = if item.state == State::Open {
            table
                .end(
                    item,
                    state,
                    ending.disconnect_reason.as_deref(),
                    now,
                    hold_until(call.deadline, now),
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
                    let held = hold_until(call.deadline, now);
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
}

/// The route contact events are answered under: they take none.
const HEARD: &str = "contact_event";

/// What was done for a record of `route`: the task, named by the token it was opened with, or
/// by the request's own when the action found no task.
fn done(
    route: &str,
    request: &TaskRequest,
    did: Did,
    contact_id: Option<String>,
    client_token: Option<String>,
) -> Done {
    Done {
        did,
        contact_id,
        client_token: client_token
            .or_else(|| request.client_token.clone())
            .unwrap_or_default(),
        route: route.to_string(),
    }
}

fn no_table() -> BridgeError {
    BridgeError::Store {
        code: "NoTaskTable".into(),
        class: crate::error::ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Op;

    #[test]
    fn a_claim_holds_past_its_invocations_deadline() {
        let now = 1_000;
        let deadline = Instant::now() + std::time::Duration::from_millis(10_500);
        let until = hold_until(Some(deadline), now);
        // 10 s left (the half second rounds down, or a little has passed since) and the margin.
        assert!(
            (now + 9 + CLAIM_MARGIN_SECS..=now + 10 + CLAIM_MARGIN_SECS).contains(&until),
            "{until}"
        );
        let passed = Instant::now() - std::time::Duration::from_secs(5);
        assert_eq!(hold_until(Some(passed), now), now + CLAIM_MARGIN_SECS);
        assert_eq!(hold_until(None, now), now + UNBOUNDED_CLAIM_SECS);
        let clock = now_secs();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((wall - 1..=wall + 1).contains(&clock));
    }
    use futures_util::FutureExt;
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
            paces
                .of(Op::UpdateContactSchedule)
                .reserve(None, crate::plan::Priority::Normal)
                .now_or_never()
                .flatten();
        }
        assert!(paces.of(Op::UpdateContactSchedule).time_for(1) > Duration::from_secs(10));
        assert_eq!(paces.of(Op::StopContact).time_for(1), stop_before);
        // Two environments share each quota.
        assert_eq!(Paces::new(2).of(Op::TagContact).rate(), 10.0);
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
        assert_eq!(ended_state(&ending(Some("EXPIRED"))), State::Expired);
        assert_eq!(ended_state(&ending(Some("API"))), State::Stopped);
        assert_eq!(
            ended_state(&ending(Some("AGENT_DISCONNECT"))),
            State::Completed
        );
        assert_eq!(ended_state(&ending(None)), State::Completed);
    }
}
