//! The whole path from the bytes Lambda hands the function to the StartTaskContact request:
//! envelope → records → mapping (examples/mapping.yaml and the built-in default) → defaults →
//! client token → validation. Nothing is called; a panic anywhere on the way is a crash here.
#![no_main]
use connect_task_bridge::fuzzing::{payload_configs, run_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    run_payload(payload_configs(), data);
});
