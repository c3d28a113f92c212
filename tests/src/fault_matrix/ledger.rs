//! Counting instead of asserting: what the daemon acknowledged and what it lists
//! (lost, duplicated), and what the kernel holds that no list accounts for (leaked) —
//! mountinfo below the node's directory; loop devices, FUSE mounts and rbd-fuse processes
//! told by the row's names wherever they show ([`super::machine`]); runc containers under
//! the daemon's root, cgroups of its instance, `imagebus-monitor` processes,
//! per-container directories and half-written state files.

use super::machine::{self, Names};
use crate::bus_node::{BusNode, Lists};
use crate::crash_creates::{Kind, Outcome};
use crate::daemon::wait_until;
use crate::kernel_probe::{cgroups_of, monitors_under, runc_list};
use crate::rootfs::mounts_under;
use imagebus_schema::container::ContainerState;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One row's counts.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Acknowledged outcomes not reflected afterwards (a committed create missing, a
    /// committed delete undone, a state misreported).
    pub lost: usize,
    /// Objects listed or held in the kernel more than once.
    pub duplicated: usize,
    /// Kernel objects no list accounts for, and half-written state.
    pub leaked: usize,
    /// What was counted, and other remarks.
    pub notes: Vec<String>,
}

impl Tally {
    /// Counts a lost outcome.
    pub fn lost(&mut self, what: String) {
        self.lost += 1;
        self.notes.push(format!("LOST {what}"));
    }
    /// Counts a duplicate.
    pub fn dup(&mut self, what: String) {
        self.duplicated += 1;
        self.notes.push(format!("DUP {what}"));
    }
    /// Counts leaks.
    pub fn leaks(&mut self, what: Vec<String>) {
        self.leaked += what.len();
        self.notes
            .extend(what.into_iter().map(|w| format!("LEAK {w}")));
    }
}

/// Committed creates: name → (kind, id).
pub type Committed = BTreeMap<String, (Kind, u64)>;

/// Adds the successes among `outcomes` to `committed` (a name reported twice is a duplicate).
pub fn commit(t: &mut Tally, committed: &mut Committed, outcomes: &[Outcome]) {
    for (kind, name, r) in outcomes {
        if let Ok(id) = r {
            if committed.insert(name.clone(), (*kind, *id)).is_some() {
                t.dup(format!("{name} reported created twice"));
            }
        }
    }
}

/// Ids listed under `name` for `kind`.
pub fn listed(l: &Lists, kind: Kind, name: &str) -> Vec<u64> {
    let n = Some(name.to_string());
    match kind {
        Kind::Container => l
            .containers
            .iter()
            .filter(|c| c.name == n)
            .map(|c| c.id)
            .collect(),
        Kind::Mount => l
            .mounts
            .iter()
            .filter(|m| m.name == n)
            .map(|m| m.id)
            .collect(),
        Kind::Attachment => l
            .attachments
            .iter()
            .filter(|a| a.name == n)
            .map(|a| a.id)
            .collect(),
    }
}

/// Every committed create is listed exactly once with its id; names are unique; no
/// container is in a half state.
pub fn check_lists(t: &mut Tally, committed: &Committed, l: &Lists) {
    for (name, (kind, id)) in committed {
        let found = listed(l, *kind, name);
        match found.len() {
            0 => t.lost(format!("{kind:?} {name} (id {id}) not listed")),
            1 if found[0] != *id => {
                t.lost(format!("{kind:?} {name} listed as {found:?}, was {id}"))
            }
            1 => {}
            _ => t.dup(format!("{kind:?} {name} listed as {found:?}")),
        }
    }
    let names = [
        l.containers
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
        l.mounts.iter().map(|m| m.name.clone()).collect(),
        l.attachments.iter().map(|a| a.name.clone()).collect(),
    ];
    for (what, list) in ["container", "mount", "attachment"].iter().zip(names) {
        let mut seen = BTreeSet::new();
        for n in list.into_iter().flatten() {
            if !seen.insert(n.clone()) {
                t.dup(format!("{what} name {n} listed twice"));
            }
        }
    }
    for c in &l.containers {
        let whole = matches!(
            c.state,
            ContainerState::Running | ContainerState::Exited | ContainerState::Dead
        );
        if !whole {
            t.leaks(vec![format!(
                "container {} in a half state {:?}",
                c.id, c.state
            )]);
        }
    }
}

