//! Opening a store by address, as a command line or a node process names it.

use crate::store::{Access, Store};
use crate::{Clock, LocalStore, PgStore, Result};
use std::path::Path;
use std::sync::Arc;

/// Opens the store at `address`: a PostgreSQL connection string (`postgres://...`,
/// `postgresql://...` or `host=... port=...`) or else a local directory.
///
/// # Errors
/// As [`LocalStore::open`] or [`PgStore::connect`].
pub fn open_store(address: &str, clock: Arc<dyn Clock>, access: Access) -> Result<Arc<dyn Store>> {
    if is_postgres(address) {
        Ok(Arc::new(PgStore::connect(address, clock, access)?))
    } else {
        Ok(Arc::new(LocalStore::open(
            Path::new(address),
            clock,
            access,
        )?))
    }
}

/// Makes a store at `address` (a directory, created if missing, or the schema in a
/// PostgreSQL database) and opens it as the operator.
///
/// # Errors
/// As [`LocalStore::init`] or [`PgStore::init`].
pub fn init_store(address: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>> {
    if is_postgres(address) {
        Ok(Arc::new(PgStore::init(address, clock)?))
    } else {
        Ok(Arc::new(LocalStore::init(
            Path::new(address),
            clock,
            Access::Operator,
        )?))
    }
}

fn is_postgres(address: &str) -> bool {
    address.starts_with("postgres://")
        || address.starts_with("postgresql://")
        || address.starts_with("host=")
}
