//! Base versions through the store: a node's commit is one compare-and-set in the store, and
//! every node applies the versions others committed.
//!
//! A node keeps one [`Repository`] per history it meets (by the origin's fingerprint, the
//! version-0 base in the store), made over the base it maps ([`Node::base`]). The store is
//! the authority on which versions exist; a node's repository follows it.
//!
//! ```text
//!  node A (at v3)                        store: origin O            node B (at v3)
//!  commit(t): sync (nothing new)
//!    checks, gather, layer L4
//!    put_version(O, 4, L4) ------------> v4 = L4   (newest was 3: won)
//!    publish v4 here                                                commit(u): sync
//!                                                  <---------------   versions(O, after 3)
//!                                                  ---------------->  apply L4 (now at v4)
//!                                                                     checks against v4:
//!                                                                     u changed what v4 did?
//!                                                                       Conflict, nothing written
//!                                                                     else put_version(O, 5, L5)
//!  (had B's put_version raced A's for number 4, the store would refuse one of them with
//!   VersionConflict { newest: 4 }; the loser syncs, checks again against v4, and retries.)
//! ```
//!
//! - **Sync** ([`Node::sync`]): list the versions after the repository's current one, fetch
//!   each layer (verified by digest, then by the layer's own checksum), and
//!   [`Repository::apply`] them in order. Time: O(the new layers).
//! - **Commit** ([`Node::commit`]): sync, then [`Repository::commit_through`], whose persist
//!   step is [`Store::put_version`] of the layer with compare-and-set on the version number.
//!   The conflict check runs in the repository against every version it has applied, so a
//!   write-write (or, in [`CommitMode::ReadWrite`], read-write) conflict with another node's
//!   commit is found exactly as with another tenant of the same process. A lost race (another
//!   node wrote that number between this node's sync and its write) changes nothing here:
//!   the node syncs and tries again, at most [`MAX_COMMIT_TRIES`] times. The store decides
//!   who may commit ([`Store::allow_commit`]); the node's repository lets anyone try.
//! - **Durability**: the version is in the store before it is published in the node, and the
//!   store writes it in one atomic step, so a node killed mid-commit leaves the store at the
//!   old version or the new one. A version whose write failed is published nowhere.
//!
//! **A lost answer.** If the store fails to confirm a version write (the connection drops
//! after the database committed it; a local directory's fsync fails after the record was
//! linked), the version may exist all the same. The node then looks: if the store's version
//! of that number holds exactly the layer it wrote (same digest), the commit is reported as
//! [`StoreError::CommitLanded`] and the node applies the version; the tenant, still holding
//! its changes, is settled by the caller on the version that holds them
//! ([`Repository::settle_landed`], which keeps its roots and other objects as an answered
//! commit does), or aborted onto it. Otherwise the
//! store's error stands and nothing of the commit exists. A version the store took but
//! this node could not then make (the allocator refused its tables) is
//! [`StoreError::CommitLanded`] as well; the next sync applies it.

use crate::node::Node;
use crate::{Result, Store, StoreError};
use cowheap_forwarders::Base;
use cowheap_heap::{Fingerprint, Value};
use cowheap_tenants::Tenant;
use cowheap_tenants::commit::{CommitError, CommitMode, CommitRights, Repository};
use std::sync::{Arc, Mutex};

/// How many times [`Node::commit`] tries to write its version when other nodes keep winning
/// the number first; then it gives up with [`StoreError::CommitRaced`]. Each lost try means
/// another node's commit landed, so the system as a whole moves on.
pub const MAX_COMMIT_TRIES: usize = 64;

/// A node's repository of one history, and the lock that keeps two syncs of it from
/// fetching the same layers at once.
#[derive(Debug)]
pub(crate) struct NodeRepo {
    repo: Arc<Repository>,
    sync: Mutex<()>,
}

