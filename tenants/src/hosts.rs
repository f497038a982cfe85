//! Host objects: things an embedder owns that have no heap form (an open connection, a file,
//! a window), held by a tenant through a proxy object, and the plugins that save and remake
//! them (the Lively Kernel serializer's idea).
//!
//! A tenant holds a host object through an ordinary private object of its own, the *proxy*:
//! references to the proxy are references to the host object, and the proxy's identity
//! carries it (a two-way become moves the proxy's body, not the host object). A plugin per
//! kind keeps "what we need to know" of a host object as bytes ([`HostPlugin::save`]) and
//! makes the object again from them with its own initialisation ([`HostPlugin::restore`]).
//!
//! Snapshots go through the plugins ([`Tenant::snapshot_with`],
//! [`Tenant::restore_with_hosts`]): a host object whose plugin is missing is a typed error
//! ([`HostError`]), or, if the caller asks, a *placeholder* it can find afterwards
//! ([`Tenant::placeholders`]) that keeps the saved bytes, so a later snapshot loses nothing.
//! Collection drops the host objects whose proxies it frees; a commit refuses a host object
//! (a base object cannot hold one). [`Tenant::detach_host`] and [`Tenant::attach_host`] move
//! a host object off and onto a proxy ([`DetachedHost`]): a swap-out takes a root proxy's
//! host object before it stubs the root, and a fault-in gives the host object its plugin
//! made to the member made again; [`Tenant::fill_stub`] carries it into the stub.
//!
//! ```
//! use cowheap_forwarders::Base;
//! use cowheap_heap::synth;
//! use cowheap_tenants::hosts::{HostPlugin, HostPlugins};
//! use cowheap_tenants::{Tenant, TenantConfig};
//! use std::any::Any;
//! use std::sync::Arc;
//!
//! /// An open connection: what to know is its address; reopening is the plugin's work.
//! struct Connection { address: String, opened: bool }
//! struct Connections;
//! impl HostPlugin for Connections {
//!     fn save(&self, object: &(dyn Any + Send)) -> Result<Vec<u8>, String> {
//!         let c = object.downcast_ref::<Connection>().ok_or("not a connection")?;
//!         Ok(c.address.as_bytes().to_vec())
//!     }
//!     fn restore(&self, saved: &[u8]) -> Result<Box<dyn Any + Send>, String> {
//!         let address = String::from_utf8(saved.to_vec()).map_err(|e| e.to_string())?;
//!         Ok(Box::new(Connection { address, opened: true }))
//!     }
//! }
//!
//! let base = Base::new(synth::image(1_000, 1));
//! let class = Tenant::fork(&base).class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
//! let mut t = Tenant::fork(&base);
//! let conn = Connection { address: "db:5432".into(), opened: true };
//! let proxy = t.new_host_object(class, "connection", Box::new(conn)).unwrap();
//! t.set_root("db", proxy).unwrap();
//! let mut plugins = HostPlugins::new();
//! plugins.register("connection", Arc::new(Connections));
//! let bytes = t.snapshot_with(&plugins).unwrap();
//! let back = Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &plugins, false)
//!     .unwrap();
//! let proxy = back.root("db").unwrap();
//! let (kind, object) = back.host_object(proxy).unwrap();
//! assert_eq!(kind, "connection");
//! let conn = object.unwrap().downcast_ref::<Connection>().unwrap();
//! assert_eq!(conn.address, "db:5432");
//! // Without the plugin: refused, or a placeholder if asked for.
//! let none = HostPlugins::new();
//! assert!(Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &none, false).is_err());
//! let kept = Tenant::restore_with_hosts(&base, &bytes, &TenantConfig::default(), &none, true)
//!     .unwrap();
//! assert_eq!(kept.placeholders().count(), 1);
//! ```

use crate::tenant::Loc;
use crate::{Error, Result, Tenant};
use cowheap_heap::{Format, ObjectSize, PrivateKey, Value, Word};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Saves and remakes the host objects of one kind.
pub trait HostPlugin: Send + Sync {
    /// What to keep of `object` to make it again.
    ///
    /// # Errors
    /// Why it cannot be saved (say, it is not of this plugin's kind).
    fn save(&self, object: &(dyn Any + Send)) -> std::result::Result<Vec<u8>, String>;

