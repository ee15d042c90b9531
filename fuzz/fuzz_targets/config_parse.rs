//! Config loading on arbitrary text: never panics, and every refusal says why.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = hookgate::config::from_str(text, "fuzz") {
        assert!(!e.to_string().trim().is_empty());
    }
});
