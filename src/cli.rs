//! The command line: `render` prints the StartTaskContact request(s) an event would produce,
//! through the very code the Lambda runs, without calling anything.

use std::io::Write;
use std::time::SystemTime;

use aws_smithy_types::DateTime;
use serde_json::Value;

use crate::config::Config;
use crate::envelope;
use crate::mapping::Mapping;
use crate::prepare::prepare;

pub const USAGE: &str = "\
usage: connect-task-bridge                      run as a Lambda function (AWS_LAMBDA_RUNTIME_API)
       connect-task-bridge render EVENT.json [--mapping FILE]
                                                print the StartTaskContact request(s) for an event,
                                                in the shape of `aws connect start-task-contact
                                                --cli-input-json`, without calling Connect

Configuration comes from the environment (CONNECT_INSTANCE_ID, CONNECT_CONTACT_FLOW_ID, TASK_MAPPING,
TASK_MAPPING_FILE, ...; see the README). --mapping overrides TASK_MAPPING / TASK_MAPPING_FILE.";

/// Runs `render`; returns the process exit code (0: every record rendered, 1: some failed,
/// 2: usage or configuration error).
pub fn render(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let mut event_path = None;
    let mut mapping_path = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mapping" => match it.next() {
                Some(path) => mapping_path = Some(path.clone()),
                None => return usage(err, "--mapping needs a file"),
            },
            flag if flag.starts_with('-') => return usage(err, &format!("unknown option {flag}")),
            path if event_path.is_none() => event_path = Some(path.to_string()),
            extra => return usage(err, &format!("unexpected argument {extra}")),
        }
    }
    let Some(event_path) = event_path else {
        return usage(err, "render needs an EVENT.json");
    };
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(err, &format!("configuration: {e}")),
    };
    if let Some(path) = mapping_path {
        let loaded = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {path}: {e}"))
            .and_then(|text| Mapping::parse(&text).map_err(|e| e.to_string()));
        match loaded {
            Ok(mapping) => config.mapping = mapping,
            Err(e) => return fail(err, &e),
        }
    }
    let payload: Value = match std::fs::read_to_string(&event_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => return fail(err, &format!("{event_path}: {e}")),
    };
    let envelope = match envelope::open(&payload, config.limits) {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "{event_path}: {e}");
            return 1;
        }
    };
    let now = DateTime::from(SystemTime::now());
    let mut code = 0;
    for record in envelope.records {
        let result = record
            .map_err(|e| (e.id, e.error))
            .and_then(|r| prepare(&r, &config, now).map_err(|e| (r.id.clone(), e)));
        match result {
            Ok(prepared) => {
                let text =
                    serde_json::to_string_pretty(&prepared.request).expect("a request serialises");
                let _ = writeln!(out, "{text}");
            }
            Err((id, e)) => {
                let _ = writeln!(err, "{event_path}: record {id}: {} error: {e}", e.class());
                code = 1;
            }
        }
    }
    code
}

fn usage(err: &mut impl Write, message: &str) -> i32 {
    let _ = writeln!(err, "{message}\n\n{USAGE}");
    2
}

fn fail(err: &mut impl Write, message: &str) -> i32 {
    let _ = writeln!(err, "{message}");
    2
}
