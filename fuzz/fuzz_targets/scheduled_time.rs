//! The time parser alone: any text a template renders or a direct payload carries.
#![no_main]
use connect_task_bridge::fuzzing::run_scheduled_time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| run_scheduled_time(data));
