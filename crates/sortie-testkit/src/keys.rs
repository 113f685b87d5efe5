//! Key material for the fixtures: host keys and client keys made with `ssh-keygen`.
//!
//! A [`Keys`] is a directory holding one full set. Generating RSA keys takes a noticeable
//! fraction of a second, so [`Keys::shared`] keeps one set per user in the temp directory and
//! every fixture copies from it; a fixture that needs *different* host keys (to simulate a
//! changed host key) generates its own with [`Keys::generate_host_keys`].

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{run, Error, Result};

/// Passphrase of the encrypted client key ([`Keys::encrypted_key`]).
pub const PASSPHRASE: &str = "sortie-testkit passphrase";

/// Environment variable naming the directory for the shared key set (see [`Keys::shared`]).
pub const KEYS_DIR_ENV: &str = "SORTIE_TESTKIT_KEYS";

/// A key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519 (`ssh-ed25519`).
    Ed25519,
    /// ECDSA on NIST P-256 (`ecdsa-sha2-nistp256`).
    Ecdsa,
    /// RSA, 3072 bits (`ssh-rsa` key, signed with `rsa-sha2-*`).
    Rsa,
}

impl KeyKind {
    /// All kinds, in the order files are written.
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::Ecdsa, KeyKind::Rsa];

    /// The `ssh-keygen -t` name.
    pub fn keygen_type(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Ecdsa => "ecdsa",
            KeyKind::Rsa => "rsa",
        }
    }

    /// The public-key algorithm name as it appears in `.pub` and known_hosts files.
    pub fn algorithm(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ssh-ed25519",
            KeyKind::Ecdsa => "ecdsa-sha2-nistp256",
            KeyKind::Rsa => "ssh-rsa",
        }
    }
}

/// A host key fingerprint as OpenSSH prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Which host key.
    pub kind: KeyKind,
    /// `SHA256:<base64>` as printed by `ssh-keygen -l` and by `ssh` on a changed key.
    pub sha256: String,
}

/// A directory with host keys (ed25519, ecdsa, rsa) and client keys (ed25519, ecdsa, rsa
/// unencrypted; ed25519 encrypted with [`PASSPHRASE`]), each private file mode 0600.
#[derive(Debug, Clone)]
pub struct Keys {
    dir: PathBuf,
}

impl Keys {
    /// Makes (or reuses) a full key set in `dir`, creating the directory (mode 0700). Files that
    /// already exist are kept, so calling this again on the same directory is cheap.
    pub fn generate(dir: &Path) -> Result<Keys> {
        let keys = Keys::prepare(dir)?;
        let _lock = DirLock::acquire(dir)?;
        for kind in KeyKind::ALL {
            keys.keygen_if_missing(&keys.host_key(kind), kind, "")?;
            keys.keygen_if_missing(&keys.client_key(kind), kind, "")?;
        }
        keys.keygen_if_missing(&keys.encrypted_key().0, KeyKind::Ed25519, PASSPHRASE)?;
        Ok(keys)
    }

