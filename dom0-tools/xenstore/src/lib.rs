//! XenStore core (placeholder; being written).
