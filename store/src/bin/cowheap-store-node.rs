//! A node process on a store, for demonstrations and for the tests that race, trade and
//! kill nodes: `cowheap-store-node ADDRESS PRINCIPAL SECRET COMMAND ARGS...`.
//!
//! `PRINCIPAL` `-` is the operator. Commands (tenants are `PREFIX-i` for `FROM <= i < TO`):
//!
//! - `claim TENANT NODE LEASE_MS`: one claim; prints `won EPOCH` or `held OWNER`.
//! - `write NODE PREFIX FROM TO VALUE`: resumes each tenant, writes mark `VALUE + i`,
//!   suspends it; prints `wrote N`.
//! - `check NODE PREFIX FROM TO VALUE`: resumes each tenant, reads its mark, suspends it;
//!   prints `checked N matched M`.
//! - `churn NODE PREFIX FROM TO [ROUNDS]`: resumes each tenant in turn, adds one to its
//!   mark and suspends it, printing `suspended TENANT MARK` after each suspend, and skipping
//!   tenants another node holds; forever (for the `kill -9` tests), or `ROUNDS` passes and
//!   then `traded N skipped M`.
//!
//! - `put-version ORIGIN NUMBER FILE`: writes the layer in `FILE` as version `NUMBER` of
//!   base `ORIGIN` (full hex); prints `won NUMBER` or `lost NEWEST`.
//! - `commit NODE ORIGIN GROUP OBJECTS COUNT`: `COUNT` commits (forever if `COUNT` is
//!   `-`), each from a tenant forked from the node's newest version, setting slot 0 of the
//!   `OBJECTS` objects of group `GROUP` (objects `GROUP * OBJECTS ..` of
//!   [`cowheap_store::workload::slot_objects`]) to one more than the first one's value in
//!   that version (0 if not an integer); prints `committed VERSION VALUE` after each (when
//!   forever), then `done COUNT conflicts C version V fingerprint FP`: the newest version
//!   after a last sync, and its fingerprint. A commit that conflicts with another node's
//!   (write-write) is dropped and done again on the newest version, `C` counting those.
//!
//! The base cache is `$COWHEAP_STORE_CACHE` (default: a directory per node under the
//! temporary directory); the lease is `$COWHEAP_STORE_LEASE_MS` (default 30 s).

use cowheap_store::workload::{read_mark, slot_objects, write_mark};
use cowheap_store::{
    Access, Node, NodeName, StoreError, SystemClock, TenantName, open_store, principal_access,
};
use cowheap_tenants::commit::CommitError;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Why the node stopped.
#[derive(Debug)]
enum NodeError {
    /// The arguments do not say what to do.
    Usage,
    /// The store refused or failed.
    Store(StoreError),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Usage => f.write_str(
                "usage: cowheap-store-node ADDRESS PRINCIPAL SECRET \
                 (claim TENANT NODE LEASE_MS | write|check NODE PREFIX FROM TO VALUE | \
                 churn NODE PREFIX FROM TO [ROUNDS] | put-version ORIGIN NUMBER FILE | \
                 commit NODE ORIGIN GROUP OBJECTS COUNT|-)",
            ),
            NodeError::Store(e) => e.fmt(f),
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> NodeError {
        NodeError::Store(e)
    }
}

type Result<T> = std::result::Result<T, NodeError>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cowheap-store-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> NodeError {
    NodeError::Usage
}

fn num(s: Option<&String>) -> Result<i64> {
    s.and_then(|s| s.parse().ok()).ok_or_else(usage)
}

