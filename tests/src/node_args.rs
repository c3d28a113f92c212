//! The directories and settings of an attach + mount + container node as command-line
//! arguments, so a test can start a helper binary (`container-restart-child`) on exactly
//! the configuration it computed itself, and the binary can read it back.

use imagebus_attach::AttachConfig;
use imagebus_container::ContainerConfig;
use imagebus_mount::MountConfig;
use std::ffi::OsString;
use std::path::PathBuf;

/// The arguments for `cfgs`, in the order [`parse`] reads them: attach state and run
/// directories, mount state and run directories, container state, run and log
/// directories, runtime, instance, then the monitor command (program and leading
/// arguments, one or more words) last.
pub fn to_args(cfgs: &(AttachConfig, MountConfig, ContainerConfig)) -> Vec<OsString> {
    let (a, m, c) = cfgs;
    let mut args: Vec<OsString> = vec![
        a.state_dir.clone().into(),
        a.run_dir.clone().into(),
        m.state_dir.clone().into(),
        m.run_dir.clone().into(),
        c.state_dir.clone().into(),
        c.run_dir.clone().into(),
        c.log_dir.clone().into(),
        c.runtime.clone().into(),
        c.instance.clone().into(),
    ];
    args.extend(c.monitor.iter().map(OsString::from));
    args
}

/// Reads back what [`to_args`] wrote.
pub fn parse(args: &[OsString]) -> Result<(AttachConfig, MountConfig, ContainerConfig), String> {
    let [a_state, a_run, m_state, m_run, c_state, c_run, c_log, runtime, instance, monitor @ ..] =
        args
    else {
        return Err(format!(
            "expected at least 10 node arguments, got {}",
            args.len()
        ));
    };
    if monitor.is_empty() {
        return Err("the monitor command is missing".into());
    }
    let text = |what: &str, s: &OsString| {
        s.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{what} is not UTF-8: {s:?}"))
    };
    let mut c = ContainerConfig::new(
        PathBuf::from(c_state),
        PathBuf::from(c_run),
        PathBuf::from(c_log),
    );
    c.runtime = PathBuf::from(runtime);
    c.instance = text("instance", instance)?;
    c.monitor = monitor
        .iter()
        .map(|w| text("monitor", w))
        .collect::<Result<_, _>>()?;
    Ok((
        AttachConfig {
            state_dir: a_state.into(),
            run_dir: a_run.into(),
        },
        MountConfig {
            state_dir: m_state.into(),
            run_dir: m_run.into(),
        },
        c,
    ))
}
