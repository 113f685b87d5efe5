//! libFuzzer entry point for the `sshconfig` parser: see [`sortie_fuzz::sshconfig`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sortie_fuzz::sshconfig(data));
