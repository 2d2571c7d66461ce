//! XenStore as a split driver sees it: read a node, write nodes, and
//! switch a device's `state` together with the keys that go with it.
//!
//! [`Store::switch_state`] is Linux's `xenbus_switch_state` with the
//! keys of `talk_to_blkback`/`connect()` folded in: one transaction that
//! writes nothing when the device's `state` node is gone (the toolstack
//! removed the device; a write would leave a stray node behind). Values
//! read from the store come from the other end or the toolstack and are
//! parsed with the helpers here, which never trust their shape.

use alloc::format;
use alloc::string::String;

use crate::xenbus::XenbusState;

/// Why a XenStore operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// `EACCES`: the permissions forbid it.
    Denied,
    /// Anything else (transport, quota, protocol): what the platform said.
    Other(String),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Denied => f.write_str("EACCES"),
            StoreError::Other(why) => f.write_str(why),
        }
    }
}

/// The XenStore operations the handshakes need.
pub trait Store {
    /// The node's value; `Ok(None)` if it does not exist.
    fn read(&mut self, path: &str) -> Result<Option<String>, StoreError>;

    /// Writes one node (creating it and its parents).
    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError>;

    /// In one transaction, retried while it conflicts: if `dir/state`
    /// exists, writes each `(key, value)` under `dir` and then `state`;
    /// returns whether it did (false: the device is gone).
    fn switch_state(&mut self, dir: &str, state: XenbusState, entries: &[(&str, String)]) -> Result<bool, StoreError>;
}

/// Reads `path` as a decimal `u32` (leading and trailing white space
/// allowed, as `%u`); `None` if the node is missing or not a number.
pub fn read_u32(store: &mut impl Store, path: &str) -> Result<Option<u32>, StoreError> {
    Ok(store.read(path)?.and_then(|v| parse_u32(&v)))
}

/// Parses a decimal `u32` as Linux's `xenbus_scanf("%u")` would accept it
/// whole: optional white space around one number, nothing else.
pub fn parse_u32(text: &str) -> Option<u32> {
    text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0').parse().ok()
}

/// Parses a decimal `u64` the same way.
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0').parse().ok()
}

/// Reads a device's state (`dir/state`): `None` if the node is missing,
/// [`XenbusState::Unknown`] if it holds no known state
/// (`xenbus_read_driver_state`).
pub fn read_state(store: &mut impl Store, dir: &str) -> Result<Option<XenbusState>, StoreError> {
    let Some(text) = store.read(&format!("{dir}/state"))? else {
        return Ok(None);
    };
    Ok(Some(parse_u32(&text).and_then(|v| XenbusState::try_from(v).ok()).unwrap_or(XenbusState::Unknown)))
}

/// The error node Linux's `xenbus_dev_error` writes for the device at
/// `dir`, under the writer's home `home` (`/local/domain/<self>`):
/// `<home>/error/<dir below home's root>/error`.
pub fn error_path(home: &str, dir: &str) -> String {
    let rel = dir.strip_prefix(home).unwrap_or(dir).trim_start_matches('/');
    format!("{home}/error/{rel}/error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_xenbus_scanf_accepts_them() {
        assert_eq!(parse_u32("51712"), Some(51712));
        assert_eq!(parse_u32(" 7\n"), Some(7));
        assert_eq!(parse_u32("7\0"), Some(7));
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(parse_u32("0x10"), None);
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32(""), None);
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn error_nodes_go_under_the_writer_s_home() {
        assert_eq!(
            error_path("/local/domain/0", "/local/domain/0/backend/qdisk/5/51712"),
            "/local/domain/0/error/backend/qdisk/5/51712/error"
        );
        assert_eq!(error_path("/local/domain/5", "device/vbd/51712"), "/local/domain/5/error/device/vbd/51712/error");
    }
}
