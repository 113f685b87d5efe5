//! Folding speed at 10,000 hosts: `sortie_inventory::hostexpr::fold` next to ClusterShell's
//! `nodeset -f` on the same names (when `nodeset` is installed).
//!
//! `cargo run --release -p sortie-inventory --example bench_fold`
//!
//! Prints one line per shape: the median of 5 folds, the folded text's length, and nodeset's
//! wall time (Python start-up included) and whether its text is identical.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sortie_inventory::hostexpr::fold;

fn shapes() -> Vec<(&'static str, Vec<String>)> {
    let mut seed = 0x1234_5678_u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let grid = (1..=100)
        .flat_map(|r| (1..=100).map(move |n| format!("rack{r:03}-n{n:02}")))
        .collect();
    let ips = (0..40)
        .flat_map(|c| (1..=250).map(move |d| format!("10.0.{c}.{d}")))
        .collect();
    let cube = (1..=10)
        .flat_map(|r| (1..=10).flat_map(move |c| (1..=100).map(move |n| format!("r{r}c{c}n{n}"))))
        .collect();
    let holes = (1..=100)
        .flat_map(|r| (1..=120).map(move |n| (r, n)))
        .filter(|_| rand() % 6 != 0)
        .take(10_000)
        .map(|(r, n)| format!("rack{r}-n{n:03}"))
        .collect();
    let mut rand2 = {
        let mut s = 0x9e37_79b9_u64;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    };
    let sparse = (0..10_000)
        .map(|_| format!("x{}y{}", rand2() % 1000, rand2() % 1000))
        .collect();
    let flat = (1..=10_000).map(|n| format!("web{n:05}")).collect();
    vec![
        ("1 dimension web[00001-10000]", flat),
        ("grid rack[001-100]-n[01-100]", grid),
        ("addresses 10.0.[0-39].[1-250]", ips),
        ("3 dimensions r[1-10]c[1-10]n[1-100]", cube),
        ("grid with 1 in 6 missing", holes),
        ("sparse random x[0-999]y[0-999]", sparse),
    ]
}

fn nodeset(names: &[String]) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut child = Command::new("nodeset")
        .arg("-f")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut input = names.join("\n");
    input.push('\n');
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let took = start.elapsed();
    out.status.success().then(|| {
        (
            took,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    })
}

fn main() {
    println!("# fold of 10,000 host names: sortie (median of 5) vs nodeset -f (one run, Python start-up included)");
    for (label, names) in shapes() {
        let mut times = Vec::new();
        let mut text = String::new();
        for _ in 0..5 {
            let start = Instant::now();
            text = fold(&names);
            times.push(start.elapsed());
        }
        times.sort();
        let ours = times[2];
        let peer = match nodeset(&names) {
            Some((t, theirs)) => format!(
                "nodeset -f {:>9.1} ms, {}",
                t.as_secs_f64() * 1e3,
                if theirs == text {
                    "same text"
                } else {
                    "different text"
                }
            ),
            None => "nodeset not installed".to_string(),
        };
        println!(
            "{label:<38} {:>6} hosts  sortie {:>8.2} ms  {:>6} chars  {peer}",
            names.len(),
            ours.as_secs_f64() * 1e3,
            text.len()
        );
    }
}
