//! sortie starts work on a fleet of Linux hosts over SSH, concurrently, from one machine.
//!
//! The crate is the whole engine; the `sortie` binary is a thin layer over it.
//!
//! - [`hosts`]: a selection (host expressions, inventory, ssh_config) to connection targets;
//! - [`transport`]: reaching a host (SSH on russh, or a local shell) and starting processes in
//!   a process group sortie can end;
//! - [`runner`]: scheduling (the only place that does), emitting an ordered stream of
//!   [`Event`]s that reporters (crate `sortie-report`) consume.
//!
//! # Example: run a command on selected hosts and consume the events
//!
//! ```
//! use std::sync::Arc;
//! use sortie::hosts::{select_targets, SelectRequest};
//! use sortie::runner::{exec, ExecOptions};
//! use sortie::transport::{ssh::{SshOptions, SshTransport}, Transports};
//! use sortie::{CancellationToken, Event, Outcome};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // `local` runs through a local shell; SSH hosts are selected the same way ("web[01-20]").
//! let req = SelectRequest { hosts: vec!["local".into()], ..Default::default() };
//! let targets = select_targets(&req).expect("valid selection");
//! let transport = Arc::new(Transports::new(SshTransport::new(SshOptions::default())));
//! let mut run = exec(transport, targets, "echo hello".into(), ExecOptions::default(),
//!                    CancellationToken::new());
//! while let Some(event) = run.events.recv().await {
//!     match event {
//!         Event::Output { host, line, .. } => println!("{host} | {}", String::from_utf8_lossy(&line)),
//!         Event::JobFinished { host, outcome, .. } => assert_eq!((host.as_str(), outcome), ("local", Outcome::Ok)),
//!         _ => {}
//!     }
//! }
//! let result = run.result.await.unwrap();
//! assert_eq!(result.counts.done, 1);
//! # });
//! ```

#![warn(missing_docs)]

pub mod hosts;
pub mod launch;
pub mod limits;
pub mod runner;
pub mod transfer;
pub mod transport;

pub use sortie_events::{self as events, Bucket, ConnectFailure, Counts, Event, Outcome, Stream};
pub use tokio_util::sync::CancellationToken;
