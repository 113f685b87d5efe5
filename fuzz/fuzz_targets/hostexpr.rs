//! libFuzzer entry point for the `hostexpr` parser: see [`sortie_fuzz::hostexpr`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sortie_fuzz::hostexpr(data));
