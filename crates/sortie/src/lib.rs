//! sortie starts work on a fleet of Linux hosts over SSH, concurrently, from one machine.
//!
//! The crate is the whole engine; the `sortie` binary is a thin layer over it.
//!
//! - [`transport`]: reaching a host (SSH on russh, or a local shell) and starting processes in
//!   a process group sortie can end;
//! - [`runner`]: scheduling (the only place that does), emitting an ordered stream of
//!   [`Event`]s;
//! - reporters, inventory and plans live in their own crates, re-exported here.

pub mod hosts;
pub mod limits;
pub mod runner;
pub mod transfer;
pub mod transport;

pub use sortie_events::{self as events, Bucket, ConnectFailure, Counts, Event, Outcome, Stream};
pub use tokio_util::sync::CancellationToken;
