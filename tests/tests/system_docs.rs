//! docs/system.md stays true to the code: its method table, variable table, tmpfiles
//! types, zinit keys and CLI block against `syscontainer.syscontainer@1`, the variable
//! lists of the schema, the module's constants and `imagebus system --help`.

use imagebus_schema::syscontainer::{
    SysContainerModule, SysContainerModuleServer, DEFAULTED_VARIABLES, EXPORT_FILES,
    FORCED_VARIABLES,
};
use imagebus_tests::doc_text::{doc, table_keys};
use std::collections::BTreeSet;

fn set<T: ToString>(items: &[T]) -> BTreeSet<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The rows of the table headed `header`: their cells.
fn rows(md: &str, header: &str) -> Vec<Vec<String>> {
    let start = md
        .find(header)
        .unwrap_or_else(|| panic!("no table {header:?}"));
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_method_table_matches_the_object() {
    let md = doc("system.md");
    assert_eq!(
        table_keys(&md, "method"),
        set(SysContainerModuleServer::<dyn SysContainerModule>::METHODS)
    );
}

#[test]
fn the_variable_table_matches_the_schema() {
    let md = doc("system.md");
    let rows = rows(&md, "| variable | kind | value |");
    let of = |kind: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r[1] == kind)
            .map(|r| r[0].clone())
            .collect()
    };
    assert_eq!(of("forced"), set(&FORCED_VARIABLES));
    assert_eq!(of("default"), set(&DEFAULTED_VARIABLES));
    assert_eq!(
        rows.len(),
        FORCED_VARIABLES.len() + DEFAULTED_VARIABLES.len()
    );
}

#[test]
fn the_exports_tmpfiles_and_zinit_tables_match_the_code() {
    let md = doc("system.md");
    let first = |header: &str| -> BTreeSet<String> {
        rows(&md, header)
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    assert_eq!(first("| file | used for |"), set(&EXPORT_FILES));
    assert_eq!(
        first("| type | what |"),
        set(&imagebus_syscontainer::TMPFILES_TYPES)
    );
    assert_eq!(
        first("| zinit key | from |"),
        set(&imagebus_syscontainer::ZINIT_KEYS)
    );
}

#[test]
fn the_cli_block_shows_every_system_subcommand() {
    let md = doc("system.md");
    let start = md.find("## CLI").unwrap();
    let block = &md[start..];
    let block = &block[block.find("```\n").unwrap() + 4..];
    let block = &block[..block.find("```").unwrap()];
    let documented: BTreeSet<String> = block
        .lines()
        .filter_map(|l| l.strip_prefix("imagebus system "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let out = imagebus_tests::daemon::cli_command()
        .args(["system", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert_eq!(documented, commands, "docs/system.md's CLI block");
    assert!(block.contains("imagebus start --attach NAME"));
}
