//! Layer-3 TUN devices (Linux `/dev/net/tun`, `IFF_TUN | IFF_NO_PI`): create, bring up, set
//! the MTU and addresses, read and write whole IP packets. Routes are left to the caller
//! (`ip route`), as they belong to the daemon's policy, not to the device.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::cvt;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const IFF_VNET_HDR: libc::c_int = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// Length of the `virtio_net_hdr` in front of every packet of a device opened with
/// offloads (the legacy header, without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;
/// `virtio_net_hdr.flags`: the transport checksum is partial and must be completed.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr.gso_type` values.
pub const VNET_GSO_NONE: u8 = 0;
pub const VNET_GSO_TCPV4: u8 = 1;
pub const VNET_GSO_TCPV6: u8 = 4;

/// The `virtio_net_hdr` the kernel puts in front of a packet read from an offloading TUN
/// device (host byte order, which the legacy header uses on little-endian hosts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parse the first [`VNET_HDR_LEN`] octets of `buf`.
    pub fn parse(buf: &[u8]) -> Option<VnetHdr> {
        let b = buf.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1] & 0x7f,
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }
}

/// An open TUN device. Dropping it deletes the device (it is not persistent).
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    offload: bool,
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.bytes().any(|b| b == 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: ifreq is plain old data (integers and arrays); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

/// A datagram socket to issue interface ioctls on.
fn ctl_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; the result is checked before use.
    let fd = cvt(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Tun {
    /// Create (or attach to) the TUN device `name`; `%d` in the name lets the kernel pick.
    pub fn create(name: &str) -> io::Result<Tun> {
        Self::create_with(name, false)
    }

    /// As [`create`](Self::create); with `offload` the device carries a `virtio_net_hdr`
    /// before every packet and takes TCP segmentation and checksum offload (TSO4, TSO6,
    /// CSUM): the kernel then hands over TCP super-packets of up to 64 KiB with partial
    /// checksums, which the reader segments ([`crate::io::gso`]), and every packet written
    /// needs a header (zero for a plain packet).
    pub fn create_with(name: &str, offload: bool) -> io::Result<Tun> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = ifreq(name)?;
        let vnet = if offload { IFF_VNET_HDR } else { 0 };
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | vnet) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is, and the
        // descriptor is open for the call's duration.
        cvt(unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) })?;
        // SAFETY: the kernel wrote a NUL-terminated name of at most IFNAMSIZ bytes.
        let name = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        if offload {
            let f = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes an integer argument, no pointer.
            cvt(unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, f as libc::c_ulong) })?;
        }
        Ok(Tun {
            file,
            name,
            offload,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether packets carry a `virtio_net_hdr` (see [`create_with`](Self::create_with)).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Read one IP packet; returns its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Write one IP packet.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        (&self.file).write(pkt)
    }

    /// Wait until a packet can be read or `timeout_ms` passes (-1: forever); true when
    /// readable.
    pub fn wait_readable(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes one pollfd that lives across the call.
        let n = cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) })?;
        Ok(n > 0)
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on an open descriptor with integer arguments.
        let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(|_| ())
    }

    /// Bring the device up.
    pub fn up(&self) -> io::Result<()> {
        let s = ctl_socket(libc::AF_INET)?;
        let mut req = ifreq(&self.name)?;
        // SAFETY: SIOCGIFFLAGS / SIOCSIFFLAGS read and write one ifreq.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: the kernel filled ifru_flags for SIOCGIFFLAGS.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        // SAFETY: as above.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) }).map(|_| ())
    }

    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let s = ctl_socket(libc::AF_INET)?;
        let mut req = ifreq(&self.name)?;
        req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        // SAFETY: SIOCSIFMTU reads one ifreq.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFMTU, &mut req) }).map(|_| ())
    }

    /// Add an address with its prefix length.
    pub fn add_address(&self, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        match addr {
            IpAddr::V4(a) => self.add_v4(a, prefix_len),
            IpAddr::V6(a) => self.add_v6(a, prefix_len),
        }
    }

    fn add_v4(&self, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let s = ctl_socket(libc::AF_INET)?;
        let sin = |a: Ipv4Addr| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(a).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix_len.min(32)))
        };
        for (op, a) in [
            (libc::SIOCSIFADDR, addr),
            (libc::SIOCSIFNETMASK, Ipv4Addr::from(mask)),
        ] {
            let mut req = ifreq(&self.name)?;
            // SAFETY: sockaddr_in fits in the ifreq union's sockaddr (both 16 bytes), and
            // the write goes through a raw pointer of the right type.
            unsafe {
                std::ptr::write(
                    std::ptr::addr_of_mut!(req.ifr_ifru.ifru_addr).cast::<libc::sockaddr_in>(),
                    sin(a),
                )
            };
            // SAFETY: SIOCSIFADDR / SIOCSIFNETMASK read one ifreq.
            cvt(unsafe { libc::ioctl(s.as_raw_fd(), op, &mut req) })?;
        }
        Ok(())
    }

    fn add_v6(&self, addr: Ipv6Addr, prefix_len: u8) -> io::Result<()> {
        #[repr(C)]
        struct In6Ifreq {
            addr: libc::in6_addr,
            prefixlen: u32,
            ifindex: libc::c_int,
        }
        let s = ctl_socket(libc::AF_INET6)?;
        let mut req = ifreq(&self.name)?;
        // SAFETY: SIOCGIFINDEX reads and writes one ifreq.
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) })?;
        let r = In6Ifreq {
            addr: libc::in6_addr {
                s6_addr: addr.octets(),
            },
            prefixlen: u32::from(prefix_len.min(128)),
            // SAFETY: the kernel filled ifru_ifindex for SIOCGIFINDEX.
            ifindex: unsafe { req.ifr_ifru.ifru_ifindex },
        };
        // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads one `struct in6_ifreq`, whose
        // layout In6Ifreq reproduces (linux/ipv6.h).
        cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR, &r) }).map(|_| ())
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
