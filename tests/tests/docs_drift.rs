//! docs/ stays true to the code: every table or list there that names methods, events,
//! error codes, module states, daemon flags (with their env vars) or CLI commands is
//! compared with the code that defines them, so changing one without the other fails.

use imagebus_bus::ErrorCode;
use imagebus_schema::attach::{AttachModule, AttachModuleServer};
use imagebus_schema::container::{ContainerModule, ContainerModuleServer};
use imagebus_schema::mount::{MountModule, MountModuleServer};
use imagebus_schema::syscontainer::{SysContainerModule, SysContainerModuleServer};
use imagebus_schema::system::{ModuleState, SystemModule, SystemModuleServer};
use imagebus_tests::doc_text::{doc, json_keys, struct_fields, table_keys};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The text of the `## \`heading\`` section of `md` (up to the next `## `).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("## `{heading}`"))
        .unwrap_or_else(|| panic!("no section for {heading}"));
    let rest = &md[start + 3..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every backticked word on the first line of `md` that starts with `prefix`.
fn backticked_after(md: &str, prefix: &str) -> BTreeSet<String> {
    let start = md
        .find(prefix)
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"));
    let para = &md[start..];
    let para = &para[..para.find("\n\n").unwrap_or(para.len())];
    let first_sentence = &para[..para.find('.').unwrap_or(para.len())];
    first_sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn objects_md_lists_every_method_and_event_of_every_object() {
    let md = doc("objects.md");
    let objects: [(&str, &[&str], &[&str]); 5] = [
        (
            "imagebus.system@1",
            SystemModuleServer::<dyn SystemModule>::METHODS,
            SystemModuleServer::<dyn SystemModule>::EVENTS,
        ),
        (
            "attach.attach@1",
            AttachModuleServer::<dyn AttachModule>::METHODS,
            AttachModuleServer::<dyn AttachModule>::EVENTS,
        ),
        (
            "mount.mount@1",
            MountModuleServer::<dyn MountModule>::METHODS,
            MountModuleServer::<dyn MountModule>::EVENTS,
        ),
        (
            "container.container@1",
            ContainerModuleServer::<dyn ContainerModule>::METHODS,
            ContainerModuleServer::<dyn ContainerModule>::EVENTS,
        ),
        (
            "syscontainer.syscontainer@1",
            SysContainerModuleServer::<dyn SysContainerModule>::METHODS,
            SysContainerModuleServer::<dyn SysContainerModule>::EVENTS,
        ),
    ];
    for (object, methods, events) in objects {
        let text = section(&md, object);
        assert_eq!(
            table_keys(text, "method"),
            set(methods),
            "methods of {object} in docs/objects.md"
        );
        assert_eq!(
            table_keys(text, "event"),
            set(events),
            "events of {object} in docs/objects.md"
        );
    }
}

#[test]
fn objects_md_lists_every_error_code_and_module_state() {
    let md = doc("objects.md");
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        backticked_after(&md, "Error codes (every method)"),
        set(&codes)
    );
    let states: Vec<&str> = ModuleState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(backticked_after(&md, "States of a module in `Modules`"), {
        let mut s = set(&states);
        s.insert("Modules".into());
        s.insert("state".into());
        s
    });
}

/// `--flag` → `Some(env)` (or `None`) from a binary's `--help`.
fn help_flags(help: &str) -> std::collections::BTreeMap<String, Option<String>> {
    help_flag_attr(help, "[env: ", &['=', ']'])
}

/// `--flag` → the value of its `[default: X]`, if it shows one.
fn help_defaults(help: &str) -> std::collections::BTreeMap<String, Option<String>> {
    help_flag_attr(help, "[default: ", &[']'])
}

/// `--flag` → what follows `marker` in its help text, up to one of `ends`.
fn help_flag_attr(
    help: &str,
    marker: &str,
    ends: &[char],
) -> std::collections::BTreeMap<String, Option<String>> {
    let mut flags = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') {
            current = t
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .map(String::from)
                .filter(|n| n != "--help" && n != "--version");
            if let Some(name) = &current {
                flags.insert(name.clone(), None);
            }
        }
        // `[env: X=]` or `[default: X]` may sit on a wrapped line of the description.
        if let (Some(name), Some(rest)) = (&current, line.split(marker).nth(1)) {
            let value = rest.split(ends).next().map(String::from);
            flags.insert(name.clone(), value);
        }
    }
    flags
}

