//! Security Policy Database (being written).
