//! A registered watch and the events it produces.
//!
//! Semantics: X:`tools/xenstore/xenstored_watch.c` `struct watch`,
//! `get_watch_path`, `add_event`, `fire_watches` matching (Xen 4.17). A
//! watch on a relative path reports relative paths; a watch fires for
//! changes at or below its node, or (for "exact" firings, used for the
//! children of a removed subtree and for special events) only for its node.

use guest_abi::io::xs_wire::XS_WATCH_EVENT;

use crate::path::is_child;
use crate::wire::{encode, PAYLOAD_MAX};

/// One watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Watch {
    /// The watched node, canonical (or a special `@` name).
    pub node: Vec<u8>,
    /// The client's token, echoed in events.
    pub token: Vec<u8>,
    /// The implicit path the client's relative name was resolved under.
    pub relative_to: Option<String>,
}

impl Watch {
    /// Whether a change of `name` fires this watch.
    pub fn matches(&self, name: &[u8], exact: bool) -> bool {
        if exact {
            name == self.node.as_slice()
        } else {
            is_child(name, &self.node)
        }
    }

    /// `get_watch_path`: `name` as the client knows it.
    fn client_path<'a>(&self, name: &'a [u8]) -> &'a [u8] {
        match &self.relative_to {
            Some(prefix) => {
                let rest = name.get(prefix.len()..).unwrap_or(&[]);
                rest.strip_prefix(b"/").unwrap_or(rest)
            }
            None => name,
        }
    }

    /// The encoded `XS_WATCH_EVENT` for a change of `name`; `None` when it
    /// would exceed the payload limit (Xen drops such events).
    pub fn event(&self, name: &[u8]) -> Option<Vec<u8>> {
        let path = self.client_path(name);
        let len = path.len() + 1 + self.token.len() + 1;
        if len > PAYLOAD_MAX {
            return None;
        }
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(path);
        payload.push(0);
        payload.extend_from_slice(&self.token);
        payload.push(0);
        Some(encode(XS_WATCH_EVENT, 0, 0, &payload))
    }

    /// Memory the watch costs its domain.
    pub fn memory(&self) -> usize {
        self.node.len() + self.token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::HEADER_LEN;

    #[test]
    fn relative_watches_report_relative_paths() {
        let w = Watch {
            node: b"/local/domain/3/device".to_vec(),
            token: b"tok".to_vec(),
            relative_to: Some("/local/domain/3".into()),
        };
        assert!(w.matches(b"/local/domain/3/device/vif/0", false));
        assert!(!w.matches(b"/local/domain/3/device/vif/0", true));
        assert!(!w.matches(b"/local/domain/3/devices", false));
        let ev = w.event(b"/local/domain/3/device/vif/0").unwrap();
        assert_eq!(&ev[HEADER_LEN..], b"device/vif/0\0tok\0");
    }

    #[test]
    fn oversized_events_are_dropped() {
        let w = Watch { node: b"/".to_vec(), token: vec![b't'; PAYLOAD_MAX], relative_to: None };
        assert_eq!(w.event(b"/a"), None);
    }
}
