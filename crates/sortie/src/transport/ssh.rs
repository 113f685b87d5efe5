//! The SSH transport, on russh. The only module that knows russh.
//!
//! What it owns:
//! - connecting within one deadline that covers TCP, banner, key exchange and authentication;
//! - handshake pacing: at most [`SshOptions::max_handshakes`] connections of the whole run are
//!   in TCP connect, key exchange and authentication at once, whatever the fan-out, so that a
//!   large fan-out does not overflow a listener's backlog or its `MaxStartups` (a permit is held
//!   from TCP connect to the end of authentication, never during a session, and never while a
//!   target waits for its jump host's own handshake, which holds its own permit);
//! - host key verification against known_hosts (via `sortie-knownhosts`), preferring the key
//!   algorithms already recorded for the host as OpenSSH does, with `accept-new` recording
//!   through one shared writer;
//! - public-key authentication from an ssh-agent (a small shared pool of agent connections,
//!   not one per host) and from key files (each file read and, if encrypted, its passphrase
//!   asked once per run, never once per host);
//! - ProxyJump chains, where targets behind the same jump host share one authenticated jump
//!   connection, and ProxyCommand (see `proxy`);
//! - keepalives, so a dead peer is noticed during a run;
//! - starting commands through the process-group wrapper (see `remote`) and stopping them over
//!   a separate channel.

use async_trait::async_trait;
use bytes::Bytes;
use russh::client::{self, Handle};
use russh::keys::{
    self, agent::client::AgentClient, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey,
};
use russh::{ChannelMsg, Disconnect};
use sortie_knownhosts::{KnownHosts, Recorded, Recorder, Verdict};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, OnceCell, Semaphore};

use super::remote::{self, take_marker};

mod channel;
use super::{
    ByteStream, Command, ConnectError, ConnectFailure, Connection, Exit, HostKeyChecking, Process,
    ProcessEvent, SpawnError, StopSequence, Target, Transport,
};

/// How many agent connections are shared by all hosts.
const AGENT_POOL: usize = 4;

/// How many connections are in TCP connect, key exchange and authentication at once when
/// nothing else is said (`--max-handshakes`). Chosen from `bench-exec` on 2 cores at 100, 500
/// and 1000 loopback hosts with the fan-out equal to the fleet (docs/benchmarks.md): 32 had the
/// shortest wall time of 32, 64 and 128 at every size, with no listen overflow and every host
/// reached, where an unpaced run lost 155 of 500 and 746 of 1000 hosts to connect timeouts.
/// Loopback has no network latency: over a long round trip a handshake lasts longer and more of
/// them in flight pay off, which `--max-handshakes` is for.
pub const DEFAULT_MAX_HANDSHAKES: usize = 32;

/// How a passphrase for an encrypted key is obtained.
pub type PassphrasePrompt = Arc<dyn Fn(&Path) -> Option<String> + Send + Sync>;

/// Settings of the SSH transport that are not per host.
#[derive(Clone)]
pub struct SshOptions {
    /// Asked once per encrypted key file; `None` answer = skip that key.
    pub passphrase_prompt: PassphrasePrompt,
    /// Path of the agent socket (`SSH_AUTH_SOCK`), if any.
    pub agent_socket: Option<PathBuf>,
    /// Connections of the run in TCP connect + key exchange + authentication at once (at least
    /// 1; [`DEFAULT_MAX_HANDSHAKES`] by default). Separate from any fan-out: a connection that
    /// is up holds no share of it.
    pub max_handshakes: usize,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            passphrase_prompt: Arc::new(default_prompt),
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
        }
    }
}

/// Asks for a passphrase like OpenSSH: through `SSH_ASKPASS` when there is no terminal or when
/// `SSH_ASKPASS_REQUIRE=force`, else on the terminal.
pub fn default_prompt(path: &Path) -> Option<String> {
    let prompt = format!("Enter passphrase for key '{}': ", path.display());
    let askpass = std::env::var_os("SSH_ASKPASS").filter(|s| !s.is_empty());
    let require = std::env::var("SSH_ASKPASS_REQUIRE").unwrap_or_default();
    let use_askpass =
        askpass.is_some() && (require == "force" || std::fs::File::open("/dev/tty").is_err());
    if use_askpass {
        let out = std::process::Command::new(askpass?)
            .arg(&prompt)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let s = String::from_utf8(out.stdout).ok()?;
        return Some(s.trim_end_matches(['\r', '\n']).to_string());
    }
    if require == "never" || require == "force" && askpass.is_none() {
        return None;
    }
    rpassword::prompt_password(prompt).ok()
}

