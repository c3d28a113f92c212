use crate::config::SysConfig;
use crate::engine::exports::{self, check_set, Exports, Vars};
use crate::engine::template::render;
use crate::engine::tmpfiles;
use crate::engine::unit::{systemd_unit, zinit_unit, DEFAULT_SERVICE, ZINIT_KEYS};
use imagebus_schema::image::ImageConfig;
use std::collections::BTreeMap;
use std::path::Path;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn dollar_var_braces_and_escapes() {
    let v = vars(&[("NAME", "web"), ("A_1", "x")]);
    assert_eq!(render("$NAME-${NAME}.$A_1", &v).unwrap(), "web-web.x");
    assert_eq!(
        render("cost $$5, $ alone, ${", &v).unwrap(),
        "cost $5, $ alone, ${"
    );
    assert_eq!(render("${NAME}s $1", &v).unwrap(), "webs $1");
    let missing = render("$B ${C} $NAME $B", &v).unwrap_err();
    assert_eq!(missing.into_iter().collect::<Vec<_>>(), ["B", "C"]);
}

#[test]
fn forced_variables_cannot_be_set_and_names_are_checked() {
    for forced in [
        "DESTDIR",
        "NAME",
        "EXEC_START",
        "EXEC_STOP",
        "HOST_UID",
        "HOST_GID",
    ] {
        let err = check_set(&vars(&[(forced, "x")])).unwrap_err();
        assert!(err.to_string().contains(forced), "{err}");
    }
    for ok in ["RUN_DIRECTORY", "STATE_DIRECTORY", "UUID", "MINE"] {
        check_set(&vars(&[(ok, "x")])).unwrap();
    }
    assert!(check_set(&vars(&[("1X", "x")])).is_err());
    assert!(check_set(&vars(&[("X", "a\0b")])).is_err());
}

#[test]
fn variables_precedence_node_then_manifest_then_set_then_forced() {
    let mut cfg = SysConfig::new("/s/system", "/r");
    cfg.host_root = "/h".into();
    cfg.imagebus_bin = "/bin/imagebus".into();
    let ex = Exports {
        defaults: vars(&[
            ("RUN_DIRECTORY", "/m/run"),
            ("A", "manifest"),
            ("NAME", "bad"),
        ]),
        ..Exports::default()
    };
    let set = vars(&[("A", "set")]);
    let v = exports::variables(
        &cfg,
        &Vars {
            name: "web",
            destdir: Path::new("/s/system/web.0"),
            set: &set,
            uuid: Some("u-1".into()),
        },
        &ex,
    );
    assert_eq!(v["RUN_DIRECTORY"], "/m/run");
    assert_eq!(v["STATE_DIRECTORY"], "/h/var/lib");
    assert_eq!(v["UUID"], "u-1");
    assert_eq!(v["A"], "set");
    assert_eq!(v["NAME"], "web", "forced wins over the manifest");
    assert_eq!(v["DESTDIR"], "/s/system/web.0");
    assert_eq!(
        v["EXEC_START"],
        "/bin/imagebus --run-dir /r start --attach web"
    );
    assert_eq!(v["EXEC_STOP"], "/bin/imagebus --run-dir /r stop web");
    assert_eq!(v["HOST_UID"], nix::unistd::getuid().to_string());
}

