//! Arguments of `imagebus image …`.

use clap::{Args as ClapArgs, Subcommand};
use std::time::Duration;

/// `imagebus image`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an image; prints it. Sources: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE[:NAME:TAG]`, or a squashfs/erofs file.
    Import(ImageImport),
    /// Every image (a table, or JSON with --json).
    #[command(alias = "list")]
    Ls,
    /// One image as JSON, by name, digest or digest prefix.
    Inspect {
        /// Name (`NAME[:TAG]`), digest or 12+ leading hex digits of one.
        target: String,
    },
    /// Give an image another name.
    Tag {
        /// The image: name, digest or digest prefix.
        source: String,
        /// The new name, `NAME[:TAG]`.
        name: String,
    },
    /// Drop a name; the image itself goes with its last name (refused while mounted).
    Rm {
        /// Name, digest or digest prefix.
        target: String,
    },
}

/// `imagebus image import`.
#[derive(Debug, ClapArgs)]
pub struct ImageImport {
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`, or a
    /// squashfs/erofs file. Relative paths are made absolute.
    pub source: String,
    /// Name it `NAME[:TAG]` (default: from the source).
    #[arg(long)]
    pub name: Option<String>,
    /// How long the import may take (the call's deadline).
    #[arg(long = "import-timeout", default_value = "30m", value_parser = super::duration)]
    pub import_timeout: Duration,
}
