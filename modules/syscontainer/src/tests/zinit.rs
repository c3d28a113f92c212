//! The zinit client against two socket peers that follow zinit's documented behaviour:
//! a legacy one (zinit ≤ 0.2.14: one `<cmd> <args>` line per connection, answered with
//! `{"state","body"}` and closed; anything else is `unknown command`) and a JSON-RPC one
//! (zinit ≥ 0.2.15: `service_*` methods, error codes -32000…-32008, the connection kept
//! open after the answer, a non-JSON line answered with -32700). Both keep zinit's
//! service table: `monitor` loads `<dir>/NAME.yaml` and starts it, `forget` refuses a
//! service that is up, `stop` of an unknown service is not found.

use crate::engine::zinit::{Protocol, Zinit, ZinitError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// zinit's service table: name → up.
#[derive(Default)]
struct Table {
    services: BTreeMap<String, bool>,
    seen: Vec<String>,
}

/// What zinit does for one command: `Ok(result)` or `Err((rpc code, legacy message))`.
fn apply(t: &mut Table, dir: &Path, cmd: &str, name: &str) -> Result<Value, (i64, String)> {
    let known = t.services.get(name).copied();
    match (cmd, known) {
        ("list", _) => Ok(json!(t
            .services
            .iter()
            .map(|(k, up)| (k.clone(), if *up { "Running" } else { "Success" }))
            .collect::<BTreeMap<_, _>>())),
        ("monitor", Some(_)) => Err((-32001, format!("service {name:?} already monitored"))),
        ("monitor", None) if !dir.join(format!("{name}.yaml")).is_file() => {
            Err((-32005, "failed to load service config".into()))
        }
        ("monitor", None) => {
            t.services.insert(name.into(), true);
            Ok(Value::Null)
        }
        (_, None) => Err((-32000, format!("service name {name:?} unknown"))),
        ("start", Some(_)) => {
            t.services.insert(name.into(), true);
            Ok(Value::Null)
        }
        ("stop", Some(_)) => {
            t.services.insert(name.into(), false);
            Ok(Value::Null)
        }
        ("forget", Some(true)) => Err((-32002, "service is up".into())),
        ("forget", Some(false)) => {
            t.services.remove(name);
            Ok(Value::Null)
        }
        ("status", Some(up)) => Ok(json!({"name": name, "pid": if up { 42 } else { 0 },
            "state": if up { "Running" } else { "Success" },
            "target": if up { "Up" } else { "Down" }, "after": {}})),
        _ => Err((
            -32601,
            format!("unknown command '{cmd}' or wrong arguments count"),
        )),
    }
}

/// A zinit peer on `sock`, speaking `protocol`, loading units from `dir`.
fn serve(protocol: Protocol, sock: &Path, dir: PathBuf) -> Arc<Mutex<Table>> {
    let table = Arc::new(Mutex::new(Table::default()));
    let listener = tokio::net::UnixListener::bind(sock).unwrap();
    let t = table.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let (t, dir) = (t.clone(), dir.clone());
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                // A JSON-RPC zinit serves several requests on one connection.
                while let Ok(Some(line)) = lines.next_line().await {
                    t.lock().unwrap().seen.push(line.clone());
                    let answer = match protocol {
                        Protocol::Legacy => legacy(&t, &dir, &line),
                        Protocol::JsonRpc => rpc(&t, &dir, &line),
                    };
                    if protocol == Protocol::Legacy {
                        w.write_all(answer.as_bytes()).await.unwrap();
                        return; // closed after one answer
                    }
                    // In two writes, the connection left open: the client reads until the
                    // JSON is whole, not until EOF.
                    let (head, tail) = answer.split_at(answer.len() / 2);
                    w.write_all(head.as_bytes()).await.unwrap();
                    w.flush().await.unwrap();
                    tokio::task::yield_now().await;
                    w.write_all(format!("{tail}\n").as_bytes()).await.unwrap();
                }
            });
        }
    });
    table
}

