//! connect-task-bridge: turns EventBridge, SQS, SNS, API Gateway and direct events into
//! Amazon Connect tasks with StartTaskContact, with a client token derived from each event so
//! that a redelivered event never opens a second task.
//!
//! The path of an event: `envelope` (what invoked us, split into `record`s) → `mapping` (route
//! and render) → `prepare` (defaults, client token, `validate`) → `connect` (the call) →
//! `response` (the answer each source expects). `handler` strings them together.

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
pub mod prepare;
pub mod protocol;
pub mod queue;
pub mod record;
pub mod response;
pub mod sources;
pub mod table;
pub mod task;
pub mod tls;
pub mod token;
pub mod validate;
pub mod webhook_auth;
