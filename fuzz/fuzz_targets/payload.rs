//! The whole path from the bytes Lambda hands the function to the StartTaskContact request:
//! envelope → records → mapping (examples/mapping.yaml and the built-in default) → defaults →
//! client token → validation. Nothing is called; a panic anywhere on the way is a crash here.
#![no_main]
use std::sync::OnceLock;

use aws_smithy_types::DateTime;
use connect_task_bridge::config::Config;
use connect_task_bridge::envelope::{open, EnvelopeLimits};
use connect_task_bridge::prepare::prepare;
use libfuzzer_sys::fuzz_target;

fn config(mapping: Option<&'static str>) -> Config {
    Config::from_lookup(|name| match name {
        "CONNECT_INSTANCE_ID" => Some("11111111-2222-3333-4444-555555555555".into()),
        "CONNECT_CONTACT_FLOW_ID" => Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
        "TASK_MAPPING" => mapping.map(str::to_string),
        _ => None,
    })
    .expect("the fuzz configuration is valid")
}

fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            config(Some(include_str!("../../examples/mapping.yaml"))),
            config(None),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let now = DateTime::from_secs(1_800_000_000);
    for config in configs() {
        let Ok(envelope) = open(payload.clone(), EnvelopeLimits::default()) else {
            continue;
        };
        for record in envelope.records.into_iter().flatten() {
            let _ = prepare(&record, config, now);
        }
    }
});
