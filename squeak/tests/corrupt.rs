//! Corrupt, foreign and unsupported files give typed errors, never a panic.

mod common;

use common::*;
use cowheap_squeak::{ImportError, import_bytes};

fn version_file(version: u32, big: bool) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    let v = if big {
        version.to_be_bytes()
    } else {
        version.to_le_bytes()
    };
    b[..4].copy_from_slice(&v);
    b
}

#[test]
fn foreign_and_unsupported_files_are_named() {
    assert!(matches!(
        import_bytes(b""),
        Err(ImportError::Truncated { .. })
    ));
    assert!(matches!(
        import_bytes(b"\x7fELF and more bytes than that"),
        Err(ImportError::BadMagic { .. })
    ));
    assert!(matches!(
        import_bytes(&[0xAB; 2048]),
        Err(ImportError::BadMagic { .. })
    ));
    for v in [68_000, 68_002, 68_003, 6_501] {
        for big in [false, true] {
            let e = import_bytes(&version_file(v, big));
            assert!(
                matches!(e, Err(ImportError::UnsupportedVersion(x)) if x == v),
                "{v}: {e:?}"
            );
        }
    }
    let e = cowheap_squeak::import("/nonexistent/dir/x.image");
    assert!(matches!(e, Err(ImportError::Io { .. })));
    // A known version but a header that is all zeros.
    assert!(matches!(
        import_bytes(&version_file(6502, false)),
        Err(ImportError::BadImageHeader(_))
    ));
    assert!(matches!(
        import_bytes(&version_file(68_021, true)),
        Err(ImportError::BadImageHeader(_))
    ));
}

#[test]
fn a_512_byte_prefix_is_skipped_and_written_back() {
    let mut bytes = vec![0u8; 512];
    bytes.extend(image_bytes(HEADLESS));
    let im = import_bytes(&bytes).unwrap();
    assert_eq!(im.header.prefix, 512);
    assert_eq!(im.stats.objects, 2_493);
    assert!(cowheap_squeak::export_bytes(&im.heap, im.format).unwrap() == bytes);
}

#[test]
fn every_truncation_is_refused() {
    for (name, stride) in [(HEADLESS, 61), (SCRATCH, 40_009)] {
        let good = image_bytes(name);
        let cuts = (0..300)
            .chain((300..good.len()).step_by(stride))
            .chain([good.len() - 1]);
        for cut in cuts {
            let e = import_bytes(&good[..cut]);
            assert!(e.is_err(), "{name} cut at {cut} was accepted");
            if cut >= 64 {
                assert!(
                    matches!(e, Err(ImportError::Truncated { .. })),
                    "{name} cut at {cut}: {e:?}"
                );
            }
        }
    }
}

/// A deterministic stream of positions.
fn positions(n: usize, len: usize, seed: u64) -> impl Iterator<Item = usize> {
    let mut x = seed;
    (0..n).map(move |_| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize % len
    })
}

#[test]
fn bit_flips_in_headers_give_errors_or_images_never_panics() {
    let good = image_bytes(HEADLESS);
    let mut refused = 0;
    // Every bit of the image header, then bits of the first objects' headers and slots.
    let bits = (0..64 * 8).chain(positions(3_000, 8 * 8_192, 7).map(|b| 64 * 8 + b));
    for bit in bits {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        match import_bytes(&b) {
            Err(_) => refused += 1,
            Ok(im) => assert_eq!(im.stats.objects + im.heap.len(), 2 * im.heap.len()),
        }
    }
    assert!(refused > 1_000, "only {refused} flips refused");
    // Scratch: a few flips in its first objects.
    let good = image_bytes(SCRATCH);
    for bit in positions(40, 8 * 4_096, 11).map(|b| 64 * 8 + b) {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let _ = import_bytes(&b);
    }
}

