//! `ContainerSpec` as the CLI, the gateway and the bus hand it over (JSON; msgpack is the
//! same serde shape), and its `oci` field: the overlay check (`sys::oci::overlay::check`)
//! and the merge onto the generated runtime spec (`build_spec` → `overlay::apply`).
//!
//! Invariants: a parsed spec round-trips (JSON, and msgpack through both encoders); its
//! redacted form keeps no secret and is otherwise the same shape; an `oci` document the
//! check accepts merges into a spec (or a typed error), and the merged spec keeps the
//! container's root path and cgroup. The same bytes as text go through the parsers of
//! spec fields and their CLI forms (command line split, signal, `uid:gid`, restart
//! policy, names, selectors): shell_split undoes shell quoting, a parsed signal is in range.
#![no_main]

use imagebus_fuzz::{assert_redacted, json_round_trip, msgpack_round_trip};
use imagebus_schema::common::{validate_name, Selector};
use imagebus_schema::container::{shell_split, ContainerSpec, RestartSpec, UserSpec};
use imagebus_sys::oci::{build_spec, overlay, BundleConfig, NetworkMode};
use imagebus_sys::signal::parse_signal;
use libfuzzer_sys::fuzz_target;

fn base() -> BundleConfig {
    BundleConfig {
        rootfs: "/run/imagebus/mount/7".into(),
        args: vec!["/bin/sh".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        hostname: "web".into(),
        uid: 0,
        gid: 0,
        systemd: false,
        network: NetworkMode::Host,
        binds: vec![],
        cpu_quota_us: None,
        memory_limit: Some(64 << 20),
        pids_limit: None,
        capabilities: vec!["CAP_KILL".into(), "CAP_CHOWN".into()],
        seccomp: true,
        no_new_privileges: true,
        terminal: false,
        cgroups_path: "/imagebus/ib-7".into(),
        annotations: vec![("org.imagebus.id".into(), "7".into())],
        overlay: None,
    }
}

/// The string parsers of spec fields and their CLI forms.
fn strings(text: &str) {
    if let Ok(words) = shell_split(text) {
        // Our split undoes a shell's quoting of the words.
        let again = shell_split(&shell_words::join(&words)).expect("quoted words split");
        assert_eq!(again, words, "shell_split disagrees with shell quoting");
    }
    if let Ok(n) = parse_signal(text) {
        assert!(
            (1..=libc::SIGRTMAX()).contains(&n),
            "signal {n} out of range"
        );
    }
    if let Ok(u) = UserSpec::parse(text) {
        if !text.contains(':') {
            assert_eq!(u.uid, u.gid, "gid defaults to uid");
        }
    }
    let _ = RestartSpec::parse(text);
    let _ = validate_name(text);
    match Selector::parse(text) {
        Selector::Id(id) => assert_eq!(text.parse::<u64>(), Ok(id)),
        Selector::Name(n) => assert_eq!(n, text),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if text.len() <= 4096 {
            strings(text);
        }
    }
    let Ok(spec) = serde_json::from_slice::<ContainerSpec>(data) else {
        return;
    };
    if let Some(sig) = &spec.stop_signal {
        let _ = parse_signal(sig);
    }
    let _ = spec.command.argv();
    json_round_trip(&spec);
    msgpack_round_trip(&spec);
    let redacted = spec.redacted();
    // The `oci` document is free-form (its keys are checked by the overlay, not here).
    let without_oci = ContainerSpec {
        oci: None,
        ..redacted.clone()
    };
    assert_redacted(&serde_json::to_value(&without_oci).expect("a spec encodes"));
    assert_eq!(redacted.redacted(), redacted, "redaction is idempotent");
    let Some(oci) = &spec.oci else {
        return;
    };
    let Ok(o) = overlay::check(&oci.0, u64::MAX) else {
        return;
    };
    let cfg = BundleConfig {
        overlay: Some(o),
        ..base()
    };
    if let Ok(merged) = build_spec(&cfg) {
        let root = merged.root().as_ref().expect("the merged spec has a root");
        assert_eq!(root.path(), &cfg.rootfs, "the oci field moved the root");
        let linux = merged.linux().as_ref().expect("the merged spec has linux");
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(std::path::Path::new("/imagebus/ib-7"))
        );
    }
});
