//! dsmip IKEv2 engine (being written).
