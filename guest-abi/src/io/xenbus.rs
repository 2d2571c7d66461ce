//! XenBus device states (`io/xenbus.h`).

xen_consts! {
    "io/xenbus.h";
    XENBUS_STATE_UNKNOWN: u32 = 0, "XenbusStateUnknown";
    XENBUS_STATE_INITIALISING: u32 = 1, "XenbusStateInitialising";
    XENBUS_STATE_INIT_WAIT: u32 = 2, "XenbusStateInitWait";
    XENBUS_STATE_INITIALISED: u32 = 3, "XenbusStateInitialised";
    XENBUS_STATE_CONNECTED: u32 = 4, "XenbusStateConnected";
    XENBUS_STATE_CLOSING: u32 = 5, "XenbusStateClosing";
    XENBUS_STATE_CLOSED: u32 = 6, "XenbusStateClosed";
    XENBUS_STATE_RECONFIGURING: u32 = 7, "XenbusStateReconfiguring";
    XENBUS_STATE_RECONFIGURED: u32 = 8, "XenbusStateReconfigured";
}

xen_enum! {
    /// A XenBus device state, as read from XenStore.
    pub enum XenbusState: u32 {
        /// `XenbusStateUnknown`
        Unknown = XENBUS_STATE_UNKNOWN,
        /// `XenbusStateInitialising`
        Initialising = XENBUS_STATE_INITIALISING,
        /// `XenbusStateInitWait`
        InitWait = XENBUS_STATE_INIT_WAIT,
        /// `XenbusStateInitialised`
        Initialised = XENBUS_STATE_INITIALISED,
        /// `XenbusStateConnected`
        Connected = XENBUS_STATE_CONNECTED,
        /// `XenbusStateClosing`
        Closing = XENBUS_STATE_CLOSING,
        /// `XenbusStateClosed`
        Closed = XENBUS_STATE_CLOSED,
        /// `XenbusStateReconfiguring`
        Reconfiguring = XENBUS_STATE_RECONFIGURING,
        /// `XenbusStateReconfigured`
        Reconfigured = XENBUS_STATE_RECONFIGURED,
    }
}
