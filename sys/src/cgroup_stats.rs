//! Resource counters of a container: its cgroup's files (v1 and v2, told apart by file
//! name, so hybrid hosts work too) and its network namespace's `/proc/<pid>/net/dev`.

use std::path::{Path, PathBuf};

/// What a container's cgroup says about it. `None`: the file is missing (controller not
/// mounted, cgroup gone) or unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time used, nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec`).
    pub cpu_usage_ns: Option<u64>,
    /// Memory in use, bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage_bytes: Option<u64>,
    /// Memory limit, bytes; `None` when unlimited (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub memory_limit_bytes: Option<u64>,
    /// Highest memory use seen, bytes (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    pub memory_peak_bytes: Option<u64>,
    /// Processes the OOM killer killed in the cgroup (`oom_kill` of v1
    /// `memory.oom_control`, v2 `memory.events`).
    pub oom_kills: Option<u64>,
    /// Tasks in the cgroup (`pids.current`).
    pub pids_current: Option<u64>,
    /// Task limit; `None` when unlimited (`pids.max`).
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices (v1 `blkio.throttle.io_service_bytes`, v2 `io.stat`).
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    pub io_write_bytes: Option<u64>,
}

/// Network counters of a namespace, summed over its interfaces except `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// v1 reports "unlimited" as a huge page-rounded number.
const V1_UNLIMITED: u64 = 1 << 62;