fn help_of(bin: &str, args: &[&str]) -> String {
    let out = Command::new(imagebus_tests::daemon::bin(bin))
        .args(args)
        .arg("--help")
        .env_remove("IMAGEBUS_BROKER")
        .output()
        .unwrap_or_else(|e| panic!("running {bin} --help: {e}"));
    assert!(out.status.success(), "{bin} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn operations_md_lists_every_daemon_flag_with_its_env_var() {
    let md = doc("operations.md");
    let help = help_flags(&help_of("imagebusd", &[]));
    let start = md.find("| flag | env | default | meaning |").unwrap();
    let mut documented = std::collections::BTreeMap::new();
    for row in md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
    {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let flag = cells[0].trim_matches('`').to_string();
        let env = Some(cells[1].trim_matches('`').to_string()).filter(|e| !e.is_empty());
        documented.insert(flag, env);
    }
    assert_eq!(
        documented, help,
        "docs/operations.md's imagebusd table vs `imagebusd --help`"
    );
    // Where clap shows a default, the table's default column names it.
    let defaults = help_defaults(&help_of("imagebusd", &[]));
    for row in md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
    {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let flag = cells[0].trim_matches('`');
        if let Some(Some(default)) = defaults.get(flag) {
            assert_eq!(
                cells[2].trim_matches('`'),
                default,
                "default of {flag} in docs/operations.md"
            );
        }
    }
}

#[test]
fn operations_md_names_the_state_files_the_modules_write() {
    let md = doc("operations.md");
    let table = &md[md.find("| module | state | runtime files |").unwrap()..];
    let mount = table.lines().find(|l| l.starts_with("| mount |")).unwrap();
    let cells: Vec<&str> = mount.trim_matches('|').split('|').map(str::trim).collect();
    assert!(
        cells[1].contains(&format!("`<state-dir>/mount/{}`", imagebus_mount::IDS_FILE)),
        "{mount}"
    );
    assert!(
        cells[2].contains(&format!(
            "`<run-dir>/mount/{}`",
            imagebus_mount::RECORDS_FILE
        )),
        "{mount}"
    );
}

/// The command names a `--help` lists under `Commands:` (without `help`).
fn help_commands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn operations_md_shows_every_cli_command() {
    let md = doc("operations.md");
    let start = md.find("## imagebus (CLI)").unwrap();
    let block = &md[start..];
    let block = &block[block.find("```\n").unwrap() + 4..];
    let block = &block[..block.find("```").unwrap()];
    // Each line holds one or more commands, separated by runs of spaces.
    let mut top = BTreeSet::new();
    let mut sub: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for line in block.lines().skip(1) {
        for part in line.split("   ").map(str::trim).filter(|p| !p.is_empty()) {
            for alt in part.split(" | ") {
                let words: Vec<&str> = alt.split_whitespace().collect();
                let Some(first) = words.first() else { continue };
                if !first.chars().all(|c| c.is_ascii_lowercase()) {
                    continue;
                }
                top.insert(first.to_string());
                if let Some(second) = words.get(1) {
                    if second.chars().all(|c| c.is_ascii_lowercase()) {
                        sub.entry(first.to_string())
                            .or_default()
                            .insert(second.to_string());
                    }
                }
            }
        }
    }
    let commands = help_commands(&help_of("imagebus", &[]));
    assert_eq!(
        top, commands,
        "docs/operations.md's CLI synopsis vs `imagebus --help`"
    );
    for group in ["attach", "mount", "system"] {
        assert_eq!(
            sub.get(group).cloned().unwrap_or_default(),
            help_commands(&help_of("imagebus", &[group])),
            "`imagebus {group}` subcommands"
        );
    }
}

#[test]
fn imageapi_md_maps_every_path_the_gateway_serves() {
    let md = doc("imageapi.md");
    let (_, api) = imagebus_gateway::openapi::routes();
    let api = imagebus_gateway::openapi::document(api);
    let mut served = BTreeSet::new();
    for (path, item) in &api.paths.paths {
        let json = serde_json::to_value(item).unwrap();
        for method in json.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                served.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert_eq!(
        table_keys(&md, "call"),
        served,
        "docs/imageapi.md's call table vs the gateway's routes"
    );
    // Every flag of the gateway is in the flag table (checked against --help above).
    let ops = doc("operations.md");
    for flag in [
        "--imageapi",
        "--tls-certificate",
        "--tls-key",
        "--tls-ca",
        "--imageapi-timeout",
        "--imageapi-body-limit",
    ] {
        assert!(
            ops.contains(&format!("| `{flag}` |")),
            "{flag} in operations.md"
        );
    }
}

#[test]
fn mount_md_lists_every_field_of_mount_info() {
    let info = imagebus_schema::mount::MountInfo {
        id: 1,
        name: None,
        kind: "bind".into(),
        mountpoint: "/m".into(),
        fs_type: "none".into(),
        read_only: false,
        source: "/s".into(),
        upper_dir: None,
        work_dir: None,
        attachment: None,
        children: vec![],
        holders: vec![],
        created_at: 0,
    };
    assert_eq!(
        struct_fields(&doc("mount.md"), "MountInfo"),
        json_keys(&info)
    );
}

#[test]
fn container_md_lists_every_field_of_container_stats() {
    let stats = imagebus_schema::container::ContainerStats {
        id: 1,
        name: None,
        state: imagebus_schema::container::ContainerState::Running,
        at_ms: 0,
        cpu_usage_ns: None,
        memory_usage_bytes: None,
        memory_limit_bytes: None,
        memory_peak_bytes: None,
        oom_kills: None,
        pids_current: None,
        pids_limit: None,
        io_read_bytes: None,
        io_write_bytes: None,
        net_rx_bytes: None,
        net_tx_bytes: None,
    };
    let md = doc("container.md");
    let fields = json_keys(&stats);
    assert_eq!(struct_fields(&md, "ContainerStats"), fields);
    // Every counter has a row in the v1/v2 file table (or the net paragraph).
    let start = md
        .find("| field | cgroup v1 | cgroup v2 |")
        .expect("the stats file table");
    let table: BTreeSet<String> = md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| backticked(l.trim_start_matches('|').split('|').next().unwrap_or("")))
        .collect();
    for f in &fields {
        let listed = table.contains(f)
            || [
                "id",
                "name",
                "state",
                "at_ms",
                "net_rx_bytes",
                "net_tx_bytes",
            ]
            .contains(&f.as_str());
        assert!(
            listed,
            "docs/container.md: {f} has no row in the stats file table"
        );
    }
}

/// The backticked words of `text`.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// Every `.rs` file under `src` (relative, `/`-separated).
fn rust_files(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel);
            }
        }
    }
    out
}

