//! Telling the workflow that waits for a task how it ended: Step Functions (SendTaskSuccess with
//! the task's attributes, or SendTaskFailure) and the completion event bus. Called by the
//! lifecycle once it holds the task's notification claim.

use serde_json::json;

use super::Lifecycle;
use crate::connect::{self, CallContext};
use crate::error::{BridgeError, Kind, Op, Service};
use crate::table::{name_of, State, TaskItem};

impl Lifecycle {
    /// Notifies the task's workflow of `state` (and Connect's reason).
    pub(super) async fn notify(
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
                let attributes = connect::task_attributes(call, &self.paces, &contact_id).await?;
                let mut output = outcome.clone();
                output["attributes"] = json!(attributes);
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
}
