//! Attack 3: task templates, run through the binary by an outside reviewer. Each module holds
//! the reproductions of one finding (failing before its fix), in one test binary so that CI
//! links it once.

mod common;

#[path = "attack3/actions.rs"]
mod actions;
#[path = "attack3/logs.rs"]
mod logs;
#[path = "attack3/queued.rs"]
mod queued;
#[path = "attack3/reads.rs"]
mod reads;
#[path = "attack3/rules.rs"]
mod rules;
#[path = "attack3/staleness.rs"]
mod staleness;
