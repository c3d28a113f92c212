//! The fault matrix (issue 10): faults injected into a real node ([`BusNode`]: redis,
//! imagebusd, runc, loop devices, overlayfs; Ceph for one row), each for a number of
//! rounds, counting what was lost, duplicated and leaked (kernel-checked, see
//! [`ledger`]). Run by the `fault-matrix` binary (`scripts/fault-matrix.sh`, every row)
//! and by `tests/tests/fault_matrix.rs` (every row without Ceph, one round).
//!
//! [`BusNode`]: crate::bus_node::BusNode

pub mod ledger;
pub mod machine;
mod rows_daemon;
mod rows_kill;

use ledger::Tally;
use std::fmt::Write as _;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// `kill -9` of imagebusd amid concurrent container, mount and attach creates.
    KillCreates,
    /// `kill -9` of imagebusd amid concurrent deletes.
    KillDeletes,
    /// `kill -9` of imagebusd amid rbd attaches on the rbd-fuse path (needs Ceph).
    KillRbdAttach,
    /// redis-server killed (and started again empty) with calls in flight.
    RedisKill,
    /// A container's `imagebus-monitor` killed.
    MonitorKill,
    /// The state directory is a full tmpfs.
    DiskFull,
    /// A container's `record.json` cut in half while the daemon is down.
    TruncatedState,
}

impl Row {
    /// Every row, in table order.
    pub const ALL: [Row; 7] = [
        Row::KillCreates,
        Row::KillDeletes,
        Row::KillRbdAttach,
        Row::RedisKill,
        Row::MonitorKill,
        Row::DiskFull,
        Row::TruncatedState,
    ];

    /// The name used on the command line and in the table.
    pub fn key(self) -> &'static str {
        match self {
            Row::KillCreates => "kill-creates",
            Row::KillDeletes => "kill-deletes",
            Row::KillRbdAttach => "kill-rbd-attach",
            Row::RedisKill => "redis-kill",
            Row::MonitorKill => "monitor-kill",
            Row::DiskFull => "disk-full",
            Row::TruncatedState => "truncated-state",
        }
    }

    /// The row named `key`.
    pub fn parse(key: &str) -> Option<Row> {
        Row::ALL.into_iter().find(|r| r.key() == key)
    }

    /// Whether the row needs the Ceph test cluster.
    pub fn needs_ceph(self) -> bool {
        self == Row::KillRbdAttach
    }
}

/// What one row measured.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The row.
    pub row: Row,
    /// Rounds completed.
    pub rounds: usize,
    /// Whether the row ran to its end (false: it could not run, see the notes).
    pub ran: bool,
    /// The counts.
    pub tally: Tally,
}

impl RowResult {
    /// Ran to its end with zero in every cell.
    pub fn clean(&self) -> bool {
        self.ran && self.tally.lost == 0 && self.tally.duplicated == 0 && self.tally.leaked == 0
    }
}

/// Runs `row` for `rounds` rounds on a fresh node; a panic (a fixture that could not
/// start, a call that failed where it must not) ends the row as not run, with the message.
/// Once the row ended and its node is gone, anything of the row still on the machine —
/// a loop device, FUSE mount or rbd-fuse process told by the row's names, wherever its
/// path shows — is counted as leaked too.
pub fn run(row: Row, rounds: usize) -> RowResult {
    let names = machine::Names::of(row.key());
    let before = machine::Machine::take();
    let mut tally = Tally::default();
    let mut done = 0usize;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        rt.block_on(async {
            match row {
                Row::KillCreates => rows_kill::kill_creates(&mut tally, &mut done, rounds).await,
                Row::KillDeletes => rows_kill::kill_deletes(&mut tally, &mut done, rounds).await,
                Row::KillRbdAttach => rows_kill::kill_rbd(&mut tally, &mut done, rounds).await,
                Row::RedisKill => rows_daemon::redis_kill(&mut tally, &mut done, rounds).await,
                Row::MonitorKill => rows_daemon::monitor_kill(&mut tally, &mut done, rounds).await,
                Row::DiskFull => rows_daemon::disk_full(&mut tally, &mut done, rounds).await,
                Row::TruncatedState => rows_daemon::truncated(&mut tally, &mut done, rounds).await,
            }
        });
    }));
    let ran = match outcome {
        Ok(()) => true,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            let first: String = msg.lines().take(3).collect::<Vec<_>>().join(" / ");
            tally.notes.push(format!("COULD NOT RUN: {first}"));
            false
        }
    };
    // Autoclear loop devices and killed rbd-fuse processes take a moment to go.
    crate::daemon::wait_until(std::time::Duration::from_secs(20), || {
        machine::Machine::take().of(&names).is_empty()
    });
    let after = machine::Machine::take();
    let left = after.of(&names);
    tally.leaks(
        left.into_iter()
            .map(|l| format!("{l} after the row ended"))
            .collect(),
    );
    let others = after.others_since(&before, &names);
    if others > 0 {
        tally.notes.push(format!(
            "{others} loop devices, FUSE mounts or rbd-fuse processes of other processes appeared meanwhile"
        ));
    }
    RowResult {
        row,
        rounds: done,
        ran,
        tally,
    }
}

/// The table: fault | rounds | lost | duplicated | leaked | notes.
pub fn table(results: &[RowResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {:<16} | {:>6} | {:>4} | {:>10} | {:>6} | notes",
        "fault", "rounds", "lost", "duplicated", "leaked"
    );
    let _ = writeln!(
        s,
        "|{:-<18}|{:->8}|{:->6}|{:->12}|{:->8}|------",
        "", "", "", "", ""
    );
    for r in results {
        let mut notes = r.tally.notes.clone();
        if r.ran && notes.is_empty() {
            notes.push("ok".into());
        }
        let _ = writeln!(
            s,
            "| {:<16} | {:>6} | {:>4} | {:>10} | {:>6} | {}",
            r.row.key(),
            r.rounds,
            r.tally.lost,
            r.tally.duplicated,
            r.tally.leaked,
            notes.join("; ")
        );
    }
    s
}
