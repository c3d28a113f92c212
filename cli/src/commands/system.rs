//! `imagebus system install|update|rollback|uninstall|ls|inspect`.

use crate::args::{Global, SystemCommand};
use crate::output::{print_table, print_value};
use anyhow::Result;
use imagebus_bus::RemoteError;
use imagebus_schema::syscontainer::{
    InstallSpec, SysContainerInfo, SysContainerModule, SysContainerModuleStub, UpdateSpec,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Runs one system command.
pub async fn run(g: &Global, cmd: &SystemCommand) -> Result<()> {
    let client = super::connect(g).await?;
    let stub = |t: Duration| SysContainerModuleStub::new(client.clone()).with_timeout(t);
    // Stops take up to the container's stop timeout: room for them.
    let slow = g.timeout.saturating_add(Duration::from_secs(60));
    match cmd {
        SystemCommand::Install(a) => {
            let spec = InstallSpec {
                name: a.name.clone(),
                image: absolute(&a.image)?,
                values: values(&a.set)?,
                rootfs: a.rootfs.as_ref().map(std::path::absolute).transpose()?,
            };
            done(g, &stub(a.install_timeout).install(spec).await?)
        }
        SystemCommand::Update(a) => {
            let spec = UpdateSpec {
                name: a.name.clone(),
                image: a.image.as_deref().map(absolute).transpose()?,
                values: values(&a.set)?,
            };
            done(g, &stub(a.install_timeout).update(spec).await?)
        }
        SystemCommand::Rollback { name } => done(g, &stub(slow).rollback(name.clone()).await?),
        SystemCommand::Uninstall { name } => {
            stub(slow).uninstall(name.clone()).await?;
            if g.json {
                return print_value(&serde_json::json!({ "uninstalled": name }), true);
            }
            writeln!(std::io::stdout().lock(), "{name}")?;
            Ok(())
        }
        SystemCommand::Ls => {
            let list = stub(g.timeout).list().await?;
            if g.json {
                return print_value(&list, true);
            }
            print_table(
                &[
                    "NAME",
                    "SLOT",
                    "IMAGE",
                    "STATE",
                    "SUPERVISOR",
                    "DEPLOYMENTS",
                ],
                &list.iter().map(row).collect::<Vec<_>>(),
            )
        }
        SystemCommand::Inspect { name } => {
            print_value(&stub(g.timeout).get(name.clone()).await?, g.json)
        }
    }
}

/// `--set KEY=VALUE` flags as a map.
fn values(set: &[String]) -> Result<BTreeMap<String, String>, RemoteError> {
    set.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    RemoteError::invalid_argument(format!("--set {kv:?}: use KEY=VALUE"))
                })
        })
        .collect()
}

/// An import source with its path made absolute; an image name as it is.
fn absolute(image: &str) -> Result<String> {
    for prefix in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = image.strip_prefix(prefix) {
            if rest.starts_with('/') {
                return Ok(image.to_string());
            }
            let cwd = std::env::current_dir()?;
            return Ok(format!("{prefix}{}", cwd.join(rest).display()));
        }
    }
    Ok(image.to_string())
}

fn done(g: &Global, info: &SysContainerInfo) -> Result<()> {
    if g.json {
        return print_value(info, true);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {}.{}", info.name, info.name, info.active)?;
    Ok(())
}

fn row(i: &SysContainerInfo) -> Vec<String> {
    let image = i
        .deployments
        .first()
        .map(|d| d.image.clone())
        .unwrap_or_default();
    vec![
        i.name.clone(),
        i.active.to_string(),
        image,
        i.state.clone().unwrap_or_else(|| "-".into()),
        serde_json::to_value(i.supervisor)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        i.deployments.len().to_string(),
    ]
}
