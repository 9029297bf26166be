//! Amazon Connect contact flows ("Invoke AWS Lambda function" block): a flow asks for a
//! follow-up task for the current contact, such as a callback request from an IVR. One record:
//! `body` is the block's `Parameters`, `attributes` the contact's attributes, `meta` the
//! contact's ids, channel, queue and instance. Its identity is the calling contact's ContactId
//! (Connect assigns it): one task per contact and route, however often the flow runs the block.
//! The task is linked to the calling contact (`RelatedContactId` by default, so it inherits its
//! attributes; `CONTACT_FLOW_LINK=previous` for `PreviousContactId`) unless the route sets a
//! link itself. Answered with the flat string map a flow reads (`ContactId`, `ClientToken`); a
//! failure is an error, so the flow takes its error branch.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::connect::ConnectEvent;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{async_answer, parse, single, Envelope, OpenContext, Source, Storage};
use crate::error::BridgeError;
use crate::record::{Body, Content, Record, SourceKind, SourceMeta};
use crate::token::Identity;

/// Its records' kind: `when.source: contact_flow`.
pub const KIND: SourceKind = SourceKind::new("contact_flow");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::Never,
    holdable: false,
    task_name: Some("Follow-up of {{ meta.channel | lower }} contact {{ meta.contact_id }}"),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    obj.get("Details")
        .and_then(|d| d.get("ContactData"))
        .is_some_and(Value::is_object)
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    Ok(single(KIND, flow_record(payload)))
}

fn flow_record(payload: Value) -> Result<Record, BridgeError> {
    let event: ConnectEvent = parse(&payload, "contact flow event")?;
    let contact = event.details.contact_data;
    let contact_id = contact
        .contact_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| {
            BridgeError::InvalidEvent("contact flow event: ContactId is missing or empty".into())
        })?;
    let meta = ContactFlowMeta {
        contact_id: contact_id.clone(),
        initial_contact_id: contact.initial_contact_id.clone(),
        previous_contact_id: contact.previous_contact_id.clone(),
        channel: contact.channel.clone(),
        initiation_method: contact.initiation_method.clone(),
        instance_arn: contact.instance_arn.clone(),
        queue: contact.queue.as_ref().and_then(|q| q.name.clone()),
    };
    let parameters: BTreeMap<String, String> = event.details.parameters.into_iter().collect();
    Ok(Record {
        linked_contact: Some(contact_id.clone()),
        ..Record::event(
            KIND,
            contact_id.clone(),
            Identity::Service(contact_id),
            Arc::new(payload),
            Content {
                attributes: contact.attributes.into_iter().collect(),
                ..Content::new(Body::value(json!(parameters)), Arc::new(meta))
            },
        )
    })
}

/// `meta` of a contact flow's request: the calling contact.
#[derive(Debug, Serialize)]
struct ContactFlowMeta {
    contact_id: String,
    initial_contact_id: Option<String>,
    previous_contact_id: Option<String>,
    channel: Option<String>,
    initiation_method: Option<String>,
    instance_arn: Option<String>,
    queue: Option<String>,
}

impl SourceMeta for ContactFlowMeta {}
