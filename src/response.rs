//! The outcome of a record, from which each source builds the answer it expects (see the
//! source modules; `sources::respond` picks the record's source).

use crate::error::BridgeError;
use crate::plan::Did;

/// A task Connect started (or had already started for this client token), or a request put on
/// the task queue to become one (`contact_id` None).
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub contact_id: Option<String>,
    pub client_token: String,
    pub route: String,
    /// What was done: started, queued, or a lifecycle action (see `lifecycle::Did`).
    pub did: Did,
}

#[derive(Debug)]
pub struct Outcome {
    /// The source's id of the record (SQS messageId for batch item failures).
    pub record_id: String,
    pub result: Result<Started, BridgeError>,
}
