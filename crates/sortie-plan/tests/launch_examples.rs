//! The example plans in `examples/` validate, place and render as documented.

use std::path::{Path, PathBuf};

use sortie_inventory::hostexpr::HostSpec;
use sortie_plan::launch::{
    self, render_dry_run, DependsOn, EnvValue, GroupSource, HostResolution, Plan, Transport,
};

fn example(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(dir)
        .join("plan.toml")
}

/// The kvs plan with its command group resolved to three made-up viewer hosts.
fn kvs_plan() -> Plan {
    let spec = launch::load(&example("kvs-webrtc"), &[]).unwrap();
    let needs = spec.host_needs();
    assert_eq!(needs.len(), 1);
    assert_eq!(needs[0].group, "viewers");
    assert!(
        matches!(&needs[0].source, GroupSource::Command(c) if c.starts_with("aws ec2 describe-instances"))
    );
    let mut resolved = HostResolution::new();
    resolved.insert(
        "viewers".into(),
        ["10.0.2.7", "10.0.2.5", "10.0.2.6"]
            .map(HostSpec::new)
            .to_vec(),
    );
    spec.place(&resolved).unwrap()
}

#[test]
fn kvs_example_validates_without_running_the_group_command() {
    let spec = launch::load(&example("kvs-webrtc"), &[]).unwrap();
    assert_eq!(spec.name, "kvs-webrtc");
    assert_eq!(spec.digest.len(), 64);
    assert_eq!(
        spec.process_counts(),
        [("master".to_owned(), 20), ("viewer".to_owned(), 60)]
    );
    // Placing without the command group's hosts is refused, pointing at the role's group.
    let err = spec.place(&HostResolution::new()).unwrap_err();
    assert_eq!(err.code(), "sortie::plan::unresolved_group");
    assert!(err.to_string().contains("plan.toml:"), "{err}");
}

#[test]
fn kvs_example_places_one_master_per_channel_and_spreads_viewers() {
    let plan = kvs_plan();
    let masters: Vec<_> = plan.processes_of("master").collect();
    assert_eq!(masters.len(), 20);
    for host in ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.13"] {
        assert_eq!(
            masters.iter().filter(|p| p.host == host).count(),
            5,
            "{host}"
        );
    }
    let m = masters[0];
    assert_eq!(m.id.to_string(), "master/qa-channel-01");
    assert_eq!(m.command, "./kvsWebrtcClientMaster qa-channel-01");
    let h = plan.host(&m.host).unwrap();
    assert_eq!(h.connection.user.as_deref(), Some("ec2-user"));
    assert_eq!(h.connection.identity_file.as_deref(), Some("~/.ssh/qa.pem"));
    assert_eq!(h.connection.transport, None);
    let fresh = m.fresh_dir.as_ref().unwrap();
    assert_eq!(
        fresh.path,
        "~/amazon-kinesis-video-streams-webrtc-sdk-c/build/.sortie/master/qa-channel-01"
    );
    assert_eq!(m.cwd.as_deref(), Some(fresh.path.as_str()));
    assert_eq!(
        fresh.links[0],
        (
            "h264SampleFrames".to_owned(),
            "~/amazon-kinesis-video-streams-webrtc-sdk-c/build/h264SampleFrames".to_owned()
        )
    );
    let secrets: Vec<&str> = m
        .env
        .iter()
        .filter(|e| e.is_secret())
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        secrets,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN"
        ]
    );
    assert!(m
        .env
        .iter()
        .any(|e| e.name == "AWS_KVS_LOG_LEVEL" && e.value == EnvValue::Literal("3".into())));

    let viewers: Vec<_> = plan.processes_of("viewer").collect();
    assert_eq!(viewers.len(), 60);
    for host in ["10.0.2.5", "10.0.2.6", "10.0.2.7"] {
        assert_eq!(
            viewers.iter().filter(|p| p.host == host).count(),
            20,
            "{host}"
        );
    }
    // The three viewers of one channel are on three different hosts.
    let of_01: Vec<_> = viewers
        .iter()
        .filter(|p| p.key == "qa-channel-01")
        .collect();
    let mut hosts: Vec<&str> = of_01.iter().map(|p| p.host.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3);
    let ids: Vec<String> = of_01.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "viewer/qa-channel-01#1",
            "viewer/qa-channel-01#2",
            "viewer/qa-channel-01#3"
        ]
    );
    assert_eq!(
        of_01[1].depends_on,
        DependsOn::Processes(vec![launch::ProcessId("master/qa-channel-01".into())])
    );
    // Per-key spacing: starts of one channel are at least 350 ms apart.
    for w in of_01.windows(2) {
        assert!(w[1].start_offset - w[0].start_offset >= std::time::Duration::from_millis(350));
    }
}

#[test]
fn kvs_example_dry_run() {
    let plan = kvs_plan();
    insta::assert_snapshot!(
        "kvs_dry_run",
        render_dry_run(&plan)
            .replace(&plan.digest[..12], "<digest>")
            .replace(
                &plan.path.display().to_string(),
                "examples/kvs-webrtc/plan.toml"
            )
            .replace(&plan.base_dir.display().to_string(), "examples/kvs-webrtc")
    );
}

#[test]
fn local_example_places_on_two_local_hosts() {
    let spec = launch::load(&example("local"), &[]).unwrap();
    assert!(spec.host_needs().is_empty());
    let plan = spec.place(&HostResolution::new()).unwrap();
    let labels: Vec<&str> = plan.hosts.iter().map(|h| h.label.as_str()).collect();
    assert_eq!(labels, ["local1", "local2"]);
    assert!(plan
        .hosts
        .iter()
        .all(|h| h.connection.transport == Some(Transport::Local)));
    assert_eq!(plan.processes_of("master").count(), 4);
    assert_eq!(plan.processes_of("viewer").count(), 8);
    let v = plan.processes_of("viewer").nth(4).unwrap();
    assert_eq!(v.id.to_string(), "viewer/demo-1#2");
    assert_eq!(v.command, "sh ./fake-viewer.sh demo-1");
    assert_eq!(v.env[0].value, EnvValue::Literal("viewer-2".into()));
    assert_eq!(plan.run.duration, Some(std::time::Duration::from_secs(5)));
    insta::assert_snapshot!(
        "local_dry_run",
        render_dry_run(&plan)
            .replace(&plan.digest[..12], "<digest>")
            .replace(&plan.path.display().to_string(), "examples/local/plan.toml")
            .replace(&plan.base_dir.display().to_string(), "examples/local")
    );
}
