//! A private `ssh-agent` for tests: started in the foreground (`-D`) as a child process on a
//! socket in its own temp directory, loaded with `ssh-add`, killed on drop. It never touches
//! the user's agent (`SSH_AUTH_SOCK` of the test process is left alone).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{run, Error, Result};

/// A running `ssh-agent`.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Agent {
    /// Starts an empty agent and waits until its socket exists.
    pub fn start() -> Result<Agent> {
        let dir = tempfile::Builder::new()
            .prefix("sortie-agent-")
            .tempdir()
            .map_err(|e| Error::io("creating the agent temp dir", e))?;
        let sock = dir.path().join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("spawning ssh-agent", e))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sock.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::AgentStart(format!("ssh-agent exited with {status}")));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::AgentStart(format!(
                    "socket {} did not appear within 5 s",
                    sock.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Agent { child, dir, sock })
    }

    /// Starts an agent holding these unencrypted keys.
    pub fn with_keys(keys: &[&Path]) -> Result<Agent> {
        let agent = Agent::start()?;
        for k in keys {
            agent.add(k, None)?;
        }
        Ok(agent)
    }

    /// The agent socket, for `SSH_AUTH_SOCK` or `ssh -o IdentityAgent=...`.
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    /// Adds a private key with `ssh-add`. For an encrypted key pass its passphrase; it is fed
    /// through a private `SSH_ASKPASS` script and never appears on a command line.
    pub fn add(&self, key: &Path, passphrase: Option<&str>) -> Result<()> {
        let mut cmd = Command::new("ssh-add");
        cmd.arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .env_remove("DISPLAY");
        if let Some(p) = passphrase {
            let script = self.dir.path().join("askpass");
            // Single quotes keep the passphrase literal; escape embedded single quotes.
            let quoted = p.replace('\'', r"'\''");
            // ssh-add asks again after a wrong passphrase until it gets an empty answer:
            // answer once, then fail, so a wrong passphrase is an error and not a loop.
            let once = self.dir.path().join("askpass.used");
            let _ = std::fs::remove_file(&once);
            let script_text = format!(
                "#!/bin/sh\n[ -e '{once}' ] && exit 1\n: > '{once}'\nprintf '%s\\n' '{quoted}'\n",
                once = once.display()
            );
            std::fs::write(&script, script_text)
                .map_err(|e| Error::io("writing the askpass script", e))?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("chmod 700 askpass script", e))?;
            cmd.env("SSH_ASKPASS", &script)
                .env("SSH_ASKPASS_REQUIRE", "force");
        } else {
            cmd.env("SSH_ASKPASS", "/bin/false")
                .env("SSH_ASKPASS_REQUIRE", "never");
        }
        let res = run(&mut cmd);
        let _ = std::fs::remove_file(self.dir.path().join("askpass"));
        res.map(|_| ())
    }

    /// The keys the agent holds, one `ssh-add -l` line each (empty when none).
    pub fn list(&self) -> Result<Vec<String>> {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.sock)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running ssh-add -l", e))?;
        // Exit 1 means "no identities"; 2 means the agent is unreachable.
        match out.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()),
            Some(1) => Ok(Vec::new()),
            _ => Err(Error::Tool {
                command: "ssh-add -l".to_owned(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            }),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