/// What counts as the row's when the kernel is checked.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The names the row gives what it creates.
    pub names: Names,
    /// Mounts not to count (e.g. a tmpfs the row mounted itself).
    pub ignore: Vec<PathBuf>,
}

impl Scope {
    /// The scope of `row` in this process.
    pub fn of(row: super::Row) -> Self {
        Self {
            names: Names::of(row.key()),
            ignore: Vec::new(),
        }
    }

    /// Also not counting mounts at `path`.
    pub fn ignoring(mut self, path: PathBuf) -> Self {
        self.ignore.push(path);
        self
    }
}

/// The attachment id of an rbd-fuse mountpoint (`…/rbd/<id>/mnt`).
fn rbd_fuse_id(mnt: &Path) -> Option<u64> {
    if mnt.file_name()? != "mnt" {
        return None;
    }
    let dir = mnt.parent()?;
    if dir.parent()?.file_name()? != "rbd" {
        return None;
    }
    dir.file_name()?.to_str()?.parse().ok()
}

/// Counts what `found` holds per listed rbd-fuse attachment: anything of no listed
/// attachment, or a second one of the same, is a leak.
fn per_attachment(
    leaks: &mut Vec<String>,
    what: &str,
    found: Vec<(String, Option<u64>)>,
    listed: &BTreeSet<u64>,
) {
    let mut seen = BTreeSet::new();
    for (text, id) in found {
        match id {
            Some(id) if listed.contains(&id) && seen.insert(id) => {}
            Some(id) if listed.contains(&id) => {
                leaks.push(format!("a second {what} of attachment {id}: {text}"))
            }
            _ => leaks.push(format!("{what} of no listed rbd-fuse attachment: {text}")),
        }
    }
}

/// What the kernel holds of the row that the lists do not account for: mounts below the
/// node's directory (but those in `scope.ignore`), and — wherever they are, told by the
/// row's names ([`Names`]) — FUSE mounts and rbd-fuse processes beyond one per listed
/// rbd-fuse attachment, and loop devices of no listed attachment.
pub fn kernel_leaks(node: &BusNode, l: &Lists, scope: &Scope) -> Vec<String> {
    leaks_with_grace(node, l, scope, Duration::from_secs(20))
}

