//! What the `cowheap store ...` commands do, as library functions that return the text to
//! print. A command-line front end parses its flags and calls these.
//!
//! Without a server process, a node is a directory on the machine (`--node-dir`): its base
//! cache, and its *resident* tenants, each kept as the tenant's snapshot beside the claim
//! that holds it. So two nodes on one machine (two directories, one store) can pass a
//! tenant back and forth with separate commands:
//!
//! ```text
//! cowheap store init   STORE
//! cowheap store put-base STORE IMAGE                 -> fingerprint
//! cowheap store create STORE TENANT FINGERPRINT
//! cowheap store resume STORE --node a --node-dir A TENANT   (claims it: epoch + 1)
//! cowheap store mark   STORE --node a --node-dir A TENANT 42
//! cowheap store suspend STORE --node a --node-dir A TENANT  (writes it, releases it)
//! cowheap store resume STORE --node b --node-dir B TENANT   (sees 42)
//! cowheap store ls     STORE
//! cowheap store allow-commit STORE FINGERPRINT PRINCIPAL   (operator: who may commit)
//! cowheap store commit STORE --node a --node-dir A TENANT   (its changes: the next version)
//! cowheap store versions STORE FINGERPRINT [--after N]      (the base's committed versions)
//! cowheap store sweep  STORE                                (operator: drop unnamed blobs)
//! ```
//!
//! Resuming a tenant another node holds fails with [`StoreError::Held`]; suspending a
//! tenant whose claim was taken over fails with [`StoreError::Fenced`] and writes nothing.
//! A resident's claim file and its state file each name its tenant and node, and `mark`,
//! `commit` and `suspend` refuse either when it names another ([`StoreError::Damaged`],
//! nothing written): a claim or state file copied under another tenant's name, or a node
//! run on another node's directory, never writes one tenant's state as another's or acts
//! under another node's claim.

use crate::workload::{read_mark, write_mark};
use crate::{
    Access, Claim, Digest, Epoch, Millis, Node, NodeName, Resident, Result, Store, StoreError,
    SystemClock, TenantName, fingerprint_hex, init_store, open_store, parse_fingerprint,
};
use cowheap_heap::BaseHeap;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lease a command-line node takes: an hour, since it holds a tenant between commands.
pub const CLI_LEASE_MS: u64 = 3_600_000;

/// The store's error for a node's own file that could not be written: [`StoreError::Io`]
/// naming it (the only error [`cowheap_heap::file::write_atomically`] gives), never a base
/// file's error.
fn resident_write_error(e: cowheap_heap::FileError) -> StoreError {
    match e {
        cowheap_heap::FileError::Io { path, source } => StoreError::Io { path, source },
        e => StoreError::BaseFile(e),
    }
}

/// The first line of a resident's state file in a node's directory; its next lines name
/// the tenant and the node, and the state follows.
const RESIDENT_HEAD: &str = "cowheap-resident 1";

/// The state bytes of a resident's state file (as [`CliNode::keep`] writes it: a header
/// naming the tenant and the node, then the state), if the header names `t` on `node`;
/// else what is wrong with it. A file with no header, as an earlier release wrote it, is
/// the state alone: a node upgraded while it held a tenant keeps it (such a file names no
/// tenant to check; the claim file beside it still does).
fn resident_state<'a>(
    bytes: &'a [u8],
    t: &TenantName,
    node: &NodeName,
) -> std::result::Result<&'a [u8], &'static str> {
    fn line<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
        let at = rest.iter().position(|&b| b == b'\n')?;
        let l = std::str::from_utf8(&rest[..at]).ok()?;
        *rest = &rest[at + 1..];
        Some(l)
    }
    let mut rest = bytes;
    if line(&mut rest) != Some(RESIDENT_HEAD) {
        return Ok(bytes);
    }
    if line(&mut rest).and_then(|l| l.strip_prefix("tenant ")) != Some(t.as_str()) {
        return Err("the state of another tenant");
    }
    if line(&mut rest).and_then(|l| l.strip_prefix("node ")) != Some(node.as_str()) {
        return Err("the state of another node");
    }
    Ok(rest)
}

/// `store init ADDRESS`: makes the store (a directory, or the schema in a database).
///
/// # Errors
/// As [`init_store`].
pub fn init(address: &str) -> Result<String> {
    init_store(address, Arc::new(SystemClock))?;
    Ok(format!("store ready at {address}\n"))
}

