//! The image module's text parsers: `ImportSpec` (JSON), the import source in skopeo's
//! transport syntax (`oci:DIR[:TAG]`, `oci-archive:`, `docker-archive:`, `/PATH`), image
//! names (`NAME[:TAG]`), digests and digest prefixes, and the member paths of image tars
//! (`apply::clean`, `blobs::member_key`).
//!
//! Invariants: a parsed source has an absolute path without `..` and a non-empty tag; a
//! normalized name is `NAME:TAG` and normalizes to itself; a digest prefix is lower-case
//! `sha256:` hex; a blob path stays under `blobs/sha256/`; a cleaned member path is
//! relative with only normal components.
#![no_main]

use imagebus_fuzz::json_round_trip;
use imagebus_image::oci::apply::clean;
use imagebus_image::oci::blobs::{blob_path, member_key};
use imagebus_image::oci::source::{digest_prefix, normalize_name, parse, stem_name};
use imagebus_schema::image::ImportSpec;
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fn only_normal(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<ImportSpec>(data) {
        json_round_trip(&spec);
        let _ = parse(&spec.source);
        if let Some(n) = &spec.name {
            let _ = normalize_name(n);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(src) = parse(text) {
        assert!(src.path.is_absolute(), "{src:?}");
        assert!(
            !src.path.components().any(|c| c == Component::ParentDir),
            "{src:?}"
        );
        assert_ne!(src.tag.as_deref(), Some(""));
        let stem = stem_name(&src.path);
        assert!(!stem.is_empty() && stem.len() <= 128, "stem {stem:?}");
        assert!(
            stem.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)),
            "stem {stem:?}"
        );
    }
    if let Ok(name) = normalize_name(text) {
        assert!(name.contains(':'), "{name:?} has no tag");
        assert_eq!(
            normalize_name(&name).as_deref(),
            Ok(name.as_str()),
            "normalizing twice"
        );
    }
    if let Some(d) = digest_prefix(text) {
        let hex = d.strip_prefix("sha256:").expect("sha256: prefix");
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    }
    if let Ok(p) = blob_path(text) {
        assert!(p.starts_with("blobs/sha256/") && only_normal(Path::new(&p)));
    }
    if let Ok(Some(p)) = clean(Path::new(text)) {
        assert!(only_normal(&p), "cleaned {p:?}");
    }
    if let Some(k) = member_key(Path::new(text)) {
        assert!(
            only_normal(Path::new(&k)) || k.is_empty(),
            "member key {k:?}"
        );
    }
});
