//! `put`/`get` against real OpenSSH sshd fixtures on loopback: trees with modes to many hosts
//! checked byte for byte, gets into per-host directories, re-runs that send nothing, the
//! exec-channel fallback on a server without SFTP, interruption, and per-file errors.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sortie::transfer::{
    self, get_files, put_files, GetOptions, HostTarget, LocalTree, Method, PutOptions, TransferCtx,
    TransferError, TransferRunResult,
};
use sortie::transport::{ssh::SshOptions, ssh::SshTransport, Connection, Transport, Transports};
use sortie::Outcome;
use sortie_testkit::Sshd;

fn transport() -> Arc<dyn Transport> {
    Arc::new(Transports::new(SshTransport::new(SshOptions {
        agent_socket: None,
        ..SshOptions::default()
    })))
}

/// Writes `size` pseudo-random bytes (xorshift, seeded) to `path` with `mode`.
fn make_file(path: &Path, size: usize, seed: u64, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    drop(f);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file below `dir` (relative path -> (sha256, mode)), and every directory's mode.
fn snapshot(dir: &Path) -> BTreeMap<String, (String, u32)> {
    assert!(dir.is_dir(), "{} is not a directory", dir.display());
    sortie_testkit::paths_below(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                (format!("{rel}/"), (String::new(), mode(&p)))
            } else {
                (rel, (sha256(&p), mode(&p)))
            }
        })
        .collect()
}

/// Names containing `sortie-tmp` anywhere below `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    sortie_testkit::paths_below(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("sortie-tmp")
        })
        .collect()
}

