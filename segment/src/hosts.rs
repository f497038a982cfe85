//! Host objects in tenant segments: a member that is a host object's proxy
//! ([`cowheap_tenants::hosts`]) travels with its kind and the state its kind's plugin saves,
//! and is made again on import by the plugin, as tenant snapshots do.
//!
//! - **Extraction** ([`crate::tenant::extract_with_hosts`]) asks each proxy member's
//!   plugin to save its host object ([`HostPlugin::save`](cowheap_tenants::hosts::HostPlugin::save));
//!   a kind with no plugin is [`HostError::NoPlugin`]. Plain [`crate::tenant::extract`]
//!   records the kind without the state, as [`Tenant::snapshot`] does: such a member
//!   imports only as a placeholder. A placeholder (the tenant's own, made by an earlier
//!   import or restore, or a [`HostPlaceholder`] host object) is written with the bytes it
//!   kept, needing no plugin, so a segment moved on loses nothing.
//! - **Import** ([`crate::tenant::TenantSegment::import_with_hosts`]) makes every host object
//!   with its plugin ([`HostPlugin::restore`](cowheap_tenants::hosts::HostPlugin::restore))
//!   before anything is allocated, so a refused import leaves the tenant as it was. The
//!   member is made as any other (class, format, identity hash) and then given its host
//!   object ([`Tenant::attach_host`]): the member itself is the proxy every reference of the
//!   segment leads to, with its class, body and identity hash, and nothing else is made. A
//!   kind with no plugin, or a state that was not saved, is
//!   [`HostError::NoPlugin`] or [`HostError::NotSaved`]; or, if the caller accepts
//!   placeholders, the member becomes the tenant's own placeholder
//!   ([`Tenant::new_host_placeholder`]: its kind and saved bytes, listed by
//!   [`Tenant::placeholders`]), and in [`crate::tenant::Imported::placeholders`].

use crate::error::{Result, SegmentError};
use cowheap_tenants::Tenant;
use cowheap_tenants::hosts::{DetachedHost, HostError, HostPlugins};

/// A host object of a segment member, as the segment holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SegHost {
    /// The member that is its proxy.
    pub member: u32,
    /// Its kind (the plugin's name).
    pub kind: String,
    /// What its plugin saved; `None` if it was extracted without plugins.
    pub saved: Option<Vec<u8>>,
}

/// A host object that stands for one whose plugin is missing: its kind and saved bytes. An
/// import makes the tenant's own placeholders ([`Tenant::new_host_placeholder`]); an embedder
/// may still hold one of these as a host object, and extraction writes its bytes unchanged.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HostPlaceholder {
    /// The kind whose plugin was missing.
    pub kind: String,
    /// The bytes its plugin saved, if they were saved.
    pub saved: Option<Vec<u8>>,
}

/// A member made as a placeholder (see [`HostPlaceholder`]).
#[derive(Clone, Copy, Debug)]
pub struct Placeholder {
    /// The member's number in the segment.
    pub member: u32,
    /// The proxy in the tenant.
    pub proxy: cowheap_heap::Value,
}

/// How an extraction records host objects.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Saving<'a> {
    /// Kinds only ([`crate::tenant::extract`]).
    KindsOnly,
    /// Each through its kind's plugin.
    Plugins(&'a HostPlugins),
}

/// The host object of `v` as a segment holds it, if `v` is a proxy; `member` is its number.
///
/// # Errors
/// [`SegmentError::Host`]: [`HostError::NoPlugin`] for a kind with no plugin,
/// [`HostError::Save`] if the plugin fails.
pub(crate) fn save(
    tenant: &Tenant,
    v: cowheap_heap::Value,
    member: u32,
    saving: Saving<'_>,
) -> Result<Option<SegHost>> {
    let Some((kind, object)) = tenant.host_object(v) else {
        return Ok(None);
    };
    let host_error = |source| SegmentError::Host { member, source };
    let saved = match object {
        // A tenant placeholder (made again without its plugin): the bytes it keeps.
        None => tenant.host_saved(v).map(<[u8]>::to_vec),
        Some(o) => match (o.downcast_ref::<HostPlaceholder>(), saving) {
            (Some(p), _) => p.saved.clone(),
            (None, Saving::KindsOnly) => None,
            (None, Saving::Plugins(plugins)) => {
                let plugin = plugins.get(kind).ok_or_else(|| {
                    host_error(HostError::NoPlugin {
                        kind: kind.to_owned(),
                    })
                })?;
                Some(plugin.save(o).map_err(|reason| {
                    host_error(HostError::Save {
                        kind: kind.to_owned(),
                        reason,
                    })
                })?)
            }
        },
    };
    Ok(Some(SegHost {
        member,
        kind: kind.to_owned(),
        saved,
    }))
}

/// The host objects of `hosts` made again by their plugins, in order, each ready to be
/// given to its member ([`Tenant::attach_host`]; a placeholder is one with no object).
/// Nothing is allocated in a tenant.
///
/// # Errors
/// [`SegmentError::Host`] with [`HostError::NoPlugin`], [`HostError::NotSaved`] (unless
/// `placeholders`) or [`HostError::Restore`].
pub(crate) fn restore(
    hosts: &[SegHost],
    plugins: &HostPlugins,
    placeholders: bool,
) -> Result<Vec<DetachedHost>> {
    hosts
        .iter()
        .map(|h| {
            let err = |source| SegmentError::Host {
                member: h.member,
                source,
            };
            let kind = || h.kind.clone();
            match (plugins.get(&h.kind), &h.saved) {
                (Some(plugin), Some(bytes)) => plugin
                    .restore(bytes)
                    .map(|o| DetachedHost::new(&h.kind, o))
                    .map_err(|reason| {
                        err(HostError::Restore {
                            kind: kind(),
                            reason,
                        })
                    }),
                _ if placeholders => Ok(DetachedHost::placeholder(&h.kind, h.saved.clone())),
                (None, _) => Err(err(HostError::NoPlugin { kind: kind() })),
                (Some(_), None) => Err(err(HostError::NotSaved { kind: kind() })),
            }
        })
        .collect()
}

/// Whether a host object as a segment holds it can be made again by `plugins`: its kind
/// has a plugin and its state was saved, or `placeholders` are accepted.
///
/// # Errors
/// [`SegmentError::Host`] with [`HostError::NoPlugin`] or [`HostError::NotSaved`].
pub(crate) fn restorable(h: &SegHost, plugins: &HostPlugins, placeholders: bool) -> Result<()> {
    let err = |source| {
        Err(SegmentError::Host {
            member: h.member,
            source,
        })
    };
    match (plugins.get(&h.kind), &h.saved) {
        (Some(_), Some(_)) => Ok(()),
        _ if placeholders => Ok(()),
        (None, _) => err(HostError::NoPlugin {
            kind: h.kind.clone(),
        }),
        (Some(_), None) => err(HostError::NotSaved {
            kind: h.kind.clone(),
        }),
    }
}