type KeyResult = Result<Arc<PrivateKey>, String>;

/// The SSH transport. Cheap to share: one per run, used by every host.
pub struct SshTransport {
    options: SshOptions,
    keys: StdMutex<HashMap<PathBuf, Arc<OnceCell<Option<KeyResult>>>>>,
    prompt_lock: Mutex<()>,
    known_hosts: StdMutex<HashMap<Vec<PathBuf>, Arc<KnownHosts>>>,
    recorders: StdMutex<HashMap<PathBuf, Arc<Recorder>>>,
    agent: AgentPool,
    jumps: Mutex<HashMap<Target, Arc<OnceCell<Arc<SshConnection>>>>>,
    /// One permit per connection in its handshake (see [`SshOptions::max_handshakes`]).
    handshakes: Semaphore,
}

impl SshTransport {
    /// A transport with the given options.
    pub fn new(options: SshOptions) -> Self {
        let agent = AgentPool::new(options.agent_socket.clone());
        let handshakes = Semaphore::new(options.max_handshakes.clamp(1, Semaphore::MAX_PERMITS));
        SshTransport {
            handshakes,
            options,
            keys: StdMutex::new(HashMap::new()),
            prompt_lock: Mutex::new(()),
            known_hosts: StdMutex::new(HashMap::new()),
            recorders: StdMutex::new(HashMap::new()),
            agent,
            jumps: Mutex::new(HashMap::new()),
        }
    }

    fn known_hosts(&self, files: &[PathBuf]) -> Arc<KnownHosts> {
        let mut cache = self.known_hosts.lock().unwrap();
        cache
            .entry(files.to_vec())
            .or_insert_with(|| Arc::new(KnownHosts::load(files)))
            .clone()
    }

    fn recorder(&self, file: &Path) -> Arc<Recorder> {
        let mut cache = self.recorders.lock().unwrap();
        cache
            .entry(file.to_path_buf())
            .or_insert_with(|| Arc::new(Recorder::new(file.to_path_buf())))
            .clone()
    }

    /// Loads a key file once per run; `Ok(None)` when the file does not exist.
    async fn key(&self, path: &Path) -> Option<KeyResult> {
        let cell = {
            let mut keys = self.keys.lock().unwrap();
            keys.entry(path.to_path_buf()).or_default().clone()
        };
        cell.get_or_init(|| async {
            if !path.exists() {
                return None;
            }
            match keys::load_secret_key(path, None) {
                Ok(k) => Some(Ok(Arc::new(k))),
                Err(keys::Error::KeyIsEncrypted) => {
                    // One prompt at a time, whatever the number of keys and hosts.
                    let _guard = self.prompt_lock.lock().await;
                    let prompt = self.options.passphrase_prompt.clone();
                    let p = path.to_path_buf();
                    let pass = tokio::task::spawn_blocking(move || prompt(&p))
                        .await
                        .ok()
                        .flatten();
                    let Some(pass) = pass else {
                        return Some(Err(format!(
                            "{}: key is encrypted and no passphrase was given",
                            path.display()
                        )));
                    };
                    Some(
                        keys::load_secret_key(path, Some(&pass))
                            .map(Arc::new)
                            .map_err(|e| format!("{}: cannot decrypt key: {e}", path.display())),
                    )
                }
                Err(e) => Some(Err(format!("{}: unreadable key: {e}", path.display()))),
            }
        })
        .await
        .clone()
    }

