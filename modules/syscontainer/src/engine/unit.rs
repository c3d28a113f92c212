//! The service unit: `/exports/service.template` (a systemd unit, as atomic images carry,
//! or a zinit unit) rendered, then written as a zinit 0.2 unit `<zinit-dir>/NAME.yaml`
//! with only the keys zinit reads ([`zinit_unit`]), or, on a systemd host, as the systemd
//! unit `NAME.service` ([`systemd_unit`]: the template itself, or one made from a
//! zinit-form template).

/// The keys of a zinit 0.2 unit.
pub const ZINIT_KEYS: [&str; 9] = [
    "exec",
    "test",
    "oneshot",
    "after",
    "signal",
    "log",
    "env",
    "dir",
    "shutdown_timeout",
];

/// The service template used when the image has none (systemd form, as atomic's).
pub const DEFAULT_SERVICE: &str = "[Unit]
Description=imagebus system container $NAME

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
Restart=on-failure
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
";

/// The systemd unit (`NAME.service`) of a rendered service template: the template itself
/// when it is a systemd unit (it must have `ExecStart=` in `[Service]`); a zinit-form
/// template is converted: `exec` → `ExecStart`, `env` → `Environment`, `dir` →
/// `WorkingDirectory`, `signal.stop` → `KillSignal`, `shutdown_timeout` →
/// `TimeoutStopSec`, `oneshot` → `Type=oneshot`, `after: [X]` → `After=X.service`, and
/// `Restart=always` for a service that is not oneshot (zinit restarts those); `test` and
/// `log` have no systemd equivalent and are dropped (systemd's journal takes the output).
pub fn systemd_unit(rendered: &str) -> Result<String, String> {
    if is_systemd(rendered) {
        let mut section = "";
        let has_exec = rendered.lines().any(|l| {
            let l = l.trim();
            if l.starts_with('[') && l.ends_with(']') {
                section = l;
            }
            section == "[Service]" && l.starts_with("ExecStart=") && l.len() > 10
        });
        return if has_exec {
            Ok(rendered.to_string())
        } else {
            Err("the service template has no ExecStart".to_string())
        };
    }
    check_zinit(rendered)?;
    let z: ZinitUnit =
        serde_yaml::from_str(rendered).map_err(|e| format!("zinit service template: {e}"))?;
    let one_line = |what: &str, v: &str| -> Result<(), String> {
        if v.contains(['\n', '\r']) {
            Err(format!("zinit {what} {v:?} spans lines"))
        } else {
            Ok(())
        }
    };
    one_line("exec", &z.exec)?;
    let mut out =
        String::from("[Unit]\nDescription=imagebus system container (from a zinit unit)\n");
    if !z.after.is_empty() {
        for a in &z.after {
            one_line("after", a)?;
        }
        let deps: Vec<String> = z.after.iter().map(|a| format!("{a}.service")).collect();
        out.push_str(&format!(
            "After={}\nWants={}\n",
            deps.join(" "),
            deps.join(" ")
        ));
    }
    out.push_str("\n[Service]\n");
    out.push_str(&format!("ExecStart={}\n", z.exec));
    if z.oneshot {
        out.push_str("Type=oneshot\nRemainAfterExit=yes\n");
    } else {
        out.push_str("Restart=always\n");
    }
    for (k, v) in &z.env {
        one_line("env", &format!("{k}{v}"))?;
        out.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{k}={v}"))
        ));
    }
    if let Some(d) = &z.dir {
        one_line("dir", d)?;
        out.push_str(&format!("WorkingDirectory={d}\n"));
    }
    if let Some(sig) = z.signal.as_ref().and_then(|s| s.get("stop")) {
        let sig = sig.to_ascii_uppercase();
        let sig = if sig.starts_with("SIG") {
            sig
        } else {
            format!("SIG{sig}")
        };
        if !sig.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') {
            return Err(format!("zinit signal.stop {sig:?} is not a signal name"));
        }
        out.push_str(&format!("KillSignal={sig}\n"));
    }
    if let Some(t) = z.shutdown_timeout {
        out.push_str(&format!("TimeoutStopSec={t}\n"));
    }
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    Ok(out)
}

/// A zinit 0.2 unit, as zinit reads it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ZinitUnit {
    exec: String,
    #[serde(default)]
    #[allow(dead_code)]
    test: Option<String>,
    #[serde(default)]
    oneshot: bool,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    signal: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    #[allow(dead_code)]
    log: Option<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    shutdown_timeout: Option<u64>,
}

