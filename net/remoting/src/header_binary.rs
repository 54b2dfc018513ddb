//! ROCKETMQ binary header form (spec §1.6), all integers big-endian:
//!
//! ```text
//! code:i16 language:u8 version:i16 opaque:i32 flag:i32
//! remarkLen:i32 remark  extLen:i32 { keyLen:i16 key valueLen:i32 value }*
//! ```
//!
//! `code` and `version` are shorts (sign-extended on decode), so a command
//! whose code/version does not fit in an `i16`, or with a key longer than
//! 32767 bytes, is not representable: [`encodable`] says so and the frame
//! encoder then falls back to JSON (each frame announces its own type).
//!
//! Decoding is strict about lengths (negative, past the header end, trailing
//! bytes) and UTF-8. A zero remark length reads as no remark; a zero-length
//! value reads as "" (Java would read null). An unknown language byte reads
//! as OTHER.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codes::{LanguageCode, SerializeType};
use crate::command::{ExtFields, RemotingCommand};
use crate::error::FrameError;

/// Bytes before the remark: code, language, version, opaque, flag, remarkLen.
const FIXED_PREFIX: usize = 2 + 1 + 2 + 4 + 4 + 4;
/// Size of the fixed part (prefix plus extFieldsLength).
pub const FIXED_LEN: usize = FIXED_PREFIX + 4;

/// Whether `cmd` can be written in the binary form without truncation.
pub fn encodable(cmd: &RemotingCommand) -> bool {
    i16::try_from(cmd.code).is_ok()
        && i16::try_from(cmd.version).is_ok()
        && cmd
            .ext_fields
            .iter()
            .all(|(k, _)| k.len() <= i16::MAX as usize)
}

fn ext_len(cmd: &RemotingCommand) -> usize {
    cmd.ext_fields
        .iter()
        .map(|(k, v)| 2 + k.len() + 4 + v.len())
        .sum()
}

/// Exact header length `21 + R + E`.
pub fn encoded_len(cmd: &RemotingCommand) -> usize {
    FIXED_LEN + cmd.remark.as_ref().map_or(0, String::len) + ext_len(cmd)
}

/// Append the binary header of `cmd` to `dst`. The caller must have checked
/// [`encodable`] and that [`encoded_len`] fits the 24-bit header length
/// (which also keeps every length below `i32::MAX`).
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    debug_assert!(encodable(cmd));
    dst.reserve(encoded_len(cmd));
    dst.put_i16(cmd.code as i16);
    dst.put_u8(cmd.language.code());
    dst.put_i16(cmd.version as i16);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    let remark = cmd.remark.as_deref().unwrap_or("");
    dst.put_i32(remark.len() as i32);
    dst.put_slice(remark.as_bytes());
    dst.put_i32(ext_len(cmd) as i32);
    for (k, v) in cmd.ext_fields.iter() {
        dst.put_i16(k.len() as i16);
        dst.put_slice(k.as_bytes());
        dst.put_i32(v.len() as i32);
        dst.put_slice(v.as_bytes());
    }
}

fn bad(why: String) -> FrameError {
    FrameError::BadBinaryHeader(why)
}

