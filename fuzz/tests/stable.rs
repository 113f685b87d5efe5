//! The fuzz targets on stable Rust: replay every stored input, then mutate them for a bounded
//! time.
//!
//! Coverage-guided fuzzing (`cargo +nightly fuzz run NAME`, see scripts/fuzz.sh) needs a
//! nightly compiler for its sanitizer and coverage flags. This test runs the same checks
//! (`sortie_fuzz::TARGETS`) with plain `cargo test`, so every CI run exercises them:
//!
//! 1. replay: `corpus/<target>/*` (seeds and whatever cargo-fuzz found), `malformed/<target>/*`
//!    (hand-written bad files) and `regressions/<target>/*` (inputs that once failed);
//! 2. mutate: for `SORTIE_FUZZ_SECS` seconds per target (default 2), random edits of those
//!    inputs (bit flips, insertions of dictionary tokens from `dict/<target>.dict`, deletions,
//!    duplications, splices), from the seed `SORTIE_FUZZ_SEED` (default: the clock; printed);
//!    `SORTIE_FUZZ_TARGETS=csv,plan` limits it to some targets.
//!
//! A failing input is written to `artifacts/stable/<target>-<hash>` and named in the failure,
//! with the seed, so `cargo +nightly fuzz run <target> <file>` or this test reproduces it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn stored_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    ["corpus", "malformed", "regressions"]
        .iter()
        .flat_map(|d| files_in(&root().join(d).join(target)))
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

/// Tokens of a libFuzzer dictionary (`name="value"` or `"value"` lines, `\xNN` and `\\` escapes).
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let Ok(text) = std::fs::read_to_string(root().join("dict").join(format!("{target}.dict")))
    else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let start = l.find('"')?;
            let end = l.rfind('"')?;
            (end > start).then(|| unescape(&l[start + 1..end]))
        })
        .collect()
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x' && i + 3 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// xorshift64*: reproducible from the printed seed; no need for a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], dict: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let interesting = b"\0\n\r\t \"'#[]{}-,:=@^\\%*?!\xff\xc3";
                input.insert(
                    rng.below(len + 1),
                    interesting[rng.below(interesting.len())],
                );
            }
            2 if !dict.is_empty() => {
                let tok = &dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, tok.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let copy = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            5 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(128)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
        }
    }
    input.truncate(64 * 1024);
}

fn fail(target: &str, input: &[u8], why: &str, seed: Option<u64>) -> ! {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut h);
    let dir = root().join("artifacts").join("stable");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{:016x}", h.finish()));
    let _ = std::fs::write(&path, input);
    let message = format!(
        "target {target} failed on {} ({} bytes, seed {seed:?}): {why}\ninput: {:?}",
        path.display(),
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(300)])
    );
    // The mutation loop silences the panic hook; print first so the reason is never lost.
    eprintln!("{message}");
    panic!("{message}");
}

fn run_one(target: &str, f: fn(&[u8]), input: &[u8], seed: Option<u64>) {
    let started = Instant::now();
    if let Err(p) = std::panic::catch_unwind(|| f(input)) {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".to_owned());
        fail(target, input, &why, seed);
    }
    // One input of at most 64 KiB taking seconds would be a denial of service.
    if started.elapsed() > Duration::from_secs(5) {
        fail(
            target,
            input,
            &format!("took {:?}", started.elapsed()),
            seed,
        );
    }
}

#[test]
fn every_target_has_stored_inputs_and_survives_them() {
    for (target, f) in sortie_fuzz::TARGETS {
        let inputs = stored_inputs(target);
        assert!(
            inputs.len() >= 3,
            "{target}: too few stored inputs under corpus/ and malformed/"
        );
        for (_, bytes) in &inputs {
            run_one(target, *f, bytes, None);
        }
    }
}

#[test]
fn bounded_random_mutation() {
    let secs: f64 = std::env::var("SORTIE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed = std::env::var("SORTIE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("bounded_random_mutation: SORTIE_FUZZ_SEED={seed} SORTIE_FUZZ_SECS={secs}");
    // Silence the default hook: catch_unwind reports failures with the input instead.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let only = std::env::var("SORTIE_FUZZ_TARGETS").unwrap_or_default();
    for (target, f) in sortie_fuzz::TARGETS {
        if !only.is_empty() && !only.split(',').any(|t| t == *target) {
            continue;
        }
        let pool: Vec<Vec<u8>> = stored_inputs(target).into_iter().map(|(_, b)| b).collect();
        let dict = dictionary(target);
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut runs = 0u64;
        while Instant::now() < deadline {
            let mut input = if pool.is_empty() {
                Vec::new()
            } else {
                pool[rng.below(pool.len())].clone()
            };
            for _ in 0..=rng.below(8) {
                mutate(&mut rng, &mut input, &pool, &dict);
            }
            run_one(target, *f, &input, Some(seed));
            runs += 1;
        }
        eprintln!("  {target}: {runs} inputs");
        assert!(runs > 0);
    }
    let _ = std::panic::take_hook();
}
