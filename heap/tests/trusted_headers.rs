//! What a heap opened trusted ([`Verification::Trust`]) answers for a header that does not
//! decode, as its documentation says: the reads that decode the whole header (`object`,
//! `format`) answer a typed error, and so does every read past the object words; a read of
//! one field answers what its word holds, the read path decoding no more than it needs.

use cowheap_heap::{BaseHeap, Builder, Error, Format, ObjectIndex, ObjectSize, Verification, Word};

/// A file of nil, `odd` (two slots, its format code unknown) and `long` (the last object,
/// one slot, its size word claiming 1,000 slots), opened trusted; and the two objects.
fn trusted_base(dir: &std::path::Path) -> (BaseHeap, ObjectIndex, ObjectIndex) {
    let mut b = Builder::new();
    let nil = b.add_nil();
    let odd = b
        .add(
            nil,
            Format::Pointers,
            vec![nil, Word::int(5).unwrap()],
            vec![],
        )
        .unwrap();
    let long = b
        .add(nil, Format::Pointers, vec![Word::int(6).unwrap()], vec![])
        .unwrap();
    let path = dir.join("headers.cowheap");
    b.freeze().unwrap().save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // The objects section is the file's first; nil takes three words, `odd` five.
    let at = usize::try_from(u64::from_le_bytes(bytes[72..80].try_into().unwrap())).unwrap();
    let odd_info = at + (3 + 2) * 8;
    assert_eq!(bytes[odd_info + 4], Format::Pointers.code());
    bytes[odd_info + 4] = 200;
    let long_size = at + (3 + 5 + 1) * 8;
    assert_eq!(bytes[long_size], 1, "one slot");
    bytes[long_size..long_size + 4].copy_from_slice(&1_000u32.to_le_bytes());
    cowheap_testkit::reseal_image(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    assert!(BaseHeap::open(&path).is_err(), "verification refuses both");
    let heap = BaseHeap::open_with(&path, Verification::Trust).unwrap();
    (heap, odd.as_base().unwrap(), long.as_base().unwrap())
}

#[test]
fn a_header_that_does_not_decode_fails_the_reads_that_decode_it() {
    let dir = tempfile::tempdir().unwrap();
    let (heap, odd, long) = trusted_base(dir.path());
    for x in [odd, long] {
        assert!(
            matches!(heap.object(x), Err(Error::Corrupt(_))),
            "{:?}",
            heap.object(x).map(|o| o.size())
        );
    }
    assert!(matches!(heap.format(odd), Err(Error::Corrupt(_))));
    // Past the object words: a typed error.
    assert!(matches!(heap.slot_word(long, 1), Err(Error::Corrupt(_))));
    assert!(matches!(heap.bytes(long), Err(Error::Corrupt(_))));
}

#[test]
fn a_read_of_one_field_answers_what_its_word_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (heap, odd, long) = trusted_base(dir.path());
    assert_eq!(heap.slot_word(odd, 1).unwrap(), Word::int(5).unwrap());
    assert_eq!(heap.size(odd).unwrap(), ObjectSize { slots: 2, bytes: 0 });
    assert!(heap.hash(odd).is_ok());
    assert_eq!(heap.bytes(odd).unwrap(), &[] as &[u8]);
    assert_eq!(heap.slot_word(long, 0).unwrap(), Word::int(6).unwrap());
    assert_eq!(
        heap.size(long).unwrap(),
        ObjectSize {
            slots: 1_000,
            bytes: 0
        }
    );
    assert_eq!(heap.format(long).unwrap(), Format::Pointers);
}
