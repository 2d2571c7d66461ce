//! The xenbus handshake's vocabulary: device states (`io/xenbus.h`), the
//! generic keys both ends and the toolstack use, and the paths of a
//! device's two directories.
//!
//! Frontend directory: `/local/domain/<fe>/device/<type>/<devid>`, with
//! `backend`, `backend-id`, `state`. Backend directory:
//! `/local/domain/<be>/backend/<kind>/<fe>/<devid>`, with `frontend`,
//! `frontend-id`, `online`, `state`. The toolstack creates both (state 1,
//! Initialising) in one transaction; each driver only switches its own
//! `state` and reads the other's, and both drive their state machine from
//! the current values, never from watch edges (Linux drops a watch event
//! while one is pending). Semantics: X:`docs/misc/xenstore-paths.pandoc`,
//! `xen/include/public/io/xenbus.h`; L:`drivers/xen/xenbus/`.

use alloc::format;
use alloc::string::String;

pub use guest_abi::io::xenbus::XenbusState;

/// `frontend` (backend dir): the frontend directory's path.
pub const KEY_FRONTEND: &str = "frontend";
/// `frontend-id` (backend dir): the frontend domain.
pub const KEY_FRONTEND_ID: &str = "frontend-id";
/// `backend` (frontend dir): the backend directory's path.
pub const KEY_BACKEND: &str = "backend";
/// `backend-id` (frontend dir): the backend domain, to which grants and
/// unbound ports are offered.
pub const KEY_BACKEND_ID: &str = "backend-id";
/// `online` (backend dir): 1 while the toolstack wants the device.
pub const KEY_ONLINE: &str = "online";
/// `state`: the writer's [`XenbusState`].
pub const KEY_STATE: &str = "state";

/// `/local/domain/<domid>`.
pub fn domain_path(domid: u16) -> String {
    format!("/local/domain/{domid}")
}

/// A frontend directory: `/local/domain/<fe>/device/<type>/<devid>`.
pub fn frontend_dir(frontend: u16, device_type: &str, devid: u32) -> String {
    format!("{}/device/{device_type}/{devid}", domain_path(frontend))
}

/// A backend directory: `/local/domain/<be>/backend/<kind>/<fe>/<devid>`.
pub fn backend_dir(backend: u16, kind: &str, frontend: u16, devid: u32) -> String {
    format!("{}/backend/{kind}/{frontend}/{devid}", domain_path(backend))
}

/// Whether a peer in state `s` has published what it has to publish
/// before the other end connects (3 or 4: blkif.h lets frontends skip 3).
pub fn is_ready(s: XenbusState) -> bool {
    matches!(s, XenbusState::Initialised | XenbusState::Connected)
}

/// Whether `s` is one of the closing states (5 or 6).
pub fn is_closing(s: XenbusState) -> bool {
    matches!(s, XenbusState::Closing | XenbusState::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_where_libxl_puts_them() {
        assert_eq!(frontend_dir(5, "vbd", 51712), "/local/domain/5/device/vbd/51712");
        assert_eq!(backend_dir(0, "qdisk", 5, 51712), "/local/domain/0/backend/qdisk/5/51712");
        assert!(is_ready(XenbusState::Initialised) && is_ready(XenbusState::Connected));
        assert!(!is_ready(XenbusState::InitWait));
        assert!(is_closing(XenbusState::Closed) && !is_closing(XenbusState::Connected));
    }
}