/// Whether the backticked `names` mention `file`: its whole relative path; or, for
/// `dir/mod.rs`, `dir/`; or its file name together with its directory (`dir/` or another
/// `dir/…` path in the same text, as in "`engine/create.rs`, `start.rs`").
fn names_file(names: &BTreeSet<String>, file: &str) -> bool {
    if names.contains(file) {
        return true;
    }
    let Some((dir, base)) = file.rsplit_once('/') else {
        return false;
    };
    let dir_named = names.iter().any(|n| n.starts_with(&format!("{dir}/")));
    dir_named && (base == "mod.rs" || names.contains(base))
}

#[test]
fn module_docs_name_every_source_file_of_their_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docs: [(&str, &str, &str); 4] = [
        ("attach", "attach.md", "**Files** (`modules/attach/src`)"),
        (
            "mount",
            "mount.md",
            "## Source layout (`modules/mount/src`)",
        ),
        (
            "container",
            "container.md",
            "Layout of `modules/container/src/`",
        ),
        (
            "syscontainer",
            "system.md",
            "## Source layout (`modules/syscontainer/src`)",
        ),
    ];
    for (module, name, marker) in docs {
        let md = doc(name);
        let start = md
            .find(marker)
            .unwrap_or_else(|| panic!("docs/{name}: no {marker:?}"));
        let rest = &md[start + marker.len()..];
        let text = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
        let names: BTreeSet<String> = backticked(text)
            .into_iter()
            .filter(|n| n.ends_with(".rs") || n.ends_with('/'))
            .collect();
        let src = root.join("modules").join(module).join("src");
        let files = rust_files(&src);
        let missing: Vec<&String> = files.iter().filter(|f| !names_file(&names, f)).collect();
        assert!(
            missing.is_empty(),
            "docs/{name} does not name these files of modules/{module}/src: {missing:?}"
        );
        for n in &names {
            let exists = if n.ends_with('/') {
                src.join(n).is_dir()
            } else if n.contains('/') {
                src.join(n).is_file()
            } else {
                files
                    .iter()
                    .any(|f| f == n || f.ends_with(&format!("/{n}")))
            };
            assert!(
                exists,
                "docs/{name} names `{n}`, which modules/{module}/src does not have"
            );
        }
    }
}

