//! Regression tests, one per defect, named for the defect (ripgrep's `regression.rs`
//! habit). Each failed before its fix.

mod config;
mod forwarding;
mod fuzz;
mod http;
mod probe;
