//! `imagebus image import|ls|inspect|tag|rm`.

use crate::args::{Global, ImageCommand, ImageImport};
use crate::output::{print_table, print_value};
use anyhow::Result;
use imagebus_schema::image::{ImageInfo, ImageModule, ImageModuleStub, ImportSpec};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Runs one image command.
pub async fn run(g: &Global, cmd: &ImageCommand) -> Result<()> {
    let client = super::connect(g).await?;
    let images = ImageModuleStub::new(client.clone()).with_timeout(g.timeout);
    match cmd {
        ImageCommand::Import(a) => {
            let images = ImageModuleStub::new(client).with_timeout(a.import_timeout);
            let info = import(&images, a).await?;
            if g.json {
                return print_value(&info, true);
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{} {}", info.digest, info.names.join(","))?;
            Ok(())
        }
        ImageCommand::Ls => {
            let list = images.list().await?;
            if g.json {
                return print_value(&list, true);
            }
            print_table(
                &["DIGEST", "NAMES", "FS", "SIZE", "FORMAT", "HOLDERS"],
                &list.iter().map(row).collect::<Vec<_>>(),
            )
        }
        ImageCommand::Inspect { target } => print_value(&images.get(target.clone()).await?, g.json),
        ImageCommand::Tag { source, name } => {
            print_value(&images.tag(source.clone(), name.clone()).await?, g.json)
        }
        ImageCommand::Rm { target } => Ok(images.remove(target.clone()).await?),
    }
}

/// The source with its path made absolute.
fn absolute_source(source: &str) -> Result<String> {
    for prefix in ["oci:", "oci-archive:", "docker-archive:", ""] {
        let Some(rest) = source.strip_prefix(prefix) else {
            continue;
        };
        if rest.starts_with('/') || (prefix.is_empty() && source.contains(':')) {
            return Ok(source.to_string());
        }
        let cwd = std::env::current_dir()?;
        return Ok(format!("{prefix}{}", cwd.join(rest).display()));
    }
    Ok(source.to_string())
}

/// Imports, showing a progress line on stderr once it takes more than a second.
async fn import(images: &ImageModuleStub, a: &ImageImport) -> Result<ImageInfo> {
    let spec = ImportSpec {
        source: absolute_source(&a.source)?,
        name: a.name.clone(),
    };
    let shown = spec.source.clone();
    let call = images.import(spec);
    tokio::pin!(call);
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shown_progress = false;
    let result = loop {
        tokio::select! {
            r = &mut call => break r,
            _ = tick.tick() => {
                let secs = started.elapsed().as_secs();
                // A terminal gets one line rewritten each second; a log one line after the
                // first second, then one every 5 s.
                if secs == 0 || (!tty && secs != 1 && secs % 5 != 0) {
                    continue;
                }
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\rimporting {shown}: {secs}s");
                } else {
                    let _ = writeln!(err, "importing {shown}: {secs}s");
                }
                shown_progress = true;
            }
        }
    };
    if shown_progress && tty {
        let _ = writeln!(std::io::stderr(), " done");
    }
    Ok(result?)
}

fn row(i: &ImageInfo) -> Vec<String> {
    let hex = i.digest.trim_start_matches("sha256:");
    vec![
        hex.chars().take(12).collect(),
        i.names.join(","),
        i.fs_type.clone(),
        i.size.to_string(),
        i.format.clone(),
        i.holders.len().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sources_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute_source("oci:/a:1").unwrap(), "oci:/a:1");
        assert_eq!(
            absolute_source("oci-archive:x.tar").unwrap(),
            format!("oci-archive:{}", cwd.join("x.tar").display())
        );
        assert_eq!(
            absolute_source("i.erofs").unwrap(),
            cwd.join("i.erofs").display().to_string()
        );
        assert_eq!(absolute_source("/i.erofs").unwrap(), "/i.erofs");
    }
}
