//! How results and failures are printed.

use imagebus_bus::{ErrorCode, RemoteError};
use serde_json::Value as Json;
use std::io::Write;

/// Prints one JSON document: compact with `--json`, pretty otherwise.
pub fn print_json(value: &Json, json: bool) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string(value)?
    } else {
        serde_json::to_string_pretty(value)?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    out.flush()?;
    Ok(())
}

/// Prints any serializable value as JSON (pretty, or compact with `--json`).
pub fn print_value<T: serde::Serialize>(value: &T, json: bool) -> anyhow::Result<()> {
    print_json(&serde_json::to_value(value)?, json)
}

/// Parses a JSON request body given on the command line into a typed spec: the JSON
/// itself, `@FILE` to read it from a file, or `-` for standard input (so that secrets such
/// as Ceph keys stay out of the process list and shell history). A bad body is
/// `InvalidArgument`, checked here before anything is sent.
pub fn parse_spec<T: serde::de::DeserializeOwned>(what: &str, arg: &str) -> Result<T, RemoteError> {
    let text = if arg == "-" {
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
            .map_err(|e| RemoteError::invalid_argument(format!("{what}: reading stdin: {e}")))?;
        buf
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path)
            .map_err(|e| RemoteError::invalid_argument(format!("{what}: reading {path}: {e}")))?
    } else {
        arg.to_string()
    };
    serde_json::from_str(&text)
        .map_err(|e| RemoteError::invalid_argument(format!("{what} is not a valid spec: {e}")))
}

/// The one-line error text: `<Code>: <message>` for bus errors found anywhere in the chain,
/// else the error and its causes joined by ": ".
pub fn error_line(err: &anyhow::Error) -> String {
    if let Some(remote) = err.chain().find_map(|e| e.downcast_ref::<RemoteError>()) {
        return format!("{}: {}", remote.code, one_line(&remote.message));
    }
    one_line(&format!("{err:#}"))
}

/// Process exit status for a failure: 1 for errors the server or bus reported, 3 for a
/// timeout, 4 when the broker or module is unavailable (clap uses 2 for usage errors).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    match err
        .chain()
        .find_map(|e| e.downcast_ref::<RemoteError>())
        .map(|r| r.code)
    {
        Some(ErrorCode::Timeout) => 3,
        Some(ErrorCode::Unavailable) => 4,
        _ => 1,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_come_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("spec.json");
        std::fs::write(&f, r#"{"a": 1}"#).unwrap();
        let v: serde_json::Value = parse_spec("--spec", &format!("@{}", f.display())).unwrap();
        assert_eq!(v["a"], 1);
        let v: serde_json::Value = parse_spec("--spec", r#"{"b": 2}"#).unwrap();
        assert_eq!(v["b"], 2);
        let e = parse_spec::<serde_json::Value>("--spec", "@/nonexistent/x").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(
            e.message.contains("reading /nonexistent/x"),
            "{}",
            e.message
        );
    }

    /// docs/operations.md's exit-status table says which status each error code gives:
    /// a row naming a code in backticks is that code's status, and every code it does not
    /// name gives the row saying "any error code other than". Drift fails here.
    #[test]
    fn operations_md_exit_status_table_matches_exit_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let start = doc
            .find("| status | meaning |")
            .expect("the exit-status table");
        let rows: Vec<(String, String)> = doc[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                (cells[0].to_string(), cells[1..].join("|"))
            })
            .collect();
        let statuses: Vec<&str> = rows.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(statuses, ["0", "1", "2", "3", "4", "N"], "{rows:?}");
        let other = rows
            .iter()
            .find(|(_, m)| m.contains("any error code other than"))
            .map(|(s, _)| s.parse::<u8>().unwrap())
            .expect("a row for the other codes");
        for code in ErrorCode::ALL {
            let named = rows
                .iter()
                .find(|(_, m)| m.contains(&format!("`{code}`")))
                .map(|(s, _)| s.parse::<u8>().unwrap());
            let e = anyhow::Error::new(RemoteError::new(code, "x"));
            assert_eq!(
                exit_code(&e),
                named.unwrap_or(other),
                "{code}: docs/operations.md's exit-status table disagrees with exit_code"
            );
        }
    }

    #[test]
    fn remote_errors_print_their_code() {
        let e = anyhow::Error::new(RemoteError::not_found("no\nsuch thing")).context("calling x");
        assert_eq!(error_line(&e), "NotFound: no such thing");
        assert_eq!(exit_code(&e), 1);
        let t = anyhow::Error::new(RemoteError::timeout("late"));
        assert_eq!(exit_code(&t), 3);
        assert_eq!(
            error_line(&anyhow::anyhow!("plain").context("ctx")),
            "ctx: plain"
        );
    }
}