    fn config(&self, target: &Target, known: &KnownHosts) -> Arc<client::Config> {
        let mut config = client::Config {
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        if !target.keepalive_interval.is_zero() {
            config.keepalive_interval = Some(target.keepalive_interval);
            config.keepalive_max = target.keepalive_max as usize;
        }
        // Prefer the host key algorithms already recorded for this host, as OpenSSH does, so
        // that a recorded key is actually compared instead of negotiating another type.
        let (kh_host, kh_port) = known_hosts_name(target);
        let recorded = known.algorithms_for(kh_host, kh_port);
        if !recorded.is_empty() {
            // Recorded types first, in the default order (ed25519 before ECDSA before RSA),
            // then the others, as OpenSSH orders HostKeyAlgorithms for a known host.
            let wanted: Vec<keys::Algorithm> =
                recorded.iter().flat_map(|n| expand_algorithm(n)).collect();
            let (mut preferred, rest): (Vec<_>, Vec<_>) = config
                .preferred
                .key
                .iter()
                .cloned()
                .partition(|alg| wanted.contains(alg));
            preferred.extend(rest);
            config.preferred.key = preferred.into();
        }
        // Ask for a host certificate when an @cert-authority line covers this host, as
        // OpenSSH does; without one a certificate could not be trusted anyway.
        if known.has_cert_authority_for(kh_host, kh_port) {
            config.preferred.host_key_certificates = config.preferred.key.clone();
        }
        Arc::new(config)
    }

    async fn connect_chain(&self, target: &Target) -> Result<Arc<SshConnection>, ConnectError> {
        let Some((last, earlier)) = target.jumps.split_last() else {
            return self.connect_direct(target, None).await;
        };
        // The jump connection is keyed by its whole chain, so targets behind the same jump
        // host share one authenticated connection.
        let mut jump_target = last.clone();
        jump_target.jumps = earlier.to_vec();
        let cell = {
            let mut jumps = self.jumps.lock().await;
            jumps.entry(jump_target.clone()).or_default().clone()
        };
        let jump = cell
            .get_or_try_init(|| Box::pin(self.connect_chain(&jump_target)))
            .await
            .map_err(|e| {
                ConnectError::new(
                    e.failure,
                    format!("jump host {}: {}", jump_target.label, e.message),
                )
            })?
            .clone();
        if jump.is_closed() {
            self.jumps.lock().await.remove(&jump_target);
            return Err(ConnectError::new(
                ConnectFailure::Unreachable,
                format!("jump host {}: connection lost", jump_target.label),
            ));
        }
        self.connect_direct(target, Some(jump)).await
    }

    /// One hop: waits for a handshake permit (the wait is not part of the connect timeout,
    /// which bounds only what the server sees), then connects within the timeout and lets the
    /// permit go once authenticated or failed.
    async fn connect_direct(
        &self,
        target: &Target,
        via: Option<Arc<SshConnection>>,
    ) -> Result<Arc<SshConnection>, ConnectError> {
        let _permit = self
            .handshakes
            .acquire()
            .await
            .expect("the handshake semaphore is never closed");
        if target.connect_timeout.is_zero() {
            // `ConnectTimeout none` (or 0): no timeout, as in OpenSSH.
            return self.handshake(target, via).await;
        }
        match tokio::time::timeout(target.connect_timeout, self.handshake(target, via)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::new(
                ConnectFailure::Unreachable,
                format!(
                    "{}:{}: connection timed out after {}s (TCP, banner, key exchange and auth)",
                    target.hostname,
                    target.port,
                    target.connect_timeout.as_secs_f64()
                ),
            )),
        }
    }

    /// TCP (or ProxyCommand, or a channel of the jump host), banner, key exchange and
    /// authentication of one hop.
    async fn handshake(
        &self,
        target: &Target,
        via: Option<Arc<SshConnection>>,
    ) -> Result<Arc<SshConnection>, ConnectError> {
        let known = self.known_hosts(&target.known_hosts_files);
        let config = self.config(target, &known);
        let verdict = Arc::new(StdMutex::new(None));
        let (kh_host, kh_port) = known_hosts_name(target);
        let server_id = Arc::new(std::sync::OnceLock::new());
        let handler = ClientHandler {
            host: kh_host.to_string(),
            port: kh_port,
            policy: target.host_key_checking,
            known,
            recorder: target.known_hosts_files.first().map(|f| self.recorder(f)),
            hash: target.hash_known_hosts,
            refusal: verdict.clone(),
            server_id: server_id.clone(),
            agent_forward: target
                .forward_agent
                .then(|| self.options.agent_socket.clone())
                .flatten(),
        };
        let forward_agent = handler.agent_forward.is_some();
        let mut handle = dial(target, via, config, handler, &verdict).await?;
        self.authenticate(&mut handle, target).await?;
        let channel_limit = server_id.get().and_then(|id| channel::limit_for(id));
        Ok(Arc::new(SshConnection {
            handle,
            closed: AtomicBool::new(false),
            channel_limit,
            forward_agent,
        }))
    }

