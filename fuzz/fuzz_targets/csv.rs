//! libFuzzer entry point for the `csv` parser: see [`sortie_fuzz::csv`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sortie_fuzz::csv(data));
