//! connect-task-bridge: turns events (EventBridge, SQS, SNS, streams, S3, webhooks, contact
//! flows, direct invocations) into Amazon Connect tasks with StartTaskContact, with a client token
//! derived from each event so that a redelivered event never opens a second task.
//!
//! The path of an event: `sources` (what invoked us, recognised and split into `record`s, each
//! with its identity) → `mapping` (route and render) → `prepare` (defaults, client token from
//! `token`, `validate`) → `connect` (the paced call) or `lifecycle` (through the task `table`,
//! in the words of `plan`) → `response` (the outcome each source answers). `handler` makes one
//! decision per record; `queue` holds what waits for Connect's pace; `error` classifies every
//! failure once.

/// The function's version (Cargo.toml's), as `--version`, the cold-start line and the metrics
/// report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod cli;
pub mod config;
pub mod connect;
pub mod error;
pub mod fuzzing;
pub mod handler;
pub mod lifecycle;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod pace;
pub mod plan;
pub mod prepare;
pub mod protocol;
pub mod queue;
pub mod record;
pub mod redrive;
pub mod response;
pub mod senders;
pub mod sources;
pub mod table;
pub mod task;
pub mod template;
pub mod tls;
pub mod token;
pub mod validate;
pub mod webhook_auth;
