//! The OpenAPI document at `/imageapi/v1/swagger.json`: it is well formed (OpenAPI 3.1,
//! every `$ref` resolves, every path parameter is declared), it documents both API
//! generations, and it lists exactly what the router serves: every documented path and
//! method is routed (a request never meets the "no such path" fallback or a 405), and
//! undocumented paths and methods are not.

use imagebus_tests::imageapi::ImageApiNode;
use serde_json::Value;
use std::collections::BTreeSet;

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.insert(s.to_string());
                    }
                }
                refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_valid_and_matches_the_router() {
    let node = ImageApiNode::start("iadoc", &[]);
    let doc = node.api.expect("GET", "/swagger.json", None, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/imageapi/v1");
    let paths = doc["paths"].as_object().expect("paths");
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "$ref {r} does not resolve"
        );
    }
    for name in [
        "attach",
        "mount",
        "container",
        "rbd",
        "mount_rbd",
        "mount_overlay",
        "error",
    ] {
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "schema {name}"
        );
    }
    let expected: BTreeSet<(String, String)> = [
        ("/attach", "get"),
        ("/attach", "post"),
        ("/attach", "delete"),
        ("/mount", "get"),
        ("/mount", "post"),
        ("/mount", "delete"),
        ("/container", "get"),
        ("/container", "post"),
        ("/container", "delete"),
        ("/container", "patch"),
        ("/attach/rbd", "get"),
        ("/attach/rbd", "post"),
        ("/attach/rbd/{id}", "get"),
        ("/attach/rbd/{id}", "delete"),
        ("/mount/rbd", "get"),
        ("/mount/rbd", "post"),
        ("/mount/rbd/{id}", "get"),
        ("/mount/rbd/{id}", "delete"),
        ("/mount/overlay", "get"),
        ("/mount/overlay", "post"),
        ("/mount/overlay/{id}", "get"),
        ("/mount/overlay/{id}", "delete"),
        ("/container/{id}", "get"),
        ("/container/{id}", "delete"),
        ("/container/{id}/{state}", "get"),
        ("/container/byname/{name}", "get"),
        ("/container/byname/{name}", "delete"),
        ("/container/byname/{name}/{state}", "get"),
        ("/swagger.json", "get"),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), m.to_string()))
    .collect();
    let mut documented = BTreeSet::new();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("operations") {
            documented.insert((path.clone(), method.clone()));
            // Every {param} of the path is declared.
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path}: parameter {name} not declared");
            }
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        }
    }
    assert_eq!(documented, expected, "documented operations");

    // Every documented operation is routed: a request reaches a handler (a 2xx or an
    // ImageAPI error from the handler), never the router's fallbacks.
    for (path, method) in &documented {
        let concrete = path
            .replace("{id}", "7")
            .replace("{name}", "nobody")
            .replace("{state}", "running");
        let body = (method == "post").then_some("{}");
        let r = node.api.call(&method.to_uppercase(), &concrete, body);
        assert_ne!(r.status, 405, "{method} {path} is not routed: {r:?}");
        assert!(
            !(r.status == 404 && r.json["message"] == "no such path"),
            "{method} {path} is not routed: {r:?}"
        );
        assert!(
            r.status != 0 && r.json.is_object() || r.json.is_array(),
            "{r:?}"
        );
    }
    // And nothing else is: undocumented paths and methods meet the fallbacks.
    let r = node.api.get("/attach/loopback");
    assert_eq!(
        (r.status, r.json["message"].as_str()),
        (404, Some("no such path"))
    );
    let r = node.api.call("PUT", "/container", Some("{}"));
    assert_eq!(r.status, 405, "{r:?}");
    let r = node.api.call("PATCH", "/attach", None);
    assert_eq!(r.status, 405, "{r:?}");
}
