//! The layer applier: whiteouts, opaque directories, and every way a layer
//! could reach outside the image root (refused with an `Escapes` error, nothing written
//! outside).

use crate::oci::apply::{clean, Applier, ApplyError};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// One tar entry, written raw so that malicious paths get through.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn raw_header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(l) = link {
        let ln = &mut h.as_old_mut().linkname;
        ln.fill(0);
        ln[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    h
}

fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match e {
            E::Dir(p) => (raw_header(p, tar::EntryType::Directory, 0, None), b""),
            E::File(p, d) => (
                raw_header(p, tar::EntryType::Regular, d.len() as u64, None),
                d.as_bytes(),
            ),
            E::Sym(p, t) => (raw_header(p, tar::EntryType::Symlink, 0, Some(t)), b""),
            E::Hard(p, t) => (raw_header(p, tar::EntryType::Link, 0, Some(t)), b""),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn applier(root: &Path) -> Applier {
    Applier::new(root, Instant::now() + Duration::from_secs(60)).unwrap()
}

/// `tree` of `root`: every path below it, sorted, directories with a trailing `/`.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &e.path(), out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn layers_apply_in_order_with_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut a = applier(&root);
    a.apply(
        &layer(&[
            E::Dir("a/"),
            E::File("a/x", "x1"),
            E::File("a/y", "y1"),
            E::File("./b", "b1"),
            E::Dir("c/"),
            E::File("c/deep", "d"),
            E::Sym("l", "a/y"),
        ])[..],
    )
    .unwrap();
    a.apply(
        &layer(&[
            E::File("a/.wh.x", ""),
            E::File(".wh.b", ""),
            E::File(".wh.c", ""),
            E::File("a/y", "y2"),
            E::Hard("a/h", "a/y"),
        ])[..],
    )
    .unwrap();
    assert_eq!(tree(&root), ["a/", "a/h", "a/y", "l"]);
    assert_eq!(fs::read_to_string(root.join("a/y")).unwrap(), "y2");
    assert_eq!(fs::read_to_string(root.join("l")).unwrap(), "y2");
    let (y, h) = (
        fs::metadata(root.join("a/y")).unwrap(),
        fs::metadata(root.join("a/h")).unwrap(),
    );
    assert_eq!(y.ino(), h.ino(), "a hard link");
    assert_eq!(y.mode() & 0o7777, 0o644);
    assert_eq!(y.mtime(), 1_700_000_000);
}

#[test]
fn an_opaque_directory_hides_the_lower_layers_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut a = applier(&root);
    a.apply(
        &layer(&[
            E::Dir("d/"),
            E::File("d/old", "o"),
            E::Dir("d/sub/"),
            E::File("d/sub/lower", "l"),
            E::File("keep", "k"),
        ])[..],
    )
    .unwrap();
    // The marker comes after some of this layer's entries: they stay.
    a.apply(
        &layer(&[
            E::File("d/new", "n"),
            E::Dir("d/sub/"),
            E::File("d/.wh..wh..opq", ""),
            E::File("d/sub/upper", "u"),
        ])[..],
    )
    .unwrap();
    assert_eq!(
        tree(&root),
        ["d/", "d/new", "d/sub/", "d/sub/upper", "keep"]
    );
}

fn refused(layers: &[Vec<u8>]) -> (tempfile::TempDir, ApplyError) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::create_dir(dir.path().join("outside")).unwrap();
    let mut a = applier(&root);
    let mut last = None;
    for l in layers {
        if let Err(e) = a.apply(&l[..]) {
            last = Some(e);
            break;
        }
    }
    let err = last.expect("the layer was accepted");
    assert!(
        fs::read_dir(dir.path().join("outside"))
            .unwrap()
            .next()
            .is_none(),
        "something was written outside the root"
    );
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        2,
        "only root/ and outside/ exist"
    );
    (dir, err)
}

#[test]
fn paths_that_climb_or_are_absolute_are_refused() {
    for bad in ["../outside/x", "a/../../outside/x", "/abs", "/outside/x"] {
        let (_d, err) = refused(&[layer(&[E::File(bad, "evil")])]);
        assert!(matches!(err, ApplyError::Escapes(_)), "{bad}: {err}");
    }
    assert!(clean(Path::new("./a/b")).unwrap().is_some());
    assert!(clean(Path::new("./")).unwrap().is_none());
}