/// A small tree with nested directories and varied modes.
fn small_tree(root: &Path) -> PathBuf {
    let t = root.join("tree");
    make_file(&t.join("a.txt"), 1000, 1, 0o644);
    make_file(&t.join("sub/deeper/run.sh"), 70_000, 2, 0o755);
    make_file(&t.join("sub/private.key"), 300, 3, 0o600);
    make_file(&t.join("sub/empty.txt"), 0, 4, 0o640);
    std::fs::create_dir_all(t.join("emptydir")).unwrap();
    std::fs::set_permissions(t.join("emptydir"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(t.join("sub"), std::fs::Permissions::from_mode(0o711)).unwrap();
    t
}

struct Fleet {
    sshd: Sshd,
    hosts: Vec<HostTarget>,
}

fn fleet(test: &str, n: usize, sftp: bool) -> Option<Fleet> {
    if sortie_testkit::require_sshd().is_none() {
        common::skip(test, "OpenSSH sshd is not installed");
        return None;
    }
    let sshd = match Sshd::builder()
        .sftp(sftp)
        .max_startups(Some("100:30:200"))
        .start()
    {
        Ok(s) => s,
        Err(e) => {
            common::skip(test, &format!("cannot start a fixture sshd: {e}"));
            return None;
        }
    };
    let names = sortie_testkit::hosts(n);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let kh = sshd.known_hosts_for(&refs).unwrap();
    let hosts = names
        .iter()
        .map(|h| HostTarget {
            target: common::target(&sshd, h, kh.clone()),
            tags: [("role".to_string(), format!("r-{}", h.replace('.', "-")))].into(),
        })
        .collect();
    Some(Fleet { sshd, hosts })
}

async fn finish(mut h: transfer::TransferHandle) -> TransferRunResult {
    while h.events.recv().await.is_some() {}
    h.result.await.unwrap()
}

async fn connect(f: &Fleet, i: usize) -> Arc<dyn Connection> {
    transport().connect(&f.hosts[i].target).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_and_100_mb_to_20_hosts_byte_for_byte_then_nothing_to_send() {
    let Some(f) = fleet("tree_and_100_mb_to_20_hosts", 20, true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tree = small_tree(tmp.path());
    let big = tmp.path().join("big.bin");
    make_file(&big, 100 << 20, 42, 0o640);
    let remote_root = tmp.path().join("remote");
    let remote = format!("{}/{{host}}/dest/", remote_root.display());
    let scanned = LocalTree::scan(&[tree.clone(), big.clone()], true).unwrap();
    let ctx = TransferCtx::default();
    let h = transfer::put(
        transport(),
        f.hosts.clone(),
        scanned.clone(),
        &remote,
        PutOptions {
            recursive: true,
            ..PutOptions::default()
        },
        ctx.clone(),
    )
    .unwrap();
    let r = finish(h).await;
    let mut expected = snapshot(tmp.path().join("tree").as_path())
        .into_iter()
        .map(|(k, v)| (format!("tree/{k}"), v))
        .collect::<BTreeMap<_, _>>();
    expected.insert("tree/".into(), (String::new(), mode(&tree)));
    expected.insert("big.bin".into(), (sha256(&big), 0o640));
    let per_host = scanned.total_bytes();
    for h in &f.hosts {
        let label = &h.target.label;
        let hr = &r.hosts[label];
        assert_eq!(hr.outcome, Outcome::Ok, "{label}: {:?}", hr.errors);
        assert_eq!(hr.stats.bytes, per_host, "{label}");
        assert_eq!(hr.stats.files, 5, "{label}");
        assert_eq!(hr.stats.method, Some(Method::Sftp));
        let dest = remote_root.join(label).join("dest");
        assert_eq!(snapshot(&dest), expected, "{label}");
        assert!(temp_files(&dest).is_empty(), "{label}");
        // Modification times are kept (whole seconds, as SFTP carries them).
        let m = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).unwrap().mtime()
        };
        assert_eq!(m(&dest.join("big.bin")), m(&big));
    }
    assert_eq!(ctx.progress.bytes(), per_host * 20);

    // A second put finds everything identical and sends nothing.
    let h = transfer::put(
        transport(),
        f.hosts.clone(),
        scanned.clone(),
        &remote,
        PutOptions {
            recursive: true,
            ..PutOptions::default()
        },
        TransferCtx::default(),
    )
    .unwrap();
    let r = finish(h).await;
    assert_eq!(r.bytes(), 0);
    for hr in r.hosts.values() {
        assert_eq!(hr.outcome, Outcome::Ok);
        assert_eq!((hr.stats.files, hr.stats.skipped), (0, 5));
    }
    drop(f.sshd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_from_20_hosts_into_per_host_directories_with_globs() {
    let Some(f) = fleet("get_from_20_hosts", 20, true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let remote_root = tmp.path().join("remote");
    for (i, h) in f.hosts.iter().enumerate() {
        let d = remote_root.join(&h.target.label);
        make_file(&d.join("logs/app.log"), 100_000 + i, i as u64 + 10, 0o640);
        make_file(&d.join("logs/db.log"), 5_000, i as u64 + 100, 0o600);
        make_file(&d.join("logs/notes.txt"), 10, 7, 0o644);
        make_file(&d.join("conf/x/y.conf"), 77, 8, 0o644);
    }
    let out = tmp.path().join("out");
    let remotes = vec![
        format!("{}/{{host}}/logs/*.log", remote_root.display()),
        format!("{}/{{host}}/conf", remote_root.display()),
    ];
    let h = transfer::get(
        transport(),
        f.hosts.clone(),
        &remotes,
        out.clone(),
        GetOptions {
            recursive: true,
            ..GetOptions::default()
        },
        TransferCtx::default(),
    )
    .unwrap();
    let r = finish(h).await;
    for h in &f.hosts {
        let label = &h.target.label;
        assert_eq!(
            r.hosts[label].outcome,
            Outcome::Ok,
            "{:?}",
            r.hosts[label].errors
        );
        let src = remote_root.join(label);
        let got = out.join(label);
        for (name, from) in [
            ("app.log", "logs/app.log"),
            ("db.log", "logs/db.log"),
            ("conf/x/y.conf", "conf/x/y.conf"),
        ] {
            assert_eq!(
                sha256(&got.join(name)),
                sha256(&src.join(from)),
                "{label} {name}"
            );
            assert_eq!(
                mode(&got.join(name)),
                mode(&src.join(from)),
                "{label} {name}"
            );
        }
        assert!(
            !got.join("notes.txt").exists(),
            "the glob matched only *.log"
        );
        assert!(temp_files(&got).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_without_sftp_puts_and_gets_trees() {
    let Some(f) = fleet("fallback_without_sftp", 2, false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tree = small_tree(tmp.path());
    let remote_root = tmp.path().join("remote");
    let conn = connect(&f, 0).await;
    let copy = remote_root.join("copy");
    let ctx = TransferCtx::default();
    let opts = PutOptions {
        recursive: true,
        verify: true,
        ..PutOptions::default()
    };
    // A single directory to a missing path becomes that path (like cp -r).
    let r = put_files(
        &conn,
        std::slice::from_ref(&tree),
        copy.to_str().unwrap(),
        &opts,
        &ctx,
    )
    .await
    .unwrap();
    assert!(r.is_ok(), "{:?}", r.errors);
    assert_eq!(r.stats.method, Some(Method::Exec));
    assert_eq!(r.stats.files, 4);
    assert_eq!(snapshot(&copy), snapshot(&tree));
    assert!(temp_files(&copy).is_empty());
    // With a trailing slash the destination is a directory: re-runs land in the same place
    // and find everything identical.
    let into = format!("{}/", remote_root.join("into").display());
    let first = put_files(&conn, std::slice::from_ref(&tree), &into, &opts, &ctx)
        .await
        .unwrap();
    assert_eq!(first.stats.files, 4);
    let again = put_files(&conn, std::slice::from_ref(&tree), &into, &opts, &ctx)
        .await
        .unwrap();
    assert!(again.is_ok(), "{:?}", again.errors);
    assert_eq!((again.stats.bytes, again.stats.skipped), (0, 4));
    let dest = remote_root.join("into/tree");
    assert_eq!(snapshot(&dest), snapshot(&tree));

    let out = tmp.path().join("back");
    let g = get_files(
        &conn,
        &[
            format!("{}", dest.display()),
            format!("{}/sub/*.key", dest.display()),
        ],
        &out,
        &GetOptions {
            recursive: true,
            ..GetOptions::default()
        },
        &TransferCtx::default(),
    )
    .await
    .unwrap();
    assert!(g.is_ok(), "{:?}", g.errors);
    assert_eq!(g.stats.method, Some(Method::Exec));
    assert_eq!(snapshot(&out.join("tree")), snapshot(&tree));
    assert_eq!(
        sha256(&out.join("private.key")),
        sha256(&tree.join("sub/private.key"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_put_leaves_no_partial_file_under_the_real_name() {
    let Some(f) = fleet("cancelled_put", 1, true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("huge.bin");
    make_file(&big, 300 << 20, 5, 0o644);
    let remote_dir = tmp.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    for method in [Method::Sftp, Method::Exec] {
        let conn = connect(&f, 0).await;
        let ctx = TransferCtx::default();
        let watch = ctx.clone();
        let canceller = tokio::spawn(async move {
            while watch.progress.bytes() < 20 << 20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            watch.cancel.cancel();
        });
        let opts = PutOptions {
            method,
            ..PutOptions::default()
        };
        let dest = remote_dir.join("huge.bin");
        let r = put_files(
            &conn,
            std::slice::from_ref(&big),
            dest.to_str().unwrap(),
            &opts,
            &ctx,
        )
        .await;
        canceller.await.unwrap();
        assert!(
            matches!(r, Err(TransferError::Interrupted)),
            "{method}: {r:?}"
        );
        assert!(!dest.exists(), "{method}: nothing under the real name");
        // The temporary file is removed once the remote side has let go of it.
        let mut left = temp_files(&remote_dir);
        for _ in 0..50 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = temp_files(&remote_dir);
        }
        assert!(left.is_empty(), "{method}: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_file_and_the_other_files_still_arrive() {
    let Some(f) = fleet("errors_name_the_file", 1, true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.txt");
    let b = tmp.path().join("b.txt");
    make_file(&a, 10, 1, 0o644);
    make_file(&b, 10, 2, 0o644);
    let conn = connect(&f, 0).await;
    let ctx = TransferCtx::default();
    for method in [Method::Sftp, Method::Exec] {
        let opts = PutOptions {
            method,
            ..PutOptions::default()
        };
        // Two files to a path that is a file.
        let file = tmp.path().join("plain");
        make_file(&file, 3, 3, 0o644);
        let r = put_files(
            &conn,
            &[a.clone(), b.clone()],
            file.to_str().unwrap(),
            &opts,
            &ctx,
        )
        .await
        .unwrap();
        assert_eq!(r.errors.len(), 1, "{method}");
        assert_eq!(
            r.errors[0].to_string(),
            format!("{}: not a directory on the host", file.display())
        );
        // A parent that is a file.
        let r = put_files(
            &conn,
            std::slice::from_ref(&a),
            &format!("{}/sub/x", file.display()),
            &opts,
            &ctx,
        )
        .await
        .unwrap();
        assert_eq!(
            r.errors[0].to_string(),
            format!("{}: not a directory on the host", file.display()),
            "{method}"
        );
        // Permission denied, per file; the writable target still gets its file.
        let denied = if sortie_testkit::is_root() {
            PathBuf::from("/sys")
        } else {
            let d = tmp.path().join("ro");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
            d
        };
        let r = put_files(
            &conn,
            std::slice::from_ref(&a),
            &format!("{}/", denied.display()),
            &opts,
            &ctx,
        )
        .await
        .unwrap();
        assert_eq!(
            r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec![format!("{}/a.txt: permission denied", denied.display())],
            "{method}"
        );
        // get: a missing file and a directory without -r, named; the good file arrives.
        let out = tmp.path().join(format!("out-{method}"));
        let g = get_files(
            &conn,
            &[
                format!("{}/missing.txt", tmp.path().display()),
                format!("{}", tmp.path().join("ro-or-not").display()),
                a.display().to_string(),
                tmp.path().display().to_string(),
            ],
            &out,
            &GetOptions {
                method,
                ..GetOptions::default()
            },
            &ctx,
        )
        .await
        .unwrap();
        let msgs: Vec<String> = g.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{}/missing.txt: no such file or directory on the host",
                    tmp.path().display()
                ),
                format!(
                    "{}: no such file or directory on the host",
                    tmp.path().join("ro-or-not").display()
                ),
                format!(
                    "{}: is a directory (use -r to copy directories)",
                    tmp.path().display()
                ),
            ],
            "{method}"
        );
        assert_eq!(sha256(&out.join("a.txt")), sha256(&a));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_in_remote_paths_and_missing_tags_refused_before_connecting() {
    let Some(f) = fleet("tags_in_remote_paths", 3, true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.txt");
    make_file(&a, 1234, 1, 0o644);
    let root = tmp.path().join("remote");
    let tree = LocalTree::scan(std::slice::from_ref(&a), false).unwrap();
    let remote = format!("{}/{{tag:role}}/{{host}}.txt", root.display());
    let r = finish(
        transfer::put(
            transport(),
            f.hosts.clone(),
            tree.clone(),
            &remote,
            PutOptions::default(),
            TransferCtx::default(),
        )
        .unwrap(),
    )
    .await;
    for h in &f.hosts {
        let label = &h.target.label;
        assert_eq!(r.hosts[label].outcome, Outcome::Ok);
        let p = root.join(&h.tags["role"]).join(format!("{label}.txt"));
        assert_eq!(sha256(&p), sha256(&a), "{}", p.display());
    }
    let e = transfer::put(
        transport(),
        f.hosts.clone(),
        tree,
        "/x/{tag:zone}/",
        PutOptions::default(),
        TransferCtx::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("has no tag `zone`"), "{e}");
}

/// The login directory of the user the fixture logs in as (this user), from the passwd entry.
fn login_dir() -> PathBuf {
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    let uid = String::from_utf8(uid.stdout).unwrap();
    let entry = std::process::Command::new("getent")
        .args(["passwd", uid.trim()])
        .output()
        .unwrap();
    let entry = String::from_utf8(entry.stdout).unwrap();
    PathBuf::from(entry.trim().split(':').nth(5).expect("passwd entry"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tilde_means_the_login_directory_over_sftp_and_the_fallback() {
    for sftp in [true, false] {
        let Some(f) = fleet("tilde_means_the_login_directory", 1, sftp) else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        make_file(&tmp.path().join("f.txt"), 5000, 9, 0o640);
        let name = format!("sortie-tilde-{}-{sftp}", std::process::id());
        let landed = login_dir().join(&name);
        let conn = connect(&f, 0).await;
        let r = put_files(
            &conn,
            &[tmp.path().join("f.txt")],
            &format!("~/{name}/"),
            &PutOptions::default(),
            &TransferCtx::default(),
        )
        .await
        .unwrap();
        let on_host = std::fs::read(landed.join("f.txt"));
        let back = tmp.path().join("back");
        let g = get_files(
            &conn,
            &[format!("~/{name}/f.txt")],
            &back,
            &GetOptions::default(),
            &TransferCtx::default(),
        )
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&landed);
        assert!(r.is_ok() && g.is_ok(), "{:?} {:?}", r.errors, g.errors);
        assert_eq!(
            r.stats.method,
            Some(if sftp { Method::Sftp } else { Method::Exec })
        );
        assert_eq!(
            on_host.expect("the file is in the login directory"),
            std::fs::read(tmp.path().join("f.txt")).unwrap()
        );
        assert_eq!(
            sha256(&back.join("f.txt")),
            sha256(&tmp.path().join("f.txt"))
        );
        assert!(
            !Path::new(&format!("~/{name}")).exists(),
            "a literal ~ directory was made"
        );
    }
}
