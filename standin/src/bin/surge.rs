//! `make test-surge`: the surge simulation (see `connect_standin::surge`) over the issue's
//! scenarios, printed as one Markdown table; exits 1 when a scenario misses a target.
//!
//! surge --function PATH [--scale N] [--burst N] [--webhooks N] [--raised N] [--root DIR]
//!       [--only SCENARIO (1-based)]... [--record FILE] [--other-share SHARE]
//!
//! `--other-share SHARE` sets the share of the quota the other caller takes in the scenarios
//! that have one (0..1): how the pace judges another caller is tried at more than one level.
//!
//! `--record FILE` writes what CloudWatch would have seen (`connect_standin::surge::Recorder`) as
//! JSON lines, for `make dashboard-picture`.

use std::path::PathBuf;

use connect_standin::moto::moto_server;
use connect_standin::surge::{table, Scenario, Surge};
use serde_json::Value;

#[tokio::main]
async fn main() {
    let mut function = None;
    let mut scale = 5.0;
    let mut burst = 300;
    let mut webhooks = 40;
    let mut raised = 3000;
    let mut root = PathBuf::from(".");
    let mut only: Vec<usize> = Vec::new();
    let mut record: Option<PathBuf> = None;
    let mut other_share: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--function" => function = Some(PathBuf::from(value())),
            "--scale" => {
                scale = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--scale: a number"))
            }
            "--burst" => {
                burst = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--burst: a count"))
            }
            "--webhooks" => {
                webhooks = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--webhooks: a count"))
            }
            "--raised" => {
                raised = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--raised: a count"))
            }
            "--root" => root = PathBuf::from(value()),
            "--only" => only.push(
                value()
                    .parse()
                    .unwrap_or_else(|_| usage("--only: a scenario number")),
            ),
            "--record" => record = Some(PathBuf::from(value())),
            "--other-share" => {
                other_share = Some(
                    value()
                        .parse()
                        .ok()
                        .filter(|s: &f64| (0.0..1.0).contains(s))
                        .unwrap_or_else(|| usage("--other-share: a share in 0..1")),
                )
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let function = function.unwrap_or_else(|| usage("--function is required"));
    let mut surge = Surge::start(&function, &moto_server(&root), scale).await;
    if record.is_some() {
        surge.record = Some(Default::default());
    }
    println!(
        "Surge simulation: template defaults (function timeout {} s, visibility {} s, maxReceiveCount {}, \
         BatchSize {}, MaximumConcurrency {}, BatchConcurrency {}), Connect {}/s burst {}; time scaled 1/{scale} \
         (webhooks 1/{}, each scenario at most its own cap), figures unscaled; the environments book from a pace table \
         (moto's DynamoDB) unless the scenario says none.\n",
        surge.defaults.function_timeout.as_secs(),
        surge.defaults.visibility_timeout.as_secs(),
        surge.defaults.max_receive_count,
        surge.defaults.batch_size,
        surge.defaults.maximum_concurrency,
        surge.defaults.batch_concurrency,
        surge.defaults.rate,
        surge.defaults.burst,
        scale.min(2.0),
    );
    let mut reports = Vec::new();
    let mut failed = false;
    // The storage-first scenarios, then the shared pace's (issue #22).
    let scenarios: Vec<Scenario> = Scenario::standard(burst, webhooks)
        .into_iter()
        .chain(Scenario::shared_pace(burst, raised))
        .map(|mut scenario| {
            if let Some(share) = other_share.filter(|_| scenario.other_caller_share > 0.0) {
                scenario.other_caller_share = share;
                scenario.name = format!("{} (other caller {share})", scenario.name);
            }
            scenario
        })
        .collect();
    for (i, scenario) in scenarios.iter().enumerate() {
        if !only.is_empty() && !only.contains(&(i + 1)) {
            continue;
        }
        let report = surge.run(scenario, i).await;
        for miss in report.misses() {
            eprintln!("{}: {miss}", report.scenario);
            failed = true;
        }
        reports.push(report);
    }
    print!("{}", table(&reports));
    if let (Some(path), Some(recorded)) = (&record, &surge.record) {
        let lines: Vec<String> = recorded
            .lock()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        std::fs::write(path, lines.join("\n") + "\n")
            .unwrap_or_else(|e| usage(&format!("--record {}: {e}", path.display())));
    }
    // Stops moto before exit (process::exit runs no destructors).
    drop(surge);
    if failed {
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: surge --function PATH [--scale N] [--burst N] [--webhooks N] [--raised N] [--root DIR] [--only SCENARIO (1-based)]... [--record FILE] [--other-share SHARE]");
    std::process::exit(2);
}
