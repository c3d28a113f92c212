//! `imagebus acl module|reader`: prints the Redis ACL rules of a bus user (see
//! `imagebus_bus::acl`), one line, or a JSON array with `--json`. Local: no broker needed.

use crate::args::{AclCommand, Global};
use anyhow::Result;
use imagebus_bus::{acl, RemoteError};
use std::io::Write;

/// Prints the rules.
pub fn run(g: &Global, c: &AclCommand) -> Result<()> {
    let rules = match c {
        AclCommand::Module { user, modules } => {
            let modules: Vec<&str> = modules.iter().map(String::as_str).collect();
            acl::module_rules(user, &modules)
        }
        AclCommand::Reader { user } => acl::reader_rules(user),
    }
    .map_err(RemoteError::invalid_argument)?;
    let mut out = std::io::stdout().lock();
    if g.json {
        writeln!(out, "{}", serde_json::to_string(&rules)?)?;
    } else {
        writeln!(out, "{}", rules.join(" "))?;
    }
    Ok(())
}
