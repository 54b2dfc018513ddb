//! The HA frame decoders on garbage, oversize and split input never panic, never hold
//! more than one header plus the batch size, and stay failed after an error; a master
//! fed a bad report drops only that connection; a slave fed an oversize frame drops the
//! connection and reconnects.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use ringmq_ha::protocol::{encode_report, encode_transfer_header, REPORT_SIZE};
use ringmq_ha::{FrameDecoder, HaMaster, HaSlave, ProtocolError, ReportDecoder};

const MAX: usize = 32 * 1024;

/// Feeds `wire` in chunks of `sizes` (cycled); returns frames until the first error.
fn feed(
    d: &mut FrameDecoder,
    wire: &[u8],
    sizes: &[usize],
) -> (Vec<(i64, Vec<u8>)>, Option<ProtocolError>) {
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        loop {
            match d.decode(&mut chunk) {
                Ok(Some(f)) => frames.push((f.phys_offset, f.body.to_vec())),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

#[test]
fn oversize_and_negative_headers_are_refused() {
    let mut d = FrameDecoder::new(MAX);
    let mut wire = encode_transfer_header(0, MAX + 1).to_vec();
    wire.extend_from_slice(&[0u8; 64]);
    let (frames, err) = feed(&mut d, &wire, &[5]);
    assert!(frames.is_empty());
    let err = err.expect("oversize refused");
    assert_eq!(
        err,
        ProtocolError::BodyTooLarge {
            phys_offset: 0,
            size: MAX as i32 + 1,
            max: MAX
        }
    );
    assert!(err.to_string().contains("haTransferBatchSize"));
    // Failed for good.
    assert!(d.decode(&mut &encode_transfer_header(0, 0)[..]).is_err());

    let mut neg_size = encode_transfer_header(7, 0);
    neg_size[8..].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        FrameDecoder::new(MAX).decode(&mut &neg_size[..]),
        Err(ProtocolError::NegativeBodySize { .. })
    ));
    assert!(matches!(
        FrameDecoder::new(MAX).decode(&mut &encode_transfer_header(-5, 1)[..]),
        Err(ProtocolError::NegativeOffset { offset: -5 })
    ));
    // i32::MAX announced: refused before any allocation.
    let mut huge = encode_transfer_header(0, 0);
    huge[8..].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(FrameDecoder::new(MAX).decode(&mut &huge[..]).is_err());

    let mut r = ReportDecoder::new();
    assert!(r.decode(&(-1i64).to_be_bytes()).is_err());
    assert!(r.decode(&encode_report(5)).is_err(), "stays failed");
}

proptest! {
    #[test]
    fn garbage_never_panics(
        wire in proptest::collection::vec(any::<u8>(), 0..4096),
        sizes in proptest::collection::vec(1usize..64, 1..8),
        max in 0usize..2048,
    ) {
        let mut d = FrameDecoder::new(max);
        let (frames, err) = feed(&mut d, &wire, &sizes);
        for (phys, body) in &frames {
            prop_assert!(*phys >= 0 && body.len() <= max);
        }
        if err.is_some() {
            prop_assert!(d.decode(&mut &[0u8; 12][..]).is_err());
        }
        let mut r = ReportDecoder::new();
        for chunk in wire.chunks(sizes[0]) {
            if let Ok(Some(v)) = r.decode(chunk) {
                prop_assert!(v >= 0);
            }
        }
    }

    #[test]
    fn frames_round_trip_however_split(
        frames in proptest::collection::vec((0i64..1 << 40, 0usize..3000), 0..20),
        sizes in proptest::collection::vec(1usize..5000, 1..8),
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (i, (phys, len)) in frames.iter().enumerate() {
            let body: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
            wire.extend_from_slice(&encode_transfer_header(*phys, *len));
            wire.extend_from_slice(&body);
            want.push((*phys, body));
        }
        let mut d = FrameDecoder::new(3000);
        let (got, err) = feed(&mut d, &wire, &sizes);
        prop_assert!(err.is_none());
        prop_assert_eq!(got, want);
        prop_assert!(d.at_boundary());
    }

    #[test]
    fn reports_keep_the_last_complete_value(
        values in proptest::collection::vec(0i64..i64::MAX, 1..10),
        split in 1usize..REPORT_SIZE * 10,
    ) {
        let wire: Vec<u8> = values.iter().flat_map(|v| encode_report(*v)).collect();
        let mut r = ReportDecoder::new();
        let mut last = None;
        for chunk in wire.chunks(split) {
            if let Some(v) = r.decode(chunk).unwrap() {
                last = Some(v);
            }
        }
        prop_assert_eq!(last, values.last().copied());
    }
}

#[test]
fn master_drops_a_connection_that_sends_garbage() {
    let dir = tempdir();
    let master = open(&dir.path().join("master"));
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let mut bad = TcpStream::connect(ha.local_addr()).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(wait_until(Duration::from_secs(5), || ha
        .slaves()
        .connected_slaves()
        == 1));
    bad.write_all(&[0xff; 16]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || ha
        .slaves()
        .connected_slaves()
        == 0));
    let mut buf = [0u8; 64];
    assert!(matches!(bad.read(&mut buf), Ok(0) | Err(_)));
    // The master still serves.
    let mut good = TcpStream::connect(ha.local_addr()).unwrap();
    good.write_all(&encode_report(0)).unwrap();
    assert!(ha.slaves().wait_acked(0, Duration::from_secs(5)));
    assert!(wait_until(Duration::from_secs(5), || ha
        .slaves()
        .best_acked()
        == Some(0)));
    ha.shutdown();
    master.shutdown().unwrap();
}

#[test]
fn slave_drops_an_oversize_frame_and_reconnects() {
    let dir = tempdir();
    let store = open(&dir.path().join("slave"));
    let fake_master = TcpListener::bind("127.0.0.1:0").unwrap();
    let slave = HaSlave::start(store.clone(), fake_master.local_addr().unwrap(), fast_ha());
    for round in 0..2 {
        let (mut s, _) = fake_master.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut report = [0u8; REPORT_SIZE];
        s.read_exact(&mut report).unwrap();
        assert_eq!(
            i64::from_be_bytes(report),
            0,
            "round {round}: reports its end at once"
        );
        s.write_all(&encode_transfer_header(0, 1 << 30)).unwrap();
        // The slave hangs up (EOF, or a reset if more was in flight).
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    assert_eq!(store.commitlog().max_offset(), 0);
    slave.stop();
    assert!(!slave.is_connected());
    store.shutdown().unwrap();
}
