//! Every input the fuzz targets keep in `fuzz/corpus/` (seeds, and what coverage-guided runs
//! found worth keeping), replayed through the same code on stable Rust in every `make test`: a
//! corpus entry that once reached a panic stays a regression test.

use std::path::PathBuf;

use connect_task_bridge::fuzzing::{
    payload_configs, run_payload, run_presets, run_scheduled_time, run_signature,
};
use connect_task_bridge::senders::Scheme;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn the_payload_corpus_never_panics() {
    let configs = payload_configs();
    for input in inputs("payload") {
        run_payload(configs, &input);
    }
}

#[test]
fn the_time_corpus_never_panics() {
    for input in inputs("scheduled_time") {
        run_scheduled_time(&input);
    }
    // The panic the fuzzer found on the hand-written parser, kept by name.
    run_scheduled_time("2026-11-24T10:00:00+1é2".as_bytes());
}

#[test]
fn the_signature_corpus_never_panics_and_never_passes_a_wrong_hmac() {
    for input in inputs("signature") {
        run_signature(&input);
    }
}

/// The corpus holds, for every sender's preset, an input it accepts (so that the oracle "no
/// other secret passes" is exercised, not only the refusals).
#[test]
fn every_preset_accepts_one_input_of_the_corpus() {
    let accepted: std::collections::BTreeSet<&str> = inputs("signature")
        .iter()
        .filter_map(|input| run_presets(input))
        .map(|scheme| scheme.as_str())
        .collect();
    let presets: std::collections::BTreeSet<&str> =
        Scheme::ALL[1..].iter().map(|s| s.as_str()).collect();
    assert_eq!(accepted, presets);
}
