//! Reading an image's `/exports` and rendering a deployment from it: the variables, the
//! runtime configuration (`config.json.template`, or one made from the image config), the
//! service unit and the tmpfiles lines. Pure but for reading the checkout; nothing is
//! written here.

use crate::config::SysConfig;
use crate::engine::template::{is_name, render};
use crate::engine::{host, tmpfiles, unit};
use crate::error::SysError;
use imagebus_schema::container::OciConfig;
use imagebus_schema::image::ImageConfig;
use imagebus_schema::syscontainer::{DEFAULTED_VARIABLES, FORCED_VARIABLES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `/exports` files of a checkout.
#[derive(Debug, Default, Clone)]
pub struct Exports {
    /// `config.json.template`.
    pub config: Option<String>,
    /// `manifest.json`'s `defaultValues`.
    pub defaults: BTreeMap<String, String>,
    /// `service.template`.
    pub service: Option<String>,
    /// `tmpfiles.template`.
    pub tmpfiles: Option<String>,
    /// `hostfs/` entries, relative.
    pub hostfs: Vec<PathBuf>,
}

/// Reads `rootfs/exports`. Its files must be regular files (a symlink could point at a
/// host file); a missing one is absent.
pub fn read(rootfs: &Path) -> Result<Exports, SysError> {
    let dir = rootfs.join("exports");
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(SysError::Invalid("/exports is not a directory".into())),
        Err(_) => return Ok(Exports::default()),
    }
    let file = |n: &str| -> Result<Option<String>, SysError> {
        let p = dir.join(n);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => std::fs::read_to_string(&p)
                .map(Some)
                .map_err(|e| SysError::Invalid(format!("/exports/{n}: {e}"))),
            Ok(_) => Err(SysError::Invalid(format!(
                "/exports/{n} is not a regular file"
            ))),
            Err(_) => Ok(None),
        }
    };
    let mut defaults = BTreeMap::new();
    if let Some(text) = file("manifest.json")? {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| SysError::Invalid(format!("/exports/manifest.json: {e}")))?;
        if let Some(d) = v.get("defaultValues").and_then(|d| d.as_object()) {
            for (k, v) in d {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                defaults.insert(k.clone(), s);
            }
        }
    }
    Ok(Exports {
        config: file("config.json.template")?,
        defaults,
        service: file("service.template")?,
        tmpfiles: file("tmpfiles.template")?,
        hostfs: host::list_tree(&dir.join("hostfs"))?,
    })
}

/// Checks `--set` values: names are variable names, and none is forced.
pub fn check_set(set: &BTreeMap<String, String>) -> Result<(), SysError> {
    let forced: Vec<&str> = set
        .keys()
        .map(String::as_str)
        .filter(|k| FORCED_VARIABLES.contains(k))
        .collect();
    if !forced.is_empty() {
        return Err(SysError::Invalid(format!(
            "{} cannot be set: the node sets {}",
            forced.join(", "),
            if forced.len() == 1 { "it" } else { "them" }
        )));
    }
    for (k, v) in set {
        if !is_name(k) {
            return Err(SysError::Invalid(format!(
                "--set {:?}: not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                imagebus_bus::echo(k)
            )));
        }
        imagebus_schema::common::no_nul("value", v).map_err(SysError::Invalid)?;
    }
    Ok(())
}

/// What a deployment is rendered for.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    /// The system container.
    pub name: &'a str,
    /// Its slot directory (`DESTDIR`).
    pub destdir: &'a Path,
    /// The `--set` values.
    pub set: &'a BTreeMap<String, String>,
    /// The UUID to keep (an update keeps the installed one).
    pub uuid: Option<String>,
}

