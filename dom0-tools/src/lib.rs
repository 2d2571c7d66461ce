//! dom0-tools: shared code of the toolstack binaries (placeholder).
