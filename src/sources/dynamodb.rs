//! DynamoDB Streams through an event source mapping: one record per change, its identity the
//! stream's ARN and `eventID`; templates see `body.Keys`, `body.NewImage` and `body.OldImage` as
//! plain values (unmarshalled from DynamoDB JSON) and `meta.event_name` (INSERT, MODIFY, REMOVE).
//! Changes to one item (its keys) are handled in order; after a failure the later ones of that
//! item fail too. Answered with a partial batch response naming failed records by sequence
//! number.

use std::sync::Arc;

use aws_lambda_events::dynamodb::EventRecord;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{
    batch_answer, is_records_of, parse, stream_envelope, take_records, Envelope, OpenContext,
    Source, Storage,
};
use crate::error::BridgeError;
use crate::record::{Body, Content, Record, SourceKind, SourceMeta};
use crate::token::{canonical_json, Identity};

/// Its records' kind: `when.source: dynamodb`.
pub const KIND: SourceKind = SourceKind::new("dynamodb");

pub const SOURCE: Source = Source {
    kinds: &[KIND],
    recognise,
    open,
    respond: batch_answer,
    storage: Storage::Never,
    holdable: true,
    task_name: Some("{{ meta.event_name }} in {{ meta.table }}"),
};

fn recognise(obj: &Map<String, Value>) -> bool {
    is_records_of(obj, "aws:dynamodb")
}

fn open(payload: Value, _: &OpenContext<'_>) -> Result<Envelope, BridgeError> {
    stream_envelope(
        KIND,
        take_records(payload),
        "/dynamodb/SequenceNumber",
        |item| item.pointer("/dynamodb/Keys").map(canonical_json),
        change_record,
    )
}

fn change_record(item: Value) -> Result<Record, BridgeError> {
    let rec: EventRecord = parse(&item, "DynamoDB Streams record")?;
    if rec.event_id.trim().is_empty() {
        return Err(BridgeError::InvalidEvent(
            "DynamoDB Streams record: eventID is missing or empty".into(),
        ));
    }
    let stream = rec.event_source_arn.clone().unwrap_or_default();
    // The images as plain values, read from the record as sent (DynamoDB JSON).
    let image = |name: &str| {
        item.pointer(&format!("/dynamodb/{name}"))
            .map(plain)
            .unwrap_or(Value::Null)
    };
    let keys = image("Keys");
    let body = json!({"Keys": keys, "NewImage": image("NewImage"), "OldImage": image("OldImage")});
    let table = stream.split("/stream/").next().unwrap_or_default();
    let meta = DynamoDbMeta {
        event_name: rec.event_name.clone(),
        stream_arn: stream.clone(),
        sequence_number: rec.change.sequence_number.clone(),
        table: table.rsplit('/').next().unwrap_or_default().to_string(),
    };
    Ok(Record::event(
        KIND,
        rec.change.sequence_number.clone().unwrap_or_default(),
        Identity::Service(format!("{stream}/{}", rec.event_id)),
        Arc::new(item),
        Content::new(Body::value(body), Arc::new(meta)),
    ))
}

/// DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`, ...) as plain JSON values. Numbers
/// become JSON numbers when they fit one exactly, else stay text; binary stays base64.
pub fn plain(value: &Value) -> Value {
    let Some(obj) = value.as_object() else {
        return value.clone();
    };
    // An item or map of attributes: every value is an attribute value.
    let is_attribute = obj.len() == 1
        && obj.keys().next().is_some_and(|k| {
            ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"].contains(&k.as_str())
        });
    if !is_attribute {
        return Value::Object(obj.iter().map(|(k, v)| (k.clone(), plain(v))).collect());
    }
    let (kind, inner) = obj.iter().next().expect("one entry");
    let number = |n: &Value| {
        let text = n.as_str().unwrap_or_default();
        serde_json::from_str::<serde_json::Number>(text)
            .ok()
            .filter(|num| num.to_string() == text)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_string()))
    };
    match kind.as_str() {
        "N" => number(inner),
        "NS" => Value::Array(inner.as_array().into_iter().flatten().map(number).collect()),
        "NULL" => Value::Null,
        "M" => match inner.as_object() {
            Some(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
            None => Value::Null,
        },
        "L" => Value::Array(inner.as_array().into_iter().flatten().map(plain).collect()),
        _ => inner.clone(),
    }
}

/// `meta` of a DynamoDB Streams record.
#[derive(Debug, Serialize)]
struct DynamoDbMeta {
    event_name: String,
    stream_arn: String,
    sequence_number: Option<String>,
    table: String,
}

impl SourceMeta for DynamoDbMeta {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_json_becomes_plain_values() {
        let item = json!({
            "Id": {"N": "101"}, "Big": {"N": "12345678901234567890123"}, "Price": {"N": "1.50"},
            "Name": {"S": "x"}, "Ok": {"BOOL": true}, "Gone": {"NULL": true},
            "Tags": {"SS": ["a", "b"]}, "Sizes": {"NS": ["1", "2"]},
            "Nested": {"M": {"L": {"L": [{"S": "deep"}, {"N": "3"}]}}}
        });
        assert_eq!(
            plain(&item),
            json!({
                "Id": 101, "Big": "12345678901234567890123", "Price": "1.50", "Name": "x",
                "Ok": true, "Gone": null, "Tags": ["a", "b"], "Sizes": [1, 2],
                "Nested": {"L": ["deep", 3]}
            })
        );
    }
}