/// `store put-base ADDRESS IMAGE`: stores a base heap (opened by the caller from a cowheap
/// image file or a Smalltalk image) and returns its fingerprint, full hex. Operator only.
///
/// # Errors
/// As [`Store::put_base`]; [`StoreError::BaseFile`] if the heap cannot be saved.
pub fn put_base(store: &dyn Store, heap: &BaseHeap) -> Result<String> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("base.cowheap");
    heap.save(&path).map_err(StoreError::BaseFile)?;
    let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
    let fp = heap.fingerprint();
    store.put_base(fp, &bytes)?;
    Ok(format!("{}\n", fingerprint_hex(&fp)))
}

/// `store create ADDRESS TENANT FINGERPRINT [--principal P]`. Operator only.
///
/// # Errors
/// As [`Store::create_tenant`].
pub fn create(
    store: &dyn Store,
    tenant: &str,
    fingerprint: &str,
    principal: Option<&str>,
) -> Result<String> {
    let p = principal.map(crate::PrincipalName::new).transpose()?;
    let r = store.create_tenant(
        &TenantName::new(tenant)?,
        parse_fingerprint(fingerprint)?,
        p.as_ref(),
    )?;
    Ok(format!("created {}\n", r.tenant))
}

/// `store add-principal ADDRESS NAME SECRET`. Operator only.
///
/// # Errors
/// As [`Store::add_principal`].
pub fn add_principal(store: &dyn Store, name: &str, secret: &str) -> Result<String> {
    store.add_principal(&crate::PrincipalName::new(name)?, secret)?;
    Ok(format!("principal {name} set\n"))
}

/// `store ls ADDRESS`: the bases and the tenants this access may see, one line each.
///
/// # Errors
/// As [`Store::tenants`].
pub fn ls(store: &dyn Store) -> Result<String> {
    let mut out = String::new();
    for b in store.bases()? {
        let _ = writeln!(out, "base {}", fingerprint_hex(&b));
    }
    for r in store.tenants()? {
        let _ = writeln!(
            out,
            "tenant {} base {} epoch {} owner {} state {}",
            r.tenant,
            r.base,
            r.epoch,
            r.owner.map_or("-".to_owned(), |o| o.to_string()),
            r.state.map_or("-".to_owned(), |d| d.to_string()),
        );
    }
    Ok(out)
}

/// `store sweep ADDRESS`: removes the blobs nothing in the store names (replaced states,
/// segments faulted back in, layers of lost version writes) and says how many went.
/// Operator only; safe beside running nodes.
///
/// # Errors
/// As [`Store::sweep_blobs`].
pub fn sweep(store: &dyn Store) -> Result<String> {
    let removed = store.sweep_blobs()?;
    let left = store.blob_stats()?;
    Ok(format!(
        "removed {} blobs ({} bytes); {} blobs ({} bytes) left\n",
        removed.count, removed.bytes, left.count, left.bytes
    ))
}

/// `store allow-commit ADDRESS FINGERPRINT PRINCIPAL`: lets the principal commit versions of
/// the base. Operator only.
///
/// # Errors
/// As [`Store::allow_commit`].
pub fn allow_commit(store: &dyn Store, fingerprint: &str, principal: &str) -> Result<String> {
    let fp = parse_fingerprint(fingerprint)?;
    store.allow_commit(fp, &crate::PrincipalName::new(principal)?)?;
    Ok(format!("principal {principal} may commit to base {fp}\n"))
}

/// `store versions ADDRESS FINGERPRINT [--after N]`: the committed versions of the base's
/// history above `after`, one line each (number, layer digest, committer), and who may
/// commit (as far as this access may see).
///
/// # Errors
/// As [`Store::versions`].
pub fn versions(store: &dyn Store, fingerprint: &str, after: u64) -> Result<String> {
    let fp = parse_fingerprint(fingerprint)?;
    let mut out = String::new();
    for v in store.versions(fp, after)? {
        let _ = writeln!(
            out,
            "version {} layer {} by {}",
            v.number,
            v.layer.to_hex(),
            v.committed_by
                .map_or("operator".to_owned(), |p| p.to_string())
        );
    }
    for p in store.committers(fp)? {
        let _ = writeln!(out, "committer {p}");
    }
    Ok(out)
}

