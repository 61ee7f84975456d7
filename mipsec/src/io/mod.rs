//! Driver pieces the daemons share, behind the `io` feature: TUN devices ([`tun`]), UDP
//! sockets with batched and segmented IO ([`udp`]: `recvmmsg` / `sendmmsg`, UDP GSO and
//! GRO), and raw IP sockets for protocols 4, 41, 50 and 135 ([`raw`]).
//!
//! This is the one module with `unsafe`: system calls through `libc` that `std` does not
//! wrap. Each `unsafe` block says why it is sound. Everything is blocking or non-blocking
//! file-descriptor IO; async drivers wrap the descriptors (`AsRawFd`).

pub mod gso;
pub mod raw;
pub mod tun;
pub mod udp;

use std::io;

/// `Err(last OS error)` when a libc call returned a negative value.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `Err(last OS error)` when a libc call returned a negative length.
pub(crate) fn cvt_len(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}
