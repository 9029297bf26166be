//! The time parser alone: any text a template renders or a direct payload carries.
#![no_main]
use connect_task_bridge::task::ScheduledTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ScheduledTime::parse(text);
        let _ = serde_json::from_str::<ScheduledTime>(text);
    }
});