/// Bounds-checked big-endian reader over the header bytes.
struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FrameError> {
        let left = self.src.len() - self.pos;
        if n > left {
            return Err(bad(format!(
                "{what} needs {n} bytes but only {left} remain in the header"
            )));
        }
        let s = &self.src[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i16(&mut self, what: &str) -> Result<i16, FrameError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, FrameError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length field: rejected if negative or past `limit` bytes from here.
    fn len(&mut self, raw: i64, limit: usize, what: &str) -> Result<usize, FrameError> {
        if raw < 0 {
            return Err(bad(format!("{what} {raw} is negative")));
        }
        let n = raw as usize;
        if n > limit {
            return Err(bad(format!(
                "{what} {n} exceeds the {limit} bytes left in the header"
            )));
        }
        Ok(n)
    }

    fn str(&mut self, n: usize, what: &str) -> Result<String, FrameError> {
        let b = self.take(n, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| bad(format!("{what} is not valid UTF-8 ({e})")))
    }
}

/// Parse a binary header into a command with an empty body.
pub fn decode(src: &[u8]) -> Result<RemotingCommand, FrameError> {
    if src.len() < FIXED_LEN {
        return Err(bad(format!(
            "header of {} bytes is shorter than the {FIXED_LEN}-byte fixed part",
            src.len()
        )));
    }
    let mut r = Reader { src, pos: 0 };
    let code = i32::from(r.i16("code")?);
    let lang = r.take(1, "language")?[0];
    let language = LanguageCode::from_code(lang).unwrap_or(LanguageCode::OTHER);
    let version = i32::from(r.i16("version")?);
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;

    let raw = r.i32("remark length")?;
    // The extFields length word still has to follow the remark.
    let room = src.len() - r.pos - 4;
    let remark_len = r.len(raw.into(), room, "remark length")?;
    let remark = match remark_len {
        0 => None,
        n => Some(r.str(n, "remark")?),
    };

    let raw = r.i32("extFields length")?;
    let room = src.len() - r.pos;
    let ext_total = r.len(raw.into(), room, "extFields length")?;
    let map_end = r.pos + ext_total;
    let mut ext_fields = ExtFields::new();
    while r.pos < map_end {
        let left = map_end - r.pos;
        if left < 6 {
            return Err(bad(format!(
                "{left} stray bytes at the end of the extFields map"
            )));
        }
        let raw = r.i16("extFields key length")?;
        let klen = r.len(raw.into(), map_end - r.pos - 4, "extFields key length")?;
        let key = r.str(klen, "extFields key")?;
        let raw = r.i32("extFields value length")?;
        let vlen = r.len(raw.into(), map_end - r.pos, "extFields value length")?;
        let value = r.str(vlen, "extFields value")?;
        ext_fields.push(key, value);
    }
    if r.pos != src.len() {
        return Err(bad(format!(
            "{} trailing bytes after the extFields map",
            src.len() - r.pos
        )));
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(cmd: &RemotingCommand) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(cmd, &mut b);
        assert_eq!(b.len(), encoded_len(cmd));
        b.to_vec()
    }

    fn sample() -> RemotingCommand {
        RemotingCommand {
            code: 11,
            language: LanguageCode::RUST,
            version: 474,
            opaque: -7,
            flag: 3,
            remark: Some("rémark 😀".into()),
            ext_fields: [("consumerGroup", "组"), ("queueId", "0"), ("e", "")]
                .into_iter()
                .collect(),
            body: Bytes::new(),
            serialize_type: SerializeType::RocketMq,
        }
    }

    #[test]
    fn round_trip_every_field() {
        let c = sample();
        assert_eq!(decode(&enc(&c)).unwrap(), c);
        for lang in LanguageCode::ALL {
            let c = RemotingCommand {
                code: i16::MIN.into(),
                version: i16::MAX.into(),
                opaque: i32::MAX,
                flag: i32::MIN,
                language: lang,
                remark: None,
                ext_fields: ExtFields::new(),
                ..sample()
            };
            assert_eq!(decode(&enc(&c)).unwrap(), c);
        }
        // An empty remark is written with length 0 and reads back as none.
        let c = RemotingCommand {
            remark: Some(String::new()),
            ..sample()
        };
        assert_eq!(decode(&enc(&c)).unwrap().remark, None);
    }

    #[test]
    fn golden_layout() {
        let c = RemotingCommand {
            code: 34,
            language: LanguageCode::JAVA,
            version: 479,
            opaque: 9,
            flag: 1,
            remark: Some("ok".into()),
            ext_fields: [("k", "vv")].into_iter().collect(),
            ..sample()
        };
        let expected: &[u8] = &[
            0, 34, // code
            0,  // JAVA
            0x01, 0xDF, // 479
            0, 0, 0, 9, // opaque
            0, 0, 0, 1, // flag
            0, 0, 0, 2, b'o', b'k', // remark
            0, 0, 0, 9, // extFields length = 2+1+4+2
            0, 1, b'k', 0, 0, 0, 2, b'v', b'v',
        ];
        assert_eq!(enc(&c), expected);
        assert_eq!(decode(expected).unwrap(), c);
    }

    #[test]
    fn encodable_limits() {
        let mut c = sample();
        assert!(encodable(&c));
        c.code = 200_050;
        assert!(!encodable(&c));
        c.code = 10;
        c.version = 40_000;
        assert!(!encodable(&c));
        c.version = 0;
        c.ext_fields.insert("k".repeat(40_000), "v");
        assert!(!encodable(&c));
    }

    #[test]
    fn rejects_malformed() {
        let good = enc(&sample());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..20].to_vec(), "shorter than the 21-byte fixed part"),
            (good[..good.len() - 1].to_vec(), "exceeds"),
            ([good.clone(), vec![0]].concat(), "1 trailing bytes"),
            (
                {
                    let mut b = good.clone();
                    b[13..17].copy_from_slice(&(-1i32).to_be_bytes());
                    b
                },
                "remark length -1 is negative",
            ),
            (
                {
                    let mut b = good.clone();
                    b[13..17].copy_from_slice(&1000i32.to_be_bytes());
                    b
                },
                "remark length 1000 exceeds",
            ),
            (
                {
                    let mut b = good.clone();
                    b[17] = 0xFF; // first remark byte
                    b
                },
                "remark is not valid UTF-8",
            ),
            (
                {
                    // extFields length claims one byte more than present.
                    let mut b = enc(&RemotingCommand {
                        remark: None,
                        ..sample()
                    });
                    let e = i32::from_be_bytes(b[17..21].try_into().unwrap());
                    b[17..21].copy_from_slice(&(e + 1).to_be_bytes());
                    b
                },
                "extFields length",
            ),
            (
                {
                    let mut b = enc(&RemotingCommand {
                        remark: None,
                        ..sample()
                    });
                    b[21..23].copy_from_slice(&(-2i16).to_be_bytes());
                    b
                },
                "extFields key length -2 is negative",
            ),
        ];
        for (bytes, want) in cases {
            let e = decode(&bytes).unwrap_err();
            assert!(matches!(e, FrameError::BadBinaryHeader(_)), "{e}");
            assert!(e.to_string().contains(want), "{e} !~ {want}");
        }
    }
}
