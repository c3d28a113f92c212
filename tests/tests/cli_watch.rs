//! `imagebus watch`: events as JSON lines.

use imagebus_tests::daemon::Daemon;
use imagebus_tests::redis::RedisFixture;

#[test]
fn watch_prints_count_events_as_json_lines() {
    let redis = RedisFixture::start();
    let d = Daemon::start(&redis.url());
    let started = std::time::Instant::now();
    let out = d.cli(&["watch", "imagebus", "system@1", "Heartbeat", "--count", "3"]);
    assert!(out.status.success(), "{out:?}");
    let beats: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(beats.len(), 3, "{out:?}");
    for pair in beats.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64().unwrap(),
            pair[0]["seq"].as_u64().unwrap() + 1
        );
    }
    assert!(beats.iter().all(|b| b["pid"] == d.pid()));
    // 200 ms heartbeat: three events arrive well within the test's patience.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
