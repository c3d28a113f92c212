//! Per-object ordering: jobs that name the same [`Key`] run one after the other, in the
//! order they asked (tokio's mutex is fair), while jobs on other keys run beside them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// The name of an object a job works on, such as `Key::id("mount", 7)` or
/// `Key::name("container", "web")`. Two jobs with an equal key never run at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// The object with numeric id `id` of kind `kind`.
    pub fn id(kind: &str, id: u64) -> Self {
        Self(format!("{kind}/{id}"))
    }

    /// The object named `name` of kind `kind` (names are reserved by creates).
    pub fn name(kind: &str, name: &str) -> Self {
        Self(format!("{kind}:{name}"))
    }

    /// Any other key.
    pub fn other(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Lock = Arc<tokio::sync::Mutex<()>>;

/// The locks of the keys in use; a key's entry goes when nobody holds or waits for it.
#[derive(Debug, Default)]
pub(crate) struct KeyLocks {
    locks: Arc<Mutex<HashMap<Key, Lock>>>,
}

/// Held by a job while it runs; releases its keys when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    guards: Vec<(Key, OwnedMutexGuard<()>)>,
    locks: Arc<Mutex<HashMap<Key, Lock>>>,
}

impl KeyLocks {
    /// Takes every key of `keys` (sorted, so two jobs never wait for each other crosswise).
    pub(crate) async fn lock(&self, keys: Vec<Key>) -> Held {
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        let mut held = Held {
            guards: Vec::with_capacity(keys.len()),
            locks: self.locks.clone(),
        };
        for key in keys {
            let lock = {
                let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
                map.entry(key.clone()).or_default().clone()
            };
            let guard = lock.lock_owned().await;
            held.guards.push((key, guard));
        }
        held
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        for (key, guard) in self.guards.drain(..) {
            drop(guard);
            // Only the map's reference left: nobody holds, waits for or is about to wait for
            // this key (a waiter clones the lock under the map's mutex, which we hold).
            if map.get(&key).is_some_and(|l| Arc::strong_count(l) == 1) {
                map.remove(&key);
            }
        }
    }
}
