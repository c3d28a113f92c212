//! Template rendering: `$VAR` and `${VAR}` are replaced by the variable's value (a name is
//! `[A-Za-z_][A-Za-z0-9_]*`), `$$` by `$`; any other `$` stays as it is. Every variable a
//! template uses without a value is collected, so one error lists them all.

use std::collections::{BTreeMap, BTreeSet};

/// Renders `text`; `Err` holds every variable used without a value.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, BTreeSet<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if is_name(&braced[..end]) => (&braced[..end], end + 2),
                _ => ("", 0),
            }
        } else {
            let len = name_len(after);
            (&after[..len], len)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                missing.insert(name.to_string());
            }
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// The length of the variable name at the start of `s` (0: none).
fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// Whether `s` is a whole variable name.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && name_len(s) == s.len()
}
