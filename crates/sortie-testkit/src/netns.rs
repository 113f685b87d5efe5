//! A fleet of hosts in network namespaces, each with its own address and its own fixture sshd,
//! for faults that loopback cannot show: a host whose packets vanish, a network cut mid-run.
//!
//! Owns the namespaces, links and addresses it creates, and nothing else:
//!
//! - one bridge on the root side (`srtb<N>`) with `10.231.<N>.1/24`, so the test process (and
//!   the `sortie` it runs) reaches every host through an ordinary route;
//! - per host, a namespace `sortie-<pid>-<N>-h<k>` holding loopback and `eth0` with
//!   `10.231.<N>.<k+2>/24`, whose veth peer (`srt<N>h<k>`) is a bridge port;
//! - per host, an [`Sshd`] started with `ip netns exec NS /usr/sbin/sshd` listening on port 22
//!   of the host's address.
//!
//! It never touches an interface, address, route or namespace it did not create: `<N>` is
//! claimed by creating the bridge (which fails if the name exists) and only when no existing
//! route covers `10.231.<N>.0/24`. Everything is removed on drop, and namespaces left by a test
//! process that died (its pid no longer exists) are removed on the next start. Traffic only
//! goes to the namespaces of the fleet.
//!
//! Needs root and `ip` (iproute2) with netns support: [`netns_unavailable`] says why not.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{run, Error, Result};
use crate::keys::KeyKind;
use crate::sshd::{Sshd, SshdBuilder};

/// The private range the fleets use: `10.231.<N>.0/24`, one `<N>` per fleet.
pub const NET_PREFIX: &str = "10.231";

/// Prefix of every namespace name a fleet creates (`sortie-<pid>-<N>-h<k>`).
const NS_PREFIX: &str = "sortie-";

/// Alias given to a fleet's bridge, followed by the owning pid, so stale ones can be found.
const BRIDGE_ALIAS: &str = "sortie-testkit pid";

/// Why network-namespace fleets cannot run here (not root, no `ip`, no netns support), or
/// `None` when they can. Tests print this as their visible `SKIP` reason.
pub fn netns_unavailable() -> Option<String> {
    if !crate::is_root() {
        return Some("network namespaces need root (CI runs the tests as root)".to_owned());
    }
    if crate::find_in_path("ip").is_none() && !Path::new("/usr/sbin/ip").exists() {
        return Some("`ip` (iproute2) is not installed".to_owned());
    }
    match Command::new(ip_bin()).args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`ip netns list` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("cannot run `ip`: {e}")),
    }
    if crate::require_sshd().is_none() {
        return Some("OpenSSH sshd is not installed".to_owned());
    }
    None
}

fn ip_bin() -> PathBuf {
    crate::find_in_path("ip").unwrap_or_else(|| PathBuf::from("/usr/sbin/ip"))
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new(ip_bin()).args(args))
}

/// One host of a [`NetnsFleet`]: a namespace, its address, the wire to the bridge and its sshd.
#[derive(Debug)]
pub struct NetHost {
    ns: String,
    addr: Ipv4Addr,
    wire: String,
    mac: String,
    sshd: Sshd,
}

impl NetHost {
    /// The namespace name (for `ip netns exec`).
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The host's address (`10.231.N.k`), which is also its name for sortie.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The host's address as text.
    pub fn name(&self) -> String {
        self.addr.to_string()
    }

    /// The host's sshd (port 22 inside its namespace): kill, restart, change its keys.
    pub fn sshd(&mut self) -> &mut Sshd {
        &mut self.sshd
    }

    /// Read-only access to the host's sshd (log, keys).
    pub fn sshd_ref(&self) -> &Sshd {
        &self.sshd
    }
}

/// Hosts in network namespaces behind one bridge; see the module documentation.
///
/// ```no_run
/// # fn main() -> Result<(), sortie_testkit::Error> {
/// if let Some(why) = sortie_testkit::netns_unavailable() {
///     sortie_testkit::skip("my_test", &why);
///     return Ok(());
/// }
/// let mut fleet = sortie_testkit::NetnsFleet::start(3)?;
/// let config = fleet.ssh_config(&["ServerAliveInterval 1"])?;
/// fleet.blackhole(1)?; // packets to host 1 now vanish
/// # let _ = config; Ok(()) }
/// ```
#[derive(Debug)]
pub struct NetnsFleet {
    net: u8,
    bridge: String,
    hosts: Vec<NetHost>,
    dir: tempfile::TempDir,
    counter: AtomicUsize,
}

impl NetnsFleet {
    /// Creates `n` hosts (1..=200), each with a fixture sshd using the shared key set.
    pub fn start(n: usize) -> Result<NetnsFleet> {
        Self::start_with(n, |b| b)
    }