    async fn authenticate(
        &self,
        handle: &mut Handle<ClientHandler>,
        target: &Target,
    ) -> Result<(), ConnectError> {
        let user = target.user.as_str();
        let mut problems: Vec<String> = Vec::new();
        let mut file_keys: Vec<(PathBuf, Option<PublicKey>)> = Vec::new();
        // CertificateFile, then IDENTITY-cert.pub beside each identity, as OpenSSH loads them.
        let mut cert_files = target.certificate_files.clone();
        cert_files.extend(
            target
                .identity_files
                .iter()
                .map(|p| PathBuf::from(format!("{}-cert.pub", p.display()))),
        );
        for path in &target.identity_files {
            // A public key next to the file lets IdentitiesOnly match agent keys without
            // decrypting the private key.
            let public = keys::load_public_key(path.with_extension(pub_ext(path))).ok();
            file_keys.push((path.clone(), public));
        }

        // Agent keys first, as OpenSSH does; a certificate file for an agent key goes first.
        match self.agent.identities().await {
            Ok(ids) => {
                for id in ids {
                    let key = id.public();
                    if target.identities_only
                        && !file_keys.iter().any(|(_, p)| {
                            p.as_ref().is_some_and(|p| p.key_data() == key.key_data())
                        })
                    {
                        continue;
                    }
                    let hash = rsa_hash(handle, &key).await;
                    let mut tries: Vec<AgentKey> = match &id {
                        AgentKey::Key(k) => certificates_for(k, &cert_files)
                            .into_iter()
                            .map(|c| AgentKey::Cert(Box::new(c)))
                            .collect(),
                        AgentKey::Cert(_) => Vec::new(),
                    };
                    tries.push(id);
                    for attempt in tries {
                        match self.agent.sign_in(handle, user, attempt, hash).await {
                            Ok(true) => return Ok(()),
                            Ok(false) => {}
                            Err(e) => problems.push(format!("agent: {e}")),
                        }
                    }
                }
            }
            Err(Some(e)) => problems.push(format!("agent: {e}")),
            Err(None) => {}
        }

        for (path, _) in &file_keys {
            let key = match self.key(path).await {
                None => continue,
                Some(Err(e)) => {
                    problems.push(e);
                    continue;
                }
                Some(Ok(k)) => k,
            };
            let hash = rsa_hash(handle, key.public_key()).await;
            for cert in certificates_for(key.public_key(), &cert_files) {
                let result = handle
                    .authenticate_openssh_cert(user, key.clone(), cert)
                    .await
                    .map_err(|e| ConnectError::new(ConnectFailure::ConnectionLost, describe(&e)))?;
                if result.success() {
                    return Ok(());
                }
            }
            let result = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(|e| ConnectError::new(ConnectFailure::ConnectionLost, describe(&e)))?;
            if result.success() {
                return Ok(());
            }
        }
        let mut message = format!("{user}@{}: permission denied (publickey)", target.hostname);
        if !problems.is_empty() {
            message.push_str("; ");
            message.push_str(&problems.join("; "));
        }
        if target.identity_files.iter().all(|p| !p.exists()) && !self.agent.available() {
            message.push_str("; no identity file exists and no agent is available (SSH_AUTH_SOCK)");
        }
        Err(ConnectError::new(ConnectFailure::AuthFailed, message))
    }
}

/// Opens the SSH transport to `target` (key exchange and host key check, no authentication):
/// through its `ProxyCommand`, over TCP, or through the jump connection `via`. A refused host
/// key is reported with the verdict the handler left in `verdict`.
async fn dial(
    target: &Target,
    via: Option<Arc<SshConnection>>,
    config: Arc<client::Config>,
    handler: ClientHandler,
    verdict: &StdMutex<Option<String>>,
) -> Result<Handle<ClientHandler>, ConnectError> {
    let host_key_error = |e: russh::Error| -> ConnectError {
        if let Some(msg) = verdict.lock().unwrap().take() {
            ConnectError::new(ConnectFailure::HostKeyRefused, msg)
        } else {
            ConnectError::new(ConnectFailure::Unreachable, describe(&e))
        }
    };
    let handle = match via {
        None if target.proxy_command.is_some() => {
            let command = target.proxy_command.as_deref().unwrap_or_default();
            let (stream, stderr) = super::proxy::spawn(&target.label, command).map_err(|e| {
                ConnectError::new(
                    ConnectFailure::Unreachable,
                    format!("ProxyCommand `{command}` could not start: {e}"),
                )
            })?;
            client::connect_stream(config, stream, handler)
                .await
                .map_err(|e| {
                    let mut err = host_key_error(e);
                    err.message = format!("via ProxyCommand `{command}`: {}", err.message);
                    let said = stderr.text();
                    if !said.is_empty() {
                        err.message.push_str(&format!("; the proxy said: {said}"));
                    }
                    err
                })?
        }
        None => {
            let addr = (target.hostname.as_str(), target.port);
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
                ConnectError::new(
                    ConnectFailure::Unreachable,
                    format!("{}:{}: {e}", target.hostname, target.port),
                )
            })?;
            let _ = stream.set_nodelay(true);
            client::connect_stream(config, stream, handler)
                .await
                .map_err(host_key_error)?
        }
        Some(jump) => {
            let channel = jump
                .handle
                .channel_open_direct_tcpip(
                    target.hostname.clone(),
                    target.port as u32,
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| {
                    ConnectError::new(
                        ConnectFailure::Unreachable,
                        format!(
                            "jump host cannot reach {}:{}: {}",
                            target.hostname,
                            target.port,
                            describe(&e)
                        ),
                    )
                })?;
            client::connect_stream(config, channel.into_stream(), handler)
                .await
                .map_err(host_key_error)?
        }
    };
    Ok(handle)
}