/// The names in the first cells of the first `| method |` table of `md`: every backticked
/// word's leading identifier (`Create(spec) -> …` → `Create`).
fn method_cells(md: &str) -> BTreeSet<String> {
    let start = md.find("| method |").expect("a `| method |` table");
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let cell = l.trim_start_matches('|').split('|').next().unwrap_or("");
            backticked(cell)
                .into_iter()
                .map(|w| {
                    w.chars()
                        .take_while(|c| c.is_alphanumeric())
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn module_docs_list_every_method_and_event_of_their_object() {
    let attach: BTreeSet<String> = set(AttachModuleServer::<dyn AttachModule>::METHODS);
    assert_eq!(method_cells(&doc("attach.md")), attach, "docs/attach.md");
    let mount: BTreeSet<String> = set(MountModuleServer::<dyn MountModule>::METHODS);
    assert_eq!(method_cells(&doc("mount.md")), mount, "docs/mount.md");
    let mut container: BTreeSet<String> =
        set(ContainerModuleServer::<dyn ContainerModule>::METHODS);
    container.extend(set(ContainerModuleServer::<dyn ContainerModule>::EVENTS));
    assert_eq!(
        method_cells(&doc("container.md")),
        container,
        "docs/container.md (methods and the Events stream)"
    );
}

/// The row of the `| what | limit | where |` table of docs/security.md for `what`.
fn limit_row(md: &str, what: &str) -> String {
    let start = md
        .find("| what | limit | where |")
        .expect("the limits table");
    md[start..]
        .lines()
        .find(|l| l.starts_with(&format!("| {what} |")))
        .unwrap_or_else(|| panic!("docs/security.md: no limit row {what:?}"))
        .to_string()
}

#[test]
fn security_md_states_the_limits_the_code_enforces() {
    use imagebus_bus::codec::scan::Budget;
    let md = doc("security.md");
    let expect = [
        (
            "request payload",
            format!(
                "{} MiB",
                imagebus_bus::server::DEFAULT_MAX_REQUEST_BYTES >> 20
            ),
        ),
        (
            "request structure",
            format!(
                "2^{} msgpack values, {} levels",
                Budget::REQUEST.max_items.trailing_zeros(),
                Budget::REQUEST.max_depth
            ),
        ),
        (
            "error messages",
            format!(
                "at most {} characters of any input; cut at {} KiB",
                imagebus_bus::error::ECHO_MAX,
                imagebus_bus::error::MAX_MESSAGE / 1024
            ),
        ),
        (
            "container log",
            format!("({} MiB)", imagebus_container::DEFAULT_LOG_MAX_BYTES >> 20),
        ),
        (
            "`Logs` `wait_ms`",
            format!("{} s", imagebus_container::LOGS_MAX_WAIT.as_secs()),
        ),
        (
            "`Logs` long-poll",
            format!(
                "{} ms before the caller's deadline",
                imagebus_container::REPLY_MARGIN.as_millis()
            ),
        ),
        (
            "a session's client connection",
            format!(
                "{} s after `Session` answered",
                imagebus_sys::session::CONNECT_TIMEOUT.as_secs()
            ),
        ),
        (
            "`Stop`, `Start`, `Delete` waits",
            format!(
                "{} ms before the caller's deadline",
                imagebus_container::REPLY_MARGIN.as_millis()
            ),
        ),
    ];
    assert!(Budget::REQUEST.max_items.is_power_of_two());
    for (what, text) in expect {
        let row = limit_row(&md, what);
        assert!(
            row.contains(&text),
            "docs/security.md's limit {what:?} should say {text:?}: {row}"
        );
    }
}

#[test]
fn container_md_lists_the_oci_fields_honoured_and_refused() {
    use imagebus_sys::oci::overlay::{HONOURED, REJECTED};
    let md = doc("container.md");
    assert_eq!(
        table_keys(&md, "honoured field"),
        set(&HONOURED),
        "docs/container.md's honoured oci fields vs overlay::HONOURED"
    );
    let refused: Vec<&str> = REJECTED.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        table_keys(&md, "refused field"),
        set(&refused),
        "docs/container.md's refused oci fields vs overlay::REJECTED"
    );
}

/// The health check's types, statuses and `run` flags as docs/container.md lists them.
#[test]
fn container_md_lists_the_health_fields_and_flags() {
    use imagebus_schema::container::{CommandLine, Health, HealthSpec, HealthStatus};
    let md = doc("container.md");
    let spec = HealthSpec {
        command: CommandLine::Line("true".into()),
        interval_ms: Some(1),
        timeout_ms: Some(1),
        retries: Some(1),
        start_period_ms: Some(1),
    };
    assert_eq!(struct_fields(&md, "HealthSpec"), json_keys(&spec));
    assert_eq!(struct_fields(&md, "Health"), json_keys(&Health::starting()));
    let statuses: Vec<&str> = [
        HealthStatus::Starting,
        HealthStatus::Healthy,
        HealthStatus::Unhealthy,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(table_keys(&md, "status"), set(&statuses));
    // Every `run --health-*` flag, and the field it sets.
    let help = help_of("imagebus", &["run"]);
    let flags: BTreeSet<String> = help_flags(&help)
        .into_keys()
        .filter(|f| f.starts_with("--health"))
        .collect();
    assert_eq!(
        table_keys(&md, "run flag"),
        flags,
        "docs/container.md's health flags"
    );
    let fields: BTreeSet<String> = md[md.find("| run flag |").expect("the flag table")..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(2))
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect();
    assert_eq!(fields, json_keys(&spec), "the fields the health flags set");
}

/// The log settings and entries docs/container.md names, and the `run`/`imagebusd`/`logs`
/// flags it lists for them.
#[test]
fn container_md_lists_the_log_settings() {
    use imagebus_schema::container::{LogEntry, LogSpec};
    let md = doc("container.md");
    let spec = LogSpec {
        max_bytes: Some(1),
        max_files: Some(1),
    };
    assert_eq!(struct_fields(&md, "LogSpec"), json_keys(&spec));
    let entry = LogEntry {
        time_ns: None,
        stream: None,
        line: String::new(),
    };
    assert_eq!(struct_fields(&md, "LogEntry"), json_keys(&entry));
    let start = md
        .find("CLI: `imagebus logs <C>")
        .expect("the logs CLI paragraph");
    let para = &md[start..start + md[start..].find("\n\n").unwrap_or(md.len() - start)];
    for (bin, args, prefix) in [
        ("imagebus", &["run"][..], "--log-"),
        ("imagebusd", &[][..], "--log-max"),
        ("imagebus", &["logs"][..], "--"),
    ] {
        let help = help_of(bin, args);
        for flag in help_flags(&help)
            .into_keys()
            .filter(|f| f.starts_with(prefix))
        {
            if flag == "--json"
                || flag.starts_with("--broker")
                || ["--run-dir", "--timeout"].contains(&flag.as_str())
            {
                continue;
            }
            assert!(
                para.contains(&flag),
                "docs/container.md's logs CLI paragraph lacks {bin} {args:?} {flag}"
            );
        }
    }
}

#[test]
fn every_test_file_the_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut texts = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    for e in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            let name = e.file_name().to_string_lossy().into_owned();
            texts.push((name, std::fs::read_to_string(e.path()).unwrap()));
        }
    }
    let mut named = 0;
    for (name, text) in &texts {
        for word in backticked(text) {
            if let Some(rest) = word.strip_prefix("tests/tests/") {
                for file in rest.split(['{', '}', ',']).filter(|f| f.ends_with(".rs")) {
                    named += 1;
                    let file = file.trim();
                    let exists = match file.split_once('*') {
                        // A pattern (`imageapi_*.rs`): at least one file matches it.
                        Some((pre, post)) => std::fs::read_dir(root.join("tests/tests"))
                            .unwrap()
                            .flatten()
                            .filter_map(|e| e.file_name().into_string().ok())
                            .any(|f| f.starts_with(pre) && f.ends_with(post)),
                        None => root.join("tests/tests").join(file).is_file(),
                    };
                    assert!(exists, "{name} names {word}, which does not exist");
                }
            }
        }
    }
    assert!(named > 10, "the docs name the test files ({named} found)");
}

