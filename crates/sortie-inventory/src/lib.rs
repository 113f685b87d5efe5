//! sortie-inventory: which hosts a run talks to, and with which settings.
//!
//! * [`hostexpr`]: host expressions (`web[01-20]`, `user@[::1]:2222`, `^FILE`) and folding.
//! * [`inventory`]: the TOML inventory (`sortie.toml`): groups, per-host settings, group commands.
//! * [`sshconfig`]: OpenSSH client configuration (`~/.ssh/config`, `/etc/ssh/ssh_config`, `-F`).
//! * [`resolve`]: puts them together: [`select`] and [`resolve_one`] return [`HostConfig`]s.
//!
//! Everything here is synchronous and does no network I/O; the only side effects are reading
//! files and running a group's `command` when that group is selected.

pub mod env;
pub mod error;
pub mod hostexpr;
pub mod inventory;
pub mod sshconfig;

pub use env::LocalEnv;
pub use error::{InventoryError, Origin, ParseError};