fn pub_ext(path: &Path) -> String {
    match path.extension() {
        Some(e) => format!("{}.pub", e.to_string_lossy()),
        None => "pub".into(),
    }
}

async fn rsa_hash(handle: &Handle<ClientHandler>, key: &PublicKey) -> Option<HashAlg> {
    if matches!(key.algorithm(), keys::Algorithm::Rsa { .. }) {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
            .or(Some(HashAlg::Sha256))
    } else {
        None
    }
}

/// Algorithms to prefer for a known_hosts key type name.
fn expand_algorithm(name: &str) -> Vec<keys::Algorithm> {
    if name == "ssh-rsa" {
        return vec![
            keys::Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            keys::Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ];
    }
    name.parse().map(|a| vec![a]).unwrap_or_default()
}

/// A short description of a russh error for a person.
fn describe(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::ConnectionTimeout | russh::Error::KeepaliveTimeout => {
            "no answer from the server (keepalive timeout)".into()
        }
        other => other.to_string(),
    }
}

#[async_trait]
impl Transport for SshTransport {
    async fn connect(&self, target: &Target) -> Result<Arc<dyn Connection>, ConnectError> {
        // Each hop has its own connect timeout (as each `ssh` of an OpenSSH ProxyJump chain
        // has), counted from when it got its handshake permit.
        Ok(self.connect_chain(target).await?)
    }
}

/// The shared pool of ssh-agent connections.
struct AgentPool {
    socket: Option<PathBuf>,
    slots: Semaphore,
    idle: Mutex<Vec<AgentClient<tokio::net::UnixStream>>>,
    identities: OnceCell<Result<Vec<AgentKey>, String>>,
}

impl AgentPool {
    fn new(socket: Option<PathBuf>) -> Self {
        AgentPool {
            socket,
            slots: Semaphore::new(AGENT_POOL),
            idle: Mutex::new(Vec::new()),
            identities: OnceCell::new(),
        }
    }

    fn available(&self) -> bool {
        self.socket.is_some()
    }

    async fn client(&self) -> Result<AgentClient<tokio::net::UnixStream>, String> {
        if let Some(c) = self.idle.lock().await.pop() {
            return Ok(c);
        }
        let sock = self.socket.as_ref().ok_or("no agent")?;
        AgentClient::connect_uds(sock)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", sock.display()))
    }

    /// The agent's keys and certificates, asked once per run. `Err(None)` when there is no
    /// agent.
    async fn identities(&self) -> Result<Vec<AgentKey>, Option<String>> {
        if self.socket.is_none() {
            return Err(None);
        }
        self.identities
            .get_or_init(|| async {
                let _permit = self.slots.acquire().await.map_err(|e| e.to_string())?;
                let mut c = self.client().await?;
                let ids = c.request_identities().await.map_err(|e| e.to_string())?;
                self.idle.lock().await.push(c);
                Ok(ids
                    .into_iter()
                    .map(|id| match id {
                        keys::agent::AgentIdentity::PublicKey { key, .. } => AgentKey::Key(key),
                        keys::agent::AgentIdentity::Certificate { certificate, .. } => {
                            AgentKey::Cert(Box::new(certificate))
                        }
                    })
                    .collect())
            })
            .await
            .clone()
            .map_err(Some)
    }

