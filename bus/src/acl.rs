//! Redis ACL rules that narrow who may do what on the bus (Redis 7: key permissions
//! `%R~`/`%W~`). As in zbus, anyone who can reach Redis can otherwise call everything; these
//! rules are the optional tool against that, given to `ACL SETUSER <user> on >PASSWORD …`
//! (`imagebus acl` prints them).
//!
//! - A **module user** serves its modules: it may pop only their queues (`<module>.*`, the
//!   read-only ones included) and publish and follow only their events; it may push requests to any object
//!   queue (calling peers is what modules do) and push replies to any reply list; it reads
//!   its own replies (`reply:<user>:*`, see [`crate::client::REPLY_PREFIX`]).
//! - A **read-only caller** may push only to read-only queues (`*:ro`, served with the read
//!   methods only; see [`crate::protocol::ObjectId::read_only_queue`]), read its own
//!   replies, check presence, and subscribe to events.
//!
//! Replies to Go zbus callers go to bare-UUID lists; the pattern [`UUID_KEY`] matches
//! exactly those names. Reply lists are not secret from module users (EXPIRE needs read
//! access too), so a module user could read a reply meant for someone else; it can never
//! take another module's requests.

use crate::client::REPLY_PREFIX;
use crate::presence;
use crate::protocol::READ_ONLY_SUFFIX;

/// A glob matching a bare UUID reply list (`8-4-4-4-12` characters), as Go zbus names them.
pub const UUID_KEY: &str = "????????-????-????-????-????????????";

/// Commands every bus user needs: the handshake redis-rs sends, and `PING`.
const CONNECTION: &[&str] = &["+auth", "+hello", "+ping", "+select", "+client|setname"];

/// Commands a caller uses: push a request, wait for its reply (`BLMPOP` takes several
/// from the client's reply list at once), take a late one back, check presence, follow
/// events.
const CALLER: &[&str] = &[
    "+rpush",
    "+blpop",
    "+blmpop",
    "+lrem",
    "+exists",
    "+subscribe",
    "+unsubscribe",
    "+psubscribe",
    "+punsubscribe",
];

/// Commands a server uses besides the caller's: pop (`LPOP … COUNT` for batches on a Redis
/// without `BLMPOP`), reply (`EXPIRE`), presence (`SET`), events, and waking its own
/// blocked pulls at shutdown.
const SERVER: &[&str] = &[
    "+lpop",
    "+expire",
    "+set",
    "+publish",
    "+client|id",
    "+client|unblock",
];

/// Whether `word` (a user or a module, named `what` in the error) is usable in the rules:
/// 1 to 64 letters, digits, `-` or `_` (no separators or glob characters).
fn check_word(what: &str, word: &str) -> Result<(), String> {
    let ok = !word.is_empty()
        && word.len() <= 64
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {:?}: use 1 to 64 letters, digits, '-' or '_'",
            crate::echo(word)
        ))
    }
}

fn base(user: &str) -> Vec<String> {
    // Not `reset`: it would also switch the user off and drop the password given before.
    let mut rules: Vec<String> = ["resetkeys", "resetchannels", "-@all"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    rules.extend(CONNECTION.iter().chain(CALLER).map(|s| s.to_string()));
    rules.push(format!("~{REPLY_PREFIX}{user}:*"));
    rules.push(format!("%R~{}", presence::presence_key("*")));
    rules.push(format!("%R~{}", presence::served_key("*")));
    rules
}

/// The rules of a user serving `modules` (see the module docs). Without a password (add
/// `>PASSWORD` and `on`).
pub fn module_rules(user: &str, modules: &[&str]) -> Result<Vec<String>, String> {
    check_word("user", user)?;
    if modules.is_empty() {
        return Err("name at least one module".into());
    }
    let mut rules = base(user);
    rules.extend(SERVER.iter().map(|s| s.to_string()));
    for m in modules {
        check_word("module", m)?;
        rules.push(format!("~{m}.*"));
        rules.push(format!("~{}", presence::presence_key(m)));
        rules.push(format!("~{}", presence::served_key(m)));
        rules.push(format!("&{m}.*"));
    }
    rules.push("%W~*@*".into());
    rules.push(format!("~{REPLY_PREFIX}*"));
    rules.push(format!("~{UUID_KEY}"));
    Ok(rules)
}

/// The rules of a read-only caller (see the module docs). Without a password.
pub fn reader_rules(user: &str) -> Result<Vec<String>, String> {
    check_word("user", user)?;
    let mut rules = base(user);
    rules.push(format!("%W~*@*{READ_ONLY_SUFFIX}"));
    rules.push("&*".into());
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_rules_scope_pops_to_the_modules_and_replies_to_the_user() {
        let r = module_rules("node", &["attach", "mount"]).unwrap();
        for want in [
            "resetkeys",
            "-@all",
            "~attach.*",
            "~mount.*",
            "&attach.*",
            "~reply:node:*",
            "%W~*@*",
            "+lpop",
            "+blmpop",
        ] {
            assert!(r.iter().any(|x| x == want), "{want} in {r:?}");
        }
        assert!(!r
            .iter()
            .any(|x| x == "~*" || x == "allkeys" || x == "+@all"));
        assert!(
            !r.iter().any(|x| x == "&*"),
            "events of other modules stay theirs"
        );
    }

    #[test]
    fn reader_rules_push_only_to_read_only_queues() {
        let r = reader_rules("viewer").unwrap();
        assert!(r.iter().any(|x| x == "%W~*@*:ro"));
        assert!(!r
            .iter()
            .any(|x| x == "%W~*@*" || x == "+lpop" || x == "+expire"));
    }

    #[test]
    fn bad_users_and_modules_are_refused() {
        for bad in ["", "a b", "x*", "a:b", &"u".repeat(65)] {
            assert!(reader_rules(bad).is_err(), "{bad:?}");
        }
        assert!(module_rules("node", &[]).is_err());
        assert!(module_rules("node", &["con*"]).is_err());
    }
}