    /// The object made again from what [`HostPlugin::save`] kept, with the plugin's own
    /// initialisation (reopening a connection, say).
    ///
    /// # Errors
    /// Why it cannot be made.
    fn restore(&self, saved: &[u8]) -> std::result::Result<Box<dyn Any + Send>, String>;
}

/// The plugins an embedder registers, by kind.
#[derive(Clone, Default)]
pub struct HostPlugins {
    by_kind: BTreeMap<String, Arc<dyn HostPlugin>>,
}

impl fmt::Debug for HostPlugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_kind.keys()).finish()
    }
}

impl HostPlugins {
    /// No plugins.
    pub fn new() -> HostPlugins {
        HostPlugins::default()
    }

    /// Registers `plugin` for host objects of `kind` (replacing any before it).
    pub fn register(&mut self, kind: &str, plugin: Arc<dyn HostPlugin>) -> &mut HostPlugins {
        self.by_kind.insert(kind.to_owned(), plugin);
        self
    }

    /// The plugin for `kind`, if one is registered.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn HostPlugin>> {
        self.by_kind.get(kind)
    }
}

/// Why host objects could not be saved or made again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// No plugin is registered for a host object's kind.
    #[error("no plugin for host objects of kind {kind:?}")]
    NoPlugin {
        /// The kind.
        kind: String,
    },
    /// The snapshot was taken without plugins ([`Tenant::snapshot`]): this host object's
    /// state was not saved.
    #[error("the snapshot holds a host object of kind {kind:?} whose state was not saved")]
    NotSaved {
        /// The kind.
        kind: String,
    },
    /// The plugin could not save a host object.
    #[error("the plugin for {kind:?} could not save a host object: {reason}")]
    Save {
        /// The kind.
        kind: String,
        /// What the plugin said.
        reason: String,
    },
    /// The plugin could not make a host object again.
    #[error("the plugin for {kind:?} could not restore a host object: {reason}")]
    Restore {
        /// The kind.
        kind: String,
        /// What the plugin said.
        reason: String,
    },
}

/// A host object held by a tenant.
pub(crate) struct Host {
    /// Its proxy.
    pub(crate) key: PrivateKey,
    pub(crate) kind: String,
    /// The object; `None` for a placeholder (restored without its plugin).
    pub(crate) object: Option<Box<dyn Any + Send>>,
    /// A placeholder's saved bytes, if they were saved: kept for the next snapshot.
    pub(crate) saved: Option<Vec<u8>>,
}

impl Host {
    /// Bytes of the tenant's record of this host object: the record in its map, its kind's
    /// name and a placeholder's saved bytes (not the host object, which is its embedder's).
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<(u32, Host)>()
            + self.kind.capacity()
            + self.saved.as_ref().map_or(0, Vec::capacity)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("placeholder", &self.object.is_none())
            .finish()
    }
}

/// A host object taken from its proxy ([`Tenant::detach_host`]), to be given to a proxy
/// again ([`Tenant::attach_host`]) or dropped: what a swap-out holds while it stubs a root
/// that is a proxy, and what a fault-in gives the proxy it makes again. Dropping it drops
/// the host object.
pub struct DetachedHost {
    kind: String,
    /// The object; `None` for a placeholder.
    object: Option<Box<dyn Any + Send>>,
    /// A placeholder's saved bytes.
    saved: Option<Vec<u8>>,
}

impl fmt::Debug for DetachedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedHost")
            .field("kind", &self.kind)
            .field("placeholder", &self.object.is_none())
            .finish()
    }
}

impl DetachedHost {
    /// A host object of `kind`, not yet held by any tenant.
    pub fn new(kind: &str, object: Box<dyn Any + Send>) -> DetachedHost {
        DetachedHost {
            kind: kind.to_owned(),
            object: Some(object),
            saved: None,
        }
    }

