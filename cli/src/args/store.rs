//! Arguments of `imagebus attach …` and `imagebus mount …`.

use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;

/// `imagebus attach`.
#[derive(Debug, Subcommand)]
pub enum AttachCommand {
    /// Attach a device; prints the attachment.
    Create(AttachCreate),
    /// One attachment by id or name.
    Get {
        /// Id or name.
        target: String,
    },
    /// Every attachment.
    #[command(alias = "ls")]
    List,
    /// Detach an attachment (device removed, record deleted). While a mount or another
    /// attachment holds it, fails with Conflict and changes nothing, unless -f.
    Rm(RemoveArgs),
}

/// `imagebus attach create`: flags for the common cases, or a full JSON spec.
#[derive(Debug, ClapArgs)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["loop_file", "local", "spec"]))]
pub struct AttachCreate {
    /// Unique name.
    #[arg(long)]
    pub name: Option<String>,
    /// An image file, attached on a loop device.
    #[arg(long = "loop", value_name = "FILE")]
    pub loop_file: Option<PathBuf>,
    /// An existing block device.
    #[arg(long, value_name = "DEVICE")]
    pub local: Option<PathBuf>,
    /// Read-write (loop and local devices are read-only unless --rw).
    #[arg(long, conflicts_with = "spec")]
    pub rw: bool,
    /// The whole `AttachSpec` as JSON (e.g. for rbd; see docs/objects.md); `@FILE` reads it
    /// from a file, `-` from stdin (keeps secrets out of the process list).
    #[arg(long = "spec", value_name = "JSON")]
    pub spec: Option<String>,
}

/// `imagebus mount`.
#[derive(Debug, Subcommand)]
pub enum MountCommand {
    /// Mount something; prints the mount.
    Create(MountCreate),
    /// One mount by id or name.
    Get {
        /// Id or name.
        target: String,
    },
    /// Every mount.
    #[command(alias = "ls")]
    List,
    /// Unmount a mount, then release what it held (cascading to its unused lowers, image
    /// mounts and attachments). While another mount holds it, fails with Conflict and
    /// changes nothing, unless -f.
    Rm(RemoveArgs),
}

/// `imagebus mount create`: an image (from a file or an attachment), an overlay of lowers,
/// a bind, or a full JSON spec.
#[derive(Debug, ClapArgs)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["image", "attachment", "lowers", "bind", "spec"]))]
pub struct MountCreate {
    /// Unique name.
    #[arg(long)]
    pub name: Option<String>,
    /// Image file: attached inline on a loop device (owned by the mount).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// An existing attachment (id or name) holding the filesystem.
    #[arg(long, value_name = "ATTACHMENT")]
    pub attachment: Option<String>,
    /// Filesystem type of --image/--attachment (detected when absent).
    #[arg(long)]
    pub fs_type: Option<String>,
    /// Overlay of existing mounts (id or name), top first; repeat for each lower.
    #[arg(long = "lower", value_name = "MOUNT")]
    pub lowers: Vec<String>,
    /// Bind mount of this path (on the host, or inside --base).
    #[arg(long, value_name = "PATH")]
    pub bind: Option<PathBuf>,
    /// Mount (id or name) that --bind is relative to.
    #[arg(long, value_name = "MOUNT", requires = "bind")]
    pub base: Option<String>,
    /// Read-write image (--image/--attachment are read-only unless --rw).
    #[arg(long, conflicts_with_all = ["spec", "bind"])]
    pub rw: bool,
    /// Read-only bind (a --bind is read-write unless --ro, as docker's `-v SRC:DST:ro`).
    #[arg(long, conflicts_with = "spec")]
    pub ro: bool,
    /// The whole `MountSpec` as JSON (see docs/objects.md); `@FILE` or `-` (stdin).
    #[arg(long = "spec", value_name = "JSON")]
    pub spec: Option<String>,
}

/// `… rm`.
#[derive(Debug, ClapArgs)]
pub struct RemoveArgs {
    /// Id or name.
    pub target: String,
    /// Remove it even while other mounts or attachments hold it (they keep a dangling
    /// reference). Refused, changing nothing, while a container holds it directly or
    /// through a mount: remove the container first.
    #[arg(long, short = 'f')]
    pub force: bool,
}
