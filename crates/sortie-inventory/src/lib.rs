//! sortie-inventory: which hosts a run talks to, and with which settings.
//!
//! * [`hostexpr`]: host expressions (`web[01-20]`, `user@[::1]:2222`, `^FILE`) and folding.
//! * [`inventory`]: the TOML inventory (`sortie.toml`): groups, per-host settings, group commands.
//! * [`sshconfig`]: OpenSSH client configuration (`~/.ssh/config`, `/etc/ssh/ssh_config`, `-F`).
//! * [`resolve`]: puts them together: [`select`] and [`resolve_one`] return [`HostConfig`]s.
//! * [`env`](mod@env): the local facts (user, passwd home, host name) resolution depends on.
//!
//! Everything here is synchronous and does no network I/O; the only side effects are reading
//! files and running a group's `command` when that group is selected.
//!
//! The parsers take `&str` and never touch the file system, for tests and fuzzing:
//! [`hostexpr::parse`], [`inventory::parse_str`], [`sshconfig::parse_str`].

#![warn(missing_docs)]
// ParseError carries its source text for miette; errors are the cold path, and boxing them
// would hide the public line/column fields behind accessors.
#![allow(clippy::result_large_err)]

pub mod env;
pub mod error;
pub mod hostexpr;
pub mod inventory;
pub mod resolve;
pub mod sshconfig;

pub use env::LocalEnv;
pub use error::{InventoryError, Origin, ParseError};
pub use hostexpr::{fold, HostSpec};
pub use inventory::{Inventory, TransportKind};
pub use resolve::{resolve_one, select, Defaults, HostConfig, Overrides, Resolver, SelectRequest};
pub use sshconfig::{ConfigWarning, JumpHost, StrictHostKeyChecking};
