//! The service unit: `/exports/service.template` (a systemd unit, as atomic images carry,
//! or a zinit unit) rendered, then written as a zinit 0.2 unit `<zinit-dir>/NAME.yaml`
//! with only the keys zinit reads. On a systemd host the rendered systemd form would be
//! installed as `NAME.service` ([`systemd_unit`]).

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
/// when it is a systemd unit; `None` for a zinit-form template.
pub fn systemd_unit(rendered: &str) -> Option<String> {
    is_systemd(rendered).then(|| rendered.to_string())
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
