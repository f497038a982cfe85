//! A store for tenants and bases shared by many nodes.
#![forbid(unsafe_code)]

pub mod cli;
mod clock;
mod error;
mod local;
mod names;
mod node;
mod open;
mod pg;
pub mod pg_server;
mod store;
mod swap;
pub mod workload;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Result, StoreError};
pub use local::LocalStore;
pub use names::{
    Digest, Epoch, MAX_NAME, Millis, NodeName, PrincipalName, TenantName, fingerprint_hex,
    parse_fingerprint,
};
pub use node::{DEFAULT_LEASE_MS, Node, Resident, principal_access};
pub use open::{init_store, open_store};
pub use pg::PgStore;
pub use pg_server::PgServer;
pub use store::{Access, BlobStats, Claim, Store, TenantRecord};
pub use swap::{SwapRegistry, SwapStats};