fn legacy(t: &Mutex<Table>, dir: &Path, line: &str) -> String {
    let parts: Vec<&str> = line.split_whitespace().collect();
    let r = match parts.as_slice() {
        ["list"] => apply(&mut t.lock().unwrap(), dir, "list", ""),
        [cmd @ ("monitor" | "start" | "stop" | "forget" | "status"), name] => {
            apply(&mut t.lock().unwrap(), dir, cmd, name)
        }
        _ => Err((
            0,
            format!(
                "unknown command '{}' or wrong arguments count",
                parts.first().unwrap_or(&"")
            ),
        )),
    };
    match r {
        Ok(body) => json!({"state": "ok", "body": body}).to_string(),
        Err((_, msg)) => json!({"state": "error", "body": msg}).to_string(),
    }
}

fn rpc(t: &Mutex<Table>, dir: &Path, line: &str) -> String {
    let Ok(req) = serde_json::from_str::<Value>(line) else {
        return json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": "Parse error"}})
        .to_string();
    };
    let id = req["id"].clone();
    let method = req["method"].as_str().unwrap_or_default();
    let name = req["params"][0].as_str().unwrap_or_default();
    let r = match method.strip_prefix("service_") {
        Some(cmd) => apply(&mut t.lock().unwrap(), dir, cmd, name),
        None => Err((-32601, "Method not found".into())),
    };
    match r {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
        Err((code, msg)) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": msg}}).to_string()
        }
    }
}

/// The same life of a unit against either protocol: typed outcomes, idempotent
/// monitor/stop/forget.
async fn lifecycle(protocol: Protocol) {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("zinit.sock");
    let z = Zinit::new(&sock);
    assert!(!z.answers().await, "no socket: no zinit");
    let table = serve(protocol, &sock, d.path().to_path_buf());
    assert!(z.answers().await);
    assert_eq!(z.protocol().await.unwrap(), protocol);

    let err = z.monitor("web").await.unwrap_err();
    assert!(matches!(err, ZinitError::Config(_)), "{err:?}");
    std::fs::write(d.path().join("web.yaml"), "exec: x\n").unwrap();
    z.monitor("web").await.unwrap();
    z.monitor("web").await.unwrap(); // already monitored: success
    assert_eq!(z.status("web").await.unwrap()["target"], "Up");
    let err = z.forget("web").await.unwrap_err();
    assert!(matches!(err, ZinitError::IsUp(_)), "{err:?}");
    z.stop("web").await.unwrap();
    z.forget("web").await.unwrap();
    z.forget("web").await.unwrap(); // unknown: forgotten already
    z.stop("web").await.unwrap(); // unknown: stopped already
    let err = z.start("web").await.unwrap_err();
    assert!(matches!(err, ZinitError::NotFound(_)), "{err:?}");

    let seen = table.lock().unwrap().seen.clone();
    let expected_first = match protocol {
        Protocol::Legacy => "monitor web",
        Protocol::JsonRpc => r#""method":"service_monitor""#,
    };
    assert!(seen.iter().any(|l| l.contains(expected_first)), "{seen:?}");
    if protocol == Protocol::Legacy {
        // The JSON-RPC probe was refused once, then only line commands went.
        assert_eq!(
            seen.iter().filter(|l| l.starts_with('{')).count(),
            1,
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn the_client_speaks_the_legacy_line_protocol() {
    lifecycle(Protocol::Legacy).await;
}

#[tokio::test]
async fn the_client_speaks_json_rpc() {
    lifecycle(Protocol::JsonRpc).await;
}

#[tokio::test]
async fn a_socket_that_does_not_answer_is_no_zinit_and_the_protocol_is_found_again() {
    let d = tempfile::tempdir().unwrap();
    let sock = d.path().join("zinit.sock");
    // Accepts and never answers: answers() gives up within its deadline.
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            held.push(s);
        }
    });
    let z = Zinit::new(&sock);
    let t = std::time::Instant::now();
    assert!(!z.answers().await);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    let err = z.monitor("web").await.unwrap_err();
    assert!(matches!(err, ZinitError::Unavailable { .. }), "{err:?}");
    hold.abort();
    let _ = hold.await;
    // zinit replaced by a JSON-RPC one on the same path: found again.
    std::fs::remove_file(&sock).unwrap();
    serve(Protocol::JsonRpc, &sock, d.path().to_path_buf());
    assert_eq!(z.protocol().await.unwrap(), Protocol::JsonRpc);
    // Something that answers in neither protocol is not zinit.
    std::fs::remove_file(&sock).unwrap();
    let other = Zinit::new(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(b"{\"hello\": 1}").await;
        }
    });
    assert!(!other.answers().await);
}