#[test]
fn writing_through_a_symlink_that_points_outside_is_refused() {
    // In the same layer, and through a link planted by a lower layer; absolute and
    // relative targets.
    for target in ["../outside", "/", "/tmp", "../../../../../.."] {
        let (_d, err) = refused(&[layer(&[E::Sym("evil", target), E::File("evil/pwned", "x")])]);
        assert!(matches!(err, ApplyError::Escapes(_)), "{target}: {err}");
        let (_d, err) = refused(&[
            layer(&[E::Sym("evil", target)]),
            layer(&[E::Dir("evil/sub/")]),
        ]);
        assert!(matches!(err, ApplyError::Escapes(_)), "{target}: {err}");
    }
    // A whiteout through an escaping link removes nothing outside.
    let (d, err) = refused(&[layer(&[
        E::Sym("evil", "../outside"),
        E::File("evil/.wh.x", ""),
    ])]);
    assert!(matches!(err, ApplyError::Escapes(_)), "{err}");
    drop(d);
}

#[test]
fn hard_links_to_outside_are_refused() {
    for target in ["../outside/secret", "/etc/passwd"] {
        let (_d, err) = refused(&[layer(&[E::Hard("h", target)])]);
        assert!(matches!(err, ApplyError::Escapes(_)), "{target}: {err}");
    }
    let (_d, err) = refused(&[layer(&[
        E::Sym("evil", "/etc"),
        E::Hard("h", "evil/passwd"),
    ])]);
    assert!(matches!(err, ApplyError::Escapes(_)), "{err}");
}

#[test]
fn links_inside_the_root_are_followed_for_parents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut a = applier(&root);
    a.apply(&layer(&[E::Dir("usr/"), E::Dir("usr/lib/"), E::Sym("lib", "usr/lib")])[..])
        .unwrap();
    a.apply(&layer(&[E::File("lib/libx.so", "x")])[..]).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("usr/lib/libx.so")).unwrap(),
        "x"
    );
}

#[test]
fn gzip_zstd_and_plain_layers_are_read_by_their_magic() {
    use crate::oci::blobs::decompress;
    use std::io::{Read, Write};
    let tar = layer(&[E::File("f", "contents")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (what, bytes) in [("plain", tar.clone()), ("gzip", gz), ("zstd", zst)] {
        let mut out = Vec::new();
        decompress(&bytes[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar, "{what}");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        applier(&root)
            .apply(decompress(&bytes[..]).unwrap())
            .unwrap();
        assert_eq!(
            fs::read_to_string(root.join("f")).unwrap(),
            "contents",
            "{what}"
        );
    }
}

#[test]
fn the_deadline_stops_an_import() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut a = Applier::new(&root, Instant::now() - Duration::from_secs(1)).unwrap();
    let err = a.apply(&layer(&[E::File("f", "x")])[..]).unwrap_err();
    assert!(matches!(err, ApplyError::Timeout), "{err}");
}

#[test]
fn a_corrupt_compressed_layer_is_malformed_not_a_write_failure() {
    use crate::oci::blobs::decompress;
    use std::io::Write;
    // Incompressible file data, so a flipped byte lands inside that file's stream.
    let mut data = String::new();
    let mut x: u32 = 7;
    while data.len() < 200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.push(char::from(b'!' + (x >> 16) as u8 % 90));
    }
    let tar = layer(&[E::File("etc/big", &data)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    // A stream that ends inside the file with a wrong CRC: the decoder's error comes
    // while the file's data is being copied (this is what a damaged download did).
    let mut cut = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    cut.write_all(&tar[..512 + 100_000]).unwrap();
    let mut cut = cut.finish().unwrap();
    let crc = cut.len() - 8;
    cut[crc] ^= 0xff;
    let mut cases = vec![cut];
    // And flipped bytes in the body: some trip the inflater, some only the trailer's CRC.
    for at in [gz.len() / 3, gz.len() / 2, gz.len() - 100, gz.len() - 6] {
        let mut bad = gz.clone();
        bad[at] ^= 0xff;
        cases.push(bad);
    }
    for (at, bad) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let err = match decompress(&bad[..]) {
            Ok(tar) => applier(&root).apply(tar).unwrap_err(),
            Err(e) => panic!("the header is intact: {e}"),
        };
        assert!(matches!(err, ApplyError::Malformed(_)), "case {at}: {err}");
    }
}
