//! `run --image NAME` with an image of the store: what the command line leaves out comes
//! from the image's config, as with docker — the command is `Entrypoint` + (the given
//! arguments, else `Cmd`), the image's `Env` comes first and `-e` overrides it by name,
//! and `WorkingDir` and `User` apply unless `-w` and `-u` are given.

use crate::args::RunArgs;
use anyhow::Result;
use imagebus_bus::RemoteError;
use imagebus_schema::container::{CommandLine, ContainerSpec, UserSpec};
use imagebus_schema::image::ImageConfig;
use std::path::Path;

/// Whether `--image TEXT` names an image of the store rather than an image file: not an
/// existing file, and not written as a path (absolute, `./`, `../`).
pub fn names_stored(image: &Path) -> bool {
    let text = image.to_string_lossy();
    !(image.exists() || text.starts_with('/') || text.starts_with('.'))
}

/// The stored image `--image` names, when the image's config should fill in the spec.
pub fn stored_image(a: &RunArgs) -> Option<String> {
    if a.spec.is_some() {
        return None;
    }
    let image = a.image.as_deref()?;
    names_stored(image).then(|| image.to_string_lossy().into_owned())
}

/// Fills in `spec` from `config` (see the module docs).
pub fn apply(spec: &mut ContainerSpec, a: &RunArgs, config: &ImageConfig) -> Result<()> {
    if a.oci_config.is_none() {
        let rest = if a.command.is_empty() {
            config.cmd.clone()
        } else {
            a.command.clone()
        };
        let argv: Vec<String> = config.entrypoint.iter().cloned().chain(rest).collect();
        if argv.is_empty() {
            return Err(RemoteError::invalid_argument(
                "the image has no Entrypoint or Cmd: give a command",
            )
            .into());
        }
        spec.command = CommandLine::Argv(argv);
    }
    let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut env: Vec<String> = config
        .env
        .iter()
        .filter(|e| !spec.env.iter().any(|g| name(g) == name(e)))
        .cloned()
        .collect();
    env.append(&mut spec.env);
    spec.env = env;
    if spec.working_dir.is_none() {
        spec.working_dir = config.working_dir.clone().filter(|w| !w.is_empty());
    }
    if spec.user.is_none() {
        if let Some(u) = config.user.as_deref().filter(|u| !u.is_empty()) {
            let user = UserSpec::parse(u).map_err(|_| {
                RemoteError::invalid_argument(format!(
                    "the image runs as user {u:?}, which is not numeric: give -u UID[:GID]"
                ))
            })?;
            spec.user = Some(user);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::container::tests::run_args;

    fn config() -> ImageConfig {
        ImageConfig {
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            working_dir: Some("/srv".into()),
            user: Some("1000:1000".into()),
            ..ImageConfig::default()
        }
    }

    fn applied(argv: &[&str], config: &ImageConfig) -> Result<ContainerSpec> {
        let a = run_args(argv);
        let mut spec = crate::commands::container::spec(&a)?;
        apply(&mut spec, &a, config)?;
        Ok(spec)
    }

    #[test]
    fn the_image_config_fills_in_what_the_command_line_leaves_out() {
        let s = applied(&["imagebus", "run", "--image", "app:1"], &config()).unwrap();
        assert_eq!(
            s.command,
            CommandLine::Argv(vec!["/bin/app".into(), "--serve".into()])
        );
        assert_eq!(s.env, ["PATH=/bin", "MODE=image"]);
        assert_eq!(s.working_dir.as_deref(), Some("/srv"));
        assert_eq!(
            s.user,
            Some(UserSpec {
                uid: 1000,
                gid: 1000
            })
        );
    }

    #[test]
    fn the_command_line_wins() {
        let s = applied(
            &[
                "imagebus", "run", "--image", "app:1", "-e", "MODE=cli", "-w", "/tmp", "-u", "0",
                "--", "--debug",
            ],
            &config(),
        )
        .unwrap();
        assert_eq!(
            s.command,
            CommandLine::Argv(vec!["/bin/app".into(), "--debug".into()])
        );
        assert_eq!(s.env, ["PATH=/bin", "MODE=cli"]);
        assert_eq!(s.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(s.user, Some(UserSpec { uid: 0, gid: 0 }));
    }

    #[test]
    fn an_image_without_a_command_or_with_a_named_user_needs_the_flag() {
        let empty = ImageConfig::default();
        let err = applied(&["imagebus", "run", "--image", "app:1"], &empty).unwrap_err();
        assert!(err.to_string().contains("give a command"), "{err}");
        let named = ImageConfig {
            user: Some("nginx".into()),
            ..config()
        };
        let err = applied(&["imagebus", "run", "--image", "app:1"], &named).unwrap_err();
        assert!(err.to_string().contains("-u UID"), "{err}");
        assert!(applied(
            &["imagebus", "run", "--image", "app:1", "-u", "101"],
            &named
        )
        .is_ok());
        assert!(stored_image(&run_args(&[
            "imagebus", "run", "--image", "./x.sqsh", "true"
        ]))
        .is_none());
    }
}
