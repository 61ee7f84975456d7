//! UDP sockets with batched IO: `recvmmsg` / `sendmmsg` move many datagrams per system
//! call, UDP GSO (`UDP_SEGMENT`) sends a run of equal-sized datagrams as one buffer, and
//! UDP GRO (`UDP_GRO`) receives coalesced runs with their segment size. Per-packet system
//! calls are what bound a userspace data plane (see ESP.md), so the forwarder uses these.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use super::{cvt, cvt_len};

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Datagrams handled per batch call.
pub const BATCH: usize = 64;

/// What `recv_batch` learned about one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvMeta {
    pub len: usize,
    pub src: Option<SocketAddr>,
    /// With GRO: the buffer holds datagrams of this size (the last may be shorter).
    pub segment: Option<u16>,
}

/// A UDP socket with batch operations.
#[derive(Debug)]
pub struct BatchUdp {
    sock: UdpSocket,
}

fn to_sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let s: libc::sockaddr_in6 =
                unsafe { std::ptr::read((ss as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(s.sin6_addr.s6_addr),
                u16::from_be(s.sin6_port),
                s.sin6_flowinfo,
                s.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Room for one cmsg carrying a u16 (UDP_SEGMENT / UDP_GRO), aligned for cmsghdr.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

impl BatchUdp {
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(BatchUdp {
            sock: UdpSocket::bind(addr)?,
        })
    }

    pub fn from_std(sock: UdpSocket) -> Self {
        BatchUdp { sock }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    pub fn set_buffer_sizes(&self, bytes: usize) -> io::Result<()> {
        let v = bytes as libc::c_int;
        for opt in [
            libc::SO_RCVBUF,
            libc::SO_SNDBUF,
            libc::SO_RCVBUFFORCE,
            libc::SO_SNDBUFFORCE,
        ] {
            // SAFETY: setsockopt reads one c_int from a valid pointer.
            let r = unsafe {
                libc::setsockopt(
                    self.fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&v as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            // The *FORCE variants need CAP_NET_ADMIN; the plain ones are enough without it.
            if r < 0 && !matches!(opt, libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE) {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Ask the kernel to coalesce received datagrams (UDP GRO, Linux 5.0+).
    pub fn set_gro(&self, on: bool) -> io::Result<()> {
        let v: libc::c_int = on.into();
        // SAFETY: setsockopt reads one c_int from a valid pointer.
        cvt(unsafe {
            libc::setsockopt(
                self.fd(),
                SOL_UDP,
                UDP_GRO,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Receive up to `bufs.len()` datagrams (at most [`BATCH`]) with one `recvmmsg`;
    /// blocks for the first one. Returns how many arrived; `meta[i]` describes `bufs[i]`.
    pub fn recv_batch(&self, bufs: &mut [&mut [u8]], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let n = bufs.len().min(meta.len()).min(BATCH);
        // SAFETY: these are plain-old-data arrays; all-zero values are valid.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut cmsgs: Vec<CmsgBuf> = (0..n).map(|_| CmsgBuf([0; 64])).collect();
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: bufs[i].len(),
            };
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_control = cmsgs[i].0.as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_controllen = 64;
        }
        // SAFETY: every header points at a live buffer, address and control area of the
        // stated sizes, all outliving the call; `n` headers are initialised.
        let got = cvt(unsafe {
            libc::recvmmsg(
                self.fd(),
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        })? as usize;
        for i in 0..got {
            let h = &hdrs[i];
            meta[i] = RecvMeta {
                len: h.msg_len as usize,
                src: from_sockaddr(&addrs[i]),
                segment: gro_segment(&h.msg_hdr),
            };
        }
        Ok(got)
    }

    /// Send each `(datagram, destination)` with one `sendmmsg`; returns how many went.
    pub fn send_batch(&self, msgs: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
        let n = msgs.len().min(BATCH);
        // SAFETY: plain-old-data arrays; all-zero values are valid.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, (data, dst)) in msgs.iter().take(n).enumerate() {
            let (ss, len) = to_sockaddr(dst);
            addrs[i] = ss;
            iovs[i] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = len;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: headers sent..n point at live data and addresses; the kernel only
            // reads the data (the iovec's mutability is the C API's).
            let r = cvt(unsafe {
                libc::sendmmsg(
                    self.fd(),
                    hdrs[sent..].as_mut_ptr(),
                    (n - sent) as libc::c_uint,
                    0,
                )
            })?;
            sent += r as usize;
        }
        Ok(sent)
    }

    /// Send `buf` as datagrams of `segment` octets (the last may be shorter) to `dst` with
    /// one `sendmsg` and UDP GSO (Linux 4.18+).
    pub fn send_gso(&self, buf: &[u8], segment: u16, dst: SocketAddr) -> io::Result<usize> {
        let (mut ss, len) = to_sockaddr(&dst);
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut cbuf = CmsgBuf([0; 64]);
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        // SAFETY: the control buffer is 64 aligned bytes, more than CMSG_SPACE(2); CMSG_FIRSTHDR
        // returns a pointer into it, and the u16 is written inside that header's data area.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = SOL_UDP;
            (*c).cmsg_type = UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
        }
        // SAFETY: msg points at live buffers for the duration of the call.
        cvt_len(unsafe { libc::sendmsg(self.fd(), &msg, 0) })
    }
}

/// The GRO segment size from a received message's control data, if any.
fn gro_segment(h: &libc::msghdr) -> Option<u16> {
    // SAFETY: the kernel filled msg_control / msg_controllen; the CMSG_* macros walk it
    // within those bounds, and the value is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return u16::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

impl AsRawFd for BatchUdp {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}