/// A double-quoted systemd value (`"`, `\\` escaped; `%` doubled, systemd's specifier).
fn systemd_quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '%' => q.push_str("%%"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn is_systemd(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[Service]")
}

/// The zinit unit of a rendered service template. A systemd unit is converted:
/// `ExecStart` → `exec`, `Environment` → `env`, `WorkingDirectory` → `dir`, `KillSignal` →
/// `signal.stop`, `TimeoutStopSec` → `shutdown_timeout`, `Type=oneshot` → `oneshot`, and
/// `After=X.service` → `after: [X]` (targets and other unit kinds dropped: zinit has
/// none). A zinit-form template is kept as it is once its top-level keys are checked.
/// Errors: no `ExecStart`/`exec`, an unknown zinit key, a bad value.
pub fn zinit_unit(rendered: &str) -> Result<String, String> {
    if !is_systemd(rendered) {
        return check_zinit(rendered).map(|()| rendered.to_string());
    }
    let mut section = String::new();
    let mut exec = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut dir, mut signal, mut timeout, mut oneshot) = (None, None, None, false);
    let mut after = Vec::new();
    for raw in rendered.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("service template line {line:?} is not KEY=VALUE"));
        };
        let (key, value) = (key.trim(), value.trim());
        match (section.as_str(), key) {
            ("Service", "ExecStart") => {
                exec = Some(value.trim_start_matches(['-', '@', '+', '!']).to_string());
            }
            ("Service", "Environment") => {
                let words =
                    shell_words::split(value).map_err(|e| format!("Environment={value:?}: {e}"))?;
                for w in words {
                    let (k, v) = w
                        .split_once('=')
                        .ok_or_else(|| format!("Environment entry {w:?} is not KEY=VALUE"))?;
                    env.retain(|(old, _)| old != k);
                    env.push((k.to_string(), v.to_string()));
                }
            }
            ("Service", "WorkingDirectory") => {
                dir = Some(value.trim_start_matches('-').to_string());
            }
            ("Service", "KillSignal") => signal = Some(value.to_ascii_lowercase()),
            ("Service", "TimeoutStopSec") => {
                let secs = value.trim_end_matches('s');
                timeout = Some(
                    secs.parse::<u64>()
                        .map_err(|_| format!("TimeoutStopSec={value:?}: whole seconds only"))?,
                );
            }
            ("Service", "Type") => oneshot = value == "oneshot",
            ("Unit", "After") => {
                for dep in value.split_whitespace() {
                    if let Some(svc) = dep.strip_suffix(".service") {
                        if !after.iter().any(|a| a == svc) {
                            after.push(svc.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let exec = exec
        .filter(|e| !e.is_empty())
        .ok_or("the service template has no ExecStart")?;
    let mut out = format!("exec: {}\n", quote(&exec));
    if oneshot {
        out.push_str("oneshot: true\n");
    }
    if !after.is_empty() {
        out.push_str("after:\n");
        for a in &after {
            out.push_str(&format!("  - {}\n", quote(a)));
        }
    }
    if let Some(s) = signal {
        out.push_str(&format!("signal:\n  stop: {}\n", quote(&s)));
    }
    if !env.is_empty() {
        out.push_str("env:\n");
        for (k, v) in &env {
            out.push_str(&format!("  {}: {}\n", quote(k), quote(v)));
        }
    }
    if let Some(d) = dir {
        out.push_str(&format!("dir: {}\n", quote(&d)));
    }
    if let Some(t) = timeout {
        out.push_str(&format!("shutdown_timeout: {t}\n"));
    }
    Ok(out)
}

/// A YAML double-quoted scalar (JSON's string syntax is one).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The top-level keys of a zinit-form unit are zinit's, and `exec` is one of them.
fn check_zinit(text: &str) -> Result<(), String> {
    let mut has_exec = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t', '#', '-']) || line.trim().is_empty() {
            continue;
        }
        let key = line.split(':').next().unwrap_or_default().trim();
        if !ZINIT_KEYS.contains(&key) {
            return Err(format!(
                "service template key {key:?} is not a zinit unit key (known: {})",
                ZINIT_KEYS.join(", ")
            ));
        }
        has_exec |= key == "exec";
    }
    if has_exec {
        Ok(())
    } else {
        Err("the service template has no exec".to_string())
    }
}
