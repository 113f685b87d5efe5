//! Dedicated test accounts with a chosen login shell (bash, dash, BusyBox ash, zsh, fish,
//! tcsh), for tests of what a server does with another login shell.
//!
//! Never modifies an existing account: it creates `sortie-t-<shell>` users (home, locked
//! password `*`, the shared client keys in `~/.ssh/authorized_keys`) when missing, and adds
//! the shell to `/etc/shells` (Dropbear refuses a shell not listed there). BusyBox ash is
//! reached through a symlink named `ash` (BusyBox picks the applet from its name) in
//! `/usr/local/lib/sortie-testkit/`. Needs root; otherwise [`Error::Unavailable`] says why.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::keys::Keys;

/// A login shell a test account can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginShell {
    /// GNU bash.
    Bash,
    /// Debian's dash.
    Dash,
    /// BusyBox ash, as on cameras and routers.
    BusyboxAsh,
    /// zsh.
    Zsh,
    /// fish (not POSIX).
    Fish,
    /// tcsh (csh syntax, not POSIX).
    Tcsh,
}

impl LoginShell {
    /// Every shell, in the compatibility matrix's order.
    pub const ALL: [LoginShell; 6] = [
        LoginShell::Bash,
        LoginShell::Dash,
        LoginShell::BusyboxAsh,
        LoginShell::Zsh,
        LoginShell::Fish,
        LoginShell::Tcsh,
    ];

    /// Short name (`bash`, `ash`, ...), also the suffix of the account name.
    pub fn name(self) -> &'static str {
        match self {
            LoginShell::Bash => "bash",
            LoginShell::Dash => "dash",
            LoginShell::BusyboxAsh => "ash",
            LoginShell::Zsh => "zsh",
            LoginShell::Fish => "fish",
            LoginShell::Tcsh => "tcsh",
        }
    }

    /// The Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            LoginShell::BusyboxAsh => "busybox",
            other => other.name(),
        }
    }

    /// The installed binary (for BusyBox, `/bin/busybox` itself), or `None`.
    pub fn binary(self) -> Option<PathBuf> {
        let candidates: &[&str] = match self {
            LoginShell::Bash => &["/bin/bash", "/usr/bin/bash"],
            LoginShell::Dash => &["/bin/dash", "/usr/bin/dash"],
            LoginShell::BusyboxAsh => &["/bin/busybox", "/usr/bin/busybox"],
            LoginShell::Zsh => &["/usr/bin/zsh", "/bin/zsh"],
            LoginShell::Fish => &["/usr/bin/fish"],
            LoginShell::Tcsh => &["/usr/bin/tcsh", "/bin/tcsh"],
        };
        candidates.iter().map(PathBuf::from).find(|p| p.exists())
    }
}

/// A test account: its name, home and login shell path.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Account name (`sortie-t-<shell>`).
    pub name: String,
    /// Home directory.
    pub home: PathBuf,
    /// The login shell as written in `/etc/passwd` and `/etc/shells`.
    pub shell: PathBuf,
}

static LOCK: Mutex<()> = Mutex::new(());

/// The account for `shell`, created when missing, with `keys`' client keys authorized.
pub fn test_user(shell: LoginShell, keys: &Keys) -> Result<TestUser> {
    if !crate::is_root() {
        return Err(Error::Unavailable(
            "creating test accounts needs root".into(),
        ));
    }
    let binary = shell.binary().ok_or_else(|| {
        Error::Unavailable(format!(
            "{} is not installed (Debian package {})",
            shell.name(),
            shell.package()
        ))
    })?;
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let login = match shell {
        LoginShell::BusyboxAsh => {
            let dir = Path::new("/usr/local/lib/sortie-testkit");
            fs::create_dir_all(dir)
                .map_err(|e| Error::io("creating /usr/local/lib/sortie-testkit", e))?;
            let link = dir.join("ash");
            if !link.exists() {
                std::os::unix::fs::symlink(&binary, &link)
                    .map_err(|e| Error::io(format!("linking {}", link.display()), e))?;
            }
            link
        }
        _ => binary,
    };
    list_in_etc_shells(&login)?;
    let name = format!("sortie-t-{}", shell.name());
    let home = PathBuf::from(format!("/home/{name}"));
    if !account_exists(&name) {
        run(Command::new("useradd")
            .args(["--create-home", "--home-dir"])
            .arg(&home)
            .arg("--shell")
            .arg(&login)
            .args(["--password", "*"])
            .arg(&name))?;
    }
    let ssh = home.join(".ssh");
    fs::create_dir_all(&ssh).map_err(|e| Error::io(format!("creating {}", ssh.display()), e))?;
    let auth = ssh.join("authorized_keys");
    fs::write(&auth, keys.authorized_keys()?)
        .map_err(|e| Error::io(format!("writing {}", auth.display()), e))?;
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod authorized_keys", e))?;
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{name}:"))
        .arg(&home))?;
    Ok(TestUser {
        name,
        home,
        shell: login,
    })
}

fn account_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn list_in_etc_shells(shell: &Path) -> Result<()> {
    let listed = fs::read_to_string("/etc/shells").unwrap_or_default();
    let s = shell.display().to_string();
    if listed.lines().any(|l| l.trim() == s) {
        return Ok(());
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open("/etc/shells")
        .map_err(|e| Error::io("opening /etc/shells", e))?;
    writeln!(f, "{s}").map_err(|e| Error::io("appending to /etc/shells", e))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {cmd:?}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Tool {
        command: format!("{cmd:?}"),
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
