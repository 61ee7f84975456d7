//! pcap files with the raw-IP link type (LINKTYPE_RAW, 101): every record is an IPv4 or
//! IPv6 packet. A thin layer over the `pcap-file` crate that fixes the link type and turns
//! its errors into ours.

use std::io::{Read, Write};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// A pcap file error: I/O, a bad file, or a link type other than raw IP.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("pcap: {0}")]
    Format(#[from] pcap_file::PcapError),
    #[error("pcap: link type {0:?} is not raw IP (101, 228 or 229)")]
    LinkType(DataLink),
}

/// Writes raw IP packets with the timestamps it is given.
pub struct RawIpWriter<W: Write> {
    inner: PcapWriter<W>,
}

impl<W: Write> RawIpWriter<W> {
    pub fn new(w: W) -> Result<Self, PcapError> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 65535,
            datalink: DataLink::RAW,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::native(),
        };
        Ok(RawIpWriter {
            inner: PcapWriter::with_header(w, header)?,
        })
    }

    /// Append one packet captured at `ts` (since the Unix epoch).
    pub fn write(&mut self, ts: Duration, packet: &[u8]) -> Result<(), PcapError> {
        let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        self.inner.write_packet(&PcapPacket::new(ts, len, packet))?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.inner.into_writer()
    }
}

/// Read every packet of a raw-IP pcap file; any error fails the whole read.
pub fn read_raw_ip<R: Read>(r: R) -> Result<Vec<(Duration, Vec<u8>)>, PcapError> {
    let read = read_raw_ip_until_error(r)?;
    match read.error {
        Some((_, e)) => Err(e),
        None => Ok(read.packets),
    }
}

/// What [`read_raw_ip_until_error`] read.
#[derive(Debug)]
pub struct PartialRead {
    /// Every packet before the first bad record.
    pub packets: Vec<(Duration, Vec<u8>)>,
    /// The first bad record: its byte offset in the file and the error.
    pub error: Option<(usize, PcapError)>,
}

/// Read the packets of a raw-IP pcap file up to the first bad record, keeping those read.
/// A bad global header or link type is an error of the whole file.
pub fn read_raw_ip_until_error<R: Read>(r: R) -> Result<PartialRead, PcapError> {
    const GLOBAL_HEADER: usize = 24;
    const RECORD_HEADER: usize = 16;
    let mut reader = PcapReader::new(r)?;
    let link = reader.header().datalink;
    if !matches!(link, DataLink::RAW | DataLink::IPV4 | DataLink::IPV6) {
        return Err(PcapError::LinkType(link));
    }
    let mut packets = Vec::new();
    let mut offset = GLOBAL_HEADER;
    while let Some(p) = reader.next_packet() {
        match p {
            Ok(p) => {
                offset += RECORD_HEADER + p.data.len();
                packets.push((p.timestamp, p.data.into_owned()));
            }
            Err(e) => {
                return Ok(PartialRead {
                    packets,
                    error: Some((offset, e.into())),
                })
            }
        }
    }
    Ok(PartialRead {
        packets,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let mut w = RawIpWriter::new(Vec::new()).unwrap();
        w.write(Duration::from_micros(1_500_000), &[0x45, 1, 2])
            .unwrap();
        w.write(Duration::from_secs(2), &[0x60]).unwrap();
        let bytes = w.into_inner();
        // Global header: magic, version 2.4, link type 101 at offset 20.
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 1);
        let link = if cfg!(target_endian = "little") {
            u32::from_le_bytes(bytes[20..24].try_into().unwrap())
        } else {
            u32::from_be_bytes(bytes[20..24].try_into().unwrap())
        };
        assert_eq!(link, 101);
        let got = read_raw_ip(&bytes[..]).unwrap();
        assert_eq!(got[0], (Duration::from_micros(1_500_000), vec![0x45, 1, 2]));
        assert_eq!(got[1].1, vec![0x60]);
        // Cut inside the second record: the first packet survives, the error names the
        // second record's offset (24 + 16 + 3).
        let partial = read_raw_ip_until_error(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(partial.packets.len(), 1);
        assert_eq!(partial.error.as_ref().map(|(at, _)| *at), Some(43));
        assert!(read_raw_ip(&bytes[..bytes.len() - 1]).is_err());
    }
}
