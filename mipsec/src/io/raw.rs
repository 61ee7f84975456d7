//! Raw IP sockets for the protocols the daemons carry themselves: 4 (IPv4 in IP), 41 (IPv6
//! in IP), 50 (ESP) and 135 (Mobility Header). Over IPv4 the kernel hands over whole
//! packets with their header; over IPv6 only the payload (RFC 3542 §3), with the source
//! address from `recv_from`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{cvt, cvt_len};

/// The IP protocols a raw socket may be opened for here.
pub const PROTOCOLS: [u8; 4] = [4, 41, 50, 135];

/// A raw socket for one IP protocol and family.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    v6: bool,
    protocol: u8,
}

impl RawSocket {
    /// Open a raw socket for `protocol` (one of [`PROTOCOLS`]); needs CAP_NET_RAW.
    pub fn open(v6: bool, protocol: u8) -> io::Result<Self> {
        if !PROTOCOLS.contains(&protocol) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "protocol not one of 4, 41, 50, 135",
            ));
        }
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: socket() takes no pointers; the result is checked.
        let fd = cvt(unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(RawSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            v6,
            protocol,
        })
    }

    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Receive one packet: IPv4 with its header, IPv6 without. Returns length and source.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        // SAFETY: sockaddr_storage is plain old data.
        let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: buf and ss are live and writable for their stated lengths.
        let n = cvt_len(unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        })?;
        let src = if self.v6 {
            // SAFETY: an AF_INET6 raw socket reports a sockaddr_in6.
            let s: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
            IpAddr::V6(Ipv6Addr::from(s.sin6_addr.s6_addr))
        } else {
            // SAFETY: an AF_INET raw socket reports a sockaddr_in.
            let s: libc::sockaddr_in =
                unsafe { std::ptr::read((&ss as *const libc::sockaddr_storage).cast()) };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)))
        };
        Ok((n, src))
    }

    /// Send `payload` (without IP header) to `dst`; the kernel builds the header.
    pub fn send_to(&self, payload: &[u8], dst: IpAddr) -> io::Result<usize> {
        let (ss, len) = match dst {
            IpAddr::V4(a) => {
                // SAFETY: plain old data.
                let mut s: libc::sockaddr_in = unsafe { zeroed() };
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_addr = libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                };
                // SAFETY: storage is larger than and aligned for sockaddr_in.
                let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
                unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), s) };
                (ss, size_of::<libc::sockaddr_in>())
            }
            IpAddr::V6(a) => {
                // SAFETY: plain old data.
                let mut s: libc::sockaddr_in6 = unsafe { zeroed() };
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_addr = libc::in6_addr {
                    s6_addr: a.octets(),
                };
                // SAFETY: storage is larger than and aligned for sockaddr_in6.
                let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
                unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), s) };
                (ss, size_of::<libc::sockaddr_in6>())
            }
        };
        // SAFETY: payload and ss are live for the call; the kernel only reads them.
        cvt_len(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&ss as *const libc::sockaddr_storage).cast(),
                len as libc::socklen_t,
            )
        })
    }
}

impl AsRawFd for RawSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
