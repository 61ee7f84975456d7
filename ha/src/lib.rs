//! dsmip home agent (being written).
