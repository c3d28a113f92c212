//! Reading the files of an image: from a layout directory (each resolved beneath it, so a
//! symlink cannot lead out), or from a tar archive, indexed once by the position of each
//! member so that blobs are read in place without unpacking the archive.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Longest JSON document (index, manifest, config) we read.
pub const MAX_JSON: u64 = 8 << 20;

/// Where the files of an image are.
#[derive(Debug, Clone)]
pub enum Blobs {
    /// A directory.
    Dir(PathBuf),
    /// A tar archive: member path → (offset of its data, size).
    Archive {
        /// The archive.
        file: PathBuf,
        /// Its regular members (links resolved).
        members: HashMap<String, (u64, u64)>,
    },
}

/// A member path as stored: without `./` and leading `/`; `None` if it climbs.
pub fn member_key(path: &Path) -> Option<String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    Some(out.to_string_lossy().into_owned())
}

impl Blobs {
    /// Indexes the tar archive `file`.
    pub fn archive(file: &Path) -> Result<Self, String> {
        let f = File::open(file).map_err(|e| format!("opening {file:?}: {e}"))?;
        let mut archive = tar::Archive::new(f);
        let mut members = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| format!("{file:?} is not a tar archive: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading {file:?}: {e}"))?;
            let path = entry.path().map_err(|e| format!("reading {file:?}: {e}"))?;
            let Some(key) = member_key(&path) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() {
                members.insert(key, (entry.raw_file_position(), entry.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Ok(Some(target)) = entry.link_name() else {
                    continue;
                };
                let base = if kind.is_symlink() {
                    Path::new(&key)
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default()
                } else {
                    PathBuf::new()
                };
                if let Some(t) = member_key(&base.join(&*target)) {
                    links.push((key, t));
                }
            }
        }
        for (link, target) in links {
            if let Some(pos) = members.get(&target).copied() {
                members.insert(link, pos);
            }
        }
        Ok(Blobs::Archive {
            file: file.to_path_buf(),
            members,
        })
    }

    /// Opens the file `path` (relative) of the image.
    pub fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, String> {
        match self {
            Blobs::Dir(dir) => {
                use imagebus_sys::paths::PathOps;
                let rel = Path::new(path);
                let real = imagebus_sys::paths::LinuxPaths
                    .resolve_beneath(dir, rel)
                    .map_err(|e| format!("{path:?} in {dir:?}: {e}"))?;
                let f = File::open(&real).map_err(|e| format!("opening {real:?}: {e}"))?;
                Ok(Box::new(f))
            }
            Blobs::Archive { file, members } => {
                let key = member_key(Path::new(path)).unwrap_or_default();
                let (offset, size) = members
                    .get(&key)
                    .copied()
                    .ok_or_else(|| format!("{path:?} is missing from {file:?}"))?;
                let mut f = File::open(file).map_err(|e| format!("opening {file:?}: {e}"))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| format!("reading {file:?}: {e}"))?;
                Ok(Box::new(f.take(size)))
            }
        }
    }

    /// Whether the image has the file `path`.
    pub fn has(&self, path: &str) -> bool {
        match self {
            Blobs::Dir(dir) => dir.join(path).is_file(),
            Blobs::Archive { members, .. } => {
                member_key(Path::new(path)).is_some_and(|k| members.contains_key(&k))
            }
        }
    }

    /// Reads a small file whole (at most [`MAX_JSON`] bytes).
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>, String> {
        let mut buf = Vec::new();
        self.open(path)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("reading {path:?}: {e}"))?;
        if buf.len() as u64 > MAX_JSON {
            return Err(format!("{path:?} is larger than {MAX_JSON} bytes"));
        }
        Ok(buf)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blob path of `sha256:<64 hex>` in an OCI layout; other digests are refused.
pub fn blob_path(digest: &str) -> Result<String, String> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(format!("blobs/sha256/{h}"))
        }
        _ => Err(format!(
            "unsupported digest {:?} (only sha256 is)",
            imagebus_bus::echo(digest)
        )),
    }
}

/// A reader that hashes what passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> std::fmt::Debug for Hashing<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hashing")
    }
}

impl<R: Read> Hashing<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of everything read, after reading the rest.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{}", hex(&self.hasher.finalize())))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A layer's tar stream: gzip and zstd are recognized by their magic, anything else is
/// read as a plain tar.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::new(r);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(r)));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = ruzstd::decoding::StreamingDecoder::new(r)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        return Ok(Box::new(d));
    }
    Ok(Box::new(r))
}
