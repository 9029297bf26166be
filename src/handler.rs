//! The Lambda handler: open the envelope, run each record through `prepare` and `connect`, log
//! one line per outcome, answer the source. Concurrency and ordering live here: a standard SQS
//! batch runs its records concurrently up to `BATCH_CONCURRENCY`; a FIFO batch runs in order and
//! stops at the first failure.

use std::time::{Duration, Instant, SystemTime};

use aws_smithy_types::DateTime;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use crate::config::Config;
use crate::connect::start_task;
use crate::envelope::{self, RecordError};
use crate::error::BridgeError;
use crate::metrics;
use crate::prepare::prepare;
use crate::record::{Record, SourceKind};
use crate::response::{respond, Outcome, Started};
use crate::webhook_auth::SignatureCheck;

/// Time kept back from the invocation deadline to write the response after the last call.
pub const RESPONSE_MARGIN: Duration = Duration::from_millis(300);

/// Everything built at cold start: the configuration, the Connect client and the webhook
/// signature check (with its secret).
pub struct Bridge {
    pub config: Config,
    client: aws_sdk_connect::Client,
    signature: Option<SignatureCheck>,
}

impl Bridge {
    pub fn new(config: Config, client: aws_sdk_connect::Client) -> Self {
        Bridge {
            config,
            client,
            signature: None,
        }
    }

    /// Webhooks must then carry a valid signature; other sources are unaffected.
    pub fn with_signature_check(mut self, check: SignatureCheck) -> Self {
        self.signature = Some(check);
        self
    }

    /// Handles one invocation. `deadline` is the invocation's (None: unbounded, as in `send`).
    pub async fn handle(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
    ) -> Result<Value, BridgeError> {
        let envelope = match envelope::open(payload, self.config.limits) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(
                    outcome = "rejected",
                    error_class = %err.class(),
                    error_code = err.code(),
                    error = err.loggable_message(),
                    "payload not accepted"
                );
                return Err(err);
            }
        };
        let kind = envelope.kind;
        let outcomes = if kind == SourceKind::Sqs && envelope.fifo {
            let mut outcomes = Vec::with_capacity(envelope.records.len());
            let mut blocked = false;
            for record in envelope.records {
                let outcome = if blocked {
                    let id = match &record {
                        Ok(r) => r.id.clone(),
                        Err(e) => e.id.clone(),
                    };
                    let outcome = Outcome {
                        record_id: id,
                        result: Err(BridgeError::FifoBlocked),
                    };
                    log_outcome(kind, &outcome, None, Duration::ZERO);
                    outcome
                } else {
                    self.process(kind, record, deadline).await
                };
                blocked |= outcome.result.is_err();
                outcomes.push(outcome);
            }
            outcomes
        } else {
            stream::iter(envelope.records)
                .map(|record| self.process(kind, record, deadline))
                .buffer_unordered(self.config.batch_concurrency)
                .collect::<Vec<_>>()
                .await
        };
        if let Some(namespace) = &self.config.metrics_namespace {
            metrics::emit(namespace, kind, &outcomes);
        }
        respond(kind, outcomes)
    }

    async fn process(
        &self,
        kind: SourceKind,
        record: Result<Record, RecordError>,
        deadline: Option<SystemTime>,
    ) -> Outcome {
        let started_at = Instant::now();
        let (outcome, route) = match record {
            Err(RecordError { id, error }) => (
                Outcome {
                    record_id: id,
                    result: Err(error),
                },
                None,
            ),
            Ok(record) => {
                let now = SystemTime::now();
                let checked = match (&self.signature, record.kind.is_webhook()) {
                    (Some(check), true) => check.verify(
                        &record.headers,
                        record.raw_body.as_deref().unwrap_or_default(),
                        now,
                    ),
                    _ => Ok(()),
                };
                match checked.and_then(|()| prepare(&record, &self.config, DateTime::from(now))) {
                    Err(error) => (
                        Outcome {
                            record_id: record.id,
                            result: Err(error),
                        },
                        None,
                    ),
                    Ok(prepared) => {
                        let budget = deadline.map(|d| {
                            d.duration_since(SystemTime::now())
                                .unwrap_or_default()
                                .saturating_sub(RESPONSE_MARGIN)
                        });
                        let client_token = prepared.client_token().to_string();
                        let result = start_task(&self.client, &prepared.request, budget)
                            .await
                            .map(|contact_id| Started {
                                contact_id,
                                client_token: client_token.clone(),
                                route: prepared.route.clone(),
                            });
                        (
                            Outcome {
                                record_id: record.id,
                                result,
                            },
                            Some((prepared.route, client_token)),
                        )
                    }
                }
            }
        };
        log_outcome(kind, &outcome, route.as_ref(), started_at.elapsed());
        outcome
    }
}

/// The one log line of a record. Names, descriptions, attribute and reference values never
/// appear: only ids, the route, the token and the error's class, code and (data-free) message.
fn log_outcome(
    kind: SourceKind,
    outcome: &Outcome,
    route: Option<&(String, String)>,
    elapsed: Duration,
) {
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    match &outcome.result {
        Ok(started) => tracing::info!(
            outcome = "started",
            source = kind.as_str(),
            record_id = %outcome.record_id,
            route = %started.route,
            client_token = %started.client_token,
            contact_id = %started.contact_id,
            duration_ms,
            "task started"
        ),
        Err(err) => tracing::warn!(
            outcome = "failed",
            source = kind.as_str(),
            record_id = %outcome.record_id,
            route = route.map(|r| r.0.as_str()),
            client_token = route.map(|r| r.1.as_str()),
            error_class = %err.class(),
            error_code = err.code(),
            error = err.loggable_message(),
            duration_ms,
            "task not started"
        ),
    }
}
