//! `imagebus mount create|get|list|rm`.

use crate::args::{Global, MountCommand, MountCreate};
use crate::commands::attach::absolute;
use crate::output::{parse_spec, print_table, print_value};
use anyhow::Result;
use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::mount::{
    BindMount, ImageMount, MountInfo, MountModule, MountModuleStub, MountRef, MountSource,
    MountSpec, OverlayMount,
};
use imagebus_schema::Selector;

/// Runs one mount command.
pub async fn run(g: &Global, cmd: &MountCommand) -> Result<()> {
    let client = super::connect(g).await?;
    let mount = MountModuleStub::new(client.clone()).with_timeout(g.timeout);
    match cmd {
        MountCommand::Create(a) => print_value(&mount.mount(spec(a)?, None).await?, g.json),
        MountCommand::Get { target } => {
            print_value(&mount.get(Selector::parse(target)).await?, g.json)
        }
        MountCommand::List => {
            let list = mount.list().await?;
            if g.json {
                return print_value(&list, true);
            }
            print_table(
                &["ID", "NAME", "KIND", "FS", "RO", "MOUNTPOINT", "HOLDERS"],
                &list.iter().map(row).collect::<Vec<_>>(),
            )
        }
        MountCommand::Rm(r) => {
            let info = mount.get(Selector::parse(&r.target)).await?;
            if r.force {
                let what = format!("mount {}", info.id);
                super::holders::refuse_if_a_container_holds(&client, &what, info.holders).await?;
            }
            mount.unmount(Selector::Id(info.id), r.force).await?;
            super::container::print_removed(g, info.id)
        }
    }
}

/// An image file on an inline loop attachment.
pub fn image_file(
    path: &std::path::Path,
    fs_type: Option<String>,
    read_only: bool,
) -> Result<MountSource> {
    let attach = AttachSpec {
        name: None,
        source: AttachSource::Loop(LoopSource {
            path: absolute(path)?,
            read_only,
        }),
    };
    Ok(MountSource::Image(ImageMount {
        attach: AttachRef::Inline(Box::new(attach)),
        fs_type,
        options: Vec::new(),
        read_only,
    }))
}

/// The spec from flags or JSON.
pub fn spec(a: &MountCreate) -> Result<MountSpec> {
    if let Some(text) = &a.spec {
        return Ok(parse_spec("--spec", text)?);
    }
    if a.ro && a.bind.is_none() {
        return Err(imagebus_bus::RemoteError::invalid_argument(
            "--ro is for --bind (images and attachments are read-only unless --rw)",
        )
        .into());
    }
    let source = if let Some(path) = &a.image {
        image_file(path, a.fs_type.clone(), !a.rw)?
    } else if let Some(att) = &a.attachment {
        MountSource::Image(ImageMount {
            attach: AttachRef::Existing(Selector::parse(att)),
            fs_type: a.fs_type.clone(),
            options: Vec::new(),
            read_only: !a.rw,
        })
    } else if !a.lowers.is_empty() {
        MountSource::Overlay(OverlayMount {
            lowers: a
                .lowers
                .iter()
                .map(|l| MountRef::Existing(Selector::parse(l)))
                .collect(),
            persist_dir: None,
        })
    } else if let Some(path) = &a.bind {
        MountSource::Bind(BindMount {
            path: path.clone(),
            base: a
                .base
                .as_deref()
                .map(|b| Box::new(MountRef::Existing(Selector::parse(b)))),
            read_only: a.ro,
            recursive: false,
        })
    } else {
        anyhow::bail!("one of --image, --attachment, --lower, --bind or --spec is required");
    };
    Ok(MountSpec {
        name: a.name.clone(),
        source,
    })
}

fn row(m: &MountInfo) -> Vec<String> {
    vec![
        m.id.to_string(),
        m.name.clone().unwrap_or_else(|| "-".into()),
        m.kind.clone(),
        m.fs_type.clone(),
        if m.read_only { "yes" } else { "no" }.to_string(),
        m.mountpoint.display().to_string(),
        m.holders
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn create(argv: &[&str]) -> MountSpec {
        let mut all = vec!["imagebus", "mount", "create"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Mount(MountCommand::Create(a)) => spec(&a).unwrap(),
            other => panic!("not mount create: {other:?}"),
        }
    }

    /// Binds are read-write unless --ro (docker's and the API's default); images are
    /// read-only unless --rw.
    #[test]
    fn read_only_defaults() {
        let ro = |s: MountSpec| match s.source {
            MountSource::Bind(b) => b.read_only,
            MountSource::Image(i) => i.read_only,
            other => panic!("{other:?}"),
        };
        assert!(!ro(create(&["--bind", "/srv"])));
        assert!(ro(create(&["--bind", "/srv", "--ro"])));
        assert!(ro(create(&["--image", "/x.sqsh"])));
        assert!(!ro(create(&["--image", "/x.sqsh", "--rw"])));
        assert!(
            Cli::try_parse_from(["imagebus", "mount", "create", "--bind", "/s", "--rw"]).is_err()
        );
        let argv = ["imagebus", "mount", "create", "--image", "/x", "--ro"];
        let Command::Mount(MountCommand::Create(a)) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("not mount create")
        };
        assert!(spec(&a).is_err(), "--ro without --bind");
    }
}