#[test]
fn specific_corruptions_are_named() {
    // V3: the first object's header made a free chunk.
    let mut b = image_bytes(SCRATCH);
    b[64] = (b[64] & !3) | 2;
    assert!(matches!(
        import_bytes(&b),
        Err(ImportError::BadHeader { at: 0, .. })
    ));
    // V3: the special objects pointer made to point between objects.
    let mut b = image_bytes(SCRATCH);
    b[16] ^= 0x40;
    assert!(matches!(import_bytes(&b), Err(ImportError::Missing(_))));
    // V3: a slot of the special objects array made a pointer to nowhere.
    let mut b = image_bytes(SCRATCH);
    let base = u32::from_le_bytes(b[12..16].try_into().unwrap());
    let special = u32::from_le_bytes(b[16..20].try_into().unwrap());
    let at = 64 + (special - base) as usize + 4 * 23;
    b[at..at + 4].copy_from_slice(&8u32.to_le_bytes());
    assert!(matches!(
        import_bytes(&b),
        Err(ImportError::DanglingOop { oop: 8, .. })
    ));
    // Spur: an ordinary object's class index pointed at an empty class-table entry.
    let mut b = image_bytes(HEADLESS);
    let first_ordinary = 64; // nil, class index 1027
    b[first_ordinary..first_ordinary + 3].copy_from_slice(&[0xFF, 0xFF, 0x3F]);
    assert!(matches!(
        import_bytes(&b),
        Err(ImportError::BadClassIndex { .. })
    ));
    // Spur: the hidden roots' overflow size word made inconsistent.
    let mut b = image_bytes(HEADLESS);
    b[64 + 192 + 7] = 0x7F;
    assert!(matches!(
        import_bytes(&b),
        Err(ImportError::BadHeader { .. })
    ));
}

#[test]
fn a_data_size_past_the_address_space_is_truncated_not_an_overflow() {
    // A 64-bit Spur header whose data size is 2^64 - 1 bytes: the error names the end of
    // the data that was asked for, saturated, where adding the header's size to the data
    // size overflowed (a panic in a build with overflow checks; found by the fuzzer).
    for big in [false, true] {
        let mut b = version_file(68_021, big);
        let put = |b: &mut Vec<u8>, at: usize, v: u64, width: usize| {
            let bytes = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            let s = if big {
                &bytes[8 - width..]
            } else {
                &bytes[..width]
            };
            b[at..at + width].copy_from_slice(s);
        };
        put(&mut b, 4, 128, 4); // the header's size
        put(&mut b, 8, u64::MAX, 8); // the data's size
        let e = import_bytes(&b);
        assert!(
            matches!(
                e,
                Err(ImportError::Truncated {
                    at: 128,
                    end: u64::MAX,
                    len: 256,
                    ..
                })
            ),
            "{big}: {:?}",
            e.map(|_| ())
        );
    }
}

/// The byte offset of the 64-bit header of object `n` (in address order) of a 32-bit
/// little-endian Spur image: a walk from the first object, each object's header after its
/// overflow size word when it has one.
fn spur32_header_of(b: &[u8], n: usize) -> usize {
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let mut at = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
    for k in 0..=n {
        let w = word(at);
        let (header, slots) = if w >> 56 == 0xFF {
            (at + 8, (w & 0xFFFF_FFFF) as usize)
        } else {
            (at, (w >> 56) as usize)
        };
        if k == n {
            return header;
        }
        at = header + 8 + (4 * slots).max(8).next_multiple_of(8);
    }
    unreachable!()
}

#[test]
fn references_are_read_only_from_objects_of_pointers() {
    // An object the class table or the special objects array is read through, made one of
    // raw words (Spur format 10): its words are no references, and the import says so,
    // where it read classes and nil from them, and exported an image whose words, kept as
    // data, named nothing (found by the fuzzer).
    let good = image_bytes(HEADLESS);
    let raw = |b: &mut Vec<u8>, header: usize| b[header + 3] = (b[header + 3] & !31) | 10;
    // The first page of the class table: object 5, after nil, false, true, the free lists
    // and the hidden roots.
    let mut b = good.clone();
    raw(&mut b, spur32_header_of(&good, 5));
    let e = import_bytes(&b);
    assert!(
        matches!(e, Err(ImportError::BadClassIndex { .. })),
        "{:?}",
        e.map(|_| ())
    );
    // The special objects array, found by the header's pointer to it.
    let mut b = good.clone();
    let (header_size, old_base, special) = (
        u32::from_le_bytes(good[4..8].try_into().unwrap()) as usize,
        u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize,
        u32::from_le_bytes(good[16..20].try_into().unwrap()) as usize,
    );
    raw(&mut b, header_size + special - old_base);
    let e = import_bytes(&b);
    assert!(
        matches!(e, Err(ImportError::Missing("nil"))),
        "{:?}",
        e.map(|_| ())
    );
}

