//! Callback registration (`callback.h`): CALLBACKTYPE_* and CALLBACKOP_*.

xen_consts! {
    "callback.h";
    CALLBACKTYPE_EVENT: u32 = 0, "CALLBACKTYPE_event";
    CALLBACKTYPE_FAILSAFE: u32 = 1, "CALLBACKTYPE_failsafe";
    CALLBACKTYPE_SYSCALL: u32 = 2, "CALLBACKTYPE_syscall";
    CALLBACKTYPE_SYSENTER_DEPRECATED: u32 = 3, "CALLBACKTYPE_sysenter_deprecated";
    CALLBACKTYPE_NMI: u32 = 4, "CALLBACKTYPE_nmi";
    CALLBACKTYPE_SYSENTER: u32 = 5, "CALLBACKTYPE_sysenter";
    CALLBACKTYPE_SYSCALL32: u32 = 7, "CALLBACKTYPE_syscall32";
    CALLBACKF_MASK_EVENTS_BIT: u32 = 0, "_CALLBACKF_mask_events";
    CALLBACKF_MASK_EVENTS: u32 = 1, "CALLBACKF_mask_events";
    CALLBACKOP_REGISTER: u32 = 0, "CALLBACKOP_register";
    CALLBACKOP_UNREGISTER: u32 = 1, "CALLBACKOP_unregister";
}

xen_struct! {
    "callback.h", "struct callback_register", 16;
    /// `struct callback_register` (callback.h).
    pub struct CallbackRegister {
        /// `type`
        type_: u16 = "type",
        /// `flags`
        flags: u16 = "flags",
        /// Padding (implicit in the C layout).
        _pad0: [u8; 4] = "",
        /// `address`
        address: u64 = "address",
    }
}

xen_struct! {
    "callback.h", "struct callback_unregister", 4;
    /// `struct callback_unregister` (callback.h).
    pub struct CallbackUnregister {
        /// `type`
        type_: u16 = "type",
        /// `_unused`
        _unused: u16 = "_unused",
    }
}

xen_structs!(CallbackRegister, CallbackUnregister);
