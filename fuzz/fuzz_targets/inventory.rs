//! libFuzzer entry point for the `inventory` parser: see [`sortie_fuzz::inventory`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sortie_fuzz::inventory(data));
