//! The typed event stream of a launch: the types live in [`sortie_events::launch`] (so a
//! recorded run can be read back by any reporter); this module adds what needs the transport.
//!
//! No event ever carries an environment value or a line of process output, so secrets from the
//! controller cannot reach a reporter or `events.jsonl`.

pub use sortie_events::launch::{
    Ending, ExitInfo, LaunchEvent, LaunchRecord, Phase, PlannedHost, PlannedProcess, ProcessRef,
    RoleCounts, ThresholdMetric, ThresholdSpec, SCHEMA_VERSION,
};

use crate::transport::Exit;

impl From<&Exit> for ExitInfo {
    fn from(e: &Exit) -> Self {
        match e {
            Exit::Code(c) => ExitInfo {
                code: Some(*c),
                ..Default::default()
            },
            Exit::Signal { name, core_dumped } => ExitInfo {
                signal: Some(name.clone()),
                note: core_dumped.then(|| "core dumped".into()),
                ..Default::default()
            },
            Exit::NoStatus => ExitInfo {
                note: Some("no exit status".into()),
                ..Default::default()
            },
            Exit::Lost(m) => ExitInfo {
                note: Some(format!("connection lost: {m}")),
                ..Default::default()
            },
        }
    }
}
