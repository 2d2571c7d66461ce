//! Bindings to Linux's Xen device files (placeholder; being written).
