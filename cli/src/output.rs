//! How results and failures are printed.

use imagebus_bus::{ErrorCode, RemoteError};
use serde_json::Value as Json;
use std::io::Write;

/// Prints one JSON document: compact with `--json`, pretty otherwise. Timestamps are
/// milliseconds (`_ms`) with `--json`, RFC 3339 otherwise (see [`crate::time`]).
pub fn print_json(value: &Json, json: bool) -> anyhow::Result<()> {
    let mut value = value.clone();
    crate::time::normalize(&mut value, json);
    print_raw_json(&value, json)
}

/// Prints one JSON document as it is (compact with `--json`, pretty otherwise): for the
/// generic `call` and `watch`, whose results are whatever the peer sent.
pub fn print_raw_json(value: &Json, json: bool) -> anyhow::Result<()> {
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

/// The bus error in `err`'s chain, if any.
fn remote(err: &anyhow::Error) -> Option<&RemoteError> {
    err.chain().find_map(|e| e.downcast_ref::<RemoteError>())
}

/// The one-line error text: `<Code>: <message>` for bus errors found anywhere in the chain,
/// else the error and its causes joined by ": ".
pub fn error_line(err: &anyhow::Error) -> String {
    if let Some(remote) = remote(err) {
        return format!("{}: {}", remote.code, one_line(&remote.message));
    }
    one_line(&format!("{err:#}"))
}

/// What a failure was, by its exit status (docs/operations.md, "Exit status").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 1: the module reported a failure not listed below, or a local failure.
    Failed = 1,
    /// 2: bad flags or arguments (clap, the CLI's own checks, or `InvalidArgument`).
    Usage = 2,
    /// 3: no imagebusd serves the module.
    DaemonUnreachable = 3,
    /// 4: the CLI could not reach the broker.
    BrokerUnreachable = 4,
    /// 5: `NotFound`.
    NotFound = 5,
    /// 6: `Conflict`.
    Conflict = 6,
    /// 7: `Timeout` of a request a server took (or a timeout the module reported).
    Timeout = 7,
}

/// What `err` was.
pub fn failure(err: &anyhow::Error) -> Failure {
    let Some(r) = remote(err) else {
        return Failure::Failed;
    };
    if imagebus_bus::presence::is_not_served(r) {
        return Failure::DaemonUnreachable;
    }
    if imagebus_bus::presence::is_broker_failure(r) {
        return Failure::BrokerUnreachable;
    }
    match r.code {
        ErrorCode::InvalidArgument => Failure::Usage,
        ErrorCode::NotFound => Failure::NotFound,
        ErrorCode::Conflict => Failure::Conflict,
        ErrorCode::Timeout => Failure::Timeout,
        _ => Failure::Failed,
    }
}

/// Process exit status for a failure (see [`Failure`]).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    failure(err) as u8
}

/// The `--json` form of a failure: `{"error":{"code":…,"message":…,"exit":N}}`. `code` is
/// the bus error code (`Internal` for a local failure without one).
pub fn error_json(err: &anyhow::Error) -> Json {
    let (code, message) = match remote(err) {
        Some(r) => (r.code, one_line(&r.message)),
        None => (ErrorCode::Internal, one_line(&format!("{err:#}"))),
    };
    serde_json::json!({
        "error": { "code": code.as_str(), "message": message, "exit": exit_code(err) }
    })
}

/// Reports a failure (stderr line, or the JSON document on stdout with `--json`) and
/// returns its exit status.
pub fn report(err: &anyhow::Error, json: bool) -> u8 {
    if json {
        let _ = writeln!(std::io::stdout(), "{}", error_json(err));
    } else {
        let _ = writeln!(std::io::stderr(), "error: {}", error_line(err));
    }
    exit_code(err)
}

/// Reports a usage error clap found: clap's own text, or with `--json` anywhere on the
/// command line the JSON error document (code `InvalidArgument`, exit 2). Help and
/// version requests print as usual.
pub fn usage_error(e: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    let asks = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if asks || !std::env::args().any(|a| a == "--json") {
        e.exit()
    }
    let text = e.to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let doc = serde_json::json!({
        "error": { "code": "InvalidArgument", "message": message, "exit": 2 }
    });
    let _ = writeln!(std::io::stdout(), "{doc}");
    std::process::exit(2)
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

    /// docs/operations.md's exit-status table: its statuses are 0..=7 and N, every error
    /// code's status is a row naming it in backticks, and the local causes (daemon and
    /// broker unreachable) have the rows their errors give. Drift fails here.
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
        assert_eq!(
            statuses,
            ["0", "1", "2", "3", "4", "5", "6", "7", "N"],
            "{rows:?}"
        );
        let row = |status: u8| rows[usize::from(status)].1.clone();
        for code in ErrorCode::ALL {
            let e = anyhow::Error::new(RemoteError::new(code, "x"));
            let status = exit_code(&e);
            assert!(
                row(status).contains(&format!("`{code}`")),
                "{code} exits {status}: docs/operations.md's row {status} must name it"
            );
        }
        let not_served = anyhow::Error::new(imagebus_bus::presence::not_served("m"));
        assert_eq!(exit_code(&not_served), 3);
        assert!(row(3).contains("no imagebusd serves module"), "{}", row(3));
        let broker = anyhow::Error::new(RemoteError::unavailable(
            "redis at unix:///x: connection refused",
        ));
        assert_eq!(exit_code(&broker), 4);
        assert!(row(4).contains("broker"), "{}", row(4));
        assert!(row(2).contains("usage"), "{}", row(2));
    }

    #[test]
    fn remote_errors_print_their_code() {
        let e = anyhow::Error::new(RemoteError::not_found("no\nsuch thing")).context("calling x");
        assert_eq!(error_line(&e), "NotFound: no such thing");
        assert_eq!(exit_code(&e), 5);
        let t = anyhow::Error::new(RemoteError::timeout("late"));
        assert_eq!(exit_code(&t), 7);
        let j = error_json(&e);
        assert_eq!(j["error"]["code"], "NotFound");
        assert_eq!(j["error"]["message"], "no such thing");
        assert_eq!(j["error"]["exit"], 5);
        assert_eq!(
            error_line(&anyhow::anyhow!("plain").context("ctx")),
            "ctx: plain"
        );
    }
}
