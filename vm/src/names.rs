//! Names for errors: selectors, class names, `Class>>selector` frames, strings.

use crate::image::ctx;
use crate::interp::{LookupWork, Vm};
use crate::memory::ObjectMemory;
use cowheap_heap::{Format, Value};

/// The text of a Symbol or String (a bytes object), if `v` is one.
pub fn string<M: ObjectMemory>(m: &M, v: Value) -> Option<String> {
    if !v.is_object() || m.format(v).ok()? != Format::Bytes {
        return None;
    }
    Some(String::from_utf8_lossy(m.bytes(v).ok()?).into_owned())
}

/// The text of a selector.
pub fn symbol<M: ObjectMemory>(m: &M, v: Value) -> Option<String> {
    string(m, v)
}

/// The name of a class: its name slot, or `X class` for a metaclass.
///
/// The name slot is 6 in V3 images (superclass methodDict format instanceVariables
/// organization subclasses name) and 3 in the Spur headless image's kernel (superclass
/// methodDict format name); slot 6 is read first, so a V3 class reads as before.
pub fn class_name<M: ObjectMemory>(m: &M, class: Value) -> Option<String> {
    if let Some(name) = own_name(m, class) {
        return Some(name);
    }
    // Metaclass: ... thisClass: thisClass is its last named slot (5 or 6 in every V3 image
    // seen, 3 in the Spur kernel); a metaclass is the class of its thisClass.
    let n = m.size(class).ok()?.slots;
    (3..n.min(8)).rev().find_map(|i| {
        let this = m.slot(class, i).ok()?;
        if !this.is_object()
            || m.identity_key(m.class_of(this).ok()?).ok()? != m.identity_key(class).ok()?
        {
            return None;
        }
        let name = own_name(m, this)?;
        Some(format!("{name} class"))
    })
}

/// A class's own name: a non-empty Symbol in slot 6, else in slot 3.
fn own_name<M: ObjectMemory>(m: &M, class: Value) -> Option<String> {
    [6, 3].into_iter().find_map(|i| {
        m.slot(class, i)
            .ok()
            .and_then(|n| string(m, n))
            .filter(|s| !s.is_empty())
    })
}

/// `Class>>selector` for context `c`: the receiver's class, and the selector under which
/// the method is found in its class or a superclass. The walk's reads are taken from `work`:
/// past its end, the frame is named `Class>>?`.
pub(crate) fn frame<M: ObjectMemory>(
    vm: &Vm,
    m: &M,
    c: Value,
    work: &mut LookupWork,
) -> Option<String> {
    let class_of_ctx = m.class_of(c).ok()?;
    let block = vm.same(m, class_of_ctx, vm.sp.block_context).ok()?;
    let home = if block { m.slot(c, ctx::HOME).ok()? } else { c };
    let method = m.slot(home, ctx::METHOD).ok()?;
    let rcvr = m.slot(home, ctx::RECEIVER).ok()?;
    let mut class = m.class_of(rcvr).ok()?;
    let in_block = block
        || m.slot(c, ctx::CLOSURE)
            .map(|b| b.is_object() && !vm.is_nil(m, b).unwrap_or(true) && vm.sp.closures)
            .unwrap_or(false);
    let prefix = if in_block { "[] in " } else { "" };
    let mut chain = crate::interp::Chain::new(class);
    'walk: loop {
        if vm.is_nil(m, class).ok()? || !work.take() {
            break;
        }
        let dict = m.slot(class, 1).ok()?;
        if dict.is_object() {
            let values = m.slot(dict, 1).ok()?;
            let n = m.size(dict).ok()?.slots;
            for i in 2..n {
                if !work.take() {
                    break 'walk;
                }
                if let Ok(v) = m.slot(values, i - 2)
                    && vm.same(m, v, method).unwrap_or(false)
                {
                    let sel = m.slot(dict, i).ok().and_then(|s| symbol(m, s));
                    return Some(format!(
                        "{prefix}{}>>{}",
                        class_name(m, class).unwrap_or_else(|| "?".into()),
                        sel.unwrap_or_else(|| "?".into())
                    ));
                }
            }
        }
        class = m.slot(class, 0).ok()?;
        if !chain.step(class) {
            break;
        }
    }
    let rc = m.class_of(rcvr).ok()?;
    Some(format!(
        "{prefix}{}>>?",
        class_name(m, rc).unwrap_or_else(|| "?".into())
    ))
}
