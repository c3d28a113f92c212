//! `tmpfiles.template` lines, in systemd-tmpfiles' syntax (`TYPE PATH MODE USER GROUP AGE
//! ARGUMENT`, `-` for a default). Types: `d` (a directory, made with its missing parents),
//! `D` (the same, removed with its contents on uninstall), `f` (a file with ARGUMENT as
//! its contents, when missing), `L` (a symlink to ARGUMENT, when missing), `Z` (mode and
//! owner applied recursively to an existing path). Owners are numeric (or `-`: root).

use std::path::PathBuf;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `d`, `D`, `f`, `L` or `Z`.
    pub kind: char,
    /// The absolute host path.
    pub path: PathBuf,
    /// The mode, if given.
    pub mode: Option<u32>,
    /// The owner, if given.
    pub uid: Option<u32>,
    /// The group, if given.
    pub gid: Option<u32>,
    /// The argument (`f` contents, `L` target).
    pub arg: Option<String>,
}

/// The tmpfiles types we apply.
pub const TYPES: [char; 5] = ['d', 'D', 'f', 'L', 'Z'];

/// Parses the rendered template: its lines, or what is wrong with one.
pub fn parse(text: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The argument (field 7) is the rest of the line, blanks included.
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 2 {
            return Err(format!(
                "tmpfiles line {line:?}: needs at least TYPE and PATH"
            ));
        }
        let ty = words[0];
        let kind = match ty.chars().next() {
            Some(c) if ty.len() == 1 && TYPES.contains(&c) => c,
            _ => {
                return Err(format!(
                    "tmpfiles line {line:?}: type {ty:?} is not supported (supported: d D f L Z)"
                ))
            }
        };
        let path = PathBuf::from(words[1]);
        if !path.is_absolute() {
            return Err(format!("tmpfiles line {line:?}: the path must be absolute"));
        }
        let field = |i: usize| words.get(i).copied().filter(|w| *w != "-");
        let mode = field(2)
            .map(|m| u32::from_str_radix(m.trim_start_matches('~'), 8))
            .transpose()
            .map_err(|_| format!("tmpfiles line {line:?}: bad mode"))?;
        let id = |i: usize, what: &str| -> Result<Option<u32>, String> {
            field(i)
                .map(|v| {
                    v.parse::<u32>().map_err(|_| {
                        format!("tmpfiles line {line:?}: {what} {v:?} must be numeric")
                    })
                })
                .transpose()
        };
        let (uid, gid) = (id(3, "user")?, id(4, "group")?);
        let arg = if words.len() > 6 {
            let mut rest = line;
            for w in &words[..6] {
                rest = rest.trim_start()[w.len()..].trim_start();
            }
            Some(rest.to_string()).filter(|a| a != "-")
        } else {
            None
        };
        if kind == 'L' && arg.is_none() {
            return Err(format!("tmpfiles line {line:?}: L needs a target"));
        }
        out.push(Line {
            kind,
            path,
            mode,
            uid,
            gid,
            arg,
        });
    }
    Ok(out)
}