impl Node {
    fn node_repo(&self, origin: Fingerprint) -> Result<Arc<NodeRepo>> {
        if let Some(r) = self
            .repos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&origin)
        {
            return Ok(r.clone());
        }
        // Fetched outside the map's lock; the first repository stored wins.
        let base = self.base(origin)?;
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        Ok(repos
            .entry(origin)
            .or_insert_with(|| {
                Arc::new(NodeRepo {
                    repo: Arc::new(Repository::with_config(
                        base,
                        CommitRights::Anyone,
                        self.config,
                    )),
                    sync: Mutex::new(()),
                })
            })
            .clone())
    }

    /// This node's repository of the history of base `origin`, made over the node's mapping
    /// of that base on first use (fetching it if need be) and not synced: its current
    /// version is the newest this node has applied or committed. Fork tenants from it (after
    /// [`Node::sync`]) to commit them with [`Node::commit`]. Time: O(1) once made.
    ///
    /// # Errors
    /// As [`Node::base`].
    pub fn repository(&self, origin: Fingerprint) -> Result<Arc<Repository>> {
        Ok(self.node_repo(origin)?.repo.clone())
    }

    /// Applies the versions of `origin`'s history that the store holds and this node's
    /// repository does not, in order, and returns the current version. Time: O(the new
    /// layers' size), one listing when there is none.
    ///
    /// # Errors
    /// What the store answers ([`StoreError::BlobCorrupt`], [`StoreError::BlobTruncated`]
    /// for a damaged layer blob), [`StoreError::Layer`] or [`StoreError::LayerMismatch`] for
    /// bytes that are not the listed version's layer, [`StoreError::Commit`] if the
    /// repository refuses a layer. The versions applied before the error stay applied.
    pub fn sync(&self, origin: Fingerprint) -> Result<Arc<Base>> {
        let r = self.node_repo(origin)?;
        self.sync_repo(&r, origin)
    }

    fn sync_repo(&self, r: &NodeRepo, origin: Fingerprint) -> Result<Arc<Base>> {
        let _one = r.sync.lock().unwrap_or_else(|p| p.into_inner());
        let from = r.repo.current().version();
        for v in self.store().versions(origin, from)? {
            let current = r.repo.current().version();
            if v.number <= current {
                // A commit of this node published it meanwhile.
                continue;
            }
            if v.number != current + 1 {
                return Err(StoreError::Damaged {
                    what: format!("the versions of base {origin}"),
                    problem: "a gap in the listed versions",
                });
            }
            let bytes = self.store().get_layer(v.layer)?;
            let layer = crate::store::decode_layer(&bytes)?;
            if layer.origin != origin || layer.version() != v.number {
                return Err(StoreError::LayerMismatch {
                    problem: "the layer is not of the version that names it",
                });
            }
            match r.repo.apply(&layer) {
                Ok(_) => {}
                // A commit of this node published this number between the check above and
                // the repository's lock: the store holds one version per number, so it is
                // this one.
                Err(CommitError::OutOfOrder { parent, current }) if parent < current => {}
                Err(e) => return Err(StoreError::Commit(Box::new(e))),
            }
        }
        Ok(r.repo.current())
    }

    /// Commits `tenant`'s changes as the next version of its base's history, written to the
    /// store first (one atomic compare-and-set, [`Store::put_version`]) and then published
    /// in this node's repository; the tenant moves to the new version. Syncs first, and
    /// again after each lost race, so conflicts with other nodes' commits are found as with
    /// other tenants of this process. Time: O(changed and new objects) plus the layers
    /// synced, per try.
    ///
    /// `tenant` must stand on a version this node's repository published (forked from
    /// [`Node::repository`], resumed by this node, or committed here).
    ///
    /// ```
    /// use cowheap_heap::{synth, Value};
    /// use cowheap_store::{Access, LocalStore, Node, NodeName, StoreError, SystemClock};
    /// use cowheap_store::workload::slot_objects;
    /// use cowheap_tenants::commit::{CommitError, CommitMode};
    /// use std::sync::Arc;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = Arc::new(LocalStore::init(dir.path(), Arc::new(SystemClock), Access::Operator).unwrap());
    /// let image = dir.path().join("base.cowheap");
    /// synth::image(1_000, 1).save(&image).unwrap();
    /// let a = Node::new(store.clone(), NodeName::new("a").unwrap(), dir.path().join("cache-a"));
    /// let b = Node::new(store, NodeName::new("b").unwrap(), dir.path().join("cache-b"));
    /// let fp = a.put_base_file(&image).unwrap();
    /// let x = slot_objects(&a.base(fp).unwrap(), 1)[0];
    ///
    /// // Both nodes' tenants change x on version 0; a commits first.
    /// let mut ta = a.repository(fp).unwrap().fork();
    /// let mut tb = b.repository(fp).unwrap().fork();
    /// ta.set_slot(x, 0, Value::int(1)).unwrap();
    /// tb.set_slot(x, 0, Value::int(2)).unwrap();
    /// assert_eq!(a.commit(&mut ta, CommitMode::WriteWrite, &[]).unwrap().version(), 1);
    /// // b syncs version 1 before its own commit and finds the conflict: nothing is written.
    /// let Err(StoreError::Commit(e)) = b.commit(&mut tb, CommitMode::WriteWrite, &[]) else { panic!() };
    /// assert!(matches!(*e, CommitError::Conflict { .. }));
    /// assert_eq!(b.store().versions(fp, 0).unwrap().len(), 1);
    /// // b drops its change, sees a's, and commits anew.
    /// b.repository(fp).unwrap().abort(&mut tb);
    /// assert_eq!(tb.slot(x, 0).unwrap().as_int(), Some(1));
    /// tb.set_slot(x, 0, Value::int(3)).unwrap();
    /// assert_eq!(b.commit(&mut tb, CommitMode::WriteWrite, &[]).unwrap().version(), 2);
    /// assert_eq!(a.sync(fp).unwrap().fingerprint(), b.sync(fp).unwrap().fingerprint());
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Commit`] with [`CommitError::Conflict`] (the objects listed) or another
    /// refusal of the repository; [`StoreError::NotCommitter`] if the store does not let
    /// this node's principal commit to the base; [`StoreError::CommitRaced`] after
    /// [`MAX_COMMIT_TRIES`] lost races; [`StoreError::CommitLanded`] if the store failed to
    /// confirm the write but holds the version, or took it and the node could not make the
    /// version then (settle the tenant on it once synced, [`Repository::settle_landed`]
    /// with the same `roots`, or abort it onto it); what sync and the
    /// store answer. On any other error the store holds no part of this commit and the
    /// tenant keeps its changes.
    pub fn commit(
        &self,
        tenant: &mut Tenant,
        mode: CommitMode,
        roots: &[Value],
    ) -> Result<Arc<Base>> {
        self.commit_fenced(tenant, mode, roots, None)
    }

    /// [`Node::commit`], fenced by `claim` if it is given: just before each try writes its
    /// version (its layer encoded already), the claim's lease is kept ([`Node::keep_lease`]'s
    /// test; a refusal is the commit's, with nothing written), and the version is written
    /// by [`Store::put_version_claimed`], in one atomic step with the claim's check.
    fn commit_fenced(
        &self,
        tenant: &mut Tenant,
        mode: CommitMode,
        roots: &[Value],
        mut claim: Option<&mut crate::Claim>,
    ) -> Result<Arc<Base>> {
        let origin = tenant.base().origin();
        let r = self.node_repo(origin)?;
        let store: &dyn Store = &**self.store();
        for _ in 0..MAX_COMMIT_TRIES {
            self.sync_repo(&r, origin)?;
            // The number and layer digest this try writes, to look for after an unanswered
            // write.
            let tried = std::cell::Cell::new(None);
            let written = std::cell::Cell::new(false);
            let mut claim = claim.as_deref_mut();
            let done = r
                .repo
                .commit_through(tenant, self.name().as_str(), mode, roots, |layer| {
                    // Reserved fallibly: the allocator's refusal writes nothing.
                    let bytes = layer.try_to_bytes().map_err(|_| {
                        StoreError::out_of_memory("a version's layer", layer.encoded_len())
                    })?;
                    let digest = crate::Digest::of(&bytes);
                    if let Some(c) = claim.as_deref_mut()
                        && let Some(renewed) = self.lease_kept(c)?
                    {
                        *c = renewed;
                    }
                    tried.set(Some((layer.version(), digest)));
                    match claim.as_deref() {
                        Some(c) => store.put_version_claimed(c, origin, layer.version(), &bytes),
                        None => store.put_version(origin, layer.version(), &bytes),
                    }
                    .map(|_| written.set(true))
                });
            match done {
                Ok(v) => return Ok(v),
                // The store holds the version, but the repository could not make it (the
                // allocator refused): the commit landed, as after a lost answer.
                Err(e) if written.get() => {
                    let version = tried.get().map_or(0, |(n, _)| n);
                    // Best effort: a failed sync leaves the version to the next one.
                    let _ = self.sync_repo(&r, origin);
                    return Err(StoreError::CommitLanded {
                        version,
                        source: Box::new(StoreError::Commit(Box::new(e))),
                    });
                }
                Err(CommitError::Persist(e)) => match e.downcast::<StoreError>() {
                    Ok(e) => match *e {
                        StoreError::VersionConflict { .. } => continue,
                        other => return Err(self.landed_anyway(&r, origin, tried.get(), other)),
                    },
                    Err(e) => return Err(StoreError::Commit(Box::new(CommitError::Persist(e)))),
                },
                Err(e) => return Err(StoreError::Commit(Box::new(e))),
            }
        }
        Err(StoreError::CommitRaced {
            tries: MAX_COMMIT_TRIES,
        })
    }

    /// Commits a resident tenant's changes as [`Node::commit`] does, after renewing this
    /// node's claim on it, and keeping it ([`Node::keep_lease`]: renewed if less than half
    /// the lease is left) just before each version write, which is fenced by the claim
    /// ([`Store::put_version_claimed`]: the claim checked in the same atomic step as the
    /// write). So a node whose claim another node has taken over (its lease ran out, before
    /// the commit, during it, or inside the version write itself) publishes nothing of a
    /// tenant the other node now runs.
    ///
    /// # Errors
    /// [`StoreError::Fenced`] if another node has claimed the tenant since: nothing is
    /// committed and the tenant keeps its changes. Otherwise as [`Node::commit`].
    pub fn commit_resident(
        &self,
        r: &mut crate::Resident,
        mode: CommitMode,
        roots: &[Value],
    ) -> Result<Arc<Base>> {
        self.renew(r)?;
        self.commit_fenced(&mut r.tenant, mode, roots, Some(&mut r.claim))
    }

    /// After a version write that failed with `error`: if the store holds the version
    /// `tried` names with exactly that layer, the write happened (its answer was lost):
    /// [`StoreError::CommitLanded`], the version applied here. Else `error`.
    fn landed_anyway(
        &self,
        r: &NodeRepo,
        origin: Fingerprint,
        tried: Option<(u64, crate::Digest)>,
        error: StoreError,
    ) -> StoreError {
        let refused = matches!(
            error,
            StoreError::NotCommitter { .. }
                | StoreError::Fenced { .. }
                | StoreError::TenantMissing { .. }
                | StoreError::Denied { .. }
                | StoreError::BaseMissing { .. }
                | StoreError::Layer(_)
                | StoreError::LayerMismatch { .. }
        );
        let Some((number, digest)) = tried.filter(|_| !refused) else {
            return error;
        };
        let there = self.store().versions(origin, number - 1).is_ok_and(|vs| {
            vs.first()
                .is_some_and(|v| v.number == number && v.layer == digest)
        });
        if !there {
            return error;
        }
        // Best effort: a failed sync leaves the version to the next one.
        let _ = self.sync_repo(r, origin);
        StoreError::CommitLanded {
            version: number,
            source: Box::new(error),
        }
    }

    /// The version of `origin`'s history that a tenant snapshot was taken on: the one whose
    /// [`Base::fingerprint`] the snapshot names, among the versions this node holds, synced
    /// first if none matches. Bytes that name no version this node can find get the base
    /// itself, onto which the restore then refuses them with a typed error. Time: O(versions
    /// held) (fingerprints are computed once per version, O(layer)).
    ///
    /// # Errors
    /// As [`Node::sync`].
    pub fn version_for_snapshot(&self, origin: Fingerprint, snapshot: &[u8]) -> Result<Arc<Base>> {
        let v0 = self.base(origin)?;
        let Some(fp) = snapshot_base(snapshot) else {
            return Ok(v0);
        };
        if fp == v0.fingerprint() {
            return Ok(v0);
        }
        let r = self.node_repo(origin)?;
        if let Some(b) = find_version(&r.repo.current(), fp) {
            return Ok(b);
        }
        let current = self.sync_repo(&r, origin)?;
        Ok(find_version(&current, fp).unwrap_or(v0))
    }
}

/// The base fingerprint a tenant snapshot's header names (`docs/FORMATS.md`: the magic, the
/// format version and flags, then the fingerprint), if the bytes start like a snapshot. Only
/// a hint for choosing the version: the restore checks everything.
fn snapshot_base(bytes: &[u8]) -> Option<Fingerprint> {
    const AT: usize = 8 + 4 + 4;
    if bytes.get(..8)? != cowheap_tenants::snapshot::MAGIC {
        return None;
    }
    Some(Fingerprint(bytes.get(AT..AT + 32)?.try_into().ok()?))
}

/// The version below or at `current` whose fingerprint is `fp`. Fingerprints are computed
/// from the oldest up, so each is one step over its parent's (no deep recursion).
fn find_version(current: &Arc<Base>, fp: Fingerprint) -> Option<Arc<Base>> {
    let mut chain = vec![current.clone()];
    while let Some(p) = chain.last().and_then(|b| b.parent()).cloned() {
        chain.push(p);
    }
    chain.into_iter().rev().find(|b| b.fingerprint() == fp)
}
