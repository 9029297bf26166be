//! Kinesis Data Streams through an event source mapping: one record per stream record, its
//! identity the stream's ARN and `eventID` (shard and sequence number, kept across retries), its
//! body the decoded `data` (JSON when it parses, else text). Records of one partition key are
//! handled in order; after a failure the later ones of that key fail too. Answered with a
//! partial batch response naming failed records by sequence number.

use std::sync::Arc;

use aws_lambda_events::kinesis::KinesisEventRecord;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    batch_answer, is_records_of, parse, stream_envelope, take_records, Envelope, OpenContext,
    Source, Storage,
};
use crate::error::BridgeError;
use crate::record::{within_budget, Body, Content, Record, SourceKind, SourceMeta};
use crate::token::Identity;

/// Its records' kind: `when.source: kinesis`.
pub const KIND: SourceKind = SourceKind::new("kinesis");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: batch_answer,
    storage: Storage::Never,
    holdable: true,
    task_name: Some(
        r#"Record from {{ meta.stream_arn.split("/")[-1] }} ({{ meta.partition_key }})"#,
    ),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    is_records_of(obj, "aws:kinesis")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    stream_envelope(
        KIND,
        take_records(payload),
        "/kinesis/sequenceNumber",
        |item| {
            item.pointer("/kinesis/partitionKey")
                .and_then(Value::as_str)
                .map(str::to_string)
        },
        kinesis_record,
    )
}

fn kinesis_record(item: Value) -> Result<Record, BridgeError> {
    let rec: KinesisEventRecord = parse(&item, "Kinesis record")?;
    let event_id = rec
        .event_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| {
            BridgeError::InvalidEvent("Kinesis record: eventID is missing or empty".into())
        })?;
    let stream = rec.event_source_arn.clone().unwrap_or_default();
    let data = rec.kinesis.data.0;
    // Not UTF-8 (a binary record): templates see it base64-encoded, as it was sent.
    let text = String::from_utf8(data)
        .unwrap_or_else(|e| base64::engine::general_purpose::STANDARD.encode(e.into_bytes()));
    within_budget(&text, "record data")?;
    let meta = KinesisMeta {
        stream_arn: stream.clone(),
        partition_key: rec.kinesis.partition_key.clone(),
        sequence_number: rec.kinesis.sequence_number.clone(),
        shard_id: event_id.split(':').next().unwrap_or_default().to_string(),
    };
    Ok(Record::event(
        KIND,
        rec.kinesis.sequence_number.clone(),
        Identity::Service(format!("{stream}/{event_id}")),
        Arc::new(item),
        Content::new(Body::text(text), Arc::new(meta)),
    ))
}

/// `meta` of a Kinesis record.
#[derive(Debug, Serialize)]
struct KinesisMeta {
    stream_arn: String,
    partition_key: String,
    sequence_number: String,
    shard_id: String,
}

impl SourceMeta for KinesisMeta {}
