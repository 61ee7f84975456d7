//! dsmip interop: the network-namespace lab used by the end-to-end and interop tests, and
//! the pieces of `dsmip-probe`.

pub mod esp_fwd;
pub mod ike_probe;
pub mod lab;
pub mod probe;
