//! Encoding of one CommitLog record (§4.5) and the end-of-file blank marker (§4.6).
//!
//! [`MessageToStore::encode_into`] runs on the single writer thread for every message: it
//! does no allocation and no formatting, only bounds-checked big-endian copies into the
//! caller's buffer. Call [`MessageToStore::validate`] before (off the writer thread).

use crate::clock::now_millis;
use std::net::SocketAddr;

use bytes::Bytes;

use super::{
    crc32, host_len, sysflag, BLANK_MAGIC, DLQ_TOPIC_PREFIX, MAGIC_V1, MAGIC_V2, MAX_QUEUE_ID,
    PROPERTIES_MAX_LEN, RETRY_TOPIC_MAX_LEN, RETRY_TOPIC_PREFIX, TOPIC_MAX_LEN,
};
use crate::prop_crc::{fill_prop_crc, has_prop_crc, reserve_prop_crc};
use crate::{Error, Result};

/// One message as the broker will store it; everything but the [`StoreFields`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageToStore {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    /// §4.4. The BORNHOST_V6 / STOREHOSTADDRESS_V6 bits are overwritten by `encode_into`.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    /// Masked CRC32 of `body` (§4.10).
    pub body_crc: u32,
    /// Already-encoded properties string (§4.1).
    pub properties: Bytes,
}

/// The fields only known inside the append lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreFields {
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
}

impl MessageToStore {
    /// A plain message: flag 0, sysFlag 0, born now at 127.0.0.1:0, body CRC computed.
    pub fn new(
        topic: impl Into<String>,
        queue_id: i32,
        body: impl Into<Bytes>,
        properties: impl Into<Bytes>,
    ) -> Self {
        let body = body.into();
        MessageToStore {
            topic: topic.into(),
            queue_id,
            flag: 0,
            sys_flag: 0,
            born_timestamp: now_millis(),
            born_host: SocketAddr::from(([127, 0, 0, 1], 0)),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: crc32(&body),
            body,
            properties: properties.into(),
        }
    }

    /// `%RETRY%` / `%DLQ%` topics may be up to 255 bytes long.
    pub fn is_retry_or_dlq_topic(&self) -> bool {
        self.topic.starts_with(RETRY_TOPIC_PREFIX) || self.topic.starts_with(DLQ_TOPIC_PREFIX)
    }

    /// Magic used for this message: v2 (2-byte topic length) when the topic is longer
    /// than 127 bytes, v1 otherwise.
    #[inline]
    pub fn magic(&self) -> i32 {
        if self.topic.len() > TOPIC_MAX_LEN {
            MAGIC_V2
        } else {
            MAGIC_V1
        }
    }

    /// Checks the store-side limits: non-empty topic of at most 127 bytes (255 for
    /// retry/DLQ topics) without control characters or `/`, queue id in
    /// `0..=MAX_QUEUE_ID` (so every stored record can be indexed), body at most `max_body`
    /// bytes, properties at most 32767 bytes, without NUL and ending in 0x02 when
    /// non-empty (the broker normalises what clients send). Recovery relies on the last two rules to
    /// tell a whole record from one whose tail was torn off (see [`super::looks_whole`]).
    pub fn validate(&self, max_body: usize) -> Result<()> {
        if self.topic.is_empty() {
            return Err(Error::Invalid("topic is empty".into()));
        }
        let max_topic = if self.is_retry_or_dlq_topic() {
            RETRY_TOPIC_MAX_LEN
        } else {
            TOPIC_MAX_LEN
        };
        if self.topic.len() > max_topic {
            return Err(Error::Invalid(format!(
                "topic length {} exceeds {max_topic}",
                self.topic.len()
            )));
        }
        if self.body.len() > max_body {
            return Err(Error::Invalid(format!(
                "message body size {} exceeds maxMessageSize {max_body}",
                self.body.len()
            )));
        }
        if self.topic.bytes().any(|b| b < 0x20) {
            return Err(Error::Invalid("topic contains control characters".into()));
        }
        // A topic names a ConsumeQueue directory: it must be one path component.
        if self.topic.contains('/') || self.topic == "." || self.topic == ".." {
            return Err(Error::Invalid(format!(
                "topic {:?} cannot name a consume queue",
                self.topic
            )));
        }
        if !(0..=MAX_QUEUE_ID).contains(&self.queue_id) {
            return Err(Error::Invalid(format!(
                "queueId {} outside 0..={MAX_QUEUE_ID}",
                self.queue_id
            )));
        }
        if !super::properties_well_formed(&self.properties) {
            return Err(Error::Invalid(
                "properties must not contain NUL bytes and must end with the 0x02 separator".into(),
            ));
        }
        if self.properties.len() > PROPERTIES_MAX_LEN {
            return Err(Error::Invalid(format!(
                "properties size {} exceeds {PROPERTIES_MAX_LEN}",
                self.properties.len()
            )));
        }
        if self.encoded_len(&self.born_host) > i32::MAX as usize {
            return Err(Error::Invalid("message too large".into()));
        }
        Ok(())
    }