    async fn sign_in(
        &self,
        handle: &mut Handle<ClientHandler>,
        user: &str,
        key: AgentKey,
        hash: Option<HashAlg>,
    ) -> Result<bool, String> {
        let _permit = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let mut c = self.client().await?;
        let result = match key {
            AgentKey::Key(key) => {
                handle
                    .authenticate_publickey_with(user, key, hash, &mut c)
                    .await
            }
            AgentKey::Cert(cert) => {
                handle
                    .authenticate_certificate_with(user, *cert, hash, &mut c)
                    .await
            }
        };
        match result {
            Ok(r) => {
                self.idle.lock().await.push(c);
                Ok(r.success())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What the agent holds: a plain key, or a user certificate (its private key in the agent).
#[derive(Clone, Debug)]
enum AgentKey {
    Key(PublicKey),
    Cert(Box<keys::Certificate>),
}

impl AgentKey {
    /// The plain public key (a certificate's own key).
    fn public(&self) -> PublicKey {
        match self {
            AgentKey::Key(k) => k.clone(),
            AgentKey::Cert(c) => PublicKey::new(c.public_key().clone(), ""),
        }
    }
}

/// The user certificates of `files` that certify `key`, in order (unreadable files skipped,
/// as OpenSSH skips them).
fn certificates_for(key: &PublicKey, files: &[PathBuf]) -> Vec<keys::Certificate> {
    files
        .iter()
        .filter_map(|f| keys::load_openssh_certificate(f).ok())
        .filter(|c| c.public_key() == key.key_data())
        .collect()
}

/// russh callbacks: host key verification.
struct ClientHandler {
    host: String,
    port: u16,
    policy: HostKeyChecking,
    known: Arc<KnownHosts>,
    recorder: Option<Arc<Recorder>>,
    /// `HashKnownHosts`: record new keys hashed.
    hash: bool,
    refusal: Arc<StdMutex<Option<String>>>,
    /// The server's identification string (`SSH-2.0-dropbear_2022.83`), once known.
    server_id: Arc<std::sync::OnceLock<String>>,
    /// The agent socket that forwarded agent channels reach (`ForwardAgent`, `-A`); `None`
    /// refuses them, so a server cannot open one uninvited.
    agent_forward: Option<PathBuf>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    /// A forwarded agent channel (a command on the host ran `ssh-add -l` or `git clone`):
    /// joined to a new connection to the local agent, as `ssh -A` does; refused unless asked.
    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let agent = match &self.agent_forward {
            Some(sock) => tokio::net::UnixStream::connect(sock).await.ok(),
            None => None,
        };
        let Some(mut agent) = agent else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(async move {
            let mut stream = channel.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut agent).await;
        });
        Ok(())
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        _names: &russh::Names,
        session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let id = String::from_utf8_lossy(session.remote_sshid()).into_owned();
        let _ = self.server_id.set(id);
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (algorithm, blob) = match key {
            keys::PublicKeyOrCertificate::PublicKey { key, .. } => (
                key.algorithm().as_str().to_string(),
                key.to_bytes().unwrap_or_default(),
            ),
            keys::PublicKeyOrCertificate::Certificate(cert) => (
                cert.algorithm().to_certificate_type(),
                cert.to_bytes().unwrap_or_default(),
            ),
        };
        let verdict = self.known.check(&self.host, self.port, &algorithm, &blob);
        // A rejected certificate falls back to its plain key, which accept-new records.
        let (algorithm, blob) = match &verdict {
            Verdict::CertificateRejected { .. } => {
                sortie_knownhosts::certificate_plain_key(&blob).unwrap_or((algorithm, blob))
            }
            _ => (algorithm, blob),
        };
        let refuse = |msg: String| {
            *self.refusal.lock().unwrap() = Some(msg);
            Ok(false)
        };
        match (verdict, self.policy) {
            (_, HostKeyChecking::No) => Ok(true),
            (Verdict::Trusted { .. }, _) => Ok(true),
            (v, HostKeyChecking::AcceptNew) if v.may_accept_new() => {
                if let Some(rec) = &self.recorder {
                    match rec.record_as(&self.host, self.port, &algorithm, &blob, self.hash) {
                        Ok(Recorded::Refused { verdict }) => {
                            return refuse(verdict.report(&self.host, self.port).to_string())
                        }
                        Ok(_) => {}
                        Err(e) => return refuse(format!("cannot record the new host key: {e}")),
                    }
                }
                Ok(true)
            }
            (v, _) => refuse(v.report(&self.host, self.port).to_string()),
        }
    }
}

/// An authenticated SSH connection.
pub struct SshConnection {
    handle: Handle<ClientHandler>,
    closed: AtomicBool,
    /// At most this many channels at once (see [`channel::limit_for`]).
    channel_limit: Option<usize>,
    /// Ask for agent forwarding on every command's channel.
    forward_agent: bool,
}

impl SshConnection {
    /// Runs a POSIX script on its own channel and waits for it to end; its output is dropped.
    async fn run_quiet(&self, body: String) -> Result<(), SpawnError> {
        let mut channel = self.start(&remote::script(&body), true).await?;
        while let Some(msg) = channel.wait().await {
            if let ChannelMsg::ExitStatus { .. } | ChannelMsg::Close = msg {
                break;
            }
        }
        Ok(())
    }

    /// [`channel::start`], noting a lost connection.
    async fn start(
        &self,
        script: &str,
        eof: bool,
    ) -> Result<russh::Channel<client::Msg>, SpawnError> {
        self.start_with(script, eof, false).await
    }

    /// [`SshConnection::start`], asking for agent forwarding first when `agent`.
    async fn start_with(
        &self,
        script: &str,
        eof: bool,
        agent: bool,
    ) -> Result<russh::Channel<client::Msg>, SpawnError> {
        let result = channel::start(&self.handle, script, eof, agent).await;
        if let Err(SpawnError::Lost(_)) = &result {
            self.closed.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// What the start of a wrapper's channel said, before its marker line.
struct Head {
    pgid: Option<u32>,
    pending: Vec<ProcessEvent>,
    status: Option<Exit>,
}

/// Reads a wrapper's channel until its marker line gives the process group (or the channel
/// ends first, which means the command never started).
async fn read_head(
    channel: &mut russh::Channel<client::Msg>,
    handle: &Handle<ClientHandler>,
) -> Result<Head, SpawnError> {
    let mut head: Vec<u8> = Vec::new();
    let mut err: Vec<u8> = Vec::new();
    let mut pending: Vec<ProcessEvent> = Vec::new();
    let mut status = None;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => {
                head.extend_from_slice(&data);
                match take_marker(&head) {
                    None => {}
                    Some(remote::Head::Started(pid, rest)) => {
                        if !rest.is_empty() {
                            pending.push(ProcessEvent::Stdout(Bytes::copy_from_slice(rest)));
                        }
                        let pgid = Some(pid);
                        return Ok(Head {
                            pgid,
                            pending,
                            status,
                        });
                    }
                    Some(remote::Head::Refused(reason)) => return Err(SpawnError::Other(reason)),
                    Some(remote::Head::Other(out)) => {
                        // Not the wrapper's output (a login shell's start-up files printed
                        // first): pass it on; the command has no known group.
                        pending.push(ProcessEvent::Stdout(Bytes::copy_from_slice(out)));
                        return Ok(Head {
                            pgid: None,
                            pending,
                            status,
                        });
                    }
                }
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                err.extend_from_slice(&data);
                pending.push(ProcessEvent::Stderr(data));
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                status = Some(Exit::Code(exit_status));
            }
            Some(ChannelMsg::Close) | None => {
                if handle.is_closed() {
                    return Err(SpawnError::Lost("connection closed".into()));
                }
                let code = match status {
                    Some(Exit::Code(c)) => Some(c),
                    _ => None,
                };
                return Err(channel::no_sh(&head, &err, code));
            }
            Some(_) => {}
        }
    }
}

#[async_trait]
impl Connection for SshConnection {
    async fn spawn(&self, command: &Command) -> Result<Process, SpawnError> {
        let mut channel = self
            .start_with(&remote::wrapper(command), false, self.forward_agent)
            .await?;
        let head = read_head(&mut channel, &self.handle).await?;
        let feeder = match &command.stdin {
            Some(input) => match feed(&channel, &head, input) {
                Ok(task) => Some(task),
                Err(e) => {
                    let _ = channel.close().await;
                    return Err(e);
                }
            },
            None => None,
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            for ev in head.pending {
                let _ = tx.send(ev).await;
            }
            pump(channel, tx, head.status).await;
            if let Some(feeder) = feeder {
                feeder.abort();
            }
        });
        Ok(Process {
            pgid: head.pgid,
            events: rx,
        })
    }

    async fn stop(&self, pgid: u32, sequence: &StopSequence) -> Result<(), SpawnError> {
        self.run_quiet(remote::stop_script(pgid, sequence)).await
    }

    async fn signal(&self, pgid: u32, signal: &str) -> Result<(), SpawnError> {
        self.run_quiet(remote::signal_script(pgid, signal)).await
    }

    async fn subsystem(&self, name: &str) -> Result<ByteStream, SpawnError> {
        let mut channel = channel::open(&self.handle).await.inspect_err(|e| {
            if let SpawnError::Lost(_) = e {
                self.closed.store(true, Ordering::Relaxed);
            }
        })?;
        channel
            .request_subsystem(true, name)
            .await
            .map_err(|e| SpawnError::Lost(describe(&e)))?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(SpawnError::ChannelRefused(format!(
                        "the server has no {name} subsystem"
                    )))
                }
                Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) => {
                    return Err(SpawnError::ChannelRefused(format!(
                        "the server closed the {name} subsystem channel"
                    )))
                }
                Some(_) => {}
                None => return Err(SpawnError::Lost("connection lost".into())),
            }
        }
        Ok(Box::new(channel.into_stream()))
    }

    async fn exec_stream(&self, command: &str) -> Result<ByteStream, SpawnError> {
        let stream = channel::stream(&self.handle, &remote::stream_script(command)).await?;
        Ok(Box::new(stream))
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.handle.is_closed()
    }

    fn channel_limit(&self) -> Option<usize> {
        self.channel_limit
    }

    async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Sends a command's input on its channel, after the marker line said `/bin/sh` has read the