#[test]
fn a_v3_special_objects_array_of_raw_words_has_no_nil() {
    // Scratch's special objects array made one of raw words (V3 format 6): nil is not
    // read from its first word.
    let mut b = image_bytes(SCRATCH);
    let base = u32::from_le_bytes(b[12..16].try_into().unwrap());
    let special = u32::from_le_bytes(b[16..20].try_into().unwrap());
    let header = 64 + (special - base) as usize;
    b[header + 1] = (b[header + 1] & !15) | 6;
    let e = import_bytes(&b);
    assert!(
        matches!(e, Err(ImportError::Missing("nil"))),
        "{:?}",
        e.map(|_| ())
    );
}

/// A V3 object for [`compact_v3_image`]: its format, the object its two-word header's class
/// word names (`None`: a one-word header, compact class index 1) and its slots (`Ok(k)` a
/// reference to object `k`, `Err(w)` the raw word `w`).
type V3Obj = (u32, Option<usize>, Vec<Result<usize, u32>>);

/// A little-endian V3 image of `objs`. Object 0 is the class (compact class 1), 1 the
/// special objects array.
fn compact_v3_image(old_base: u32, objs: &[V3Obj]) -> Vec<u8> {
    let mut addr = Vec::new();
    let mut pos = 0u32;
    for (_, class, slots) in objs {
        pos += if class.is_some() { 4 } else { 0 };
        addr.push(old_base + pos);
        pos += 4 * (1 + slots.len() as u32);
    }
    let mut data = Vec::new();
    for (k, (fmt, class, slots)) in objs.iter().enumerate() {
        let words = 1 + slots.len() as u32;
        let hash = (k as u32 + 1) << 17;
        let header = match class {
            Some(c) => {
                data.extend((addr[*c] | 1).to_le_bytes());
                1 | (words << 2) | (fmt << 8) | hash
            }
            None => 3 | (words << 2) | (fmt << 8) | (1 << 12) | hash,
        };
        data.extend(header.to_le_bytes());
        for s in slots {
            let w = match *s {
                Ok(i) => addr[i],
                Err(w) => w,
            };
            data.extend(w.to_le_bytes());
        }
    }
    let mut out = Vec::new();
    for w in [6502u32, 64, data.len() as u32, old_base, addr[1]] {
        out.extend(w.to_le_bytes());
    }
    out.resize(64, 0);
    out.extend(data);
    out
}

#[test]
fn a_v3_old_base_that_is_not_word_aligned_is_refused() {
    // Objects: 0 a class (its format field a small integer), 1 the special objects array
    // (nil in slot 0, the compact classes in slot 28), 2 nil, 3 the compact classes array
    // (slot 0: the class, compact class index 1).
    let (class, nil, compact) = (0, 2, 3);
    let mut sp = vec![Ok(nil); 29];
    sp[28] = Ok(compact);
    let mut cc = vec![Ok(nil); 31];
    cc[0] = Ok(class);
    let objs = [
        (1, None, vec![Ok(nil), Ok(nil), Err(3)]),
        (2, None, sp),
        (0, None, vec![]),
        (2, None, cc),
    ];
    // Aligned, the image imports and exports back as it was.
    let good = compact_v3_image(0x1000, &objs);
    let imported = import_bytes(&good).unwrap();
    assert!(cowheap_squeak::export_bytes(&imported.heap, imported.format).unwrap() == good);
    // From an old base one byte past a word, every oop is tagged as a small integer: the
    // special objects array holds no nil and no compact classes, and no V3 virtual machine
    // takes such a file.
    for old_base in [0x1001, 0x1003] {
        let b = compact_v3_image(old_base, &objs);
        let e = import_bytes(&b);
        assert!(
            matches!(e, Err(ImportError::BadImageHeader(_))),
            "old base {old_base:#x}: {:?}",
            e.map(|i| i.heap.root("nil"))
        );
    }
}

