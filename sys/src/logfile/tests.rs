use super::*;

fn want() -> Want {
    Want::default()
}

fn lines(p: &Piece) -> Vec<String> {
    p.entries.iter().map(|e| e.line.clone()).collect()
}

fn files_of(log: &Path) -> usize {
    all_files(log).iter().filter(|p| p.exists()).count()
}

#[test]
fn a_legacy_log_reads_by_tail_offset_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.log");
    assert_eq!(read(&p, &want()).unwrap(), Piece::default());
    std::fs::write(&p, "a\nbb\nccc\n").unwrap();
    assert_eq!(lines(&read(&p, &want()).unwrap()), ["a", "bb", "ccc"]);
    let tail = |n| Want {
        tail: Some(n),
        ..want()
    };
    assert_eq!(lines(&read(&p, &tail(2)).unwrap()), ["bb", "ccc"]);
    assert_eq!(lines(&read(&p, &tail(9)).unwrap()), ["a", "bb", "ccc"]);
    assert!(read(&p, &tail(0)).unwrap().entries.is_empty());
    let from = |o| Want {
        offset: Some(o),
        ..want()
    };
    let piece = read(&p, &from(2)).unwrap();
    assert_eq!(
        (lines(&piece), piece.offset),
        (vec!["bb".into(), "ccc".into()], 9)
    );
    assert_eq!(read(&p, &tail(1)).unwrap().offset, 9);
    // Legacy lines have no time and no stream.
    let e = &read(&p, &tail(1)).unwrap().entries[0];
    assert_eq!((e.time_ns, e.stream), (None, None));
    // An unfinished last line waits for its end.
    std::fs::write(&p, "a\nbb\nccc\nd").unwrap();
    assert_eq!(lines(&read(&p, &tail(1)).unwrap()), ["ccc"]);
    assert!(read(&p, &from(9)).unwrap().entries.is_empty());
    // Past the end (the old cap truncated it): from the start.
    std::fs::write(&p, "new\n").unwrap();
    let piece = read(&p, &from(1000)).unwrap();
    assert_eq!((lines(&piece), piece.offset), (vec!["new".into()], 4));
}

#[test]
fn records_carry_a_time_that_never_decreases_and_their_stream() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.log");
    let mut w = Writer::open(&p, None, 2).unwrap();
    w.write(Stream::Stdout, b"one", 100).unwrap();
    w.write(Stream::Stderr, b"two \"quoted\" \xff", 50).unwrap();
    w.write(Stream::Stdout, b"three", 300).unwrap();
    let all = read(&p, &want()).unwrap();
    let times: Vec<_> = all.entries.iter().map(|e| e.time_ns.unwrap()).collect();
    assert_eq!(times, [100, 100, 300], "the clock going back does not show");
    assert_eq!(all.entries[1].line, "two \"quoted\" \u{fffd}");
    assert_eq!(all.entries[1].stream, Some(Stream::Stderr));
    let only = |s| Want {
        stream: Some(s),
        ..want()
    };
    assert_eq!(
        lines(&read(&p, &only(Stream::Stdout)).unwrap()),
        ["one", "three"]
    );
    assert_eq!(lines(&read(&p, &only(Stream::Stderr)).unwrap()).len(), 1);
    let window = Want {
        since_ns: Some(100),
        until_ns: Some(299),
        ..want()
    };
    assert_eq!(read(&p, &window).unwrap().entries.len(), 2);
    let last = Want {
        tail: Some(1),
        stream: Some(Stream::Stderr),
        ..want()
    };
    assert_eq!(
        lines(&read(&p, &last).unwrap()),
        ["two \"quoted\" \u{fffd}"]
    );
    // A new writer (the next run's monitor) continues the same file.
    drop(w);
    let mut w = Writer::open(&p, None, 2).unwrap();
    w.write(Stream::Stdout, b"four", 400).unwrap();
    assert_eq!(
        lines(&read(&p, &want()).unwrap()),
        ["one", "two \"quoted\" \u{fffd}", "three", "four"]
    );
    assert_eq!(files_of(&p), 1);
}

