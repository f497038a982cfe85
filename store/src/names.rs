//! Names and ids: tenants, nodes, principals, blob digests, epochs and times.

use crate::{Result, StoreError};
use std::fmt;

/// The longest name the store accepts, in bytes.
pub const MAX_NAME: usize = 128;

/// What the store's records and tools write where there is no node or no principal (a
/// tenant no node holds, a version the operator committed, the operator on a command line):
/// never a node's or a principal's name, so that none is read back as "nobody".
pub const NOBODY: &str = "-";

/// A node's or principal's name as a store holds it: `None` for [`NOBODY`]. A store written
/// before [`NOBODY`] was refused as a name may hold it for a node or principal so named,
/// which can no longer act: it reads as nobody too, as the local store always read it.
///
/// # Errors
/// [`StoreError::InvalidName`] for any other text that is no valid name.
pub(crate) fn stored_name<T: std::str::FromStr<Err = StoreError>>(s: &str) -> Result<Option<T>> {
    if s == NOBODY {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// Refuses a secret for principal `name` that no backend can check: empty (PostgreSQL clears
/// an empty password, so its role could never log in) or holding a NUL byte (which no
/// password may hold).
pub(crate) fn check_secret(name: &PrincipalName, secret: &str) -> Result<()> {
    let problem = if secret.is_empty() {
        "is empty"
    } else if secret.contains('\0') {
        "holds a NUL byte"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidSecret {
        principal: name.clone(),
        problem,
    })
}

/// The longest principal name a store takes, in bytes: PostgreSQL makes a role of each
/// principal, `cowheap_` and the name, which must fit its 63-byte identifiers. Every backend
/// takes the same names, so a deployment can move between them.
pub const MAX_PRINCIPAL: usize = 55;

/// Refuses a principal name no backend can hold: one past [`MAX_PRINCIPAL`] bytes, whose
/// PostgreSQL role could not be made. ([`PrincipalName`] itself takes up to [`MAX_NAME`]:
/// a local store written before may grant and name such principals, and still reads them.)
pub(crate) fn check_principal(name: &PrincipalName) -> Result<()> {
    if name.as_str().len() > MAX_PRINCIPAL {
        return Err(StoreError::InvalidName {
            kind: "principal (PostgreSQL role)",
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Checks a name of `kind`; `nobody_refused` for the kinds whose absence is written as
/// [`NOBODY`].
fn check_name(kind: &'static str, name: &str, nobody_refused: bool) -> Result<()> {
    let ok = !name.is_empty()
        && (!nobody_refused || name != NOBODY)
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            kind,
            name: name.chars().take(MAX_NAME + 1).collect(),
        })
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $t:ident, $kind:literal, $nobody_refused:literal) => {
        $(#[$doc])*
        ///
        /// Invariant: 1 to [`MAX_NAME`] bytes of ASCII letters, digits, `.`, `_` and `-`, not
        /// starting with `.`, so a name is also a safe file name.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $t(String);

        impl $t {
            /// The name, checked.
            ///
            /// # Errors
            /// [`StoreError::InvalidName`] if it breaks the invariant.
            pub fn new(name: impl Into<String>) -> Result<$t> {
                let name = name.into();
                check_name($kind, &name, $nobody_refused)?;
                Ok($t(name))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.0)
            }
        }

        impl std::str::FromStr for $t {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<$t> {
                $t::new(s)
            }
        }
    };
}

name_type!(
    /// The name of a tenant in the store: unique in one store.
    ///
    /// ```
    /// use cowheap_store::TenantName;
    /// assert!(TenantName::new("alice-1").is_ok());
    /// assert!(TenantName::new("../etc").is_err());
    /// assert!(TenantName::new("").is_err());
    /// ```
    TenantName,
    "tenant",
    false
);
name_type!(
    /// The name of a node: a process that claims, runs and suspends tenants. Never
    /// [`NOBODY`], which a record writes for a tenant no node holds.
    ///
    /// ```
    /// use cowheap_store::NodeName;
    /// assert!(NodeName::new("node-1").is_ok());
    /// assert!(NodeName::new("-").is_err());
    /// ```
    NodeName,
    "node",
    true
);
name_type!(
    /// The name of a principal: whoever presents credentials to the store, entitled to some
    /// tenants. Never [`NOBODY`], which a version record writes for the operator (and the
    /// command-line tools take for the operator).
    PrincipalName,
    "principal",
    true
);

/// The BLAKE3 digest of a blob's bytes: the blob's name in the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`. Time: O(len).
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`] if `s` is not 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Digest> {
        parse_hex32(s)
            .map(Digest)
            .ok_or_else(|| StoreError::InvalidName {
                kind: "digest",
                name: s.chars().take(80).collect(),
            })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0[..8]))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// 32 bytes from 64 hex digits.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The full hex of a base fingerprint (its `Display` shows only half).
pub fn fingerprint_hex(f: &cowheap_heap::Fingerprint) -> String {
    hex(&f.0)
}

/// Parses a base fingerprint from 64 hex digits.
///
/// # Errors
/// [`StoreError::InvalidName`] if `s` is not 64 hex digits.
pub fn parse_fingerprint(s: &str) -> Result<cowheap_heap::Fingerprint> {
    parse_hex32(s)
        .map(cowheap_heap::Fingerprint)
        .ok_or_else(|| StoreError::InvalidName {
            kind: "fingerprint",
            name: s.chars().take(80).collect(),
        })
}

/// The largest segment id a store keeps: PostgreSQL's largest `bigint`, so that both
/// backends keep the same ids. A larger one is refused by
/// [`crate::Store::put_segment`] ([`StoreError::SegmentIdOutOfRange`]) and names no segment.
pub const MAX_SEGMENT_ID: u64 = i64::MAX as u64;

/// The largest version number a store keeps, for the same reason: a history never reaches
/// a larger one.
pub(crate) const MAX_VERSION: u64 = i64::MAX as u64;

/// Refuses segment `id` of `tenant` past [`MAX_SEGMENT_ID`].
pub(crate) fn check_segment_id(
    tenant: &crate::TenantName,
    id: cowheap_segment::swap::SegmentId,
) -> Result<()> {
    if id.get() > MAX_SEGMENT_ID {
        return Err(StoreError::SegmentIdOutOfRange {
            tenant: tenant.clone(),
            id,
        });
    }
    Ok(())
}

/// A claim's epoch: moves on by one at every claim of a tenant, never back. A write carrying
/// an epoch older than the record's is fenced off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point in time, in milliseconds since the Unix epoch, as a [`crate::Clock`] tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating.
    pub fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl Millis {
    /// The last millisecond an RFC 3339 time can name: 9999-12-31T23:59:59.999Z.
    const LAST_RFC3339: u64 = 253_402_300_799_999;
}

/// As a UTC time in RFC 3339 form with milliseconds (`2026-12-07T02:10:01.491Z`), the way an
/// error tells a person when a lease ends. A time past the year 9999, which a clock that
/// reads wrong can give, is shown as its count (`300000000000000 ms since the Unix epoch`).
///
/// ```
/// use cowheap_store::Millis;
/// assert_eq!(Millis(1_796_609_401_491).to_string(), "2026-12-07T02:10:01.491Z");
/// assert_eq!(Millis(0).to_string(), "1970-01-01T00:00:00.000Z");
/// assert_eq!(Millis(253_402_300_799_999).to_string(), "9999-12-31T23:59:59.999Z");
/// assert_eq!(
///     Millis(253_402_300_800_000).to_string(),
///     "253402300800000 ms since the Unix epoch"
/// );
/// assert_eq!(Millis(u64::MAX).to_string(), format!("{} ms since the Unix epoch", u64::MAX));
/// ```
impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= Millis::LAST_RFC3339 {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0);
            humantime::format_rfc3339_millis(t).fmt(f)
        } else {
            write!(f, "{} ms since the Unix epoch", self.0)
        }
    }
}