/// The interactive flags table of docs/operations.md (`| \`exec -i\` | …`) names flags
/// that `imagebus <command> --help` has (short and long), and every such flag of `exec`
/// and `run` is in it.
#[test]
fn operations_md_lists_the_interactive_session_flags() {
    let md = doc("operations.md");
    let start = md
        .find("| `exec -i` |")
        .expect("the interactive flags table");
    let rows: BTreeSet<String> = md[start..]
        .lines()
        .map(str::trim_start)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            backticked(l.split('|').nth(1).unwrap_or(""))
                .into_iter()
                .next()
        })
        .collect();
    let want: BTreeSet<String> = ["exec -i", "exec -t", "run -t"].map(String::from).into();
    assert_eq!(rows, want, "docs/operations.md's interactive flags");
    for (cmd, short, long) in [
        ("exec", "-i", "--interactive"),
        ("exec", "-t", "--tty"),
        ("run", "-t", "--tty"),
        ("run", "-i", "--interactive"),
    ] {
        let help = help_of("imagebus", &[cmd]);
        assert!(
            help.contains(&format!("{short}, {long}")),
            "imagebus {cmd} --help has no {short}, {long}"
        );
    }
}

/// The `[[bin]]` names of fuzz/Cargo.toml: the fuzz targets.
fn fuzz_targets() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    manifest
        .split("[[bin]]")
        .skip(1)
        .map(|block| {
            let line = block
                .lines()
                .find(|l| l.trim_start().starts_with("name"))
                .unwrap_or_else(|| panic!("a [[bin]] without a name: {block}"));
            line.split('"').nth(1).unwrap().to_string()
        })
        .collect()
}