/// The version numbered `n` in the chain from `current` down, if it holds one.
fn numbered(
    current: &Arc<cowheap_forwarders::Base>,
    n: u64,
) -> Option<Arc<cowheap_forwarders::Base>> {
    let mut at = current.clone();
    loop {
        if at.version() == n {
            return Some(at);
        }
        if at.version() < n {
            return None;
        }
        at = at.parent()?.clone();
    }
}

/// A command-line node: a name and a directory.
#[derive(Debug)]
pub struct CliNode {
    node: Node,
    dir: PathBuf,
}

impl CliNode {
    /// The node `name` keeping its cache and resident tenants in `dir`.
    ///
    /// # Errors
    /// [`StoreError::InvalidName`] for a bad node name.
    pub fn new(store: Arc<dyn Store>, name: &str, dir: &Path) -> Result<CliNode> {
        let node =
            Node::new(store, NodeName::new(name)?, dir.join("cache")).with_lease(CLI_LEASE_MS);
        Ok(CliNode {
            node,
            dir: dir.to_owned(),
        })
    }

    /// Opens the store at `address` with `access` and makes the node.
    ///
    /// # Errors
    /// As [`open_store`].
    pub fn open(address: &str, access: Access, name: &str, dir: &Path) -> Result<CliNode> {
        CliNode::new(
            open_store(address, Arc::new(SystemClock), access)?,
            name,
            dir,
        )
    }

    /// The resident's state (a header naming its tenant and node, then the state as the
    /// store keeps it: the snapshot, framed with the records of its segments out) and its
    /// claim, in the node's directory.
    fn paths(&self, t: &TenantName) -> (PathBuf, PathBuf) {
        let d = self.dir.join("resident");
        (d.join(format!("{t}.state")), d.join(format!("{t}.claim")))
    }

    /// Keeps `r` resident in the node's directory: its whole state, segments out included,
    /// so that `suspend` writes back what `resume` took.
    fn keep(&self, r: &mut Resident) -> Result<()> {
        let state = r.state(self.node.plugins())?;
        let claim = r.claim().clone();
        let (snap, cl) = self.paths(&claim.tenant);
        let d = self.dir.join("resident");
        std::fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
        let head = format!(
            "{RESIDENT_HEAD}\ntenant {}\nnode {}\n",
            claim.tenant, claim.node
        );
        cowheap_heap::file::write_atomically(&snap, |w| {
            w.write_all(head.as_bytes())?;
            w.write_all(&state)
        })
        .map_err(resident_write_error)?;
        let text = format!(
            "{} {} {} {} {} {}\n",
            claim.tenant,
            claim.node,
            claim.epoch.0,
            claim.lease_expiry.0,
            fingerprint_hex(&claim.base),
            claim.state.map_or("-".to_owned(), |d| d.to_hex())
        );
        cowheap_heap::file::write_atomically(&cl, |w| w.write_all(text.as_bytes()))
            .map_err(resident_write_error)
    }

    /// The resident `t` as [`CliNode::keep`] left it in the node's directory.
    ///
    /// # Errors
    /// [`StoreError::Io`] if it is not resident here; [`StoreError::Damaged`] for a claim
    /// file that does not parse, or a claim or state file that is another tenant's or
    /// another node's (a file copied under this name, or a node run on another node's
    /// directory): its claim is never presented for `t` or by this node, and no other
    /// tenant's state is presented as `t`'s, so no state of `t` is written as another
    /// tenant's (nor another's as `t`'s), and no node writes under another's claim.
    fn load(&self, t: &TenantName) -> Result<Resident> {
        let (snap, cl) = self.paths(t);
        let bad = |problem| StoreError::Damaged {
            what: cl.display().to_string(),
            problem,
        };
        // The node's own files, read as the store reads its own: a FIFO, a device or a
        // directory in their place is damage, refused at once (never waited on), and a claim
        // file is a few dozen bytes.
        let missing = |p: &Path| StoreError::io(p, std::io::ErrorKind::NotFound.into());
        let text = crate::local::read_optional(&cl)?.ok_or_else(|| missing(&cl))?;
        let text = String::from_utf8(text).map_err(|_| bad("not a claim file"))?;
        let f: Vec<&str> = text.split_whitespace().collect();
        let [tenant, node, epoch, lease, base, state] = f.as_slice() else {
            return Err(bad("not a claim file"));
        };
        if *tenant != t.as_str() {
            return Err(bad("the claim of another tenant"));
        }
        if *node != self.node.name().as_str() {
            return Err(bad("the claim of another node"));
        }
        let claim = Claim {
            tenant: TenantName::new(*tenant)?,
            node: NodeName::new(*node)?,
            epoch: Epoch(epoch.parse().map_err(|_| bad("not a claim file"))?),
            lease_expiry: Millis(lease.parse().map_err(|_| bad("not a claim file"))?),
            base: parse_fingerprint(base)?,
            state: match *state {
                "-" => None,
                d => Some(Digest::from_hex(d)?),
            },
        };
        let bytes = crate::local::read_blob_optional(&snap)?.ok_or_else(|| missing(&snap))?;
        let state =
            resident_state(&bytes, t, self.node.name()).map_err(|problem| StoreError::Damaged {
                what: snap.display().to_string(),
                problem,
            })?;
        self.node.resident_from_state(&claim, state)
    }

