//! The systemctl command lines, recorded by the `Runner` double: the configured prefix,
//! `--no-ask-password`, the unit `NAME.service`, and typed errors for a failing or hanging
//! systemctl.

use crate::config::SysConfig;
use crate::engine::systemd::Systemd;
use crate::error::SysError;
use imagebus_bus::ErrorCode;
use imagebus_sys::cmd::CommandOutput;
use imagebus_sys::fake::FakeRunner;
use std::sync::Arc;

fn systemd(prefix: &[&str]) -> (Systemd, FakeRunner) {
    let mut cfg = SysConfig::new("/s", "/r");
    cfg.systemctl = prefix.iter().map(|s| s.to_string()).collect();
    let runner = FakeRunner::default();
    runner.respond(CommandOutput {
        code: Some(0),
        ..Default::default()
    });
    (Systemd::new(&cfg, Arc::new(runner.clone())), runner)
}

#[tokio::test]
async fn each_verb_is_one_systemctl_call_through_the_prefix() {
    let (sd, runner) = systemd(&["nsenter", "-t", "7", "-m", "-p", "systemctl"]);
    sd.daemon_reload().await.unwrap();
    sd.enable_now("web").await.unwrap();
    sd.restart("web").await.unwrap();
    sd.stop("web").await.unwrap();
    sd.disable_now("web").await.unwrap();
    let calls: Vec<String> = runner
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.program, c.args.join(" ")))
        .collect();
    let p = "nsenter -t 7 -m -p systemctl --no-ask-password";
    assert_eq!(
        calls,
        [
            format!("{p} daemon-reload"),
            format!("{p} enable --now web.service"),
            format!("{p} restart web.service"),
            format!("{p} stop web.service"),
            format!("{p} disable --now web.service"),
        ]
    );
}

#[tokio::test]
async fn a_failing_systemctl_is_a_typed_error_with_what_it_said() {
    let (sd, runner) = systemd(&["systemctl"]);
    runner.respond(CommandOutput {
        code: Some(1),
        stdout: String::new(),
        stderr: "Job for web.service failed because the control process exited.\n".into(),
    });
    let err = sd.enable_now("web").await.unwrap_err();
    assert!(matches!(err, SysError::Systemctl { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    let text = err.to_string();
    assert!(text.contains("enable --now web.service"), "{text}");
    assert!(
        text.contains("exit 1") && text.contains("Job for web.service failed"),
        "{text}"
    );
    runner.on("systemctl", |_| {
        Err(imagebus_sys::SysError::Timeout {
            program: "systemctl".into(),
            secs: 120,
        })
    });
    let err = sd.stop("web").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
}
