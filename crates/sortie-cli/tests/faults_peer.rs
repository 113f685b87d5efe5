//! Peers that misbehave on the wire, through sortie_testkit::Proxy in front of a loopback
//! fixture sshd: a slow, stalling link (still correct, just slower), a server that accepts
//! and never sends a banner, and one that stops during the key exchange (both unreachable
//! within the connect timeout, the other hosts unaffected).

mod faults_support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use faults_support::{record, run, sortie, sshd_or_skip, summary_line, RUN_LIMIT};
use sortie_testkit::{Behavior, KeyKind, Proxy, Slowness, Sshd};

/// An ssh_config where `127.0.0.2`..`127.0.0.4` reach the sshd directly and each named proxy
/// host (`slow`, `mute`, ...) reaches it through its proxy; one known_hosts file for all.
fn config(sshd: &Sshd, proxies: &[(&str, &Proxy)]) -> PathBuf {
    let dir = sshd.dir();
    let mut known = sshd
        .known_hosts_lines(&["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        .unwrap();
    let mut cfg = String::new();
    for (name, p) in proxies {
        let lines = sshd.known_hosts_lines(&["PROXIED"]).unwrap();
        known.push_str(&lines.replace(
            &format!("[PROXIED]:{}", sshd.port()),
            &format!("[127.0.0.1]:{}", p.port()),
        ));
        cfg.push_str(&format!(
            "Host {name}\n    HostName 127.0.0.1\n    Port {}\n",
            p.port()
        ));
    }
    let kh = dir.join(format!("known_hosts-faults-{}", proxies.len()));
    std::fs::write(&kh, known).unwrap();
    cfg.push_str(&format!(
        "Host *\n    Port {}\n    User {}\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
         UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n    BatchMode yes\n    \
         ServerAliveInterval 1\n    ServerAliveCountMax 3\n",
        sshd.port(),
        sshd.user(),
        sshd.client_key(KeyKind::Ed25519).display(),
        kh.display()
    ));
    let path = dir.join(format!("ssh_config-faults-{}", proxies.len()));
    std::fs::write(&path, cfg).unwrap();
    path
}

fn upstream(sshd: &Sshd) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], sshd.port()))
}

fn proxy(sshd: &Sshd, behavior: Behavior) -> Proxy {
    Proxy::start("127.0.0.1:0".parse().unwrap(), upstream(sshd), behavior).unwrap()
}

#[test]
fn slow_stalling_link_gives_the_same_output_only_later() {
    let Some(sshd) = sshd_or_skip("slow_stalling_link_gives_the_same_output_only_later") else {
        return;
    };
    // 10 ms per 4 KiB chunk each way, and a 1 s stall after every second of traffic in each
    // direction. A keepalive can meet both stalls (request one way, answer the other): 2 s of
    // silence, under the keepalive limit (3 x 1 s; russh gives up at the 4th miss), so the
    // host is slow, not lost. (2 s stalls each way can add up to the limit and do get the
    // host reported lost: that is the keepalive working, not a bug.)
    let slow = proxy(
        &sshd,
        Behavior::Slow(Slowness {
            latency: Duration::from_millis(10),
            chunk: 4 * 1024,
            stall_every: Duration::from_secs(1),
            stall_for: Duration::from_secs(1),
        }),
    );
    let cfg = config(&sshd, &[("slow", &slow)]);
    let od = tempfile::tempdir().unwrap();
    let done = run(
        sortie()
            .args(["exec", "--out-dir"])
            .arg(od.path())
            .arg("-F")
            .arg(&cfg)
            .args([
                "-H",
                "slow,127.0.0.2,127.0.0.3",
                "--",
                "seq 1 200000; echo end >&2",
            ]),
        RUN_LIMIT,
    );
    let shown = format!("{}\n--- sshd log ---\n{}", done.shown(), sshd.log());
    assert_eq!(done.code(), Some(0), "{shown}");
    let expected: String = (1..=200000).map(|i| format!("{i}\n")).collect();
    for h in ["slow", "127.0.0.2", "127.0.0.3"] {
        let out = std::fs::read_to_string(od.path().join(format!("{h}.out"))).unwrap();
        assert!(
            out == expected,
            "{h}: {} bytes instead of {}",
            out.len(),
            expected.len()
        );
        let err = std::fs::read_to_string(od.path().join(format!("{h}.err"))).unwrap();
        assert_eq!(err, "end\n", "{h}");
    }
    assert!(
        slow.forwarded() > expected.len() as u64,
        "went through the proxy"
    );
    record(
        "slow link (10 ms per 4 KiB, 1 s stalls): 1.3 MB intact (whole run)",
        done.elapsed,
        Duration::from_secs(90),
    );
    // 1.3 MB in 4 KiB chunks at 10 ms each is over 3 s of added latency alone: the proxy
    // really was in the way.
    assert!(done.elapsed > Duration::from_secs(3), "{shown}");
}

#[test]
fn silent_server_and_kex_stall_are_unreachable_within_the_connect_timeout() {
    let Some(sshd) =
        sshd_or_skip("silent_server_and_kex_stall_are_unreachable_within_the_connect_timeout")
    else {
        return;
    };
    let mute = proxy(&sshd, Behavior::Silent);
    let stall = proxy(&sshd, Behavior::StallAfterBanner);
    let cfg = config(&sshd, &[("mute", &mute), ("stall", &stall)]);
    let done = run(
        sortie().args(["exec", "--json", "-F"]).arg(&cfg).args([
            "-H",
            "mute,stall,127.0.0.2,127.0.0.3",
            "--connect-timeout",
            "2s",
            "--",
            "echo fine",
        ]),
        RUN_LIMIT,
    );
    let shown = done.shown();
    assert_eq!(done.code(), Some(3), "{shown}");
    let line = summary_line(&done.stderr, "unreachable").unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains("mute") && line.contains("stall"), "{shown}");
    for h in ["127.0.0.2", "127.0.0.3"] {
        assert!(done.host_failed_at(h).is_none(), "{h}: {shown}");
    }
    assert!(
        done.events()
            .iter()
            .filter(|e| e["event"] == "job_finished" && e["outcome"]["kind"] == "ok")
            .count()
            == 2,
        "{shown}"
    );
    assert!(
        mute.accepted() >= 1 && stall.accepted() >= 1,
        "both were tried"
    );
    assert!(
        stall.forwarded() > 0,
        "the stalling host did send its banner"
    );
    // From sortie's start (connection attempts begin at once) to each host_failed event.
    let bound = Duration::from_secs(4);
    for (h, what) in [("mute", "no banner"), ("stall", "key exchange stall")] {
        let (at, failure) = done
            .host_failed_at(h)
            .unwrap_or_else(|| panic!("{h}: {shown}"));
        assert_eq!(failure, "unreachable", "{shown}");
        record(
            &format!("{what} reported unreachable (--connect-timeout 2s)"),
            at,
            bound,
        );
        assert!(at < bound, "{h} after {at:?}: {shown}");
    }
}
