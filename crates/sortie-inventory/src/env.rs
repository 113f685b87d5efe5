//! The local facts resolution depends on: local user, home directory, uid, host name, working
//! directory and where the system ssh_config lives.
//!
//! OpenSSH takes the home directory from the password database, not from `$HOME`
//! (`HOME=/tmp ssh -G x` still prints `/root/.ssh/known_hosts` for root), so
//! [`LocalEnv::from_system`] does the same. Tests build a [`LocalEnv`] by hand so `~` expansion
//! is deterministic. This module is the only place that asks the operating system.

use std::ffi::CStr;
use std::path::PathBuf;

/// Local facts used for `~`, `%d`, `%u`, `%i`, `%l`, `%L` and default file locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEnv {
    /// Local user name (`%u`, default remote user).
    pub user: String,
    /// Home directory of the local user from the password database (`~`, `%d`).
    pub home: PathBuf,
    /// Numeric user id (`%i`).
    pub uid: u32,
    /// Local host name (`%l`; `%L` is the part before the first dot).
    pub hostname: String,
    /// Working directory: where `sortie.toml` is looked for and relative paths start.
    pub cwd: PathBuf,
    /// The system-wide ssh_config read after the user's one (OpenSSH: `/etc/ssh/ssh_config`).
    pub system_ssh_config: PathBuf,
}

impl LocalEnv {
    /// Reads the facts from the running process: the password-database entry of the real uid,
    /// `gethostname`, the current directory. Falls back to `$USER`/`$HOME` only when the
    /// password database has no entry (as in some containers).
    pub fn from_system() -> LocalEnv {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let (user, home) = passwd_by_uid(uid).unwrap_or_else(|| {
            (
                std::env::var("USER").unwrap_or_else(|_| uid.to_string()),
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())),
            )
        });
        LocalEnv {
            user,
            home,
            uid,
            hostname: local_hostname(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            system_ssh_config: PathBuf::from("/etc/ssh/ssh_config"),
        }
    }
}

/// Home directory of another user (for `~user/...`), from the password database.
pub(crate) fn home_of(user: &str) -> Option<PathBuf> {
    let name = std::ffi::CString::new(user).ok()?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid value to be overwritten by getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call; buf outlives its use.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points into buf and is NUL-terminated by getpwnam_r.
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
    Some(PathBuf::from(dir.to_string_lossy().into_owned()))
}

fn passwd_by_uid(uid: libc::uid_t) -> Option<(String, PathBuf)> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid value to be overwritten by getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call; buf outlives its use.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: both point into buf and are NUL-terminated by getpwuid_r.
    let (name, dir) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Some((
        name.to_string_lossy().into_owned(),
        PathBuf::from(dir.to_string_lossy().into_owned()),
    ))
}

fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
