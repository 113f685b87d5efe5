//! libFuzzer entry point for the `knownhosts` parser: see [`sortie_fuzz::knownhosts`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sortie_fuzz::knownhosts(data));
