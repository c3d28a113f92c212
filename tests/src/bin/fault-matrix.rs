//! `fault-matrix [--rounds N] [--rows a,b,…]`: runs the fault matrix (issue 10) on real
//! parts and prints the table fault | rounds | lost | duplicated | leaked | notes. Exits
//! 1 if any cell is non-zero or a row could not run (the Ceph row without a cluster
//! included), 2 on bad arguments. Rows: kill-creates, kill-deletes, kill-rbd-attach,
//! redis-kill, monitor-kill, disk-full, truncated-state. Root.

use imagebus_tests::fault_matrix::{run, table, Row};
use std::process::ExitCode;

fn usage(msg: &str) -> ExitCode {
    let rows: Vec<&str> = Row::ALL.iter().map(|r| r.key()).collect();
    eprintln!(
        "fault-matrix: {msg}\nusage: fault-matrix [--rounds N] [--rows {}]",
        rows.join(",")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut rounds = 3usize;
    let mut rows: Vec<Row> = Row::ALL.to_vec();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => rounds = n,
                _ => return usage("--rounds needs a positive number"),
            },
            "--rows" => {
                let Some(list) = args.next() else {
                    return usage("--rows needs a list");
                };
                let mut picked = Vec::new();
                for key in list.split(',').filter(|k| !k.is_empty()) {
                    match Row::parse(key) {
                        Some(r) => picked.push(r),
                        None => return usage(&format!("unknown row {key:?}")),
                    }
                }
                if picked.is_empty() {
                    return usage("--rows is empty");
                }
                rows = picked;
            }
            "-h" | "--help" => {
                usage("help");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let mut results = Vec::new();
    for row in rows {
        eprintln!("fault-matrix: {} ({rounds} rounds)…", row.key());
        let r = run(row, rounds);
        eprintln!("{}", table(std::slice::from_ref(&r)));
        results.push(r);
    }
    println!("{}", table(&results));
    if results.iter().all(|r| r.clean()) {
        println!("fault-matrix: every row 0 lost, 0 duplicated, 0 leaked");
        ExitCode::SUCCESS
    } else {
        let bad: Vec<&str> = results
            .iter()
            .filter(|r| !r.clean())
            .map(|r| r.row.key())
            .collect();
        println!("fault-matrix: FAILED rows: {}", bad.join(", "));
        ExitCode::from(1)
    }
}
