//! The durable IPv4 home address lease store (RFC 5555 §4.5: "the home agent MUST store
//! that address (associated with the IPv6 home address) after it's allocated").
//!
//! One redb table maps the 16 octets of an IPv6 home address to a 14-octet record:
//! format version (1), IPv4 address (4), prefix length (1), expiry in Unix seconds (8).
//! Every write is one redb transaction: a lease is either fully stored or absent. Opening
//! reads every record and refuses the file (naming it) when it is not a redb file, is
//! corrupt, is locked, or holds a record that does not decode.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::config::LeaseDurability;
use crate::error::{Error, Result};

const LEASES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ipv4_leases");
const RECORD_VERSION: u8 = 1;
const RECORD_LEN: usize = 14;

/// One dynamic IPv4 home address (or prefix) lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub hoa: Ipv6Addr,
    pub net: Ipv4Net,
    /// Expiry, Unix seconds.
    pub expires: u64,
}

impl Lease {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut v = [0u8; RECORD_LEN];
        v[0] = RECORD_VERSION;
        v[1..5].copy_from_slice(&self.net.addr().octets());
        v[5] = self.net.prefix_len();
        v[6..14].copy_from_slice(&self.expires.to_be_bytes());
        v
    }

    fn decode(key: &[u8], v: &[u8]) -> core::result::Result<Self, &'static str> {
        let k: [u8; 16] = key.try_into().map_err(|_| "key is not 16 octets")?;
        if v.len() != RECORD_LEN {
            return Err("record length is not 14");
        }
        if v[0] != RECORD_VERSION {
            return Err("unknown record version");
        }
        let addr = Ipv4Addr::new(v[1], v[2], v[3], v[4]);
        let net = Ipv4Net::new(addr, v[5]).map_err(|_| "prefix length above 32")?;
        if net.network() != addr {
            return Err("prefix has host bits set");
        }
        let mut e = [0u8; 8];
        e.copy_from_slice(&v[6..14]);
        Ok(Lease {
            hoa: Ipv6Addr::from(k),
            net,
            expires: u64::from_be_bytes(e),
        })
    }
}

/// The lease file. Dropping it flushes eventual-durability commits.
pub struct LeaseStore {
    db: Database,
    path: PathBuf,
    durability: Durability,
    dirty: bool,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore")
            .field("path", &self.path)
            .finish()
    }
}

impl LeaseStore {
    /// Open (or create) the store at `path` and read every lease.
    pub fn open(path: &Path, durability: LeaseDurability) -> Result<(Self, Vec<Lease>)> {
        check_magic(path)?;
        let db = Database::create(path).map_err(|e| Error::StoreOpen {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let mut store = LeaseStore {
            db,
            path: path.to_path_buf(),
            durability: match durability {
                LeaseDurability::Immediate => Durability::Immediate,
                LeaseDurability::Eventual => Durability::Eventual,
            },
            dirty: false,
        };
        // Make sure the table exists, durably, so a read never races its creation.
        store.write(Durability::Immediate, |_| Ok(()))?;
        let leases = store.load()?;
        Ok((store, leases))
    }

    /// A store that lives in memory only (nothing survives the process): for tests and
    /// simulations that need no file.
    pub fn in_memory() -> Result<Self> {
        let path = PathBuf::from("<memory>");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| Error::StoreOpen {
                path: path.clone(),
                source: Box::new(e),
            })?;
        let mut store = LeaseStore {
            db,
            path,
            durability: Durability::Immediate,
            dirty: false,
        };
        store.write(Durability::Immediate, |_| Ok(()))?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, op: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Store {
            path: self.path.clone(),
            op,
            reason: e.to_string(),
        }
    }

    fn load(&self) -> Result<Vec<Lease>> {
        let tx = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let table = tx
            .open_table(LEASES)
            .map_err(|e| self.err("open table", e))?;
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeMap::new();
        for row in table.iter().map_err(|e| self.err("iterate", e))? {
            let (k, v) = row.map_err(|e| self.err("read record", e))?;
            let key = k.value();
            let lease = Lease::decode(key, v.value()).map_err(|reason| Error::CorruptLease {
                path: self.path.clone(),
                key: hex_key(key),
                reason,
            })?;
            let start = u32::from(lease.net.network());
            let end = u32::from(lease.net.broadcast());
            let overlap = seen
                .range(..=end)
                .next_back()
                .is_some_and(|(_, &e2): (&u32, &u32)| e2 >= start);
            if overlap {
                return Err(Error::CorruptLease {
                    path: self.path.clone(),
                    key: hex_key(key),
                    reason: "IPv4 address already leased to another home address",
                });
            }
            seen.insert(start, end);
            out.push(lease);
        }
        Ok(out)
    }

    fn write(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> core::result::Result<(), redb::StorageError>,
    ) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(|e| self.err("begin", e))?;
        tx.set_durability(durability);
        {
            let mut t = tx
                .open_table(LEASES)
                .map_err(|e| self.err("open table", e))?;
            f(&mut t).map_err(|e| self.err("write", e))?;
        }
        tx.commit().map_err(|e| self.err("commit", e))?;
        self.dirty = !matches!(durability, Durability::Immediate);
        Ok(())
    }

    /// Store `put` and delete the leases of `remove`, in one transaction.
    pub fn commit(&mut self, put: &[Lease], remove: &[Ipv6Addr]) -> Result<()> {
        let d = self.durability;
        self.write(d, |t| {
            for hoa in remove {
                t.remove(&hoa.octets()[..])?;
            }
            for l in put {
                t.insert(&l.hoa.octets()[..], &l.encode()[..])?;
            }
            Ok(())
        })
    }

    /// Force every commit so far to the disk.
    pub fn flush(&mut self) -> Result<()> {
        self.write(Durability::Immediate, |_| Ok(()))
    }
}

