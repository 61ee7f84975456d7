//! `dsmip-probe`'s work, apart from its command line: building Binding Updates and
//! Acknowledgements as whole packets, and dissecting packets into JSON.

pub mod decode;
pub mod encode;