/// Reads the stats of cgroup `rel` (e.g. `/imagebus/c-7`) below every hierarchy in
/// `hierarchies`; the first hierarchy holding a file wins.
pub fn read_stats(hierarchies: &[PathBuf], rel: &str) -> CgroupStats {
    let rel = rel.trim_start_matches('/');
    let dirs: Vec<PathBuf> = hierarchies
        .iter()
        .map(|h| h.join(rel))
        .filter(|d| d.is_dir())
        .collect();
    let file = |name: &str| dirs.iter().find_map(|d| read(&d.join(name)));
    let num = |name: &str| file(name).and_then(|s| s.trim().parse::<u64>().ok());
    let limit = |name: &str| file(name).and_then(|s| parse_limit(&s));
    let mut st = CgroupStats {
        cpu_usage_ns: num("cpuacct.usage").or_else(|| {
            file("cpu.stat")
                .and_then(|s| keyed(&s, "usage_usec"))
                .map(|us| us.saturating_mul(1000))
        }),
        memory_usage_bytes: num("memory.usage_in_bytes").or_else(|| num("memory.current")),
        memory_limit_bytes: limit("memory.limit_in_bytes").or_else(|| limit("memory.max")),
        memory_peak_bytes: num("memory.max_usage_in_bytes").or_else(|| num("memory.peak")),
        oom_kills: file("memory.oom_control")
            .or_else(|| file("memory.events"))
            .and_then(|s| keyed(&s, "oom_kill")),
        pids_current: num("pids.current"),
        pids_limit: limit("pids.max"),
        ..CgroupStats::default()
    };
    if let Some(s) = file("blkio.throttle.io_service_bytes") {
        let (r, w) = parse_blkio_v1(&s);
        (st.io_read_bytes, st.io_write_bytes) = (Some(r), Some(w));
    } else if let Some(s) = file("io.stat") {
        let (r, w) = parse_io_stat_v2(&s);
        (st.io_read_bytes, st.io_write_bytes) = (Some(r), Some(w));
    }
    st
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// A limit file: a number, `max` (v2) or v1's huge "unlimited" number give `None`.
fn parse_limit(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok().filter(|v| *v < V1_UNLIMITED)
}

/// The value of `key` in a flat-keyed file (`key value` per line).
pub fn keyed(s: &str, key: &str) -> Option<u64> {
    s.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v1 `blkio.throttle.io_service_bytes`: `MAJ:MIN Read N` lines, summed over devices.
pub fn parse_blkio_v1(s: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, n] = f[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => r = r.saturating_add(n),
                "Write" => w = w.saturating_add(n),
                _ => {}
            }
        }
    }
    (r, w)
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N ...` lines, summed over devices.
pub fn parse_io_stat_v2(s: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for kv in s.split_whitespace() {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let n: u64 = v.parse().unwrap_or(0);
        match k {
            "rbytes" => r = r.saturating_add(n),
            "wbytes" => w = w.saturating_add(n),
            _ => {}
        }
    }
    (r, w)
}

/// `/proc/<pid>/net/dev`, summed over the interfaces except `lo`.
pub fn parse_net_dev(s: &str) -> NetCounters {
    let mut c = NetCounters::default();
    for l in s.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() < 10 {
            continue;
        }
        c.rx_bytes = c.rx_bytes.saturating_add(f[0]);
        c.rx_packets = c.rx_packets.saturating_add(f[1]);
        c.tx_bytes = c.tx_bytes.saturating_add(f[8]);
        c.tx_packets = c.tx_packets.saturating_add(f[9]);
    }
    c
}

/// The network counters of the namespace `pid` is in; `None` if it is gone.
pub fn read_net_dev(pid: u32) -> Option<NetCounters> {
    read(Path::new(&format!("/proc/{pid}/net/dev"))).map(|s| parse_net_dev(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_counter_files() {
        assert_eq!(
            keyed("oom 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
            Some(3)
        );
        assert_eq!(keyed("low 0\noom 1\noom_kill 2\n", "oom"), Some(1));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("33554432\n"), Some(32 << 20));
        let v1 = "8:0 Read 100\n8:0 Write 20\n8:0 Total 120\n8:16 Read 1\nTotal 121\n";
        assert_eq!(parse_blkio_v1(v1), (101, 20));
        let v2 = "8:0 rbytes=10 wbytes=5 rios=1 wios=1\n8:16 rbytes=1 wbytes=2 rios=1\n";
        assert_eq!(parse_io_stat_v2(v2), (11, 7));
        let dev = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    5000      10    0    0    0     0          0         0     3000       7    0    0    0     0       0          0
";
        let c = parse_net_dev(dev);
        assert_eq!(
            (c.rx_bytes, c.rx_packets, c.tx_bytes, c.tx_packets),
            (5000, 10, 3000, 7)
        );
    }

    #[test]
    fn reads_v1_and_v2_directories() {
        let d = tempfile::tempdir().unwrap();
        let v1 = d.path().join("memory/imagebus/c-1");
        let pids = d.path().join("pids/imagebus/c-1");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&pids).unwrap();
        std::fs::write(v1.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "33554432\n").unwrap();
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(pids.join("pids.current"), "3\n").unwrap();
        std::fs::write(pids.join("pids.max"), "max\n").unwrap();
        let h = [d.path().join("memory"), d.path().join("pids")];
        let s = read_stats(&h, "/imagebus/c-1");
        assert_eq!(s.memory_usage_bytes, Some(4096));
        assert_eq!(s.memory_limit_bytes, Some(32 << 20));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!((s.pids_current, s.pids_limit), (Some(3), None));
        assert_eq!(s.cpu_usage_ns, None);

        let v2 = d.path().join("unified/imagebus/c-2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.current"), "8192\n").unwrap();
        std::fs::write(v2.join("memory.max"), "max\n").unwrap();
        std::fs::write(v2.join("memory.peak"), "9000\n").unwrap();
        std::fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n").unwrap();
        std::fs::write(v2.join("pids.max"), "64\n").unwrap();
        std::fs::write(v2.join("io.stat"), "8:0 rbytes=3 wbytes=4\n").unwrap();
        let s = read_stats(&[d.path().join("unified")], "/imagebus/c-2");
        assert_eq!(s.memory_usage_bytes, Some(8192));
        assert_eq!(s.memory_limit_bytes, None);
        assert_eq!(s.memory_peak_bytes, Some(9000));
        assert_eq!(s.oom_kills, Some(2));
        assert_eq!(s.cpu_usage_ns, Some(7000));
        assert_eq!(s.pids_limit, Some(64));
        assert_eq!((s.io_read_bytes, s.io_write_bytes), (Some(3), Some(4)));
        assert_eq!(
            read_stats(&[d.path().join("unified")], "/imagebus/none"),
            CgroupStats::default()
        );
    }
}
