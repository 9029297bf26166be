//! What a record asks of a key's task and what was done: the lifecycle's vocabulary, shared by
//! the mapping (which compiles routes into plans), validation, the sources and the lifecycle
//! itself. No AWS client lives here, so the template compiler and the sources depend on words,
//! not on the orchestration that calls Connect, Step Functions and EventBridge.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

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

/// How urgently a route's calls go to Connect (`priority:` on a route). High-priority records
/// are queued to the priority queue when the function queues them, and take the pace's tokens
/// before normal calls already waiting; normal traffic keeps a configured share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
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
    /// The route's lane: where the function queues the record, and its place in the pace.
    pub priority: Priority,
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
    /// The key's task was opened by this very event (a redelivery): answered with it, no call.
    Replayed,
    /// The key's open task was opened by another event with the same request: answered with
    /// it, no call.
    Found,
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
            Did::Found => "found",
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
    pub fn on_instance(&self, instance: &str) -> bool {
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

    /// The names are what logs, metrics and answers say (`outcome`, `Outcome`): an interface.
    #[test]
    fn actions_and_outcomes_keep_their_names() {
        let actions = [
            (Action::Start, "start"),
            (Action::Update, "update"),
            (Action::Reschedule, "reschedule"),
            (Action::Stop, "stop"),
            (Action::Tag, "tag"),
        ];
        for (action, name) in actions {
            assert_eq!(action.as_str(), name);
        }
        let dids = [
            (Did::Started, "started"),
            (Did::Queued, "queued"),
            (Did::Held, "held"),
            (Did::Replayed, "replayed"),
            (Did::KeyReused, "key_reused"),
            (Did::Updated, "updated"),
            (Did::Rescheduled, "rescheduled"),
            (Did::Stopped, "stopped"),
            (Did::Tagged, "tagged"),
            (Did::Ignored, "ignored"),
            (Did::Heard, "heard"),
        ];
        for (did, name) in dids {
            assert_eq!(did.as_str(), name);
        }
    }

    #[test]
    fn only_a_plain_start_goes_without_the_table() {
        let plan = |action, task_token: Option<&str>| Plan {
            action,
            task_token: task_token.map(str::to_string),
            ..Plan::default()
        };
        assert!(!plan(Action::Start, None).needs_table());
        assert!(plan(Action::Start, Some("t")).needs_table());
        for action in [
            Action::Update,
            Action::Reschedule,
            Action::Stop,
            Action::Tag,
        ] {
            assert!(plan(action, None).needs_table(), "{action:?}");
        }
    }

    #[test]
    fn a_contact_event_names_its_instance_by_arn() {
        let ending = |arn: &str| Ending {
            contact_id: "c".into(),
            event_type: "DISCONNECTED".into(),
            disconnect_reason: None,
            instance_arn: Some(arn.into()),
        };
        let arn = "arn:aws:connect:eu-west-1:123456789012:instance/abc-1";
        assert!(ending(arn).on_instance("abc-1"));
        assert!(ending(arn).on_instance(arn));
        assert!(!ending(arn).on_instance("abc-2"));
        assert!(!ending(arn).on_instance(""));
        let read = ending_of(&serde_json::json!({
            "contactId": "c-1", "eventType": "COMPLETED", "instanceArn": arn
        }))
        .unwrap();
        assert_eq!(read.contact_id, "c-1");
        assert_eq!(read.event_type, "COMPLETED");
        assert!(ending_of(&serde_json::json!({"eventType": "COMPLETED"})).is_none());
    }
}
