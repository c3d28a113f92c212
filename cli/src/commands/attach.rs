//! `imagebus attach create|get|list|rm`.

use crate::args::{AttachCommand, AttachCreate, Global};
use crate::output::{parse_spec, print_table, print_value};
use anyhow::Result;
use imagebus_schema::attach::{
    AttachInfo, AttachModule, AttachModuleStub, AttachSource, AttachSpec, LocalSource, LoopSource,
};
use imagebus_schema::Selector;

/// Runs one attach command.
pub async fn run(g: &Global, cmd: &AttachCommand) -> Result<()> {
    let client = super::connect(g).await?;
    let attach = AttachModuleStub::new(client.clone()).with_timeout(g.timeout);
    match cmd {
        AttachCommand::Create(a) => print_value(&attach.attach(spec(a)?, None).await?, g.json),
        AttachCommand::Get { target } => {
            print_value(&attach.get(Selector::parse(target)).await?, g.json)
        }
        AttachCommand::List => {
            let list = attach.list().await?;
            if g.json {
                return print_value(&list, true);
            }
            print_table(
                &["ID", "NAME", "KIND", "DEVICE", "DRIVER", "RO", "HOLDERS"],
                &list.iter().map(row).collect::<Vec<_>>(),
            )
        }
        AttachCommand::Rm(r) => {
            let info = attach.get(Selector::parse(&r.target)).await?;
            if r.force {
                let what = format!("attachment {}", info.id);
                super::holders::refuse_if_a_container_holds(&client, &what, info.holders).await?;
            }
            attach.detach(Selector::Id(info.id), r.force).await?;
            super::container::print_removed(g, info.id)
        }
    }
}

/// The spec from flags or JSON.
pub fn spec(a: &AttachCreate) -> Result<AttachSpec> {
    if let Some(text) = &a.spec {
        return Ok(parse_spec("--spec", text)?);
    }
    let source = match (&a.loop_file, &a.local) {
        (Some(path), _) => AttachSource::Loop(LoopSource {
            path: absolute(path)?,
            read_only: !a.rw,
        }),
        (None, Some(path)) => AttachSource::Local(LocalSource {
            path: path.clone(),
            read_only: !a.rw,
        }),
        (None, None) => anyhow::bail!("one of --loop, --local or --spec is required"),
    };
    Ok(AttachSpec {
        name: a.name.clone(),
        source,
    })
}

/// Makes a relative path absolute against the current directory (the daemon requires
/// absolute paths and has its own working directory).
pub fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

fn row(a: &AttachInfo) -> Vec<String> {
    vec![
        a.id.to_string(),
        a.name.clone().unwrap_or_else(|| "-".into()),
        a.source.kind().to_string(),
        a.device.display().to_string(),
        a.driver.clone(),
        if a.read_only { "yes" } else { "no" }.to_string(),
        a.holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ]
}