    /// A placeholder of `kind` keeping `saved` (see [`Tenant::new_host_placeholder`]).
    pub fn placeholder(kind: &str, saved: Option<Vec<u8>>) -> DetachedHost {
        DetachedHost {
            kind: kind.to_owned(),
            object: None,
            saved,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The object; `None` for a placeholder.
    pub fn object(&self) -> Option<&(dyn Any + Send)> {
        self.object.as_deref()
    }
}

impl Tenant {
    /// A new host object of `kind` held by this tenant: its proxy, a new private object of
    /// `class` with no slots and no bytes, is what the tenant refers to it by. Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::alloc`].
    pub fn new_host_object(
        &mut self,
        class: Value,
        kind: &str,
        object: Box<dyn Any + Send>,
    ) -> Result<Value> {
        self.new_proxy(class, kind, Some(object), None)
    }

    /// A new placeholder of `kind` held by this tenant: a host object whose plugin was
    /// missing where it was made again (an import, say), keeping the bytes saved for it so
    /// that a later snapshot or segment loses nothing; listed by [`Tenant::placeholders`].
    /// Time: O(1).
    ///
    /// # Errors
    /// As [`Tenant::alloc`].
    pub fn new_host_placeholder(
        &mut self,
        class: Value,
        kind: &str,
        saved: Option<Vec<u8>>,
    ) -> Result<Value> {
        self.new_proxy(class, kind, None, saved)
    }

    /// A new proxy of `class` for a host object (or, with `object` `None`, a placeholder).
    fn new_proxy(
        &mut self,
        class: Value,
        kind: &str,
        object: Option<Box<dyn Any + Send>>,
        saved: Option<Vec<u8>>,
    ) -> Result<Value> {
        let proxy = self.alloc(class, Format::Bytes, ObjectSize { slots: 0, bytes: 0 })?;
        if let Some(key) = proxy.word().as_private() {
            self.cold_mut().hosts.insert(
                key.key(),
                Host {
                    key,
                    kind: kind.to_owned(),
                    object,
                    saved,
                },
            );
        }
        Ok(proxy)
    }

    /// The bytes saved for the placeholder `v` refers to, if it is one and they were saved.
    pub fn host_saved(&self, v: Value) -> Option<&[u8]> {
        let h = self.host(v)?;
        h.object.is_none().then_some(())?;
        h.saved.as_deref()
    }

    /// The host object `v` refers to, with its kind: `None` if `v` is no host object's proxy;
    /// the object is `None` for a placeholder. Time: O(log host objects).
    pub fn host_object(&self, v: Value) -> Option<(&str, Option<&(dyn Any + Send)>)> {
        let h = self.host(v)?;
        Some((h.kind.as_str(), h.object.as_deref()))
    }

    /// The host object `v` refers to, to change, if it is one and not a placeholder.
    pub fn host_object_mut(&mut self, v: Value) -> Option<&mut (dyn Any + Send)> {
        let Ok(Loc::Private(k)) = self.locate(v) else {
            return None;
        };
        let h = self.cold.as_mut()?.hosts.get_mut(&k.key())?;
        (h.key == k).then_some(())?;
        h.object.as_deref_mut()
    }

    /// The placeholders this tenant holds (host objects restored without their plugin), with
    /// their kinds: the caller can make them again and [`Tenant::replace_placeholder`].
    pub fn placeholders(&self) -> impl Iterator<Item = (Value, &str)> + '_ {
        self.cold.iter().flat_map(move |c| {
            c.hosts
                .values()
                .filter(|h| h.object.is_none())
                .map(move |h| (Value::owned(Word::private(h.key), self.id), h.kind.as_str()))
        })
    }

    /// Gives the placeholder `v` its host object, and answers the bytes that were saved for
    /// it, if any. `None` (and nothing changes) if `v` is no placeholder.
    pub fn replace_placeholder(
        &mut self,
        v: Value,
        object: Box<dyn Any + Send>,
    ) -> Option<Option<Vec<u8>>> {
        let Ok(Loc::Private(k)) = self.locate(v) else {
            return None;
        };
        let h = self.cold.as_mut()?.hosts.get_mut(&k.key())?;
        if h.key != k || h.object.is_some() {
            return None;
        }
        h.object = Some(object);
        Some(h.saved.take())
    }

    /// Takes the host object (or placeholder) away from the proxy `v` refers to: `v` stays
    /// an ordinary private object, and the caller holds the host object. `None` (and
    /// nothing changes) if `v` is no proxy. Time: O(log host objects).
    pub fn detach_host(&mut self, v: Value) -> Option<DetachedHost> {
        let Ok(Loc::Private(k)) = self.locate(v) else {
            return None;
        };
        let hosts = &mut self.cold.as_mut()?.hosts;
        if hosts.get(&k.key())?.key != k {
            return None;
        }
        let h = hosts.remove(&k.key())?;
        Some(DetachedHost {
            kind: h.kind,
            object: h.object,
            saved: h.saved,
        })
    }

    /// Makes the private object `v` refers to the proxy of `host` (whatever its class and
    /// body): from then on [`Tenant::host_object`] answers it, a collection that frees the
    /// object drops it, and a snapshot saves it. Time: O(log host objects).
    ///
    /// ```
    /// use cowheap_forwarders::Base;
    /// use cowheap_heap::{synth, Format, Value};
    /// use cowheap_tenants::Tenant;
    /// use cowheap_tenants::hosts::DetachedHost;
    ///
    /// let base = Base::new(synth::image(1_000, 1));
    /// let mut t = Tenant::fork(&base);
    /// let class = t.class_of(base.heap().root("Smalltalk").unwrap()).unwrap();
    /// let v = t.alloc_with(class, Format::Pointers, &[Value::int(1)], &[]).unwrap();
    /// t.attach_host(v, DetachedHost::new("counter", Box::new(7u32))).unwrap();
    /// assert_eq!(t.host_object(v).unwrap().0, "counter");
    /// assert!(t.attach_host(v, DetachedHost::new("counter", Box::new(8u32))).is_err());
    /// let taken = t.detach_host(v).unwrap();
    /// assert_eq!(taken.object().unwrap().downcast_ref::<u32>(), Some(&7));
    /// assert!(t.host_object(v).is_none());
    /// assert_eq!(t.slot(v, 0).unwrap().as_int(), Some(1)); // an ordinary object again
    /// ```
    ///
    /// # Errors
    /// [`Error::NotSwappable`] if `v` is a proxy already or a base object;
    /// [`Error::Swapped`] for a root stub; as [`Tenant::slot`] for a reference that leads
    /// nowhere. On error nothing changes in the tenant, and `host` is dropped (see
    /// [`Tenant::try_attach_host`] to have it back).
    pub fn attach_host(&mut self, v: Value, host: DetachedHost) -> Result<()> {
        self.try_attach_host(v, host).map_err(|(e, _)| e)
    }

    /// [`Tenant::attach_host`], answering `host` with the error when it is refused, so a
    /// caller that cannot lose it (its state is nowhere else) keeps it.
    ///
    /// # Errors
    /// As [`Tenant::attach_host`], with `host`; nothing changes in the tenant.
    pub fn try_attach_host(
        &mut self,
        v: Value,
        host: DetachedHost,
    ) -> std::result::Result<(), (Error, DetachedHost)> {
        let k = match self.locate(v) {
            Ok(Loc::Private(k)) => k,
            Ok(Loc::Base(_)) => return Err((Error::NotSwappable(v.word()), host)),
            Err(e) => return Err((e, host)),
        };
        if let Err(e) = self.body(k) {
            return Err((e, host));
        }
        if self.is_host(k) {
            return Err((Error::NotSwappable(v.word()), host));
        }
        self.cold_mut().hosts.insert(
            k.key(),
            Host {
                key: k,
                kind: host.kind,
                object: host.object,
                saved: host.saved,
            },
        );
        Ok(())
    }

    /// Moves the host record of proxy `from` to `to` (a fault-in's body moving into a root
    /// stub, [`Tenant::fill_stub`]). Nothing happens if `from` is no proxy.
    pub(crate) fn move_host(&mut self, from: PrivateKey, to: PrivateKey) {
        let Some(c) = self.cold.as_mut() else {
            return;
        };
        if c.hosts.get(&from.key()).is_some_and(|h| h.key == from)
            && let Some(mut h) = c.hosts.remove(&from.key())
        {
            h.key = to;
            c.hosts.insert(to.key(), h);
        }
    }

    /// Number of host objects (placeholders included) this tenant holds.
    pub fn host_count(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.hosts.len())
    }

    /// The host record of `v`'s proxy.
    fn host(&self, v: Value) -> Option<&Host> {
        let Ok(Loc::Private(k)) = self.locate(v) else {
            return None;
        };
        let h = self.cold.as_ref()?.hosts.get(&k.key())?;
        (h.key == k).then_some(h)
    }

    /// True if private entry `key` is a host object's proxy.
    pub(crate) fn is_host(&self, key: PrivateKey) -> bool {
        self.cold
            .as_ref()
            .and_then(|c| c.hosts.get(&key.key()))
            .is_some_and(|h| h.key == key)
    }

    /// Drops the host objects whose proxies are gone (after a collection).
    pub(crate) fn drop_dead_hosts(&mut self) {
        let space = &self.space;
        if let Some(c) = self.cold.as_mut() {
            c.hosts.retain(|_, h| space.object(h.key).is_some());
        }
    }
}