#[test]
fn rotation_keeps_the_count_and_a_follower_reads_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.log");
    let mut w = Writer::open(&p, Some(300), 3).unwrap();
    let mut pos = read(&p, &want()).unwrap().offset;
    let mut got = Vec::new();
    for i in 0..200u64 {
        w.write(Stream::Stdout, format!("line-{i}").as_bytes(), i)
            .unwrap();
        assert!(files_of(&p) <= 3, "at most 3 files");
        if i % 7 == 6 {
            // A follower behind by a few lines, across rotations.
            let piece = read(
                &p,
                &Want {
                    offset: Some(pos),
                    ..want()
                },
            )
            .unwrap();
            got.extend(lines(&piece));
            pos = piece.offset;
        }
    }
    loop {
        let piece = read(
            &p,
            &Want {
                offset: Some(pos),
                ..want()
            },
        )
        .unwrap();
        if piece.entries.is_empty() {
            break;
        }
        got.extend(lines(&piece));
        pos = piece.offset;
    }
    let expected: Vec<String> = (0..200).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, expected);
    assert_eq!(files_of(&p), 3);
    // tail reads across the files.
    let t = read(
        &p,
        &Want {
            tail: Some(5),
            ..want()
        },
    )
    .unwrap();
    assert_eq!(lines(&t), expected[195..].to_vec());
    // With one file, rotation only starts the file again.
    let q = dir.path().join("one.log");
    let mut w = Writer::open(&q, Some(100), 1).unwrap();
    for i in 0..20 {
        w.write(Stream::Stdout, format!("x{i}").as_bytes(), 1)
            .unwrap();
    }
    assert_eq!(files_of(&q), 1);
    assert_eq!(
        lines(
            &read(
                &q,
                &Want {
                    tail: Some(1),
                    ..want()
                }
            )
            .unwrap()
        ),
        ["x19"]
    );
}

#[test]
fn a_legacy_log_is_rotated_out_and_stays_readable_before_the_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.log");
    // What the old cap left: an older part in `.1`, and the log.
    std::fs::write(rotated(&p, 1), "old-1\nold-2\n").unwrap();
    std::fs::write(&p, "old-3\n").unwrap();
    let mut w = Writer::open(&p, None, 5).unwrap();
    w.write(Stream::Stderr, b"new", 7).unwrap();
    let all = read(&p, &want()).unwrap();
    assert_eq!(lines(&all), ["old-1", "old-2", "old-3", "new"]);
    assert_eq!(all.entries[3].stream, Some(Stream::Stderr));
    // Positions run on: a follower that had read the old log to its end goes on.
    let piece = read(
        &p,
        &Want {
            offset: Some(18),
            ..want()
        },
    )
    .unwrap();
    assert_eq!(lines(&piece), ["new"]);
    assert_eq!(files_of(&p), 3);
}

#[test]
fn long_unfinished_and_huge_legacy_lines_still_progress() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.log");
    let big = "y".repeat(100);
    std::fs::write(&p, format!("{big}\nz\n")).unwrap();
    let piece = read(
        &p,
        &Want {
            offset: Some(0),
            ..want()
        },
    )
    .unwrap();
    assert_eq!(lines(&piece), [big.clone(), "z".into()]);
    // A window smaller than a legacy line: the line comes in parts, never stalls.
    let mut pos = 0;
    let mut text = String::new();
    for _ in 0..40 {
        let piece = read(
            &p,
            &Want {
                offset: Some(pos),
                max_bytes: Some(1),
                ..want()
            },
        )
        .unwrap();
        if piece.offset == pos {
            break;
        }
        pos = piece.offset;
        for e in piece.entries {
            text.push_str(&e.line);
        }
    }
    assert!(text.ends_with('z'), "{text}");
}
