//! The webhook signature check over arbitrary headers and bodies (the configurable HMAC, then the
//! senders' presets: Stripe, Standard Webhooks, Svix, Slack, Zendesk, Shopify, PagerDuty, GitHub
//! headers parsed from the same input): it must refuse, never panic,
//! and pass only the right HMAC.
#![no_main]
use connect_task_bridge::fuzzing::run_signature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| run_signature(data));
