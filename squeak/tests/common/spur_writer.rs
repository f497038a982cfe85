//! Small Spur images written by hand, little-endian and in one segment, for the variants
//! the shared images do not cover: each object a class index, a format, a hash and slots
//! that are references to other objects of the list or raw words.

#[derive(Clone)]
pub(crate) enum S {
    /// A reference to object k.
    R(usize),
    /// A raw word.
    W(u64),
}

#[derive(Clone)]
pub(crate) struct SObj {
    pub(crate) ci: u32,
    pub(crate) fmt: u8,
    pub(crate) hash: u32,
    pub(crate) slots: Vec<S>,
}

pub(crate) fn sobj(ci: u32, fmt: u8, hash: u32, slots: Vec<S>) -> SObj {
    SObj {
        ci,
        fmt,
        hash,
        slots,
    }
}

/// Writes a little-endian Spur image of `objs`, in one segment, whose special objects array
/// is object `special`.
pub(crate) fn spur_image(ws: usize, old_base: u64, objs: &[SObj], special: usize) -> Vec<u8> {
    // Addresses.
    let mut addr = Vec::new();
    let mut pos = 0u64;
    for o in objs {
        let n = o.slots.len();
        let overflow = if n >= 255 { 8 } else { 0 };
        addr.push(old_base + pos + overflow);
        pos += overflow + 8 + ((n * ws).max(8).next_multiple_of(8)) as u64;
    }
    let mut data: Vec<u8> = Vec::new();
    let put64 = |d: &mut Vec<u8>, v: u64| d.extend(v.to_le_bytes());
    let putw = |d: &mut Vec<u8>, v: u64| {
        if ws == 8 {
            d.extend(v.to_le_bytes())
        } else {
            d.extend((v as u32).to_le_bytes())
        }
    };
    for o in objs {
        let n = o.slots.len();
        if n >= 255 {
            put64(&mut data, (0xFFu64 << 56) | n as u64);
        }
        let h = u64::from(o.ci)
            | (u64::from(o.fmt) << 24)
            | (u64::from(o.hash) << 32)
            | ((n.min(255) as u64) << 56);
        put64(&mut data, h);
        let start = data.len();
        for s in &o.slots {
            let v = match *s {
                S::R(k) => addr[k],
                S::W(w) => w,
            };
            putw(&mut data, v);
        }
        // The VM fills the word that pads a 32-bit object of pointers with nil.
        let pointers = o.fmt <= 5 && (o.ci >= 32 || o.ci == 16 || o.ci == 17);
        if ws == 4 && pointers && n % 2 == 1 {
            putw(&mut data, addr[NIL]);
        }
        let body = (n * ws).max(8).next_multiple_of(8);
        data.resize(start + body, 0);
    }
    // The last bridge.
    put64(&mut data, 3 | (10 << 24) | (1 << 30) | (1 << 55));
    put64(&mut data, 0);
    let header_size = if ws == 8 { 128 } else { 64 };
    let mut out = Vec::new();
    let version: u32 = if ws == 8 { 68021 } else { 6521 };
    out.extend(version.to_le_bytes());
    out.extend((header_size as u32).to_le_bytes());
    putw(&mut out, data.len() as u64);
    putw(&mut out, old_base);
    putw(&mut out, addr[special]);
    putw(&mut out, 1000); // last hash
    putw(&mut out, 0); // window
    putw(&mut out, 2); // flags: floats little-endian
    out.extend(0u32.to_le_bytes()); // extra VM memory
    out.extend(0u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    putw(&mut out, data.len() as u64); // first segment
    putw(&mut out, 0); // free old space
    out.resize(header_size, 0);
    out.extend(data);
    out
}

pub(crate) const NIL: usize = 0;
pub(crate) const FALSE: usize = 1;
pub(crate) const TRUE: usize = 2;
pub(crate) const CLASS: usize = 6;
pub(crate) const SPECIAL: usize = 7;

/// The smallest Spur object memory the importer takes: nil, false, true, the free lists,
/// the hidden roots, class-table page 0, one class (index 32, its own class), the special
/// objects array; `extra` objects follow.
pub(crate) fn spur_objects(ws: usize, extra: Vec<SObj>) -> Vec<SObj> {
    let raw_fmt = if ws == 8 { 9 } else { 10 };
    let mut hidden_roots = vec![S::R(5)];
    hidden_roots.resize(4096 + 8, S::R(NIL));
    let mut page = vec![S::R(NIL); 1024];
    page[32] = S::R(CLASS);
    let int = |i: u64| S::W(if ws == 8 { (i << 3) | 1 } else { (i << 1) | 1 });
    let mut special = vec![S::R(NIL), S::R(FALSE), S::R(TRUE)];
    special.resize(12, S::R(NIL));
    let mut objs = vec![
        sobj(32, 0, 1, vec![]),
        sobj(32, 0, 2, vec![]),
        sobj(32, 0, 3, vec![]),
        sobj(19, raw_fmt, 0, vec![S::W(0); 2]),
        sobj(16, 2, 0, hidden_roots),
        sobj(16, 2, 0, page),
        // A class: superclass, method dictionary, format.
        sobj(32, 1, 32, vec![S::R(NIL), S::R(NIL), int(2)]),
        sobj(32, 2, 5, special),
    ];
    objs.extend(extra);
    objs
}