/// whole wrapper (bytes sent earlier could be read as script). No EOF follows: the wrapper
/// relays exactly `input.len()` bytes, and the channel's EOF keeps meaning that it closed (see
/// `remote`). Writing runs beside the output pump, so a command that answers while it reads
/// never waits on sortie; the returned task is aborted when the channel ends.
fn feed(
    channel: &russh::Channel<client::Msg>,
    head: &Head,
    input: &super::Stdin,
) -> Result<tokio::task::JoinHandle<()>, SpawnError> {
    use tokio::io::AsyncWriteExt;
    if head.pgid.is_none() {
        // The marker did not come first: a start-up file printed something, and sortie
        // cannot tell when /bin/sh has read its script, so input could be taken as script.
        return Err(SpawnError::Other(
            "the login shell printed output before sortie's wrapper started, so stdin cannot \
             be passed safely; silence the shell's start-up files or use --no-stdin"
                .into(),
        ));
    }
    let mut writer = channel.make_writer();
    let bytes = input.bytes().clone();
    Ok(tokio::spawn(async move {
        if writer.write_all(&bytes).await.is_ok() {
            let _ = writer.flush().await;
        }
    }))
}

/// Forwards a channel's output to the process's event queue until it ends.
async fn pump(
    mut channel: russh::Channel<client::Msg>,
    tx: mpsc::Sender<ProcessEvent>,
    mut status: Option<Exit>,
) {
    // After the exit status, a background child may still hold stdout open; give the output a
    // moment to drain, then close our side, which makes the remote watchdog end the group.
    let mut drain_deadline: Option<tokio::time::Instant> =
        status.as_ref().map(|_| tokio::time::Instant::now() + DRAIN);
    loop {
        let msg = match drain_deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, channel.wait()).await {
                Ok(m) => m,
                Err(_) => {
                    let _ = channel.eof().await;
                    let _ = channel.close().await;
                    break;
                }
            },
            None => channel.wait().await,
        };
        match msg {
            Some(ChannelMsg::Data { data }) => {
                if tx.send(ProcessEvent::Stdout(data)).await.is_err() {
                    break;
                }
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                if tx.send(ProcessEvent::Stderr(data)).await.is_err() {
                    break;
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                status = Some(Exit::Code(exit_status));
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN);
            }
            Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                ..
            }) => {
                status = Some(Exit::Signal {
                    name: sig_name(&signal_name),
                    core_dumped,
                });
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN);
            }
            Some(ChannelMsg::Close) => break,
            Some(_) => {}
            None => {
                if status.is_none() {
                    status = Some(Exit::Lost("connection lost".into()));
                }
                break;
            }
        }
    }
    let _ = tx
        .send(ProcessEvent::Exit(status.unwrap_or(Exit::NoStatus)))
        .await;
}

/// How long output may still arrive after the exit status before sortie closes the channel.
const DRAIN: Duration = Duration::from_secs(2);

fn sig_name(sig: &russh::Sig) -> String {
    use russh::Sig;
    match sig {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(s) => s.trim_start_matches("SIG").to_string(),
    }
}

/// The name and port a host's key is looked up under in known_hosts: `HostKeyAlias` when set
/// (as written, no port: OpenSSH records `alias KEY`), else the hostname and port.
fn known_hosts_name(target: &Target) -> (&str, u16) {
    match &target.host_key_alias {
        Some(alias) => (alias.as_str(), 22),
        None => (target.hostname.as_str(), target.port),
    }
}
