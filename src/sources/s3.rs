//! S3 event notifications (a bucket invoking the function): one record per notification, its
//! identity the bucket, the object key, its version and the notification's `sequencer` with the
//! event name (a redelivery repeats them; the next change to the key has a later sequencer).
//! The key arrives URL-encoded and is decoded before templates see it. Answered as EventBridge
//! is (S3 invokes asynchronously: retries, then the on-failure destination).

use std::sync::Arc;

use aws_lambda_events::s3::S3EventRecord;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{
    async_answer, is_records_of, parse, take_records, Envelope, OpenContext, RecordError, Source,
    Storage,
};
use crate::error::BridgeError;
use crate::record::{Body, Content, Record, SourceKind, SourceMeta};
use crate::token::{digest_parts, Identity};

/// Its records' kind: `when.source: s3`.
pub const KIND: SourceKind = SourceKind::new("s3");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: async_answer,
    storage: Storage::Never,
    holdable: true,
    task_name: Some("{{ meta.event_name }}: s3://{{ meta.bucket }}/{{ meta.key }}"),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    is_records_of(obj, "aws:s3")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    Ok(Envelope {
        kind: KIND,
        fifo: false,
        records: take_records(payload)
            .into_iter()
            .map(|item| {
                s3_record(item).map_err(|error| RecordError {
                    id: String::new(),
                    error,
                    order_key: None,
                })
            })
            .collect(),
    })
}

/// An object key as S3 writes it into a notification: form-URL-encoded (`+` for a space).
pub fn decode_key(key: &str) -> String {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn s3_record(item: Value) -> Result<Record, BridgeError> {
    let rec: S3EventRecord = parse(&item, "S3 event record")?;
    let bucket = rec.s3.bucket.name.clone().unwrap_or_default();
    let raw_key = rec.s3.object.key.clone().unwrap_or_default();
    let sequencer = rec.s3.object.sequencer.clone().unwrap_or_default();
    if bucket.is_empty() || raw_key.is_empty() || sequencer.is_empty() {
        return Err(BridgeError::InvalidEvent(
            "S3 event record: bucket, object key or sequencer is missing".into(),
        ));
    }
    let key = decode_key(&raw_key);
    let version = rec.s3.object.version_id.clone().unwrap_or_default();
    let event_name = rec.event_name.clone().unwrap_or_default();
    let identity = digest_parts(&[
        bucket.as_bytes(),
        key.as_bytes(),
        version.as_bytes(),
        sequencer.as_bytes(),
        event_name.as_bytes(),
    ]);
    let body = json!({
        "bucket": bucket, "key": key, "versionId": rec.s3.object.version_id,
        "size": rec.s3.object.size, "eTag": rec.s3.object.e_tag, "eventName": event_name,
    });
    let meta = S3Meta {
        event_name,
        bucket,
        key,
        region: rec.aws_region.clone(),
        // As S3 wrote it, not as re-formatted by a date library.
        time: item
            .get("eventTime")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    Ok(Record::event(
        KIND,
        identity.clone(),
        Identity::Service(identity),
        Arc::new(item),
        Content::new(Body::value(body), Arc::new(meta)),
    ))
}

/// `meta` of an S3 event notification.
#[derive(Debug, Serialize)]
struct S3Meta {
    event_name: String,
    bucket: String,
    key: String,
    region: Option<String>,
    time: Option<String>,
}

impl SourceMeta for S3Meta {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("invoices/2026/Customer+Letter+%28signed%29.pdf"),
            "invoices/2026/Customer Letter (signed).pdf"
        );
        assert_eq!(decode_key("a%2Bb%20c"), "a+b c");
    }
}
