//! docs/security.md against the code: the default seccomp profile's table is the profile's
//! data, rule by rule.

use imagebus_sys::oci::seccomp;
use imagebus_tests::doc_text::doc;
use std::collections::BTreeSet;

/// The backticked words of `cell`.
fn ticked(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn security_md_lists_every_rule_of_the_default_seccomp_profile() {
    let md = doc("security.md");
    let header = "| system calls | lifted by | errno | why |";
    let start = md
        .find(header)
        .expect("the seccomp table in docs/security.md");
    let documented: BTreeSet<(BTreeSet<String>, BTreeSet<String>, String)> = md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (ticked(cells[0]), ticked(cells[1]), cells[2].to_string())
        })
        .collect();
    let code: BTreeSet<(BTreeSet<String>, BTreeSet<String>, String)> = seccomp::rules()
        .unwrap()
        .iter()
        .map(|r| {
            let names = r.names.iter().chain(&r.clone_flags).cloned().collect();
            let caps = r.unless_capabilities.iter().cloned().collect();
            (
                names,
                caps,
                r.errno.clone().unwrap_or_else(|| "EPERM".into()),
            )
        })
        .collect();
    assert_eq!(
        documented, code,
        "docs/security.md's seccomp table vs sys/src/oci/seccomp_default.json"
    );
}