/// The variables: node defaults, then `manifest.json` defaults, then `--set`, then the
/// forced values.
pub fn variables(cfg: &SysConfig, v: &Vars<'_>, ex: &Exports) -> BTreeMap<String, String> {
    let bin = cfg.imagebus_bin.to_string_lossy().into_owned();
    let run_dir = cfg.run_dir.to_string_lossy().into_owned();
    let cli = |args: &[&str]| {
        let mut all = vec![bin.as_str(), "--run-dir", run_dir.as_str()];
        all.extend_from_slice(args);
        shell_words::join(all)
    };
    let mut m = BTreeMap::new();
    let defaults = [
        cfg.host_root.join("run").to_string_lossy().into_owned(),
        cfg.host_root.join("var/lib").to_string_lossy().into_owned(),
        v.uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    ];
    for (k, d) in DEFAULTED_VARIABLES.iter().zip(defaults) {
        m.insert(k.to_string(), d);
    }
    m.extend(ex.defaults.clone());
    m.extend(v.set.clone());
    let forced = [
        v.destdir.to_string_lossy().into_owned(),
        v.name.to_string(),
        cli(&["start", "--attach", v.name]),
        cli(&["stop", v.name]),
        nix::unistd::getuid().as_raw().to_string(),
        nix::unistd::getgid().as_raw().to_string(),
    ];
    for (k, f) in FORCED_VARIABLES.iter().zip(forced) {
        m.insert(k.to_string(), f);
    }
    m
}

/// A deployment rendered from its exports.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The runtime configuration.
    pub oci: OciConfig,
    /// The zinit unit.
    pub unit: String,
    /// The systemd form of the service (`Err`: why there is none).
    pub systemd: Result<String, String>,
    /// The tmpfiles lines.
    pub tmpfiles: Vec<String>,
}

/// Renders every template; `InvalidArgument` lists every variable used without a value.
pub fn render_all(
    ex: &Exports,
    vars: &BTreeMap<String, String>,
    image: &ImageConfig,
) -> Result<Rendered, SysError> {
    let mut missing = BTreeSet::new();
    let mut one = |what: &str, text: &str| -> String {
        match render(text, vars) {
            Ok(s) => s,
            Err(m) => {
                tracing::debug!(what, "variables without a value");
                missing.extend(m);
                String::new()
            }
        }
    };
    let config = ex.config.as_deref().map(|t| one("config", t));
    let service = one(
        "service",
        ex.service.as_deref().unwrap_or(unit::DEFAULT_SERVICE),
    );
    let tmp = ex.tmpfiles.as_deref().map(|t| one("tmpfiles", t));
    if !missing.is_empty() {
        return Err(SysError::Invalid(format!(
            "the templates use variables with no value: {} (give them with --set NAME=VALUE)",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let oci = match config {
        Some(text) => {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                SysError::Invalid(format!("rendered config.json.template is not JSON: {e}"))
            })?;
            match v {
                serde_json::Value::Object(map) => OciConfig(map),
                _ => {
                    return Err(SysError::Invalid(
                        "config.json.template is not a JSON object".into(),
                    ))
                }
            }
        }
        None => default_config(image)?,
    };
    if oci.args().is_none_or(|a| a.is_empty()) {
        return Err(SysError::Invalid(
            "the runtime configuration has no process.args".into(),
        ));
    }
    let unit = unit::zinit_unit(&service).map_err(SysError::Invalid)?;
    let tmpfiles: Vec<String> = tmp
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    tmpfiles::parse(&tmpfiles.join("\n")).map_err(SysError::Invalid)?;
    Ok(Rendered {
        oci,
        systemd: unit::systemd_unit(&service),
        unit,
        tmpfiles,
    })
}

/// The runtime configuration of an image without `config.json.template`: its Env,
/// Entrypoint + Cmd, WorkingDir and (numeric) User, on a read-only root.
pub fn default_config(image: &ImageConfig) -> Result<OciConfig, SysError> {
    let args: Vec<String> = image
        .entrypoint
        .iter()
        .chain(image.cmd.iter())
        .cloned()
        .collect();
    if args.is_empty() {
        return Err(SysError::Invalid(
            "the image has no config.json.template and no Entrypoint or Cmd".into(),
        ));
    }
    let user = image
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or("0");
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    let (uid, gid) = match (uid.parse::<u32>(), gid.parse::<u32>()) {
        (Ok(u), Ok(g)) => (u, g),
        _ => {
            return Err(SysError::Invalid(format!(
                "the image's User {user:?} is not numeric; give a config.json.template"
            )))
        }
    };
    let cwd = image
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let doc = serde_json::json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": image.env,
            "cwd": cwd,
        },
        "root": {"path": "rootfs", "readonly": true},
    });
    match doc {
        serde_json::Value::Object(map) => Ok(OciConfig(map)),
        _ => Err(SysError::Internal("default config".into())),
    }
}