impl Drop for LeaseStore {
    fn drop(&mut self) {
        if self.dirty {
            // Best effort: a failure here is the crash case eventual durability accepts.
            let _ = self.flush();
        }
    }
}

/// redb's file magic (its file format, version 2).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Refuse an existing, non-empty file that does not start like a redb file: some redb
/// versions would initialise (overwrite) it as a new database, silently losing it.
fn check_magic(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |reason: String| Error::NotAStore {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(format!("cannot read: {e}"))),
        Ok(f) => f,
    };
    let meta = f.metadata().map_err(|e| bad(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(bad("is a directory".into()));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let mut m = [0u8; REDB_MAGIC.len()];
    match f.read_exact(&mut m) {
        Ok(()) if m == REDB_MAGIC => Ok(()),
        Ok(()) | Err(_) => Err(bad(
            "not a redb lease store (bad magic number); refusing to overwrite it".into(),
        )),
    }
}

fn hex_key(k: &[u8]) -> String {
    match <[u8; 16]>::try_from(k) {
        Ok(a) => Ipv6Addr::from(a).to_string(),
        Err(_) => k.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(h: u16, a: [u8; 4], len: u8) -> Lease {
        Lease {
            hoa: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, h),
            net: Ipv4Net::new(Ipv4Addr::from(a), len).unwrap(),
            expires: 1_800_000_000,
        }
    }

    #[test]
    fn record_round_trip_and_rejects() {
        let l = lease(1, [198, 51, 100, 16], 28);
        let v = l.encode();
        assert_eq!(Lease::decode(&l.hoa.octets(), &v), Ok(l));
        assert_eq!(Lease::decode(&[0; 15], &v), Err("key is not 16 octets"));
        assert_eq!(
            Lease::decode(&l.hoa.octets(), &v[..13]),
            Err("record length is not 14")
        );
        let mut w = v;
        w[5] = 33;
        assert_eq!(
            Lease::decode(&l.hoa.octets(), &w),
            Err("prefix length above 32")
        );
        w[5] = 24;
        assert_eq!(
            Lease::decode(&l.hoa.octets(), &w),
            Err("prefix has host bits set")
        );
        w[0] = 9;
        assert_eq!(
            Lease::decode(&l.hoa.octets(), &w),
            Err("unknown record version")
        );
    }

    #[test]
    fn leases_survive_reopen_and_removal_sticks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leases.redb");
        let (a, b) = (
            lease(1, [198, 51, 100, 20], 32),
            lease(2, [198, 51, 100, 32], 28),
        );
        {
            let (mut s, l) = LeaseStore::open(&p, LeaseDurability::Eventual).unwrap();
            assert!(l.is_empty());
            s.commit(&[a, b], &[]).unwrap();
        }
        {
            let (mut s, mut l) = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap();
            l.sort_by_key(|l| l.hoa);
            assert_eq!(l, vec![a, b]);
            s.commit(&[], &[a.hoa]).unwrap();
        }
        let (_s, l) = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap();
        assert_eq!(l, vec![b]);
    }

    #[test]
    fn garbage_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leases.redb");
        std::fs::write(&p, vec![0x5a; 8192]).unwrap();
        let e = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap_err();
        assert!(matches!(e, Error::NotAStore { .. }), "{e:?}");
        assert!(e.to_string().contains("leases.redb"), "{e}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            vec![0x5a; 8192],
            "left untouched"
        );
        // A real redb file with a damaged header is refused by redb itself.
        let q = dir.path().join("damaged.redb");
        drop(LeaseStore::open(&q, LeaseDurability::Immediate).unwrap());
        let mut bytes = std::fs::read(&q).unwrap();
        for b in &mut bytes[9..4096] {
            *b ^= 0xff;
        }
        std::fs::write(&q, &bytes).unwrap();
        let e = LeaseStore::open(&q, LeaseDurability::Immediate).unwrap_err();
        assert!(e.to_string().contains("damaged.redb"), "{e}");
        // An empty file is a new store.
        let z = dir.path().join("empty.redb");
        std::fs::write(&z, b"").unwrap();
        assert!(LeaseStore::open(&z, LeaseDurability::Immediate)
            .unwrap()
            .1
            .is_empty());
        // A directory is unreadable as a store.
        let e = LeaseStore::open(dir.path(), LeaseDurability::Immediate).unwrap_err();
        assert!(
            e.to_string().contains(&dir.path().display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn bad_record_and_double_lease_are_startup_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leases.redb");
        {
            let (mut s, _) = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap();
            s.write(Durability::Immediate, |t| {
                t.insert(&[7u8; 16][..], &[1u8, 2, 3][..])?;
                Ok(())
            })
            .unwrap();
        }
        let e = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap_err();
        assert!(
            matches!(
                e,
                Error::CorruptLease {
                    reason: "record length is not 14",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("leases.redb"));
        let p2 = dir.path().join("double.redb");
        {
            let (mut s, _) = LeaseStore::open(&p2, LeaseDurability::Immediate).unwrap();
            let mut c = lease(3, [198, 51, 100, 20], 32);
            s.commit(&[lease(1, [198, 51, 100, 16], 28)], &[]).unwrap();
            c.expires = 5;
            s.commit(&[c], &[]).unwrap();
        }
        let e = LeaseStore::open(&p2, LeaseDurability::Immediate).unwrap_err();
        assert!(e.to_string().contains("already leased"), "{e}");
    }

    #[test]
    fn second_open_of_a_locked_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leases.redb");
        let _first = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap();
        let e = LeaseStore::open(&p, LeaseDurability::Immediate).unwrap_err();
        assert!(matches!(e, Error::StoreOpen { .. }), "{e:?}");
    }
}
