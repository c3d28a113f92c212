//! Unit tests: request parsing (400s that name the field), ids, redaction, addresses and
//! rendering. The HTTP paths are tested against a real imagebusd in
//! `tests/tests/imageapi_*.rs`.

use crate::config::Listen;
use crate::error::ApiError;
use crate::extract::parse_json;
use crate::model::{Attach, Container, Lower, Mount, MountKind, MountOverlay, MountRbd, Rbd};
use crate::translate::{api_id, bus_id};
use imagebus_schema::attach::{AttachInfo, AttachSource, RbdSource, Secret};

fn bad<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
    match parse_json::<T>(json.as_bytes()) {
        Err(ApiError::BadRequest(m)) => m,
        other => panic!("expected a 400 for {json}, got {other:?}"),
    }
}

#[test]
fn malformed_bodies_name_the_field() {
    let m = bad::<Container>(r#"{"mount":{"id":1},"command":"x","comand":"y"}"#);
    assert!(m.contains("comand"), "{m}");
    let m = bad::<Container>(r#"{"mount":{"id":"one"},"command":"x"}"#);
    assert!(m.starts_with("mount.id:"), "{m}");
    let m = bad::<Container>(r#"{"command":"x"}"#);
    assert!(m.contains("mount"), "{m}");
    let m = bad::<Container>(r#"{"mount":{"id":1},"command":"x","state":"sleeping"}"#);
    assert!(m.starts_with("state:"), "{m}");
    let m = bad::<Attach>(
        r#"{"kind":"rbd","rbd":{"monitors":["1.2.3.4"],"pool":"p","image":"i","options":{"ro":"yes"}}}"#,
    );
    assert!(m.starts_with("rbd.options.ro:"), "{m}");
    let m = bad::<MountOverlay>(r#"{"lower":[0,{"kind":"attach","attach":{"fs_type":1}}]}"#);
    assert!(
        m.contains("lower[1]") && m.contains("attach.fs_type"),
        "{m}"
    );
    let m = bad::<MountOverlay>(r#"{"lower":["x"]}"#);
    assert!(m.contains("lower[0]"), "{m}");
    let m = bad::<Container>(r#"{"mount":{"id":1},"command":"x""#);
    assert!(m.starts_with("body:"), "{m}");
    let m = bad::<Container>("  ");
    assert!(m.contains("empty"), "{m}");
    let m = bad::<Container>(r#"{"mount":{"id":1},"command":"x"} {}"#);
    assert!(m.starts_with("body:"), "{m}");
}

#[test]
fn the_tutorials_bodies_parse() {
    let r: Rbd = parse_json(br#"{"monitors":["192.168.1.48"],"pool":"rbd","image":"systemd.sqsh","options":{"ro":true,"name":"admin","secret":"XXXX"}}"#).unwrap();
    assert_eq!(r.options.unwrap().name.as_deref(), Some("admin"));
    let m: MountRbd =
        parse_json(br#"{"id": 0, "fs_type": "squashfs", "mount_options": [ "ro" ] }"#).unwrap();
    assert_eq!(m.id, Some(0));
    let o: MountOverlay = parse_json(br#"{ "lower": [ 0 ]}"#).unwrap();
    assert_eq!(o.lower, vec![Lower::Id(0)]);
    let c: Container = parse_json(br#"{ "name": "test-container", "mount": { "id": 1, "kind": "overlay" }, "command": "/usr/lib/systemd/systemd", "state": "created", "systemd": true }"#).unwrap();
    assert_eq!(c.mount.kind, Some(MountKind::Overlay));
    let nested: Mount = parse_json(br#"{"kind":"overlay","overlay":{"lower":[{"kind":"rbd","rbd":{"fs_type":"squashfs","mount_options":["ro"],"rbd":{"monitors":["192.168.1.48"],"pool":"rbd","image":"systemd.sqsh","options":{"ro":true,"name":"admin","secret":"XXX"}}}}]}}"#).unwrap();
    let Lower::Mount(lower) = &nested.overlay.unwrap().lower[0] else {
        panic!("a mount object")
    };
    assert_eq!(
        lower.rbd.as_ref().unwrap().rbd.as_ref().unwrap().pool,
        "rbd"
    );
}

#[test]
fn ids_are_bus_ids_minus_one() {
    assert_eq!(api_id(1), 0);
    assert_eq!(bus_id(0, "x").unwrap(), 1);
    assert_eq!(bus_id(41, "x").unwrap(), 42);
    assert!(matches!(bus_id(-1, "mount"), Err(ApiError::NotFound(_))));
}

#[test]
fn secrets_are_never_rendered_nor_logged() {
    let info = AttachInfo {
        id: 3,
        name: None,
        source: AttachSource::Rbd(RbdSource {
            monitors: vec!["127.0.0.1:6789".into()],
            pool: "rbd".into(),
            image: "img".into(),
            snapshot: None,
            namespace: None,
            user: "admin".into(),
            secret: Secret::new("AQDsecret=="),
            read_only: true,
            shared: false,
        }),
        device: "/dev/rbd4".into(),
        driver: "krbd".into(),
        read_only: true,
        holders: vec![imagebus_schema::Holder::User],
        created_at: 0,
    };
    let v2 = serde_json::to_string(&crate::render::attach(&info)).unwrap();
    let v1 = serde_json::to_string(&crate::render::v1_rbd(&info).unwrap()).unwrap();
    for json in [&v2, &v1] {
        assert!(!json.contains("AQD"), "{json}");
        assert!(json.contains(r#""secret":"<redacted>""#), "{json}");
    }
    assert!(v2.contains(r#""device_id":4"#), "{v2}");
    assert!(v2.contains(r#""id":2"#), "{v2}");
    let uri: axum::http::Uri = "/imageapi/v1/attach?id=1&secret=AQD&force=true"
        .parse()
        .unwrap();
    assert_eq!(
        crate::log::redacted_target(&uri),
        "/imageapi/v1/attach?id=1&secret=<redacted>&force=true"
    );
}

#[test]
fn listen_addresses() {
    assert_eq!(
        Listen::parse("127.0.0.1:8080").unwrap(),
        Listen::Tcp("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(
        Listen::parse("localhost:80").unwrap(),
        Listen::Tcp("127.0.0.1:80".parse().unwrap())
    );
    assert_eq!(
        Listen::parse("unix:/run/imageapi.sock").unwrap(),
        Listen::Unix("/run/imageapi.sock".into())
    );
    assert!(Listen::parse("unix:relative").is_err());
    // Found by the gateway_json fuzz target: `unix:////k` printed as `unix://k`, which
    // parsed as the relative `k`.
    let odd = Listen::parse("unix:////k/./s").unwrap();
    assert_eq!(odd, Listen::Unix("/k/s".into()));
    assert_eq!(Listen::parse(&odd.to_string()).unwrap(), odd);
    assert!(Listen::parse("nohost").is_err());
}

#[test]
fn error_statuses_follow_imageapi() {
    use imagebus_bus::RemoteError;
    let cases = [
        (ApiError::from(RemoteError::not_found("x")), 404),
        (ApiError::from(RemoteError::invalid_argument("x")), 400),
        (ApiError::from(RemoteError::conflict("x")), 409),
        (ApiError::from(RemoteError::unsupported("x")), 501),
        (ApiError::from(RemoteError::unavailable("x")), 500),
        (ApiError::from(RemoteError::timeout("x")), 500),
        (ApiError::from(RemoteError::internal("x")), 500),
        (ApiError::Busy("x".into()), 409),
        (ApiError::NotImplemented("x".into()), 501),
    ];
    for (e, code) in cases {
        assert_eq!(e.code().as_u16(), code, "{e:?}");
        assert_eq!(e.body().code, i64::from(code));
    }
    assert_eq!(
        ApiError::from(RemoteError::unavailable("monitor down")).message(),
        "Unavailable: monitor down"
    );
}

#[test]
fn the_document_lists_every_generation() {
    let (_, api) = crate::openapi::routes();
    let doc = crate::openapi::document(api);
    let paths: Vec<&String> = doc.paths.paths.keys().collect();
    for p in [
        "/attach/rbd",
        "/attach/rbd/{id}",
        "/mount/rbd/{id}",
        "/mount/overlay/{id}",
        "/container/{id}/{state}",
        "/container/byname/{name}/{state}",
        "/attach",
        "/mount",
        "/container",
        "/swagger.json",
    ] {
        assert!(paths.iter().any(|x| *x == p), "{p} missing from {paths:?}");
    }
}
