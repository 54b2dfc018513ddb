//! Remoting frame codec (spec §1.2, §1.3):
//!
//! ```text
//! totalLength:i32 = 4 + H + B | headerLengthWord:u32 = type << 24 | H | header(H) | body(B)
//! ```
//!
//! [`encode_frame`] appends a frame to the caller's `BytesMut`; nothing else
//! is allocated. [`FrameDecoder::decode`] is a streaming decoder: it checks
//! the length prefix against `max_frame` before it reserves anything, rejects
//! a bad serialize type or header length as soon as 8 bytes are buffered,
//! and splits the body off the buffer without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codes::SerializeType;
use crate::command::RemotingCommand;
use crate::{header_binary, header_json};

pub use crate::error::FrameError;

/// Default limit on `totalLength` (the length prefix's value): 16 MiB, the
/// largest frame rocketmq-client-rust 1.0.0 accepts.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Largest header the 24-bit header-length field can describe.
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Append `cmd` as one frame (header and body) to `dst`, refusing frames
/// over [`DEFAULT_MAX_FRAME`].
pub fn encode_frame(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), FrameError> {
    encode_frame_limited(cmd, dst, DEFAULT_MAX_FRAME)
}

/// [`encode_frame`] with an explicit limit on `totalLength`.
pub fn encode_frame_limited(
    cmd: &RemotingCommand,
    dst: &mut BytesMut,
    max_frame: usize,
) -> Result<(), FrameError> {
    encode_head(cmd, dst, max_frame, true)?;
    dst.extend_from_slice(&cmd.body);
    Ok(())
}

/// Append only the length words and header of `cmd`'s frame (lengths count
/// `cmd.body`), for callers that write the body separately (vectored I/O).
pub fn encode_frame_head(
    cmd: &RemotingCommand,
    dst: &mut BytesMut,
    max_frame: usize,
) -> Result<(), FrameError> {
    encode_head(cmd, dst, max_frame, false)
}

/// The header form `cmd` is actually sent in: its own, except that a command
/// the binary form cannot represent (see [`header_binary::encodable`]) goes
/// out as JSON.
pub fn effective_serialize_type(cmd: &RemotingCommand) -> SerializeType {
    match cmd.serialize_type {
        SerializeType::RocketMq if !header_binary::encodable(cmd) => SerializeType::Json,
        t => t,
    }
}

fn check_total(header_len: usize, body_len: usize, max_frame: usize) -> Result<u32, FrameError> {
    if header_len > MAX_HEADER_LEN {
        return Err(FrameError::HeaderTooLarge(header_len));
    }
    let total = 4 + header_len as u64 + body_len as u64;
    if total > max_frame.min(i32::MAX as usize) as u64 {
        return Err(FrameError::FrameTooLarge {
            len: total,
            max: max_frame,
        });
    }
    Ok(total as u32)
}

