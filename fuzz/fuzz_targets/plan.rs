//! libFuzzer entry point for the `plan` parser: see [`sortie_fuzz::plan`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sortie_fuzz::plan(data));