    /// Exact number of bytes `encode_into` writes when stored with `store_host`.
    #[inline]
    pub fn encoded_len(&self, store_host: &SocketAddr) -> usize {
        let topic_len_field = if self.magic() == MAGIC_V2 { 2 } else { 1 };
        74 + host_len(&self.born_host)
            + host_len(store_host)
            + topic_len_field
            + self.body.len()
            + self.topic.len()
            + self.properties.len()
    }

    /// Writes the record into `dst[..encoded_len]`. Panics if `dst` is shorter than
    /// `encoded_len(&fields.store_host)` or if the message was not validated
    /// (properties > 32767 bytes or topic > 65535 bytes).
    pub fn encode_into(&self, dst: &mut [u8], fields: &StoreFields) {
        let total = self.encoded_len(&fields.store_host);
        assert!(
            self.properties.len() <= PROPERTIES_MAX_LEN && self.topic.len() <= u16::MAX as usize,
            "MessageToStore::encode_into called on a message that fails validate()"
        );
        let magic = self.magic();
        let mut sys_flag = self.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOSTADDRESS_V6);
        if self.born_host.is_ipv6() {
            sys_flag |= sysflag::BORNHOST_V6;
        }
        if fields.store_host.is_ipv6() {
            sys_flag |= sysflag::STOREHOSTADDRESS_V6;
        }

        let mut w = Writer {
            buf: &mut dst[..total],
            pos: 0,
        };
        w.i32(total as i32);
        w.i32(magic);
        w.i32(self.body_crc as i32);
        w.i32(self.queue_id);
        w.i32(self.flag);
        w.i64(fields.queue_offset);
        w.i64(fields.physical_offset);
        w.i32(sys_flag);
        w.i64(self.born_timestamp);
        w.host(&self.born_host);
        w.i64(fields.store_timestamp);
        w.host(&fields.store_host);
        w.i32(self.reconsume_times);
        w.i64(self.prepared_transaction_offset);
        w.i32(self.body.len() as i32);
        w.bytes(&self.body);
        if magic == MAGIC_V2 {
            w.bytes(&(self.topic.len() as u16).to_be_bytes());
        } else {
            w.bytes(&[self.topic.len() as u8]);
        }
        w.bytes(self.topic.as_bytes());
        w.bytes(&(self.properties.len() as u16).to_be_bytes());
        w.bytes(&self.properties);
        debug_assert_eq!(w.pos, total);
        if has_prop_crc(&self.properties) {
            fill_prop_crc(&mut dst[..total]);
        }
    }

    /// Appends RocketMQ's zeroed whole-record CRC property (`enabledAppendPropCRC`) to the
    /// properties, unless they end with one; [`encode_into`](Self::encode_into) fills it.
    pub fn reserve_prop_crc(&mut self) {
        self.properties = reserve_prop_crc(&self.properties);
    }
}