#[test]
fn a_missing_variable_anywhere_is_listed_once() {
    let ex = Exports {
        config: Some(r#"{"process": {"args": ["$X"]}}"#.into()),
        service: Some("[Service]\nExecStart=$Y\n".into()),
        tmpfiles: Some("d /run/$X - - - - -\n".into()),
        ..Exports::default()
    };
    let err = exports::render_all(&ex, &vars(&[]), &ImageConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("X, Y"), "{msg}");
    assert_eq!(err.code(), imagebus_bus::ErrorCode::InvalidArgument);
}

#[test]
fn default_config_from_the_image_config() {
    let img = ImageConfig {
        env: vec!["PATH=/bin".into()],
        entrypoint: vec!["/bin/sh".into()],
        cmd: vec!["-c".into(), "true".into()],
        working_dir: Some("/w".into()),
        user: Some("5:6".into()),
        ..ImageConfig::default()
    };
    let r = exports::render_all(
        &Exports::default(),
        &vars(&[
            ("EXEC_START", "s"),
            ("EXEC_STOP", "t"),
            ("NAME", "n"),
            ("DESTDIR", "/d"),
        ]),
        &img,
    )
    .unwrap();
    let doc = serde_json::Value::Object(r.oci.0.clone());
    assert_eq!(
        doc["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "true"])
    );
    assert_eq!(doc["process"]["cwd"], "/w");
    assert_eq!(
        doc["process"]["user"],
        serde_json::json!({"uid": 5, "gid": 6})
    );
    assert_eq!(doc["root"]["readonly"], true);
    let named = ImageConfig {
        user: Some("www".into()),
        ..img
    };
    assert!(exports::default_config(&named).is_err());
    assert!(exports::default_config(&ImageConfig::default()).is_err());
}

#[test]
fn a_systemd_service_becomes_a_zinit_unit_with_zinit_keys_only() {
    let svc = "[Unit]\nDescription=x\nAfter=network.target redis.service db.service\n\n\
               [Service]\nType=simple\nExecStart=/bin/imagebus start --attach web\n\
               ExecStop=/bin/imagebus stop web\nEnvironment=\"A=1 2\" B=3\n\
               WorkingDirectory=/d\nKillSignal=SIGINT\nTimeoutStopSec=20s\nRestart=always\n";
    let y = zinit_unit(svc).unwrap();
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct U {
        exec: String,
        after: Vec<String>,
        signal: BTreeMap<String, String>,
        env: BTreeMap<String, String>,
        dir: String,
        shutdown_timeout: u64,
    }
    let u: U = serde_yaml::from_str(&y).unwrap();
    assert_eq!(u.exec, "/bin/imagebus start --attach web");
    assert_eq!(u.after, ["redis", "db"]);
    assert_eq!(u.signal["stop"], "sigint");
    assert_eq!(u.env["A"], "1 2");
    assert_eq!(u.env["B"], "3");
    assert_eq!((u.dir.as_str(), u.shutdown_timeout), ("/d", 20));
    let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
    for k in v.as_mapping().unwrap().keys() {
        assert!(ZINIT_KEYS.contains(&k.as_str().unwrap()), "{k:?}");
    }
    // Oneshot, and the systemd form is the rendered template itself.
    let one = zinit_unit("[Service]\nType=oneshot\nExecStart=true\n").unwrap();
    assert!(one.contains("oneshot: true"), "{one}");
    assert_eq!(systemd_unit(svc).as_deref(), Ok(svc));
    assert!(zinit_unit("[Service]\nExecStop=x\n").is_err());
    let err = systemd_unit("[Unit]\nExecStart=x\n[Service]\nExecStop=x\n").unwrap_err();
    assert!(err.contains("ExecStart"), "{err}");
}

#[test]
fn the_default_service_and_zinit_form_templates() {
    let v = vars(&[
        ("NAME", "web"),
        ("EXEC_START", "imagebus start --attach web"),
        ("EXEC_STOP", "imagebus stop web"),
        ("DESTDIR", "/s/web.0"),
    ]);
    let svc = render(DEFAULT_SERVICE, &v).unwrap();
    let sd = systemd_unit(&svc).unwrap();
    assert!(sd.contains("ExecStart=imagebus start --attach web"), "{sd}");
    assert!(sd.contains("WorkingDirectory=/s/web.0"), "{sd}");
    let y = zinit_unit(&svc).unwrap();
    assert!(
        y.starts_with("exec: \"imagebus start --attach web\""),
        "{y}"
    );
    // A template already in zinit form is kept, its keys checked.
    let z = "exec: imagebus start --attach web\nafter:\n  - redis\n";
    assert_eq!(zinit_unit(z).unwrap(), z);
    let err = zinit_unit("exec: x\nrestart: always\n").unwrap_err();
    assert!(err.contains("restart"), "{err}");
    // On a systemd host a zinit-form template becomes a systemd unit.
    let sd = systemd_unit(z).unwrap();
    assert!(
        sd.contains("\nExecStart=imagebus start --attach web\n"),
        "{sd}"
    );
    assert!(sd.contains("\nAfter=redis.service\n"), "{sd}");
    assert!(sd.contains("\nRestart=always\n"), "{sd}");
    assert!(
        sd.contains("\n[Install]\nWantedBy=multi-user.target\n"),
        "{sd}"
    );
}

#[test]
fn a_zinit_form_template_becomes_a_systemd_unit_key_by_key() {
    let z = "exec: /bin/app --port 80\noneshot: true\nafter: [db, cache]\n\
             signal:\n  stop: sigint\nenv:\n  A: \"1 \\\"2\\\" 100%\"\n\
             dir: /srv\nshutdown_timeout: 12\ntest: /bin/true\nlog: stdout\n";
    let sd = systemd_unit(z).unwrap();
    let lines: Vec<&str> = sd.lines().collect();
    for want in [
        "[Service]",
        "ExecStart=/bin/app --port 80",
        "Type=oneshot",
        "After=db.service cache.service",
        "KillSignal=SIGINT",
        "Environment=\"A=1 \\\"2\\\" 100%%\"",
        "WorkingDirectory=/srv",
        "TimeoutStopSec=12",
    ] {
        assert!(lines.contains(&want), "{want:?} in\n{sd}");
    }
    assert!(!sd.contains("Restart="), "oneshot: no restart\n{sd}");
    // Bad input is refused, not written.
    assert!(systemd_unit("exec: \"a\\nb\"\n").is_err());
    assert!(systemd_unit("exec: x\nsignal:\n  stop: \"TERM; rm\"\n").is_err());
    assert!(systemd_unit("oneshot: true\n").is_err());
}

#[test]
fn tmpfiles_lines_parse_and_refuse_what_we_do_not_apply() {
    let l = tmpfiles::parse(
        "# c\nd /run/x 0700 0 0 - -\nf /run/x/f 0644 - - - hello world\nL /run/l - - - - /t\nZ /run/x 0750 1 2 - -\nD /run/y\n",
    )
    .unwrap();
    assert_eq!(l.len(), 5);
    assert_eq!(
        (l[0].kind, l[0].mode, l[0].uid),
        ('d', Some(0o700), Some(0))
    );
    assert_eq!(l[1].arg.as_deref(), Some("hello world"));
    assert_eq!(l[2].arg.as_deref(), Some("/t"));
    assert_eq!((l[3].uid, l[3].gid), (Some(1), Some(2)));
    for bad in ["r /x", "d relative", "d /x 0700 root", "L /x", "x"] {
        assert!(tmpfiles::parse(bad).is_err(), "{bad}");
    }
}
