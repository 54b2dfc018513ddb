//! Property tests for `FrameDecoder`: random bytes and mutated valid frames
//! never panic, never make the buffer grow beyond the frame limit, and valid
//! frames decode back to the command that was encoded.
//!
//! Default case count is small for CI; run longer with e.g.
//! `PROPTEST_CASES=100000 cargo test -p ringmq-net --test frame_fuzz`.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use ringmq_remoting::codes::{LanguageCode, SerializeType};
use ringmq_remoting::command::{ExtFields, RemotingCommand};
use ringmq_remoting::frame::{effective_serialize_type, encode_frame, FrameDecoder};

/// Small limit so that "huge" claims are common in random input.
const MAX_FRAME: usize = 4096;

fn config() -> ProptestConfig {
    // ProptestConfig::default() reads PROPTEST_CASES; only the built-in
    // default of 256 is lowered.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Feed `data` in `chunk`-sized pieces, decoding after each. Returns the
/// decoded commands and whether decoding stopped on an error. Asserts the
/// buffer capacity stays within what the data and the limit justify.
fn feed(data: &[u8], chunk: usize) -> (Vec<RemotingCommand>, bool) {
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // The decoder may reserve up to one max-size frame; BytesMut may double.
    let bound = 2 * (MAX_FRAME + 4 + data.len()) + 64;
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(cmd)) => out.push(cmd),
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert!(buf.capacity() <= bound, "capacity {}", buf.capacity());
                    return (out, true);
                }
            }
            assert!(buf.capacity() <= bound, "capacity {}", buf.capacity());
        }
        assert!(buf.capacity() <= bound, "capacity {}", buf.capacity());
    }
    (out, false)
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_%|-]{0,12}",
        ".{0,8}",
        Just(String::new()),
        "[\\x00-\\x1f\"\\\\é主😀]{0,6}",
    ]
}

fn arb_command() -> impl Strategy<Value = RemotingCommand> {
    (
        prop_oneof![any::<i16>().prop_map(i32::from), any::<i32>()],
        0..14u8,
        prop_oneof![any::<i16>().prop_map(i32::from), any::<i32>()],
        any::<i32>(),
        any::<i32>(),
        proptest::option::of(arb_string()),
        proptest::collection::vec((arb_string(), arb_string()), 0..6),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(
            |(code, lang, version, opaque, flag, remark, ext, body, binary)| RemotingCommand {
                code,
                language: LanguageCode::from_code(lang).unwrap(),
                version,
                opaque,
                flag,
                remark,
                ext_fields: ExtFields::from(ext),
                body: Bytes::from(body),
                serialize_type: if binary {
                    SerializeType::RocketMq
                } else {
                    SerializeType::Json
                },
            },
        )
}

/// What decoding an encoded `cmd` must give back: the form actually sent,
/// and for the binary form an empty remark reads back as none.
fn expected(cmd: &RemotingCommand) -> RemotingCommand {
    let mut c = cmd.clone();
    c.serialize_type = effective_serialize_type(cmd);
    if c.serialize_type == SerializeType::RocketMq && c.remark.as_deref() == Some("") {
        c.remark = None;
    }
    c
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    SetTotalLength(u32),
    SetHeaderWord(u32),
    AdjustTotalLength(i32),
    AdjustHeaderLength(i32),
    Overwrite(usize, u8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        prop_oneof![any::<u32>(), 0..64u32, Just(0x8000_0000), Just(0x7FFF_FFFF)]
            .prop_map(Mutation::SetTotalLength),
        prop_oneof![
            any::<u32>(),
            0..64u32,
            (0..4u32, 0..64u32).prop_map(|(t, h)| (t << 24) | h)
        ]
        .prop_map(Mutation::SetHeaderWord),
        (-8..8i32).prop_map(Mutation::AdjustTotalLength),
        (-8..8i32).prop_map(Mutation::AdjustHeaderLength),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let word = |f: &Vec<u8>, at: usize| u32::from_be_bytes(f[at..at + 4].try_into().unwrap());
    match *m {
        Mutation::FlipBit(i, b) => {
            let i = i % frame.len();
            frame[i] ^= 1 << b;
        }
        Mutation::Truncate(n) => frame.truncate(n % (frame.len() + 1)),
        Mutation::SetTotalLength(v) => frame[0..4].copy_from_slice(&v.to_be_bytes()),
        Mutation::SetHeaderWord(v) => frame[4..8].copy_from_slice(&v.to_be_bytes()),
        Mutation::AdjustTotalLength(d) => {
            let v = word(frame, 0).wrapping_add_signed(d);
            frame[0..4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::AdjustHeaderLength(d) => {
            let v = word(frame, 4).wrapping_add_signed(d);
            frame[4..8].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Overwrite(i, b) => {
            let i = i % frame.len();
            frame[i] = b;
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        chunk in 1..64usize,
    ) {
        feed(&data, chunk);
    }

    #[test]
    fn random_bytes_after_valid_prefix(
        head in 0..0x1100u32,
        kind in 0..3u8,
        data in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        // Plausible length words so the header parsers see the random bytes.
        let mut wire = BytesMut::new();
        wire.put_u32(4 + data.len() as u32);
        wire.put_u32((u32::from(kind) << 24) | (head % (data.len() as u32 + 1)));
        wire.put_slice(&data);
        feed(&wire, 512);
    }

    #[test]
    fn valid_frames_round_trip(
        cmds in proptest::collection::vec(arb_command(), 1..4),
        chunk in 1..300usize,
    ) {
        let mut wire = BytesMut::new();
        for c in &cmds {
            encode_frame(c, &mut wire).unwrap();
        }
        let (got, failed) = feed(&wire, chunk);
        prop_assert!(!failed);
        let want: Vec<_> = cmds.iter().map(expected).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn mutated_frames_never_panic(
        cmd in arb_command(),
        muts in proptest::collection::vec(arb_mutation(), 1..4),
        chunk in 1..300usize,
    ) {
        let mut wire = BytesMut::new();
        encode_frame(&cmd, &mut wire).unwrap();
        let mut frame = wire.to_vec();
        for m in &muts {
            if frame.len() < 8 {
                break;
            }
            apply(&mut frame, m);
        }
        let (got, _) = feed(&frame, chunk);
        prop_assert!(got.len() <= 1 + frame.len() / 8);
    }
}
