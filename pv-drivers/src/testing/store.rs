//! [`FakeStore`]: XenStore as an ordered map of absolute paths, with
//! `switch_state`'s transaction semantics and a log of writes.

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::store::{Store, StoreError};
use crate::xenbus::XenbusState;

/// The fake store.
#[derive(Default, Debug)]
pub struct FakeStore {
    /// Every node and its value.
    pub nodes: BTreeMap<String, String>,
    /// Every write, in order (path, value).
    pub writes: Vec<(String, String)>,
}

impl FakeStore {
    /// Sets a node (as the toolstack or a test would).
    pub fn set(&mut self, path: &str, value: &str) {
        self.nodes.insert(path.to_string(), value.to_string());
    }

    /// A node's value.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.nodes.get(path).map(String::as_str)
    }

    /// Removes a node and everything below it.
    pub fn rm(&mut self, path: &str) {
        let prefix = std::format!("{path}/");
        self.nodes.retain(|k, _| k != path && !k.starts_with(&prefix));
    }

    /// The state at `dir`, as a number.
    pub fn state(&self, dir: &str) -> Option<u32> {
        self.get(&std::format!("{dir}/state")).and_then(|v| v.parse().ok())
    }
}

impl Store for FakeStore {
    fn read(&mut self, path: &str) -> Result<Option<String>, StoreError> {
        Ok(self.nodes.get(path).cloned())
    }

    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        self.writes.push((path.to_string(), value.to_string()));
        self.set(path, value);
        Ok(())
    }

    fn switch_state(&mut self, dir: &str, state: XenbusState, entries: &[(&str, String)]) -> Result<bool, StoreError> {
        if !self.nodes.contains_key(&std::format!("{dir}/state")) {
            return Ok(false);
        }
        for (k, v) in entries {
            self.write(&std::format!("{dir}/{k}"), v)?;
        }
        self.write(&std::format!("{dir}/state"), &state.to_raw().to_string())?;
        Ok(true)
    }
}
