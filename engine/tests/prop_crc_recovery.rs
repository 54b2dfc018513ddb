//! `enabledAppendPropCRC`: records carry RocketMQ's whole-record CRC property, and
//! recovery refuses a record changed outside its body (what a sector torn at a power cut
//! does), which BODYCRC alone lets through.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use ringmq_engine::commitlog::recovery;
use ringmq_engine::commitlog::{FlushMode, PutStatus};
use ringmq_engine::record::{parse, Parsed, PROPERTY_CRC32};
use ringmq_engine::MessageStore;

/// Writes two records, then flips one byte of the second one's store host (offset 70 of
/// an IPv4 record: a header field no checksum but the property covers), as after a crash.
/// Returns the log's end after recovery and the end of the first record.
fn recover_after_header_damage(root: &Path, prop_crc: bool) -> (i64, i64) {
    let mut cfg = small_config(root, FlushMode::Sync);
    cfg.commitlog.append_prop_crc = prop_crc;
    let first_end;
    {
        let store = MessageStore::open(cfg.clone()).unwrap();
        let a = store.put_blocking(vec![message("T", 0, 1, 100)]);
        let b = store.put_blocking(vec![message("T", 0, 2, 100)]);
        assert_eq!((a.status, b.status), (PutStatus::Ok, PutStatus::Ok));
        first_end = a.end_offset;
        let mut rec = vec![0u8; (b.end_offset - first_end) as usize];
        store.commitlog().read(first_end, &mut rec).unwrap();
        let Ok(Parsed::Record(v)) = parse(&rec, first_end, true) else {
            panic!("stored record parses")
        };
        assert_eq!(v.property(PROPERTY_CRC32).is_some(), prop_crc);
        store.shutdown().unwrap();
        recovery::write_checkpoint(
            root,
            &recovery::Checkpoint {
                phys_offset: 0,
                timestamp_ms: 0,
            },
        )
        .unwrap();
    }
    let seg = root.join("commitlog").join("00000000000000000000");
    let file = OpenOptions::new().read(true).write(true).open(seg).unwrap();
    let at = first_end as u64 + 70;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
    std::fs::write(recovery::abort_path(root), b"").unwrap();
    let store = MessageStore::open(cfg).expect("recovery never fails on a damaged tail");
    (store.commitlog().max_offset(), first_end)
}

#[test]
fn a_header_changed_after_the_body_crc_is_caught_only_by_the_record_crc() {
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (end, first_end) = recover_after_header_damage(&base.path().join("crc"), true);
    assert_eq!(end, first_end, "the damaged record is cut off");
    let (end, first_end) = recover_after_header_damage(&base.path().join("plain"), false);
    assert!(
        end > first_end,
        "without the property the damage goes unseen"
    );
}