    /// Like [`NetnsFleet::start`], letting `configure` adjust each host's [`SshdBuilder`]
    /// (e.g. `client_alive`); listen address, port, allowed network and binary are set here.
    pub fn start_with(
        n: usize,
        configure: impl Fn(SshdBuilder) -> SshdBuilder,
    ) -> Result<NetnsFleet> {
        if let Some(why) = netns_unavailable() {
            return Err(Error::Unavailable(why));
        }
        if n == 0 || n > 200 {
            return Err(Error::Unavailable(format!(
                "a fleet has 1 to 200 hosts, not {n}"
            )));
        }
        remove_stale_namespaces();
        let (net, bridge) = claim_net()?;
        let dir = tempfile::Builder::new()
            .prefix("sortie-netns-")
            .tempdir()
            .map_err(|e| Error::io("creating the fleet temp dir", e))?;
        let mut fleet = NetnsFleet {
            net,
            bridge,
            hosts: Vec::new(),
            dir,
            counter: AtomicUsize::new(0),
        };
        // From here on, Drop undoes whatever was made, even on error.
        let gateway = format!("{NET_PREFIX}.{net}.1");
        ip(&[
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            &fleet.bridge,
        ])?;
        ip(&["link", "set", &fleet.bridge, "up"])?;
        let sshd_bin = crate::require_sshd()
            .ok_or_else(|| Error::Unavailable("OpenSSH sshd is not installed".to_owned()))?;
        for k in 0..n {
            let host = fleet.add_host(k, &sshd_bin, &configure)?;
            fleet.hosts.push(host);
        }
        Ok(fleet)
    }

    fn add_host(
        &self,
        k: usize,
        sshd_bin: &Path,
        configure: &impl Fn(SshdBuilder) -> SshdBuilder,
    ) -> Result<NetHost> {
        let net = self.net;
        let ns = format!("{NS_PREFIX}{}-{net}-h{k}", std::process::id());
        let wire = format!("srt{net}h{k}");
        let addr = Ipv4Addr::new(10, 231, net, (k + 2) as u8);
        ip(&["netns", "add", &ns])?;
        // Created in the namespace so that an error below still leaves nothing on the root
        // side once the namespace is deleted (the veth pair goes with it).
        ip(&[
            "link", "add", &wire, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["link", "set", &wire, "master", &self.bridge])?;
        ip(&["link", "set", &wire, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &format!("{NET_PREFIX}.{net}.1"),
        ])?;
        // `ip -br link` prints "eth0@ifN UP 02:..:.. <FLAGS>".
        let mac = ip(&["-n", &ns, "-br", "link", "show", "eth0"])?
            .split_whitespace()
            .nth(2)
            .map(str::to_owned)
            .ok_or_else(|| Error::Unavailable(format!("no MAC address for eth0 in {ns}")))?;
        let wrapper = self.dir.path().join(format!("sshd-{k}.sh"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} netns exec {ns} {} \"$@\"\n",
                ip_bin().display(),
                sshd_bin.display()
            ),
        )
        .map_err(|e| Error::io(format!("writing {}", wrapper.display()), e))?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("chmod 755 sshd wrapper", e))?;
        let builder = configure(SshdBuilder::new())
            .sshd_path(&wrapper)
            .listen(IpAddr::V4(addr))
            .port(22)
            .allow_from(format!("{NET_PREFIX}.{net}.0/24"));
        let sshd = builder.start()?;
        Ok(NetHost {
            ns,
            addr,
            wire,
            mac,
            sshd,
        })
    }

    /// The hosts, in order.
    pub fn hosts(&self) -> &[NetHost] {
        &self.hosts
    }

    /// Host `k`, mutably (to kill or restart its sshd).
    pub fn host(&mut self, k: usize) -> &mut NetHost {
        &mut self.hosts[k]
    }

    /// The host names (addresses) in order, as sortie's `-H` takes them.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(NetHost::name).collect()
    }

    /// The fleet's network, `10.231.N.0/24`.
    pub fn network(&self) -> String {
        format!("{NET_PREFIX}.{}.0/24", self.net)
    }

    /// Writes a known_hosts file with every host's current host keys (port 22) and returns
    /// its path.
    pub fn known_hosts(&self) -> Result<PathBuf> {
        let mut text = String::new();
        for h in &self.hosts {
            text.push_str(&h.sshd.known_hosts_lines(&[&h.name()])?);
        }
        let path = self.next_file("known_hosts");
        write_private(&path, &text)?;
        Ok(path)
    }

    /// Writes a client ssh_config for every host (`Host 10.231.N.*`: user, port 22, the
    /// fixture's ed25519 key, [`NetnsFleet::known_hosts`], strict checking, batch mode) with
    /// `extra` lines first, so they win (e.g. `ServerAliveInterval 1`).
    pub fn ssh_config(&self, extra: &[&str]) -> Result<PathBuf> {
        let known = self.known_hosts()?;
        let first = &self.hosts[0].sshd;
        let mut c = format!("Host {NET_PREFIX}.{}.*\n", self.net);
        for l in extra {
            c.push_str(&format!("    {l}\n"));
        }
        c.push_str(&format!(
            "    User {}\n    Port 22\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
             UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    \
             StrictHostKeyChecking yes\n    BatchMode yes\n",
            first.user(),
            first.client_key(KeyKind::Ed25519).display(),
            known.display()
        ));
        let path = self.next_file("ssh_config");
        write_private(&path, &c)?;
        Ok(path)
    }

    /// Makes host `k`'s packets vanish, as when a machine dies without a word or a firewall
    /// drops everything: the root side keeps a permanent neighbour entry for the host (so no
    /// ARP failure turns into a quick "no route to host") and the host's wire goes down, so
    /// frames are dropped silently. Existing connections stall; new SYNs get no answer.
    pub fn blackhole(&mut self, k: usize) -> Result<()> {
        let (addr, mac, wire) = {
            let h = &self.hosts[k];
            (h.addr.to_string(), h.mac.clone(), h.wire.clone())
        };
        ip(&[
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &mac,
            "dev",
            &self.bridge,
            "nud",
            "permanent",
        ])?;
        ip(&["link", "set", &wire, "down"])?;
        Ok(())
    }

    /// Undoes [`NetnsFleet::blackhole`]: the wire comes back up and the neighbour entry is
    /// learned normally again.
    pub fn heal(&mut self, k: usize) -> Result<()> {
        let h = &self.hosts[k];
        ip(&["link", "set", &h.wire, "up"])?;
        let _ = ip(&["neigh", "del", &h.addr.to_string(), "dev", &self.bridge]);
        Ok(())
    }

    /// Runs `command` inside host `k`'s namespace and returns its stdout.
    pub fn exec_in(&self, k: usize, command: &[&str]) -> Result<String> {
        let mut args = vec!["netns", "exec", self.hosts[k].ns.as_str()];
        args.extend_from_slice(command);
        ip(&args)
    }

    /// The address of host `k`'s sshd (`10.231.N.k:22`).
    pub fn socket_addr(&self, k: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.hosts[k].addr), 22)
    }

    fn next_file(&self, stem: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("{stem}-{n}"))
    }
}

