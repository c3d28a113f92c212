//! Import sources in skopeo's transport syntax, and image names.

use std::path::{Path, PathBuf};

/// How an image is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An OCI image layout directory.
    Oci,
    /// A tar of an OCI image layout.
    OciArchive,
    /// A tar as `docker save` / `podman save` / skopeo `docker-archive:` write it.
    DockerArchive,
    /// A squashfs or erofs file, stored as it is.
    File,
}

impl Format {
    /// `oci`, `oci-archive`, `docker-archive` or `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Oci => "oci",
            Format::OciArchive => "oci-archive",
            Format::DockerArchive => "docker-archive",
            Format::File => "file",
        }
    }
}

/// A parsed import source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The packing.
    pub format: Format,
    /// The directory or file.
    pub path: PathBuf,
    /// The tag (`oci:`, `oci-archive:`) or repository tag (`docker-archive:`) asked for.
    pub tag: Option<String>,
}

/// Parses `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]` or
/// `/PATH`. Paths with a `:` cannot be given with a transport prefix.
pub fn parse(text: &str) -> Result<Source, String> {
    if text.contains('\0') {
        return Err("the source must not contain a NUL byte".into());
    }
    let (format, rest) = if let Some(r) = text.strip_prefix("oci:") {
        (Format::Oci, r)
    } else if let Some(r) = text.strip_prefix("oci-archive:") {
        (Format::OciArchive, r)
    } else if let Some(r) = text.strip_prefix("docker-archive:") {
        (Format::DockerArchive, r)
    } else if text.starts_with('/') {
        (Format::File, text)
    } else {
        return Err(format!(
            "source {:?}: use oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] \
             or an absolute path to a squashfs/erofs file",
            imagebus_bus::echo(text)
        ));
    };
    let (path, tag) = match format {
        Format::Oci | Format::OciArchive | Format::DockerArchive => match rest.split_once(':') {
            Some((p, t)) => (p, Some(t.to_string())),
            None => (rest, None),
        },
        _ => (rest, None),
    };
    if tag.as_deref() == Some("") {
        return Err("the tag after ':' is empty".into());
    }
    let path = PathBuf::from(path);
    if !imagebus_sys::paths::is_plain_absolute(&path) {
        return Err(format!(
            "source path {:?} must be absolute and without '..'",
            imagebus_bus::echo(&path.to_string_lossy())
        ));
    }
    Ok(Source { format, path, tag })
}

/// The default repository name for a file or directory: its name without the archive
/// extensions, lower-cased, other characters than `[a-z0-9._-]` turned into `-`.
pub fn stem_name(path: &Path) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut base = base.as_str();
    for ext in [
        ".tar",
        ".tgz",
        ".oci",
        ".sqsh",
        ".squashfs",
        ".erofs",
        ".img",
    ] {
        if let Some(b) = base.strip_suffix(ext) {
            base = b;
        }
    }
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c| matches!(c, '.' | '_' | '-'));
    if cleaned.is_empty() {
        "image".into()
    } else {
        cleaned.chars().take(128).collect()
    }
}

/// Normalizes `NAME[:TAG]` to `NAME:TAG` (tag `latest` when absent) and checks it: NAME
/// is 1–255 characters of `[a-z0-9._/-]` (a registry `host:port/` prefix may add one
/// `:`), in `/`-separated components that start with a letter or digit; TAG is 1–128
/// characters of `[A-Za-z0-9._-]` starting with a letter, digit or `_`.
pub fn normalize_name(text: &str) -> Result<String, String> {
    let shown = || imagebus_bus::echo(text);
    let (name, tag) = match text.rfind(':') {
        Some(i) if !text[i + 1..].contains('/') => (&text[..i], &text[i + 1..]),
        _ => (text, "latest"),
    };
    if name.is_empty() || name.len() > 255 {
        return Err(format!(
            "image name {:?} must be 1 to 255 characters",
            shown()
        ));
    }
    let (host, path) = match name.split_once('/') {
        Some((h, p)) if h.contains(':') || h.contains('.') || h == "localhost" => (Some(h), p),
        _ => (None, name),
    };
    if let Some(h) = host {
        let (hn, port) = h.split_once(':').unwrap_or((h, "1"));
        if hn.is_empty()
            || !hn
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            || port.is_empty()
            || !port.chars().all(|c| c.is_ascii_digit())
        {
            return Err(format!("image name {:?}: bad registry host", shown()));
        }
    }
    for comp in path.split('/') {
        let ok = comp
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && comp.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !ok {
            return Err(format!(
                "image name {:?}: each '/'-separated part must be [a-z0-9._-], starting with a \
                 letter or digit",
                shown()
            ));
        }
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !tag_ok {
        return Err(format!(
            "image tag in {:?} must be 1 to 128 characters of [A-Za-z0-9._-]",
            shown()
        ));
    }
    Ok(format!("{name}:{tag}"))
}

/// Whether `text` can only be a digest or a digest prefix: `sha256:<hex>`, or 12 to 64
/// hex digits.
pub fn digest_prefix(text: &str) -> Option<String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    let ok = (12..=64).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        let s = parse("oci:/a/b:1.0").unwrap();
        assert_eq!(
            (s.format, s.path.as_path(), s.tag.as_deref()),
            (Format::Oci, Path::new("/a/b"), Some("1.0"))
        );
        let s = parse("oci-archive:/x.tar").unwrap();
        assert_eq!((s.format, s.tag), (Format::OciArchive, None));
        assert_eq!(
            parse("docker-archive:/d.tar").unwrap().format,
            Format::DockerArchive
        );
        let d = parse("docker-archive:/d.tar:busybox:1").unwrap();
        assert_eq!(
            (d.path.as_path(), d.tag.as_deref()),
            (Path::new("/d.tar"), Some("busybox:1"))
        );
        assert_eq!(parse("/i.erofs").unwrap().format, Format::File);
        for bad in [
            "docker://busybox",
            "oci:rel",
            "oci:/a:",
            "/a/../b",
            "x",
            "/a\0",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_normalize() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_name("busybox:1").unwrap(), "busybox:1");
        assert_eq!(
            normalize_name("library/busybox:1.36").unwrap(),
            "library/busybox:1.36"
        );
        assert_eq!(
            normalize_name("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            normalize_name("docker.io/library/busybox:1").unwrap(),
            "docker.io/library/busybox:1"
        );
        for bad in ["", "Busybox", "a//b", "-a", "a:", "a:.x", "/a", "a/../b"] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
        assert_eq!(stem_name(Path::new("/x/My Image.tar")), "my-image");
        assert_eq!(stem_name(Path::new("/x/...")), "image");
        assert_eq!(
            digest_prefix("0123456789ab").as_deref(),
            Some("sha256:0123456789ab")
        );
        assert!(digest_prefix("busybox").is_none());
    }
}