/// Writes the 8-byte end-of-file marker (`remaining`, BLANK_MAGIC) at `dst[0..8]`.
/// `remaining` is the number of bytes left in the file, marker included.
#[inline]
pub fn encode_blank(dst: &mut [u8], remaining: i32) {
    dst[0..4].copy_from_slice(&remaining.to_be_bytes());
    dst[4..8].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
}

/// Sequential big-endian writer over an exactly-sized slice.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    #[inline(always)]
    fn i32(&mut self, v: i32) {
        self.bytes(&v.to_be_bytes());
    }
    #[inline(always)]
    fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }
    #[inline(always)]
    fn host(&mut self, addr: &SocketAddr) {
        match addr {
            SocketAddr::V4(a) => self.bytes(&a.ip().octets()),
            SocketAddr::V6(a) => self.bytes(&a.ip().octets()),
        }
        self.i32(addr.port() as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_MESSAGE_SIZE, MIN_RECORD_SIZE};

    fn fields(store_host: SocketAddr) -> StoreFields {
        StoreFields {
            queue_offset: 7,
            physical_offset: 4096,
            store_timestamp: 1_700_000_000_000,
            store_host,
        }
    }

    #[test]
    fn layout_ipv4_v1_matches_spec_offsets() {
        let mut m = MessageToStore::new("T", 3, &b"body"[..], &b"TAGS\x01a\x02"[..]);
        m.flag = 0x55;
        m.born_timestamp = 1;
        let f = fields(SocketAddr::from(([10, 0, 0, 2], 10911)));
        let len = m.encoded_len(&f.store_host);
        assert_eq!(len, 91 + 4 + 1 + 7);
        let mut buf = vec![0xEE; len + 3];
        m.encode_into(&mut buf, &f);
        assert_eq!(&buf[len..], &[0xEE; 3], "must not write past encoded_len");
        let be32 = |o: usize| i32::from_be_bytes(buf[o..o + 4].try_into().unwrap());
        let be64 = |o: usize| i64::from_be_bytes(buf[o..o + 8].try_into().unwrap());
        assert_eq!(be32(0), len as i32);
        assert_eq!(be32(4), -626_843_481);
        assert_eq!(be32(8), crc32(b"body") as i32);
        assert_eq!(be32(12), 3);
        assert_eq!(be32(16), 0x55);
        assert_eq!(be64(20), 7);
        assert_eq!(be64(28), 4096);
        assert_eq!(be32(36), 0);
        assert_eq!(be64(40), 1);
        assert_eq!(&buf[48..52], &[127, 0, 0, 1]);
        assert_eq!(be32(52), 0);
        assert_eq!(be64(56), 1_700_000_000_000);
        assert_eq!(&buf[64..68], &[10, 0, 0, 2]);
        assert_eq!(be32(68), 10911);
        assert_eq!(be32(84), 4);
        assert_eq!(&buf[88..92], b"body");
        assert_eq!(buf[92], 1);
        assert_eq!(buf[93], b'T');
        assert_eq!(&buf[94..96], &[0, 7]);
        assert_eq!(&buf[96..103], b"TAGS\x01a\x02");
    }

    #[test]
    fn ipv6_sets_sysflag_bits_and_v4_clears_them() {
        let mut m = MessageToStore::new("T", 0, Bytes::new(), Bytes::new());
        m.born_host = "[::1]:9".parse().unwrap();
        m.sys_flag = sysflag::STOREHOSTADDRESS_V6 | sysflag::COMPRESSED;
        let f = fields("[fe80::1]:10911".parse().unwrap());
        let len = m.encoded_len(&f.store_host);
        assert_eq!(len, MIN_RECORD_SIZE + 1 + 12 + 12);
        let mut buf = vec![0; len];
        m.encode_into(&mut buf, &f);
        let sf = i32::from_be_bytes(buf[36..40].try_into().unwrap());
        assert_eq!(
            sf,
            sysflag::COMPRESSED | sysflag::BORNHOST_V6 | sysflag::STOREHOSTADDRESS_V6
        );

        let f4 = fields(SocketAddr::from(([1, 2, 3, 4], 5)));
        m.born_host = SocketAddr::from(([1, 2, 3, 4], 6));
        let mut buf = vec![0; m.encoded_len(&f4.store_host)];
        m.encode_into(&mut buf, &f4);
        let sf = i32::from_be_bytes(buf[36..40].try_into().unwrap());
        assert_eq!(sf, sysflag::COMPRESSED);
    }

    #[test]
    fn validate_limits() {
        let ok = MessageToStore::new("TopicTest", 0, vec![0u8; 16], Bytes::new());
        assert!(ok.validate(MAX_MESSAGE_SIZE).is_ok());
        assert_eq!(ok.magic(), MAGIC_V1);
        assert!(ok.validate(15).is_err());

        // Only records the store can index: queue ids 0..=MAX_QUEUE_ID, one path component.
        for queue_id in [-1, MAX_QUEUE_ID + 1, i32::MAX] {
            let m = MessageToStore {
                queue_id,
                ..ok.clone()
            };
            assert!(m
                .validate(MAX_MESSAGE_SIZE)
                .unwrap_err()
                .to_string()
                .contains("queueId"));
        }
        let last = MessageToStore {
            queue_id: MAX_QUEUE_ID,
            ..ok.clone()
        };
        assert!(last.validate(MAX_MESSAGE_SIZE).is_ok());
        for topic in ["a/b", ".", ".."] {
            let m = MessageToStore {
                topic: topic.into(),
                ..ok.clone()
            };
            assert!(m.validate(MAX_MESSAGE_SIZE).is_err(), "{topic}");
        }

        let empty = MessageToStore {
            topic: String::new(),
            ..ok.clone()
        };
        assert!(matches!(
            empty.validate(MAX_MESSAGE_SIZE),
            Err(Error::Invalid(_))
        ));

        let t127 = MessageToStore {
            topic: "a".repeat(127),
            ..ok.clone()
        };
        assert!(t127.validate(MAX_MESSAGE_SIZE).is_ok());
        assert_eq!(t127.magic(), MAGIC_V1);
        let t128 = MessageToStore {
            topic: "a".repeat(128),
            ..ok.clone()
        };
        assert!(t128.validate(MAX_MESSAGE_SIZE).is_err());

        let retry = MessageToStore {
            topic: format!("%RETRY%{}", "g".repeat(248)),
            ..ok.clone()
        };
        assert_eq!(retry.topic.len(), 255);
        assert!(retry.validate(MAX_MESSAGE_SIZE).is_ok());
        assert_eq!(retry.magic(), MAGIC_V2);
        let retry256 = MessageToStore {
            topic: format!("%DLQ%{}", "g".repeat(251)),
            ..ok.clone()
        };
        assert!(retry256.validate(MAX_MESSAGE_SIZE).is_err());

        let props_of = |n: usize| {
            let mut p = vec![b'x'; n - 1];
            p.push(0x02);
            p
        };
        let props = MessageToStore {
            properties: props_of(32767).into(),
            ..ok.clone()
        };
        assert!(props.validate(MAX_MESSAGE_SIZE).is_ok());
        let props = MessageToStore {
            properties: props_of(32768).into(),
            ..ok.clone()
        };
        assert!(props.validate(MAX_MESSAGE_SIZE).is_err());
        // Torn-write detection relies on these two rules.
        let unterminated = MessageToStore {
            properties: b"a\x01b".to_vec().into(),
            ..ok.clone()
        };
        assert!(unterminated.validate(MAX_MESSAGE_SIZE).is_err());
        let nul = MessageToStore {
            properties: b"a\x01\x00\x02".to_vec().into(),
            ..ok
        };
        assert!(nul.validate(MAX_MESSAGE_SIZE).is_err());
    }

    #[test]
    fn blank_marker() {
        let mut buf = [0u8; 8];
        encode_blank(&mut buf, 1234);
        assert_eq!(buf, [0, 0, 4, 210, 0xCB, 0xD4, 0x31, 0x94]);
        assert_eq!(
            i32::from_be_bytes(buf[4..8].try_into().unwrap()),
            -875_286_124
        );
    }
}
