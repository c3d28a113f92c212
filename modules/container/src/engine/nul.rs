//! NUL bytes in the strings of a spec: no syscall or exec takes one, so a NUL in an
//! argument, an environment entry, a path or a name would fail late (after a mount was
//! made, or inside runc) as an internal error. These checks run first, before anything
//! else, and answer `InvalidArgument`.

use crate::error::ContainerError;
use imagebus_schema::common::{no_nul, no_nul_path};
use imagebus_schema::container::{CommandLine, ContainerSpec, ExecSpec, Network};

/// Every string of a create's spec that reaches the kernel or runc (the root mount's own
/// paths are checked by the mount module, before it makes anything).
pub fn check_spec(spec: &ContainerSpec) -> Result<(), ContainerError> {
    command(&spec.command, "command")?;
    env(&spec.env)?;
    if let Some(h) = &spec.health {
        command(&h.command, "health command")?;
    }
    let mut strings: Vec<(&str, &str)> = Vec::new();
    strings.extend(spec.name.as_deref().map(|n| ("name", n)));
    strings.extend(spec.group.as_deref().map(|g| ("group", g)));
    strings.extend(spec.working_dir.as_deref().map(|w| ("working_dir", w)));
    strings.extend(spec.hostname.as_deref().map(|h| ("hostname", h)));
    strings.extend(spec.stop_signal.as_deref().map(|s| ("stop_signal", s)));
    if let Network::Namespace(ns) = &spec.network {
        strings.push(("network namespace", ns));
    }
    for (what, value) in strings {
        no_nul(what, value).map_err(ContainerError::Invalid)?;
    }
    for b in &spec.binds {
        no_nul_path("bind source", &b.source).map_err(ContainerError::Invalid)?;
        no_nul_path("bind target", &b.target).map_err(ContainerError::Invalid)?;
    }
    Ok(())
}

/// Every string of an exec: its argv, environment and working directory.
pub fn check_exec(spec: &ExecSpec) -> Result<(), ContainerError> {
    command(&spec.command, "exec command")?;
    env(&spec.env)?;
    if let Some(cwd) = &spec.working_dir {
        no_nul("working_dir", cwd).map_err(ContainerError::Invalid)?;
    }
    Ok(())
}

fn command(c: &CommandLine, what: &str) -> Result<(), ContainerError> {
    // Either form: the argv array, or the line before it is split.
    let strings: Vec<&str> = match c {
        CommandLine::Argv(argv) => argv.iter().map(String::as_str).collect(),
        CommandLine::Line(line) => vec![line.as_str()],
    };
    for s in strings {
        no_nul(&format!("{what} argument"), s).map_err(ContainerError::Invalid)?;
    }
    Ok(())
}

fn env(env: &[String]) -> Result<(), ContainerError> {
    for e in env {
        no_nul("environment entry", e).map_err(ContainerError::Invalid)?;
    }
    Ok(())
}