    fn forget(&self, t: &TenantName) {
        let (snap, cl) = self.paths(t);
        // Leftovers are harmless: the claim in them is fenced.
        let _ = std::fs::remove_file(cl);
        let _ = std::fs::remove_file(snap);
    }

    /// `store resume --node N --node-dir D TENANT`: claims the tenant, restores it and keeps
    /// it resident in the node's directory.
    ///
    /// # Errors
    /// As [`Node::resume`].
    pub fn resume(&self, tenant: &str) -> Result<String> {
        let mut r = self.node.resume(&TenantName::new(tenant)?)?;
        if let Err(e) = self.keep(&mut r) {
            // Not kept, so no later command could find the claim: released, so that the
            // tenant is not locked out until the lease runs out. Best effort.
            let _ = self.node.store().release(r.claim());
            self.forget(r.name());
            return Err(e);
        }
        Ok(format!(
            "resumed {} on node {} at epoch {}, mark {}\n",
            r.name(),
            self.node.name(),
            r.claim().epoch,
            read_mark(&r.tenant).map_or("-".to_owned(), |m| m.to_string())
        ))
    }

    /// The resident tenant `t`, its claim renewed first (each command is a process of its
    /// own, which cannot know what happened to its claim since the last): a node whose
    /// claim was taken over gets [`StoreError::Fenced`] and forgets the tenant.
    fn load_renewed(&self, t: &TenantName) -> Result<Resident> {
        let mut r = self.load(t)?;
        if let Err(e) = self.node.renew(&mut r) {
            if matches!(e, StoreError::Fenced { .. }) {
                self.forget(t);
            }
            return Err(e);
        }
        Ok(r)
    }

    /// `store mark --node N --node-dir D TENANT VALUE`: writes a mark into a resident tenant.
    /// The claim is renewed first (each command is a process of its own, which cannot know
    /// what happened to its claim since the last): a node whose claim was taken over runs
    /// nothing of a tenant another node now runs, and forgets it.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the tenant is not resident on this node;
    /// [`StoreError::Fenced`] if another node has claimed it since (nothing is written).
    pub fn mark(&self, tenant: &str, value: i64) -> Result<String> {
        let t = TenantName::new(tenant)?;
        let mut r = self.load_renewed(&t)?;
        write_mark(&mut r.tenant, value)?;
        self.keep(&mut r)?;
        Ok(format!("{t}: mark {value}\n"))
    }

