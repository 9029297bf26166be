//! The outcome of a record, from which each source builds the answer it expects (see the
//! source modules; `sources::respond` picks the record's source).

use crate::error::BridgeError;
use crate::plan::Did;

/// What was done for a record (`did`: started, replayed, queued, held, updated, stopped,
/// ignored, heard, ...) and the task it was done to, when there is one: the one result from the
/// record's decision (`handler`) to its source's answer (`sources::respond`).
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub contact_id: Option<String>,
    pub client_token: String,
    pub route: String,
    /// What was done (see `plan::Did`).
    pub did: Did,
}

#[derive(Debug)]
pub struct Outcome {
    /// The source's id of the record (SQS messageId for batch item failures).
    pub record_id: String,
    pub result: Result<Done, BridgeError>,
}