#[test]
fn security_md_lists_every_fuzz_target_and_each_has_seeds() {
    let targets = fuzz_targets();
    assert!(targets.len() >= 10, "fuzz targets: {targets:?}");
    let md = doc("security.md");
    let start = md.find("## Fuzzing").expect("a Fuzzing section");
    let listed = table_keys(&md[start..], "target");
    assert_eq!(
        listed, targets,
        "docs/security.md vs fuzz/Cargo.toml [[bin]]"
    );
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for t in &targets {
        let dir = corpus.join(t);
        let seeds = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{t} has no seed corpus {dir:?}: {e}"))
            .count();
        assert!(seeds > 0, "{dir:?} is empty");
    }
    // The CI stage runs them.
    let test_sh = std::fs::read_to_string(corpus.join("../../scripts/test.sh")).unwrap();
    assert!(test_sh.contains("stage fuzz scripts/fuzz.sh --smoke"));
}

/// fuzz/Cargo.lock covers what the workspace crates now depend on: `scripts/fuzz.sh`
/// builds with `--locked`, so a stale lock fails the CI fuzz stage; this says why, sooner.
#[test]
fn the_fuzz_lock_file_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root.join("fuzz/Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "fuzz/Cargo.lock is stale: run `cargo tree --manifest-path fuzz/Cargo.toml` and commit it\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