    /// `store commit --node N --node-dir D TENANT`: commits the resident tenant's changes as
    /// the next version of its base ([`Node::commit_resident`]) and keeps it resident, on
    /// the new version. A version that landed though the store's answer was lost
    /// ([`StoreError::CommitLanded`]) counts as committed: the tenant is settled on it as an
    /// answered commit settles it ([`cowheap_tenants::commit::Repository::settle_landed`]: the version holds its
    /// changes; its roots and other objects stay) and kept there.
    ///
    /// # Errors
    /// As [`Node::commit_resident`]: a conflict with a version committed since the tenant's, a
    /// principal the base does not let commit; [`StoreError::Fenced`] if another node has
    /// claimed the tenant since (nothing is committed).
    pub fn commit(&self, tenant: &str) -> Result<String> {
        let t = TenantName::new(tenant)?;
        let mut r = self.load(&t)?;
        // The claim is renewed first: a node whose claim was taken over publishes nothing
        // of a tenant another node now runs.
        let v = match self.node.commit_resident(&mut r, Default::default(), &[]) {
            Ok(v) => v,
            // The version is in the store though its answer was lost: it holds the tenant's
            // changes, so the tenant is settled on it (once this node has it) as an answered
            // commit would have settled it, its roots and other objects of its own kept, and
            // kept there; aborted onto it only if the version is not exactly its changes.
            // Without that the tenant would hold changes its own version already has, and
            // every later commit would conflict with it.
            Err(StoreError::CommitLanded { version, source }) => {
                let origin = r.tenant.base().origin();
                let synced = self.node.sync(origin).ok();
                let Some(landed) = synced.as_ref().and_then(|b| numbered(b, version)) else {
                    return Err(StoreError::CommitLanded { version, source });
                };
                let repo = self.node.repository(origin)?;
                if repo.settle_landed(&mut r.tenant, &[], &landed).is_err() {
                    repo.abort(&mut r.tenant);
                }
                self.keep(&mut r)?;
                return Ok(format!(
                    "committed {t}: version {version} of base {origin} (found in the store \
                     after its answer was lost: {source})\n"
                ));
            }
            Err(e) => {
                if matches!(e, StoreError::Fenced { .. }) {
                    self.forget(&t);
                }
                return Err(e);
            }
        };
        self.keep(&mut r)?;
        Ok(format!(
            "committed {t}: version {} of base {}\n",
            v.version(),
            v.origin()
        ))
    }

    /// `store abort --node N --node-dir D TENANT`: drops the resident tenant's changes and
    /// moves it to the newest version of its base in the store, keeping it resident: the
    /// way on for a tenant whose commit conflicts with a version another node committed
    /// first (every later commit of the same changes would conflict again). Its own objects
    /// and its roots go with its changes ([`cowheap_tenants::commit::Repository::abort`]).
    /// The claim is renewed first, so a node whose claim was taken over changes nothing.
    ///
    /// ```
    /// # use cowheap_store::cli::{self, CliNode};
    /// # use cowheap_store::{Access, open_store, SystemClock};
    /// # use std::sync::Arc;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let addr = dir.path().join("store").to_str().unwrap().to_owned();
    /// # cli::init(&addr).unwrap();
    /// # let op = open_store(&addr, Arc::new(SystemClock), Access::Operator).unwrap();
    /// # let fp = cli::put_base(&*op, &cowheap_heap::synth::image(100, 1)).unwrap();
    /// # cli::create(&*op, "alice", fp.trim(), None).unwrap();
    /// let a = CliNode::open(&addr, Access::Operator, "a", &dir.path().join("a")).unwrap();
    /// a.resume("alice").unwrap();
    /// a.mark("alice", 7).unwrap();
    /// assert!(a.abort("alice").unwrap().starts_with("aborted alice"));
    /// a.suspend("alice").unwrap();
    /// assert!(a.resume("alice").unwrap().contains("mark -"));
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Io`] if the tenant is not resident on this node; [`StoreError::Fenced`]
    /// if another node has claimed it since (nothing changes, and the node forgets it);
    /// the store's errors while it fetches the newer versions (the tenant keeps its
    /// changes then).
    pub fn abort(&self, tenant: &str) -> Result<String> {
        let t = TenantName::new(tenant)?;
        let mut r = self.load_renewed(&t)?;
        let origin = r.tenant.base().origin();
        self.node.sync(origin)?;
        self.node.repository(origin)?.abort(&mut r.tenant);
        self.keep(&mut r)?;
        Ok(format!(
            "aborted {t}: its changes dropped, on version {} of base {origin}\n",
            r.tenant.base().version()
        ))
    }

    /// `store suspend --node N --node-dir D TENANT`: writes the resident tenant to the store
    /// (fenced by its claim) and releases it.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] if another node claimed it since; nothing is written.
    pub fn suspend(&self, tenant: &str) -> Result<String> {
        let t = TenantName::new(tenant)?;
        let r = self.load(&t)?;
        let epoch = r.claim().epoch;
        let d = match self.node.suspend(r) {
            Ok(d) => d,
            Err(e @ StoreError::Fenced { .. }) => {
                self.forget(&t);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.forget(&t);
        Ok(format!("suspended {t} (state {d}, epoch {epoch})\n"))
    }
}
