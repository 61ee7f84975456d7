//! dsmip mobile node (being written).
