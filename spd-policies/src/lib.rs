//! dsmip policy files (being written).
