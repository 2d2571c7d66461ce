//! Wrappers for `callback_op` (`callback.h`).

use super::{arg, hypercall2, result};
use crate::callback::{self as c, CallbackRegister, CallbackUnregister};
use crate::errno::XenError;
use crate::xen::HYPERVISOR_CALLBACK_OP;

/// `CALLBACKOP_register`: the entry point for callback `typ`
/// (`CALLBACKTYPE_*`; flags `CALLBACKF_mask_events`). Kept safe for its
/// callers: `address` must be an entry point able to take the
/// hypervisor's frame.
pub fn register_callback(typ: u16, flags: u16, address: u64) -> Result<(), XenError> {
    let a = CallbackRegister { type_: typ, flags, _pad0: [0; 4], address };
    // SAFETY: `a` is valid for the call; the caller vouches for the entry
    // point (see above).
    result(unsafe { hypercall2(HYPERVISOR_CALLBACK_OP, c::CALLBACKOP_REGISTER.into(), arg(&a)) }).map(drop)
}

/// `CALLBACKOP_unregister` (Xen allows it for the NMI callback only).
pub fn unregister_callback(typ: u16) -> Result<(), XenError> {
    let a = CallbackUnregister { type_: typ, _unused: 0 };
    // SAFETY: `a` is valid for the call; removing a callback only stops
    // its delivery.
    result(unsafe { hypercall2(HYPERVISOR_CALLBACK_OP, c::CALLBACKOP_UNREGISTER.into(), arg(&a)) }).map(drop)
}