fn encode_head(
    cmd: &RemotingCommand,
    dst: &mut BytesMut,
    max_frame: usize,
    with_body: bool,
) -> Result<(), FrameError> {
    let body_len = cmd.body.len();
    let body_room = if with_body { body_len } else { 0 };
    match effective_serialize_type(cmd) {
        SerializeType::RocketMq => {
            let h = header_binary::encoded_len(cmd);
            let total = check_total(h, body_len, max_frame)?;
            dst.reserve(8 + h + body_room);
            dst.put_u32(total);
            dst.put_u32((u32::from(SerializeType::RocketMq.code()) << 24) | h as u32);
            header_binary::encode(cmd, dst);
        }
        SerializeType::Json => {
            let start = dst.len();
            dst.reserve(8 + header_json::estimated_len(cmd) + body_room);
            dst.put_u64(0);
            header_json::encode(cmd, dst);
            let h = dst.len() - start - 8;
            let total = match check_total(h, body_len, max_frame) {
                Ok(t) => t,
                Err(e) => {
                    dst.truncate(start);
                    return Err(e);
                }
            };
            let word = (u32::from(SerializeType::Json.code()) << 24) | h as u32;
            dst[start..start + 4].copy_from_slice(&total.to_be_bytes());
            dst[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
        }
    }
    Ok(())
}

/// Appends a JSON-header response frame with an empty body: what [`encode_frame`] writes
/// for `RemotingCommand::response_to(req, code, remark)` (a JSON request with `opaque`)
/// after `set_ext(key, value)` for each of `fields` in order (keys distinct), without
/// building the command or any string (the send path answers every message this way).
pub fn encode_json_response(
    dst: &mut BytesMut,
    code: i32,
    opaque: i32,
    remark: Option<&str>,
    fields: &[(&str, &dyn std::fmt::Display)],
) {
    let start = dst.len();
    dst.put_u64(0);
    crate::json_fast::encode_response(dst, code, opaque, remark, fields);
    let h = dst.len() - start - 8;
    // A response header is far below the 16 MiB header and frame limits unless a remark
    // is that large; such a frame is the generic encoder's to refuse.
    assert!(h <= MAX_HEADER_LEN, "response header of {h} bytes");
    let total = (4 + h) as u32;
    let word = (u32::from(SerializeType::Json.code()) << 24) | h as u32;
    dst[start..start + 4].copy_from_slice(&total.to_be_bytes());
    dst[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
}

impl RemotingCommand {
    /// Shorthand for [`encode_frame`].
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(self, dst)
    }
}

/// Streaming frame decoder. Every error it returns closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// Largest accepted `totalLength` (prefix value, excluding the prefix).
    pub max_frame: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// Take one complete frame off the front of `buf`. `Ok(None)` means more
    /// bytes are needed; the buffer is then reserved up to the frame's end,
    /// which the length checks bound by `max_frame + 4`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let raw = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if raw < 0 {
            return Err(FrameError::NegativeFrameLength(raw));
        }
        let total = raw as u32;
        if total < 4 {
            return Err(FrameError::FrameTooShort(total));
        }
        if total as usize > self.max_frame {
            return Err(FrameError::FrameTooLarge {
                len: total.into(),
                max: self.max_frame,
            });
        }
        let frame_len = 4 + total as usize;
        if buf.len() < 8 {
            buf.reserve(frame_len - buf.len());
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let type_byte = (word >> 24) as u8;
        let serialize_type = SerializeType::from_code(type_byte)
            .ok_or(FrameError::UnknownSerializeType(type_byte))?;
        let header_len = word & 0x00FF_FFFF;
        if header_len > total - 4 {
            return Err(FrameError::HeaderExceedsFrame {
                header_len,
                frame_len: total,
            });
        }
        if buf.len() < frame_len {
            buf.reserve(frame_len - buf.len());
            return Ok(None);
        }

        let mut frame = buf.split_to(frame_len);
        frame.advance(8);
        let header = frame.split_to(header_len as usize);
        let mut cmd = match serialize_type {
            SerializeType::Json => header_json::decode(&header)?,
            SerializeType::RocketMq => header_binary::decode(&header)?,
        };
        cmd.body = if frame.is_empty() {
            Bytes::new()
        } else {
            frame.freeze()
        };
        Ok(Some(cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{request_code, LanguageCode};

    fn sample(t: SerializeType) -> RemotingCommand {
        let mut c = RemotingCommand::request(request_code::SEND_MESSAGE)
            .with_serialize_type(t)
            .with_body(&b"hello body"[..])
            .with_ext("topic", "TopicA")
            .with_ext("queueId", 2);
        c.opaque = 42;
        c
    }

    fn frame_of(c: &RemotingCommand) -> BytesMut {
        let mut b = BytesMut::new();
        encode_frame(c, &mut b).unwrap();
        b
    }

    #[test]
    fn json_response_matches_the_generic_encoder() {
        let mut req = RemotingCommand::request(request_code::SEND_MESSAGE_V2);
        for (opaque, remark) in [
            (7, None),
            (-3, Some("not \"stored\"\n")),
            (i32::MAX, Some("")),
        ] {
            req.opaque = opaque;
            let region = "Default\u{1}Région";
            let fields: [(&str, &dyn std::fmt::Display); 6] = [
                ("MSG_REGION", &region),
                ("TRACE_ON", &true),
                (
                    "msgId",
                    &"7F00000100002A9F0000000000000000,7F00000100002A9F0000000000000400",
                ),
                ("queueId", &3),
                ("queueOffset", &-1i64),
                ("transactionId", &"AC11\\00"),
            ];
            let mut resp = RemotingCommand::response_to(&req, 17, remark.map(str::to_owned));
            for (k, v) in &fields {
                resp.set_ext(*k, v);
            }
            let mut want = BytesMut::new();
            encode_frame(&resp, &mut want).unwrap();
            let mut got = BytesMut::from(&b"prefix"[..]);
            encode_json_response(&mut got, 17, opaque, remark, &fields);
            assert_eq!(&got[6..], &want[..]);
            assert_eq!(
                FrameDecoder::default()
                    .decode(&mut got.split_off(6))
                    .unwrap(),
                Some(resp)
            );
        }
    }

    #[test]
    fn round_trip_both_forms() {
        for t in [SerializeType::Json, SerializeType::RocketMq] {
            let c = sample(t);
            let mut b = frame_of(&c);
            let got = FrameDecoder::default().decode(&mut b).unwrap().unwrap();
            assert_eq!(got, c);
            assert!(b.is_empty());
        }
    }

    #[test]
    fn length_words() {
        for t in [SerializeType::Json, SerializeType::RocketMq] {
            let c = sample(t);
            let b = frame_of(&c);
            let total = u32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
            let word = u32::from_be_bytes(b[4..8].try_into().unwrap());
            let h = (word & 0xFF_FFFF) as usize;
            assert_eq!(total, b.len() - 4, "totalLength excludes itself");
            assert_eq!(total, 4 + h + c.body.len());
            assert_eq!((word >> 24) as u8, t.code());
            assert_eq!(&b[8 + h..], b"hello body");
            if t == SerializeType::Json {
                assert_eq!(b[8], b'{');
                assert_eq!(b[8 + h - 1], b'}');
            }
        }
    }

    #[test]
    fn head_only_and_fallback() {
        let c = sample(SerializeType::RocketMq);
        let mut head = BytesMut::new();
        encode_frame_head(&c, &mut head, DEFAULT_MAX_FRAME).unwrap();
        head.extend_from_slice(&c.body);
        assert_eq!(head, frame_of(&c));

        // A POP-range code does not fit the binary short: sent as JSON.
        let mut c = sample(SerializeType::RocketMq);
        c.code = request_code::POP_MESSAGE;
        assert_eq!(effective_serialize_type(&c), SerializeType::Json);
        let mut b = frame_of(&c);
        assert_eq!(b[4], 0);
        let got = FrameDecoder::default().decode(&mut b).unwrap().unwrap();
        assert_eq!(got.code, request_code::POP_MESSAGE);
        assert_eq!(got.serialize_type, SerializeType::Json);
    }

    #[test]
    fn encode_limits_leave_buffer_untouched() {
        for t in [SerializeType::Json, SerializeType::RocketMq] {
            let c = sample(t).with_body(vec![0u8; 1000]);
            let mut b = BytesMut::from(&b"xyz"[..]);
            let e = encode_frame_limited(&c, &mut b, 500).unwrap_err();
            assert!(
                matches!(e, FrameError::FrameTooLarge { max: 500, .. }),
                "{e}"
            );
            assert_eq!(&b[..], b"xyz");
            let big = sample(t).with_remark("r".repeat(MAX_HEADER_LEN));
            let e = encode_frame_limited(&big, &mut b, usize::MAX).unwrap_err();
            assert!(matches!(e, FrameError::HeaderTooLarge(_)), "{e}");
            assert_eq!(&b[..], b"xyz");
        }
    }

    #[test]
    fn oversized_prefix_rejected_before_allocation() {
        for prefix in [0x7FFF_FFFFu32, 0x8000_0000, 0xFFFF_FFFF, 20_000_000] {
            let mut b = BytesMut::with_capacity(8);
            b.put_u32(prefix);
            b.put_u32(0);
            let cap = b.capacity();
            let e = FrameDecoder::default().decode(&mut b).unwrap_err();
            assert!(e.closes_connection());
            assert_eq!(b.capacity(), cap, "nothing reserved for {prefix:#x}");
            assert_eq!(b.len(), 8);
            match prefix {
                0x7FFF_FFFF => assert_eq!(
                    e.to_string(),
                    "frame of 2147483647 bytes exceeds the 16777216-byte limit"
                ),
                20_000_000 => assert_eq!(
                    e.to_string(),
                    "frame of 20000000 bytes exceeds the 16777216-byte limit"
                ),
                _ => assert!(e.to_string().starts_with("negative frame length -"), "{e}"),
            }
        }
        // Exactly at the limit is fine (waits for more), one above is not.
        let mut dec = FrameDecoder::new(1000);
        let mut b = BytesMut::new();
        b.put_u32(1000);
        assert!(dec.decode(&mut b).unwrap().is_none());
        assert!(b.capacity() >= 1004);
        let mut b = BytesMut::new();
        b.put_u32(1001);
        assert_eq!(
            dec.decode(&mut b).unwrap_err().to_string(),
            "frame of 1001 bytes exceeds the 1000-byte limit"
        );
    }

    #[test]
    fn bad_length_words() {
        let mut dec = FrameDecoder::default();
        let mut b = BytesMut::from(&[0u8, 0, 0, 3][..]);
        assert_eq!(
            dec.decode(&mut b).unwrap_err().to_string(),
            "frame length 3 is smaller than the 4-byte header-length word"
        );
        // headerLength > totalLength - 4, detected with only 8 bytes buffered.
        let mut b = BytesMut::new();
        b.put_u32(10);
        b.put_u32(7);
        assert_eq!(
            dec.decode(&mut b).unwrap_err(),
            FrameError::HeaderExceedsFrame {
                header_len: 7,
                frame_len: 10
            }
        );
        let mut b = BytesMut::new();
        b.put_u32(10);
        b.put_u32((2 << 24) | 6);
        let e = dec.decode(&mut b).unwrap_err();
        assert_eq!(e, FrameError::UnknownSerializeType(2));
        assert_eq!(
            e.to_string(),
            "unknown serialize type 2 (expected 0=JSON or 1=ROCKETMQ)"
        );
        // Well-framed but the header is garbage.
        for t in [0u32, 1] {
            let mut b = BytesMut::new();
            b.put_u32(4 + 3);
            b.put_u32((t << 24) | 3);
            b.put_slice(b"{x}");
            let e = dec.decode(&mut b).unwrap_err();
            assert!(e.closes_connection(), "{e}");
            assert!(matches!(
                e,
                FrameError::BadJsonHeader(_) | FrameError::BadBinaryHeader(_)
            ));
        }
    }

    #[test]
    fn byte_by_byte_yields_one_command_at_the_end() {
        for t in [SerializeType::Json, SerializeType::RocketMq] {
            let c = sample(t);
            let wire = frame_of(&c);
            let mut dec = FrameDecoder::default();
            let mut b = BytesMut::new();
            let mut got = Vec::new();
            for (i, byte) in wire.iter().enumerate() {
                b.put_u8(*byte);
                if let Some(cmd) = dec.decode(&mut b).unwrap() {
                    assert_eq!(i, wire.len() - 1, "complete only at the last byte");
                    got.push(cmd);
                }
            }
            assert_eq!(got, vec![c]);
            assert!(b.is_empty());
        }
    }

    #[test]
    fn several_frames_in_one_buffer_and_zero_copy_body() {
        let a = sample(SerializeType::Json);
        let mut bin = sample(SerializeType::RocketMq);
        bin.language = LanguageCode::GO;
        bin.body = Bytes::new();
        let mut b = BytesMut::new();
        for c in [&a, &bin, &a] {
            encode_frame(c, &mut b).unwrap();
        }
        let base = b.as_ptr() as usize;
        let end = base + b.len();
        let mut dec = FrameDecoder::default();
        let first = dec.decode(&mut b).unwrap().unwrap();
        let p = first.body.as_ptr() as usize;
        assert!(p >= base && p < end, "body points into the receive buffer");
        assert_eq!(first, a);
        assert_eq!(dec.decode(&mut b).unwrap().unwrap(), bin);
        assert_eq!(dec.decode(&mut b).unwrap().unwrap(), a);
        assert!(dec.decode(&mut b).unwrap().is_none());
    }
}
