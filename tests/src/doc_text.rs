//! Reading docs/ for the tests that keep it true to the code (`docs_drift`, `image_docs`).

use std::collections::BTreeSet;
use std::path::Path;

/// The text of `docs/<name>`.
pub fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"))
}

/// The backticked first cells of the rows of the first table in `text` whose header starts
/// with `| first |` (empty when there is no such table).
pub fn table_keys(text: &str, first: &str) -> BTreeSet<String> {
    let header = format!("| {first} |");
    let Some(start) = text.find(&header) else {
        return BTreeSet::new();
    };
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cell = l.trim_start_matches('|').split('|').next()?.trim();
            Some(cell.trim_matches('`').to_string())
        })
        .collect()
}

/// The field names inside `` `Name { a, b, ... }` `` as the docs write a type.
pub fn struct_fields(md: &str, name: &str) -> BTreeSet<String> {
    let start = md
        .find(&format!("`{name} {{"))
        .unwrap_or_else(|| panic!("no `{name} {{ ... }}` in the doc"));
    let rest = &md[start + name.len() + 3..];
    let body = &rest[..rest.find('}').expect("closing brace")];
    body.split(',')
        .map(|f| f.split_whitespace().collect::<String>())
        .filter(|f| !f.is_empty())
        .collect()
}

/// The keys of `value` serialized as a JSON object.
pub fn json_keys<T: serde::Serialize>(value: &T) -> BTreeSet<String> {
    match serde_json::to_value(value).expect("serializes") {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}