impl Drop for NetnsFleet {
    fn drop(&mut self) {
        // Servers first (their Drop kills every process they started), then the namespaces
        // (which take their veth ends, and so the peers, with them), then the bridge.
        // The wires are deleted explicitly: a namespace outlives `ip netns del` while a socket
        // in it still retransmits to a blackholed peer (up to ~15 min), and its veth pair
        // would stay visible on the root side all that time.
        let hosts = std::mem::take(&mut self.hosts);
        let links: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (h.ns.clone(), h.wire.clone()))
            .collect();
        drop(hosts);
        for (ns, wire) in links {
            let _ = ip(&["link", "del", &wire]);
            let _ = ip(&["netns", "del", &ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Claims a free `N`: no route covers `10.231.N.0/24` and the bridge `srtbN` could be created.
fn claim_net() -> Result<(u8, String)> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start = (std::process::id() as usize).wrapping_mul(7);
    for _ in 0..250 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let net = ((start + i) % 250 + 1) as u8;
        let routes = ip(&[
            "-4",
            "route",
            "show",
            "match",
            &format!("{NET_PREFIX}.{net}.1"),
        ])
        .unwrap_or_default();
        if routes
            .lines()
            .any(|l| !l.starts_with("default") && !l.trim().is_empty())
        {
            continue;
        }
        let bridge = format!("srtb{net}");
        if ip(&["link", "add", &bridge, "type", "bridge"]).is_ok() {
            let alias = format!("{BRIDGE_ALIAS} {}", std::process::id());
            if let Err(e) = ip(&["link", "set", &bridge, "alias", &alias]) {
                let _ = ip(&["link", "del", &bridge]);
                return Err(e);
            }
            return Ok((net, bridge));
        }
    }
    Err(Error::Unavailable(format!(
        "no free {NET_PREFIX}.N.0/24 network for a test fleet"
    )))
}

/// Deletes namespaces, bridges and host wires left by test processes that no longer exist (a
/// bridge's owner is in its alias, `sortie-testkit pid <pid>`; a wire without a bridge is an
/// orphan).
fn remove_stale_namespaces() {
    let dead = |pid: Option<u32>| pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let pid = name
                .strip_prefix(NS_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if dead(pid) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(net) = wire_net(&name) {
            // A host's wire whose fleet's bridge is gone: that fleet ended without cleaning
            // up. (A live fleet makes its bridge before any wire and deletes it last.)
            if !Path::new(&format!("/sys/class/net/srtb{net}")).exists() {
                let _ = ip(&["link", "del", &name]);
            }
            continue;
        }
        if !name.starts_with("srtb") {
            continue;
        }
        let alias = std::fs::read_to_string(entry.path().join("ifalias")).unwrap_or_default();
        let pid = alias
            .trim()
            .strip_prefix(BRIDGE_ALIAS)
            .and_then(|p| p.trim().parse::<u32>().ok());
        if dead(pid) {
            let _ = ip(&["link", "del", &name]);
        }
    }
}

/// The fleet number `N` of a host wire named `srt<N>h<k>`, or `None` for any other name.
fn wire_net(name: &str) -> Option<&str> {
    let (n, k) = name.strip_prefix("srt")?.split_once('h')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(n) && digits(k)).then_some(n)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("chmod 600 {}", path.display()), e))
}