    /// Replaces the host keys in `dir` with freshly generated ones (a "reinstalled host").
    /// Client keys are left alone.
    pub fn generate_host_keys(dir: &Path) -> Result<Keys> {
        let keys = Keys::prepare(dir)?;
        let _lock = DirLock::acquire(dir)?;
        for kind in KeyKind::ALL {
            let path = keys.host_key(kind);
            for p in [path.clone(), pub_path(&path)] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(format!("removing {}", p.display()), e)),
                }
            }
            keys.keygen_if_missing(&path, kind, "")?;
        }
        Ok(keys)
    }

    /// The per-user key set shared by all fixtures of all test processes, in
    /// `$SORTIE_TESTKIT_KEYS` or `<tmp>/sortie-testkit-keys-<uid>`. Generated on first use; a
    /// file lock makes concurrent test processes wait for one another instead of racing.
    pub fn shared() -> Result<Keys> {
        static SHARED: Mutex<Option<Keys>> = Mutex::new(None);
        let mut guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = guard.as_ref() {
            return Ok(k.clone());
        }
        let dir = match std::env::var_os(KEYS_DIR_ENV) {
            Some(d) => PathBuf::from(d),
            // SAFETY: getuid has no preconditions.
            None => std::env::temp_dir()
                .join(format!("sortie-testkit-keys-{}", unsafe { libc::getuid() })),
        };
        let keys = Keys::generate(&dir)?;
        *guard = Some(keys.clone());
        Ok(keys)
    }

    /// Copies every key file of `self` into `dir` (created if needed) and returns the copy.
    pub fn copy_to(&self, dir: &Path) -> Result<Keys> {
        let copy = Keys::prepare(dir)?;
        for kind in KeyKind::ALL {
            copy_pair(&self.host_key(kind), &copy.host_key(kind))?;
            copy_pair(&self.client_key(kind), &copy.client_key(kind))?;
        }
        copy_pair(&self.encrypted_key().0, &copy.encrypted_key().0)?;
        Ok(copy)
    }

    /// The directory holding the keys.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Private host key file of this kind (the `.pub` is beside it).
    pub fn host_key(&self, kind: KeyKind) -> PathBuf {
        self.dir
            .join(format!("ssh_host_{}_key", kind.keygen_type()))
    }

    /// Private, unencrypted client key file of this kind (the `.pub` is beside it).
    pub fn client_key(&self, kind: KeyKind) -> PathBuf {
        self.dir.join(format!("id_{}", kind.keygen_type()))
    }

    /// The encrypted ed25519 client key and its passphrase.
    pub fn encrypted_key(&self) -> (PathBuf, &'static str) {
        (self.dir.join("id_ed25519_encrypted"), PASSPHRASE)
    }

    /// Every client public key, one `authorized_keys` line each.
    pub fn authorized_keys(&self) -> Result<String> {
        let mut out = String::new();
        let mut paths: Vec<PathBuf> = KeyKind::ALL.iter().map(|k| self.client_key(*k)).collect();
        paths.push(self.encrypted_key().0);
        for p in paths {
            out.push_str(read_pub(&p)?.trim());
            out.push('\n');
        }
        Ok(out)
    }

    /// The public host key line (`<algorithm> <base64>`, without comment) of this kind.
    pub fn host_public_key(&self, kind: KeyKind) -> Result<String> {
        let line = read_pub(&self.host_key(kind))?;
        Ok(line
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "))
    }

    /// SHA-256 fingerprints of the host keys, as `ssh-keygen -l -E sha256` prints them.
    pub fn host_key_fingerprints(&self) -> Result<Vec<Fingerprint>> {
        KeyKind::ALL
            .iter()
            .map(|&kind| {
                let out = run(Command::new("ssh-keygen")
                    .args(["-l", "-E", "sha256", "-f"])
                    .arg(pub_path(&self.host_key(kind))))?;
                let sha256 = out
                    .split_whitespace()
                    .nth(1)
                    .filter(|f| f.starts_with("SHA256:"))
                    .ok_or_else(|| {
                        Error::Unavailable(format!("unexpected ssh-keygen -l output: {out}"))
                    })?
                    .to_owned();
                Ok(Fingerprint { kind, sha256 })
            })
            .collect()
    }

    fn prepare(dir: &Path) -> Result<Keys> {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let meta =
            fs::metadata(dir).map_err(|e| Error::io(format!("stat {}", dir.display()), e))?;
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        if meta.uid() != uid {
            return Err(Error::Unavailable(format!(
                "key directory {} is owned by uid {}, not by the test user (uid {uid}); \
                 remove it or set {KEYS_DIR_ENV} to another directory",
                dir.display(),
                meta.uid()
            )));
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod 700 {}", dir.display()), e))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
        Ok(Keys { dir })
    }

    fn keygen_if_missing(&self, path: &Path, kind: KeyKind, passphrase: &str) -> Result<()> {
        if path.exists() && pub_path(path).exists() {
            return Ok(());
        }
        let _ = fs::remove_file(path);
        let _ = fs::remove_file(pub_path(path));
        let comment = format!(
            "sortie-testkit-{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", kind.keygen_type(), "-N", passphrase, "-C"])
            .arg(comment)
            .arg("-f")
            .arg(path))?;
        Ok(())
    }
}

/// `key` + `.pub`.
pub(crate) fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn read_pub(key: &Path) -> Result<String> {
    let p = pub_path(key);
    fs::read_to_string(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))
}

fn copy_pair(from: &Path, to: &Path) -> Result<()> {
    for (f, t) in [
        (from.to_owned(), to.to_owned()),
        (pub_path(from), pub_path(to)),
    ] {
        fs::copy(&f, &t)
            .map_err(|e| Error::io(format!("copying {} to {}", f.display(), t.display()), e))?;
    }
    fs::set_permissions(to, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("chmod 600 {}", to.display()), e))
}

/// An exclusive `flock` on `<dir>/.lock`, released on drop (when the file closes).
struct DirLock(#[allow(dead_code)] fs::File);

impl DirLock {
    fn acquire(dir: &Path) -> Result<DirLock> {
        use std::os::fd::AsRawFd;
        let path = dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        loop {
            // SAFETY: the descriptor is valid for the lifetime of `file`.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(DirLock(file));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(format!("locking {}", path.display()), err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_key_and_reuses_them() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = Keys::generate(tmp.path()).unwrap();
        let fp1 = keys.host_key_fingerprints().unwrap();
        assert_eq!(fp1.len(), 3);
        for kind in KeyKind::ALL {
            let mode = fs::metadata(keys.host_key(kind))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{kind:?}");
            assert!(keys
                .host_public_key(kind)
                .unwrap()
                .starts_with(kind.algorithm()));
        }
        // Reuse keeps the same keys.
        let again = Keys::generate(tmp.path()).unwrap();
        assert_eq!(again.host_key_fingerprints().unwrap(), fp1);
        // The encrypted key really needs the passphrase.
        let (enc, pass) = keys.encrypted_key();
        let wrong = Command::new("ssh-keygen")
            .args(["-y", "-P", "wrong", "-f"])
            .arg(&enc)
            .output()
            .unwrap();
        assert!(!wrong.status.success());
        let right = Command::new("ssh-keygen")
            .args(["-y", "-P", pass, "-f"])
            .arg(&enc)
            .output()
            .unwrap();
        assert!(right.status.success());
        assert_eq!(keys.authorized_keys().unwrap().lines().count(), 4);
        // Fresh host keys differ.
        let fresh = Keys::generate_host_keys(tmp.path()).unwrap();
        let fp2 = fresh.host_key_fingerprints().unwrap();
        for (a, b) in fp1.iter().zip(&fp2) {
            assert_ne!(a.sha256, b.sha256);
        }
    }
}
