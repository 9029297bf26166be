//! From a record to the exact request that will be sent: route (or pass-through for direct
//! payloads), configured defaults, client token, validation. `render` and the Lambda handler
//! share this path, so what `render` prints is what the function sends.

use aws_smithy_types::DateTime;

use crate::config::{Config, ContactLink};
use crate::error::BridgeError;
use crate::plan::{Action, Plan};
use crate::record::{Record, Work};
use crate::sources::open;
use crate::task::{ScheduledTime, TaskRequest};
use crate::token::business_token;
use crate::token::client_token;
use crate::validate::{validate, validate_action};
use crate::webhook_auth::WebhookAuth;

/// Route name used for direct invocations, which bypass the mapping.
pub const DIRECT_ROUTE: &str = "direct";

#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub route: String,
    /// Complete and validated; `client_token` is always set.
    pub request: TaskRequest,
    /// The action, business key and waiting workflow (see `lifecycle`).
    pub plan: Plan,
}

impl Prepared {
    pub fn client_token(&self) -> &str {
        self.request.client_token.as_deref().unwrap_or_default()
    }
}

/// A record's id and what preparing it gave.
pub type PreparedRecord = (String, Result<Prepared, BridgeError>);

/// Every record of a payload, prepared as `render` shows them and the fuzz targets and their
/// corpus test exercise them: the whole path without a call. Each item is a record's id and its
/// request or error; the payload as a whole fails only where `sources::open` does. No caller is
/// authenticated: the payload is the author's own file or generated input.
pub fn prepare_payload(
    payload: serde_json::Value,
    config: &Config,
    now: DateTime,
) -> Result<Vec<PreparedRecord>, BridgeError> {
    let envelope = open(payload, config.limits, &WebhookAuth::None, None)?;
    Ok(envelope
        .records
        .into_iter()
        .map(|record| match record {
            Err(e) => (e.id, Err(e.error)),
            Ok(r) => {
                let prepared = prepare(&r, config, now);
                (r.id, prepared)
            }
        })
        .collect())
}

/// A queued request's ScheduledTime this close to now (or past) is dropped rather than sent: the
/// pace may hold the call for up to the invocation's time, and Connect refuses a time in the
/// past. The task starts at most this much early.
const QUEUED_TIME_MARGIN_SECS: i64 = 60;

pub fn prepare(record: &Record, config: &Config, now: DateTime) -> Result<Prepared, BridgeError> {
    let (route, mut request, identity, mut plan) = match &record.work {
        Work::Direct {
            request,
            task_token,
        } => (
            DIRECT_ROUTE.to_string(),
            (**request).clone(),
            record.identity.clone(),
            Plan {
                task_token: task_token.clone(),
                ..Plan::default()
            },
        ),
        Work::Route(content) => {
            let routed = config.mapping.apply(record, content, now)?;
            (routed.route, routed.request, routed.identity, routed.plan)
        }
        Work::Heard(_) => return Err(BridgeError::Internal),
    };
    request.apply_defaults(&config.defaults);
    if let Some(contact) = &record.linked_contact {
        // Unless the route links the task itself.
        if request.related_contact_id.is_none() && request.previous_contact_id.is_none() {
            match config.contact_link {
                ContactLink::Related => request.related_contact_id = Some(contact.clone()),
                ContactLink::Previous => request.previous_contact_id = Some(contact.clone()),
            }
        }
    }
    if request.client_token.is_none() {
        let instance = request.instance_id.as_deref().unwrap_or_default();
        request.client_token = Some(match &plan.key {
            // The key's first task; the task table names later generations.
            Some(key) => business_token(instance, key, 1),
            None => client_token(instance, &route, &identity),
        });
    }
    // A request the function queued itself was answered 202 when it came in: it is judged as
    // it was then, and a ScheduledTime that has passed since (Connect refuses one in the past)
    // is dropped: the task is due, and starts now.
    let judged_at = record.queued_at.map_or(now, DateTime::from);
    match plan.action {
        Action::Start => validate(&request, judged_at)?,
        _ => validate_action(&request, &plan, judged_at)?,
    }
    if record.queued_at.is_some()
        && plan.action == Action::Start
        && request
            .scheduled_time
            .is_some_and(|t| t.0.secs() <= now.secs() + QUEUED_TIME_MARGIN_SECS)
    {
        // A task template may require its SCHEDULED_TIME field: the time moves to just ahead
        // of the call instead of going (still valid when the pace holds the call for a while).
        request.scheduled_time = request
            .task_template_id
            .is_some()
            .then(|| ScheduledTime::from_epoch_secs(now.secs() + 2 * QUEUED_TIME_MARGIN_SECS));
        plan.clock_time = true;
    }
    Ok(Prepared {
        route,
        request,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::EnvelopeLimits;
    use crate::token::Identity;
    use serde_json::json;

    fn config(mapping: Option<&str>) -> Config {
        Config::from_lookup(|k| match k {
            "CONNECT_INSTANCE_ID" => Some("inst".into()),
            "CONNECT_CONTACT_FLOW_ID" => Some("flow".into()),
            "TASK_MAPPING" => mapping.map(str::to_string),
            _ => None,
        })
        .unwrap()
    }

    fn record(payload: serde_json::Value) -> Record {
        open(
            payload,
            EnvelopeLimits::default(),
            &crate::webhook_auth::WebhookAuth::None,
            None,
        )
        .unwrap()
        .records
        .remove(0)
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn direct_payload_keeps_its_token_and_gets_defaults() {
        let r = record(json!({"Name": "n", "ClientToken": "mine"}));
        let p = prepare(&r, &config(None), DateTime::from_secs(NOW)).unwrap();
        assert_eq!(p.route, "direct");
        assert_eq!(p.client_token(), "mine");
        assert_eq!(p.request.instance_id.as_deref(), Some("inst"));
        assert_eq!(p.request.contact_flow_id.as_deref(), Some("flow"));
    }

    #[test]
    fn direct_payload_without_token_gets_a_derived_one() {
        let r = record(json!({"Name": "n", "TaskTemplateId": "tpl"}));
        let p = prepare(&r, &config(None), DateTime::from_secs(NOW)).unwrap();
        assert_eq!(
            p.client_token(),
            client_token("inst", "direct", &r.identity)
        );
        assert_eq!(
            p.request.contact_flow_id, None,
            "a template was named; no default flow added"
        );
    }

    #[test]
    fn routed_record_token_uses_instance_route_and_identity() {
        let r = record(json!({
            "version": "0", "id": "ev-1", "detail-type": "T", "source": "s", "detail": {}
        }));
        let p = prepare(&r, &config(None), DateTime::from_secs(NOW)).unwrap();
        assert!(matches!(&r.identity, Identity::Service(v) if v.starts_with("ev-1#")));
        assert_eq!(
            p.client_token(),
            client_token("inst", "default", &r.identity)
        );
    }

    #[test]
    fn invalid_requests_never_leave_prepare() {
        let r = record(json!({"Name": "n", "Attributes": {"bad key": "v"}}));
        let err = prepare(&r, &config(None), DateTime::from_secs(NOW)).unwrap_err();
        assert!(matches!(err, BridgeError::Validation { .. }));
    }
}