fn run(args: &[String]) -> Result<()> {
    let [address, principal, secret, command, rest @ ..] = args else {
        return Err(usage());
    };
    let access = if principal == "-" {
        Access::Operator
    } else {
        principal_access(principal, secret)?
    };
    let store = open_store(address, Arc::new(SystemClock), access)?;
    let out = &mut std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: String| {
        // A closed stdout ends the report, not the work.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    if command == "claim" {
        let (Some(t), Some(n)) = (rest.first(), rest.get(1)) else {
            return Err(usage());
        };
        let lease = u64::try_from(num(rest.get(2))?).map_err(|_| usage())?;
        let t = TenantName::new(t.clone())?;
        match store.claim(&t, &NodeName::new(n.clone())?, lease) {
            Ok(c) => say(out, format!("won {}", c.epoch)),
            Err(StoreError::Held { owner, .. }) => say(out, format!("held {owner}")),
            Err(e) => return Err(e.into()),
        }
        return Ok(());
    }
    if command == "put-version" {
        let [origin, number, file] = rest else {
            return Err(usage());
        };
        let origin = cowheap_store::parse_fingerprint(origin)?;
        let number: u64 = number.parse().map_err(|_| usage())?;
        let bytes = cowheap_heap::file::read_regular(file).map_err(|e| StoreError::Io {
            path: file.into(),
            source: e,
        })?;
        match store.put_version(origin, number, &bytes) {
            Ok(v) => say(out, format!("won {}", v.number)),
            Err(StoreError::VersionConflict { newest, .. }) => say(out, format!("lost {newest}")),
            Err(e) => return Err(e.into()),
        }
        return Ok(());
    }
    // The node's name: the first argument of every command but `claim` (whose first is a
    // tenant, which may be named `-` as no node may) and `put-version`, handled above.
    let node_name = NodeName::new(rest.first().cloned().unwrap_or_default())?;
    let cache = std::env::var_os("COWHEAP_STORE_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cowheap-store-cache-{node_name}")));
    let lease = std::env::var("COWHEAP_STORE_LEASE_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cowheap_store::DEFAULT_LEASE_MS);
    let node = Node::new(store, node_name, cache).with_lease(lease);
    if command == "commit" {
        let origin = cowheap_store::parse_fingerprint(rest.get(1).ok_or_else(usage)?)?;
        let group = usize::try_from(num(rest.get(2))?).map_err(|_| usage())?;
        let objects = usize::try_from(num(rest.get(3))?).map_err(|_| usage())?;
        let count = match rest.get(4).map(String::as_str) {
            Some("-") => None,
            _ => Some(num(rest.get(4))?),
        };
        // The group's objects are `group * objects ..` up to `(group + 1) * objects`: a count
        // past the address space is no group of any base.
        let end = group
            .checked_add(1)
            .and_then(|g| g.checked_mul(objects))
            .ok_or_else(usage)?;
        let v0 = node.base(origin)?;
        let mut targets = slot_objects(&v0, end);
        if targets.len() < end {
            return Err(usage());
        }
        let targets = targets.split_off(end - objects);
        let first = *targets.first().ok_or_else(usage)?;
        let repo = node.repository(origin)?;
        let (mut done, mut conflicts) = (0, 0u64);
        while count.is_none_or(|c| done < c) {
            node.sync(origin)?;
            let mut t = repo.fork();
            let next = t
                .slot(first, 0)
                .map_err(StoreError::from)?
                .as_int()
                .unwrap_or(0)
                + 1;
            for &x in &targets {
                t.set_slot(x, 0, cowheap_heap::Value::int(next))
                    .map_err(StoreError::from)?;
            }
            let v = match node.commit(&mut t, Default::default(), &[]) {
                Ok(v) => v,
                // Another node changed these objects since this tenant's version: drop the
                // tenant and do the increment again on the newest version.
                Err(StoreError::Commit(e)) if matches!(*e, CommitError::Conflict { .. }) => {
                    conflicts += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            done += 1;
            if count.is_none() {
                say(out, format!("committed {} {next}", v.version()));
            }
        }
        let last = node.sync(origin)?;
        say(
            out,
            format!(
                "done {done} conflicts {conflicts} version {} fingerprint {}",
                last.version(),
                cowheap_store::fingerprint_hex(&last.fingerprint())
            ),
        );
        return Ok(());
    }
    let prefix = rest.get(1).ok_or_else(usage)?;
    let (from, to) = (num(rest.get(2))?, num(rest.get(3))?);
    // How many tenants `FROM..TO` names (none for an empty range), checked before any is
    // touched.
    let count = if from < to {
        to.checked_sub(from).ok_or_else(usage)?
    } else {
        0
    };
    let name = |i: i64| TenantName::new(format!("{prefix}-{i}"));
    // The marks `VALUE + i` of the range, checked before any tenant is touched: `VALUE + FROM`
    // and `VALUE + TO - 1` bound them.
    let marks = |value: i64| -> Result<()> {
        if count > 0 {
            value.checked_add(from).ok_or_else(usage)?;
            value.checked_add(to - 1).ok_or_else(usage)?;
        }
        Ok(())
    };
    match command.as_str() {
        "write" => {
            let value = num(rest.get(4))?;
            marks(value)?;
            for i in from..to {
                let mut r = node.resume(&name(i)?)?;
                write_mark(&mut r.tenant, value + i)?;
                node.suspend(r)?;
            }
            say(out, format!("wrote {count}"));
        }
        "check" => {
            let value = num(rest.get(4))?;
            marks(value)?;
            let mut matched = 0;
            for i in from..to {
                let r = node.resume(&name(i)?)?;
                if read_mark(&r.tenant) == Some(value + i) {
                    matched += 1;
                }
                node.suspend(r)?;
            }
            say(out, format!("checked {count} matched {matched}"));
        }
        "churn" => {
            let rounds = rest.get(4).map(|_| num(rest.get(4))).transpose()?;
            let (mut traded, mut skipped, mut round) = (0u64, 0u64, 0);
            while rounds.is_none_or(|r| round < r) {
                round += 1;
                for i in from..to {
                    let t = name(i)?;
                    let mut r = match node.resume(&t) {
                        Ok(r) => r,
                        Err(StoreError::Held { .. }) => {
                            skipped += 1;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let next = read_mark(&r.tenant).unwrap_or(0) + 1;
                    write_mark(&mut r.tenant, next)?;
                    node.suspend(r)?;
                    traded += 1;
                    if rounds.is_none() {
                        say(out, format!("suspended {t} {next}"));
                    }
                }
            }
            say(out, format!("traded {traded} skipped {skipped}"));
        }
        _ => return Err(usage()),
    }
    Ok(())
}