/// An image whose objects lie past the address space its oops (and its export) can name is
/// refused: a V3 or 32-bit Spur object memory that runs past 2^32, a 64-bit Spur old base
/// past 2^48. No VM saves one, and before, such a file imported into a base that its own
/// export refused (`TooLarge`, or `BadHeaderRoot` for the old base).
#[test]
fn an_object_memory_past_its_address_space_is_refused() {
    use common::spur_writer::*;
    // V3: the last object (the compact classes array) starts below 2^32 and ends past it.
    let mut sp = vec![Ok(2); 29];
    sp[28] = Ok(3);
    let mut cc = vec![Ok(2); 31];
    cc[0] = Ok(0);
    let objs = [
        (1, None, vec![Ok(2), Ok(2), Err(3)]),
        (2, None, sp),
        (0, None, vec![]),
        (2, None, cc),
    ];
    let v3 = compact_v3_image(0xFFFF_FF00, &objs);
    let e = import_bytes(&v3);
    assert!(
        matches!(e, Err(ImportError::BadImageHeader(_))),
        "V3: {:?}",
        e.map(|i| cowheap_squeak::export_bytes(&i.heap, i.format).map(|_| ()))
    );
    // 32-bit Spur: an unreferenced object of 100 words at the end, from 8 bytes below 2^32.
    let objects = || spur_objects(4, vec![sobj(32, 10, 9, vec![S::W(0); 100])]);
    let at_zero = spur_image(4, 0, &objects(), SPECIAL);
    let last = spur32_objects(&at_zero).last().unwrap().0 as u64 - 64;
    let spur32 = spur_image(4, (1 << 32) - 8 - last, &objects(), SPECIAL);
    assert!(import_bytes(&spur_image(4, 1 << 20, &objects(), SPECIAL)).is_ok());
    let e = import_bytes(&spur32);
    assert!(
        matches!(e, Err(ImportError::BadImageHeader(_))),
        "32-bit Spur: {:?}",
        e.map(|i| cowheap_squeak::export_bytes(&i.heap, i.format).map(|_| ()))
    );
    // 64-bit Spur: an old base of 2^49.
    let spur64 = spur_image(8, 1 << 49, &spur_objects(8, vec![]), SPECIAL);
    assert!(import_bytes(&spur_image(8, 1 << 48, &spur_objects(8, vec![]), SPECIAL)).is_ok());
    let e = import_bytes(&spur64);
    assert!(
        matches!(e, Err(ImportError::BadImageHeader(_))),
        "64-bit Spur: {:?}",
        e.map(|i| {
            let options = cowheap_squeak::ExportOptions {
                allow_missing_float_class: true,
                ..cowheap_squeak::ExportOptions::default()
            };
            cowheap_squeak::export_bytes_with(&i.heap, &options).map(|_| ())
        })
    );
}

/// Only an object of a context class holds stale words past its stack pointer: with the
/// special objects array's MethodContext and BlockContext slots nil, an object of format 3
/// whose class word is nil is no context, and a field of it that names no object is refused
/// (before, nil was taken for the context class and the field read as nil).
#[test]
fn an_object_of_class_nil_is_no_context() {
    let (class, nil, compact) = (0, 2, 3);
    let mut sp = vec![Ok(nil); 29];
    sp[28] = Ok(compact);
    let mut cc = vec![Ok(nil); 31];
    cc[0] = Ok(class);
    let stale = 0x0BAD_0000;
    // sender, pc, stack pointer 0, method, closure, receiver, then a stale word.
    let fields = vec![Ok(nil), Err(1), Err(1), Ok(nil), Ok(nil), Ok(nil)];
    let objs = |last| {
        let mut f = fields.clone();
        f.push(last);
        [
            (1, None, vec![Ok(nil), Ok(nil), Err(3)]),
            (2, None, sp.clone()),
            (0, None, vec![]),
            (2, None, cc.clone()),
            (3, Some(nil), f),
        ]
    };
    assert!(import_bytes(&compact_v3_image(0x1000, &objs(Ok(nil)))).is_ok());
    let e = import_bytes(&compact_v3_image(0x1000, &objs(Err(stale))));
    assert!(
        matches!(e, Err(ImportError::DanglingOop { oop, .. }) if oop == u64::from(stale)),
        "{:?}",
        e.map(|i| i.heap.len())
    );
}