/// [`kernel_leaks`], giving unlisted loop devices `grace` to go.
fn leaks_with_grace(node: &BusNode, l: &Lists, scope: &Scope, grace: Duration) -> Vec<String> {
    let mut leaks = Vec::new();
    let root = node.root();
    let names = &scope.names;
    let fuse = |e: &imagebus_sys::mountinfo::MountEntry| e.fs_type.starts_with("fuse");
    let mut kernel: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for e in mounts_under(root) {
        if !scope.ignore.contains(&e.mount_point) && !fuse(&e) {
            *kernel.entry(e.mount_point).or_default() += 1;
        }
    }
    let listed: BTreeSet<PathBuf> = l.mounts.iter().map(|m| m.mountpoint.clone()).collect();
    for (mp, n) in &kernel {
        if !listed.contains(mp) {
            leaks.push(format!("mount {mp:?} in mountinfo, not listed"));
        } else if *n > 1 {
            leaks.push(format!("mount {mp:?} {n} times in mountinfo"));
        }
    }
    let rbd_fuse: BTreeSet<u64> = l
        .attachments
        .iter()
        .filter(|a| a.driver == "rbd-fuse")
        .map(|a| a.id)
        .collect();
    let mounts = machine::fuse_mounts()
        .into_iter()
        .filter(|m| names.owns(m))
        .map(|m| (m.display().to_string(), rbd_fuse_id(&m)))
        .collect();
    per_attachment(&mut leaks, "FUSE mount", mounts, &rbd_fuse);
    let procs = machine::rbd_fuse()
        .into_iter()
        .filter(|(_, args)| args.iter().any(|a| names.owns(Path::new(a))))
        .map(|(pid, args)| {
            let id = args.iter().find_map(|a| rbd_fuse_id(Path::new(a)));
            (format!("{pid} ({})", args.join(" ")), id)
        })
        .collect();
    per_attachment(&mut leaks, "rbd-fuse process", procs, &rbd_fuse);
    let devices: BTreeSet<PathBuf> = l.attachments.iter().map(|a| a.device.clone()).collect();
    let extra_loops = || -> Vec<(PathBuf, PathBuf)> {
        machine::loops()
            .into_iter()
            .filter(|(d, b)| names.owns(b) && !devices.contains(d))
            .collect()
    };
    // An autoclear device goes only after its last close (see BusNode::assert_kernel_matches).
    wait_until(grace, || extra_loops().is_empty());
    leaks.extend(
        extra_loops()
            .into_iter()
            .map(|(d, b)| format!("loop device {d:?} on {b:?} not listed")),
    );

    let rids: BTreeSet<&str> = l.containers.iter().map(|c| c.runtime_id.as_str()).collect();
    for (rid, status, _) in runc_list(&node.daemon.runtime_root()) {
        if !rids.contains(rid.as_str()) {
            leaks.push(format!("runc container {rid} ({status}) not listed"));
        }
    }
    for cg in cgroups_of(node.daemon.instance()) {
        if !rids.contains(cg.as_str()) {
            leaks.push(format!("cgroup {cg} of no listed container"));
        }
    }
    let ids: BTreeSet<String> = l.containers.iter().map(|c| c.id.to_string()).collect();
    let state = node.daemon.dir().join("state/container");
    let run = node.daemon.run_dir().join("container");
    let of_listed = |f: &Path, dir: &Path| {
        f.strip_prefix(dir)
            .ok()
            .and_then(|r| r.iter().next())
            .is_some_and(|id| ids.contains(id.to_string_lossy().as_ref()))
    };
    let running = l
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Running);
    let monitors = monitors_under(node.daemon.dir());
    for (pid, files) in &monitors {
        let known = files.iter().any(|f| {
            of_listed(f, &state)
                || of_listed(f, &run)
                || rids
                    .iter()
                    .any(|rid| f.to_string_lossy().contains(&format!("{rid}.log")))
        });
        if !known {
            leaks.push(format!("monitor {pid} ({files:?}) of no listed container"));
        }
    }
    if monitors.len() > running.count() {
        leaks.push(format!(
            "{} monitors for fewer running containers",
            monitors.len()
        ));
    }
    for dir in [&state, &run] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.parse::<u64>().is_ok() && !ids.contains(&n) {
                leaks.push(format!("{dir:?}/{n}: directory of an unlisted id"));
            }
        }
    }
    leaks.extend(
        temp_files(&node.daemon.dir().join("state"))
            .into_iter()
            .map(|p| format!("half-written state file {p:?}")),
    );
    leaks
}

/// Files below `dir` that look like an atomic write's temporary (`.tmp` in the name).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name().to_string_lossy().contains(".tmp") {
                found.push(p);
            }
        }
    }
    found
}

/// Lists, then counts list and kernel mismatches into `t`.
pub async fn check_round(
    t: &mut Tally,
    node: &BusNode,
    committed: &Committed,
    scope: &Scope,
) -> Lists {
    let s = node.stubs(Duration::from_secs(30)).await;
    let l = node.lists(&s).await;
    check_lists(t, committed, &l);
    let leaks = kernel_leaks(node, &l, scope);
    t.leaks(leaks);
    l
}

/// Deletes everything, then counts what the lists or the kernel still hold.
pub async fn check_cleanup(t: &mut Tally, node: &BusNode, scope: &Scope) {
    let s = node.stubs(Duration::from_secs(60)).await;
    node.delete_all(&s).await;
    // A delete answers before the mounts and attachments it released are collected.
    let mut l = node.lists(&s).await;
    let count = |l: &Lists| l.containers.len() + l.mounts.len() + l.attachments.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&l) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        l = node.lists(&s).await;
    }
    let left = count(&l);
    if left > 0 {
        t.leaks(vec![format!(
            "{left} objects listed after deleting everything"
        )]);
    }
    let leaks = kernel_leaks(node, &l, scope);
    t.leaks(leaks);
}

/// Waits up to `timeout` until the lists account for the whole kernel and no container
/// is in a half state (calls the daemon was doing when the fault hit end at their own
/// deadlines); returns how long it took, None if it never did.
pub async fn settle(node: &BusNode, scope: &Scope, timeout: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    let s = node.stubs(Duration::from_secs(30)).await;
    while start.elapsed() < timeout {
        let l = node.lists(&s).await;
        let mut t = Tally::default();
        check_lists(&mut t, &Committed::new(), &l);
        if t.leaked == 0 && leaks_with_grace(node, &l, scope, Duration::ZERO).is_empty() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
