//! docs/image.md (and the image store's rows in docs/objects.md and docs/operations.md)
//! stay true to the code: the method tables, the `ImageInfo`/`ImageConfig` fields, the
//! storage paths and the CLI commands are compared with what defines them.

use imagebus_schema::image::{ImageConfig, ImageInfo, ImageModule, ImageModuleServer};
use imagebus_tests::doc_text::{doc, json_keys, struct_fields, table_keys};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn methods() -> BTreeSet<String> {
    ImageModuleServer::<dyn ImageModule>::METHODS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn image_md_and_objects_md_list_every_method() {
    assert_eq!(
        table_keys(&doc("image.md"), "method"),
        methods(),
        "docs/image.md"
    );
    let objects = doc("objects.md");
    let start = objects
        .find("## `image.image@1`")
        .expect("image.image@1 section");
    assert_eq!(
        table_keys(&objects[start..], "method"),
        methods(),
        "docs/objects.md"
    );
    assert!(objects.contains("| `image.image@1` | image actor | current |"));
    assert!(ImageModuleServer::<dyn ImageModule>::EVENTS.is_empty());
}

#[test]
fn image_md_lists_every_field_of_image_info_and_config() {
    let info = ImageInfo {
        digest: "sha256:00".into(),
        names: vec![],
        fs_type: "erofs".into(),
        file: "/f".into(),
        size: 0,
        format: "oci".into(),
        config: ImageConfig::default(),
        holders: vec![],
        created_at: 0,
    };
    let md = doc("image.md");
    assert_eq!(struct_fields(&md, "ImageInfo"), json_keys(&info));
    assert_eq!(
        struct_fields(&md, "ImageConfig"),
        json_keys(&ImageConfig::default())
    );
    let spec = imagebus_schema::image::ImportSpec {
        source: "/x".into(),
        name: None,
    };
    assert_eq!(struct_fields(&md, "ImportSpec"), json_keys(&spec));
}

#[test]
fn image_md_names_the_store_files() {
    let md = doc("image.md");
    let storage = &md[md.find("## Storage").expect("Storage section")..];
    let paths = table_keys(storage, "path");
    let want: BTreeSet<String> = [
        imagebus_image::RECORDS_FILE.to_string(),
        "images/<hex>.erofs".into(),
        "staging/".into(),
    ]
    .into_iter()
    .collect();
    assert_eq!(paths, want);
    // And the code puts them there.
    let cfg = imagebus_image::StoreConfig::new("/s");
    assert_eq!(
        cfg.records_file(),
        Path::new("/s").join(imagebus_image::RECORDS_FILE)
    );
    assert_eq!(
        cfg.image_file("sha256:ab", "erofs"),
        Path::new("/s/images/ab.erofs")
    );
    assert_eq!(cfg.staging_dir(), Path::new("/s/staging"));
    let ops = doc("operations.md");
    assert!(ops.contains(&format!(
        "`<state-dir>/image/{}`",
        imagebus_image::RECORDS_FILE
    )));
}

/// The command names a `--help` lists under `Commands:` (without `help`).
fn help_commands(args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(imagebus_tests::daemon::bin("imagebus"))
        .args(args)
        .arg("--help")
        .env_remove("IMAGEBUS_BROKER")
        .output()
        .expect("running imagebus --help");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn image_md_shows_every_image_cli_command() {
    let md = doc("image.md");
    let cli = &md[md.find("## CLI").expect("CLI section")..];
    let block = &cli[cli.find("```\n").unwrap() + 4..];
    let block = &block[..block.find("```").unwrap()];
    let documented: BTreeSet<String> = block
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"imagebus") && w.get(1) == Some(&"image")).then(|| w[2].to_string())
        })
        .collect();
    assert_eq!(documented, help_commands(&["image"]));
    assert!(help_commands(&[]).contains("image"));
}
