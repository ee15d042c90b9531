//! Config loading on arbitrary text: never panics; every refusal names its origin and
//! says why (an `Invalid` one names a real key); every accepted config upholds the bounds
//! the compile step promises (depth 1..=128, non-zero sizes and durations, unique,
//! well-formed, unreserved route names and paths, at least one method).
#![no_main]

use libfuzzer_sys::fuzz_target;

// The same oracle the stable property tests use (this target needs only some of it).
#[allow(dead_code)]
#[path = "../../tests/it/oracle.rs"]
mod oracle;

fuzz_target!(|text: &str| {
    if let Err(broken) = oracle::check_config(text, "fuzz.toml") {
        panic!("{broken}");
    }
});
