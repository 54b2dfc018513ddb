//! Zero-copy parsing and validation of stored CommitLog records (§4.5, §4.6).
//!
//! [`parse`] looks at bytes starting at a record boundary and says whether they hold a
//! complete valid record ([`RecordView`]), the end-of-file blank marker, or not enough
//! bytes yet. Anything else is [`Error::Corrupt`]; it never panics on arbitrary input.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{
    crc32, find_property, keys, pos, sysflag, tags_hash, BLANK_MAGIC, END_FILE_MIN_BLANK_LENGTH,
    MAGIC_V1, MAGIC_V2, MAX_RECORD_SIZE, MIN_RECORD_SIZE,
};
use crate::prop_crc::{prop_crc_matches, PROPERTY_CRC32};
use crate::{Error, Result};

/// Result of [`parse`].
#[derive(Clone, Copy, Debug)]
pub enum Parsed<'a> {
    /// A complete, validated record occupying `view.bytes()` (`view.total_size()` bytes).
    Record(RecordView<'a>),
    /// End-of-file marker: the rest of the file (`remaining` bytes from here) is unused.
    Blank { remaining: i32 },
    /// `buf` ends before the record does (or has fewer than 8 bytes).
    Incomplete,
}

/// A validated record borrowed from the buffer it was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    bytes: &'a [u8],
    born_host_len: usize,
    store_host_len: usize,
    body: &'a [u8],
    topic: &'a str,
    properties: &'a [u8],
}

#[inline(always)]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

#[inline(always)]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[inline(always)]
fn host_len_for(sys_flag: i32, bit: i32) -> usize {
    if sys_flag & bit != 0 {
        20
    } else {
        8
    }
}

fn read_host(b: &[u8], at: usize, len: usize) -> SocketAddr {
    let port = be_i32(b, at + len - 4) as u16;
    if len == 20 {
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[at..at + 16]);
        SocketAddr::from((Ipv6Addr::from(ip), port))
    } else {
        let mut ip = [0u8; 4];
        ip.copy_from_slice(&b[at..at + 4]);
        SocketAddr::from((Ipv4Addr::from(ip), port))
    }
}

/// [`parse_with_limit`] with the default limit [`MAX_RECORD_SIZE`] (4 MiB body + 64 KiB).
#[inline]
pub fn parse(buf: &[u8], offset_hint: i64, check_crc: bool) -> Result<Parsed<'_>> {
    parse_with_limit(buf, offset_hint, check_crc, MAX_RECORD_SIZE)
}

/// Parses the record at the start of `buf`. `offset_hint` (the CommitLog offset of
/// `buf[0]`) is only used in errors. A declared total size outside
/// `MIN_RECORD_SIZE..=max_total`, an unknown magic, inner lengths that do not add up to
/// the total size, a non-UTF-8 topic or (with `check_crc`) a body CRC mismatch or a
/// whole-record CRC mismatch (when the properties end with `__CRC32#`) give
/// [`Error::Corrupt`]; so does a zero-filled buffer.
pub fn parse_with_limit(
    buf: &[u8],
    offset_hint: i64,
    check_crc: bool,
    max_total: usize,
) -> Result<Parsed<'_>> {
    let corrupt = |reason: String| {
        Err(Error::Corrupt {
            offset: offset_hint,
            reason,
        })
    };
    if buf.len() < END_FILE_MIN_BLANK_LENGTH {
        return Ok(Parsed::Incomplete);
    }
    let total = be_i32(buf, pos::TOTAL_SIZE);
    let magic = be_i32(buf, pos::MAGIC);
    if magic == BLANK_MAGIC {
        if (total as i64) < END_FILE_MIN_BLANK_LENGTH as i64 {
            return corrupt(format!("blank marker with remaining {total}"));
        }
        return Ok(Parsed::Blank { remaining: total });
    }
    if total == 0 {
        return corrupt("total size 0 (zero-filled: no record here)".into());
    }
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return corrupt(format!("bad magic {:#010x}", magic as u32));
    }
    if total < 0 || (total as usize) < MIN_RECORD_SIZE || total as usize > max_total {
        return corrupt(format!(
            "total size {total} outside {MIN_RECORD_SIZE}..={max_total}"
        ));
    }
    let total = total as usize;
    if buf.len() < total {
        return Ok(Parsed::Incomplete);
    }
    let rec = &buf[..total];

    let sys_flag = be_i32(rec, pos::SYS_FLAG);
    let bh = host_len_for(sys_flag, sysflag::BORNHOST_V6);
    let sh = host_len_for(sys_flag, sysflag::STOREHOSTADDRESS_V6);
    let tl = if magic == MAGIC_V2 { 2 } else { 1 };
    // Fixed part up to and including the body length, then the topic length field,
    // the properties length field: the minimum for these sysflags/magic.
    let body_len_at = 68 + bh + sh;
    let min = 74 + bh + sh + tl;
    if total < min {
        return corrupt(format!(
            "total size {total} below {min} for sysflag {sys_flag:#x}"
        ));
    }
    let body_len = be_i32(rec, body_len_at);
    let body_start = body_len_at + 4;
    // Everything after the body needs at least tl + 2 bytes.
    if body_len < 0 || body_len as usize > total - min {
        return corrupt(format!(
            "body length {body_len} does not fit total size {total}"
        ));
    }
    let body_end = body_start + body_len as usize;
    let topic_len = if tl == 2 {
        u16::from_be_bytes([rec[body_end], rec[body_end + 1]]) as usize
    } else {
        rec[body_end] as usize
    };
    let topic_start = body_end + tl;
    // total - (topic_start + 2) >= 0 is guaranteed by the body-length check.
    if topic_len > total - topic_start - 2 {
        return corrupt(format!(
            "topic length {topic_len} does not fit total size {total}"
        ));
    }
    let topic_end = topic_start + topic_len;
    let props_len = i16::from_be_bytes([rec[topic_end], rec[topic_end + 1]]);
    let props_start = topic_end + 2;
    if props_len < 0 || props_start + props_len as usize != total {
        return corrupt(format!(
            "properties length {props_len} at {props_start} does not end at total size {total}"
        ));
    }
    let body = &rec[body_start..body_end];
    let topic = match std::str::from_utf8(&rec[topic_start..topic_end]) {
        Ok(t) => t,
        Err(_) => return corrupt("topic is not UTF-8".into()),
    };
    if check_crc {
        let stored = be_i32(rec, pos::BODY_CRC);
        let actual = crc32(body) as i32;
        if stored != actual {
            return corrupt(format!(
                "body CRC mismatch: stored {stored}, computed {actual}"
            ));
        }
        if prop_crc_matches(rec, &rec[props_start..]) == Some(false) {
            return corrupt(format!("record CRC ({PROPERTY_CRC32}) mismatch"));
        }
    }
    Ok(Parsed::Record(RecordView {
        bytes: rec,
        born_host_len: bh,
        store_host_len: sh,
        body,
        topic,
        properties: &rec[props_start..],
    }))
}

/// Store timestamp of the (complete or partial) record at the start of `buf`, reading
/// only its header. `None` if `buf` is too short or does not start with a record magic.
#[inline]
pub fn peek_store_timestamp(buf: &[u8]) -> Option<i64> {
    if buf.len() < pos::BORN_HOST {
        return None;
    }
    let magic = be_i32(buf, pos::MAGIC);
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return None;
    }
    let at = pos::BORN_HOST + host_len_for(be_i32(buf, pos::SYS_FLAG), sysflag::BORNHOST_V6);
    if buf.len() < at + 8 {
        return None;
    }
    Some(be_i64(buf, at))
}

impl<'a> RecordView<'a> {
    /// The whole record (exactly `total_size()` bytes), as stored and as served to pulls.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    #[inline]
    pub fn total_size(&self) -> i32 {
        be_i32(self.bytes, pos::TOTAL_SIZE)
    }
    #[inline]
    pub fn magic(&self) -> i32 {
        be_i32(self.bytes, pos::MAGIC)
    }
    /// Stored body CRC (masked CRC32, §4.10).
    #[inline]
    pub fn body_crc(&self) -> u32 {
        be_i32(self.bytes, pos::BODY_CRC) as u32
    }
    #[inline]
    pub fn queue_id(&self) -> i32 {
        be_i32(self.bytes, pos::QUEUE_ID)
    }
    #[inline]
    pub fn flag(&self) -> i32 {
        be_i32(self.bytes, pos::FLAG)
    }
    #[inline]
    pub fn queue_offset(&self) -> i64 {
        be_i64(self.bytes, pos::QUEUE_OFFSET)
    }
    #[inline]
    pub fn physical_offset(&self) -> i64 {
        be_i64(self.bytes, pos::PHYSICAL_OFFSET)
    }
    #[inline]
    pub fn sys_flag(&self) -> i32 {
        be_i32(self.bytes, pos::SYS_FLAG)
    }
    #[inline]
    pub fn born_timestamp(&self) -> i64 {
        be_i64(self.bytes, pos::BORN_TIMESTAMP)
    }
    pub fn born_host(&self) -> SocketAddr {
        read_host(self.bytes, pos::BORN_HOST, self.born_host_len)
    }
    #[inline]
    pub fn store_timestamp(&self) -> i64 {
        be_i64(self.bytes, pos::BORN_HOST + self.born_host_len)
    }
    pub fn store_host(&self) -> SocketAddr {
        read_host(
            self.bytes,
            pos::BORN_HOST + self.born_host_len + 8,
            self.store_host_len,
        )
    }
    #[inline]
    pub fn reconsume_times(&self) -> i32 {
        be_i32(self.bytes, 56 + self.born_host_len + self.store_host_len)
    }
    #[inline]
    pub fn prepared_transaction_offset(&self) -> i64 {
        be_i64(self.bytes, 60 + self.born_host_len + self.store_host_len)
    }
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    #[inline]
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    /// The raw properties string (§4.1).
    #[inline]
    pub fn properties(&self) -> &'a [u8] {
        self.properties
    }
    /// Effective value of one property (see [`find_property`]).
    #[inline]
    pub fn property(&self, name: &str) -> Option<&'a str> {
        find_property(self.properties, name)
    }
    /// ConsumeQueue tagsCode: tags hash of `TAGS` sign-extended, 0 without tags.
    #[inline]
    pub fn tags_code(&self) -> i64 {
        match self.property(keys::TAGS) {
            Some(t) => tags_hash(t) as i64,
            None => 0,
        }
    }
    /// `DELAY` property as a level; 0 when absent or not an integer.
    #[inline]
    pub fn delay_level(&self) -> i32 {
        self.property(keys::DELAY)
            .and_then(|d| d.parse().ok())
            .unwrap_or(0)
    }
    /// offsetMsgId of this record (§4.7).
    pub fn offset_msg_id(&self) -> String {
        super::offset_msg_id(&self.store_host(), self.physical_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_blank, encode_properties, MessageToStore, StoreFields, MAX_MESSAGE_SIZE};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn encode(m: &MessageToStore, f: &StoreFields) -> Vec<u8> {
        let mut buf = vec![0u8; m.encoded_len(&f.store_host)];
        m.encode_into(&mut buf, f);
        buf
    }

    fn sample() -> (MessageToStore, StoreFields, Vec<u8>) {
        let props = encode_properties([("TAGS", "TagA"), ("DELAY", "3"), ("KEYS", "k")]);
        let mut m = MessageToStore::new("TopicTest", 2, Bytes::from(vec![7u8; 64]), props);
        m.flag = 9;
        m.reconsume_times = 1;
        let f = StoreFields {
            queue_offset: 5,
            physical_offset: 1 << 30,
            store_timestamp: 1_700_000_000_123,
            store_host: "192.168.1.9:10911".parse().unwrap(),
        };
        let b = encode(&m, &f);
        (m, f, b)
    }

    fn record(p: Parsed<'_>) -> RecordView<'_> {
        match p {
            Parsed::Record(r) => r,
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[test]
    fn sample_round_trip_and_derived_fields() {
        let (m, f, b) = sample();
        let r = record(parse(&b, 0, true).unwrap());
        assert_eq!(r.bytes(), &b[..]);
        assert_eq!(r.topic(), "TopicTest");
        assert_eq!(r.tags_code(), 2_598_919);
        assert_eq!(r.delay_level(), 3);
        assert_eq!(r.born_host(), m.born_host);
        assert_eq!(r.store_host(), f.store_host);
        assert_eq!(peek_store_timestamp(&b), Some(f.store_timestamp));
        assert_eq!(peek_store_timestamp(&b[..56]), None);
        assert_eq!(r.offset_msg_id(), "C0A8010900002A9F0000000040000000");
        // Trailing bytes after the record are not part of it.
        let mut longer = b.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            record(parse(&longer, 0, true).unwrap()).bytes().len(),
            b.len()
        );
    }

    #[test]
    fn no_tags_no_delay() {
        let m = MessageToStore::new("T", 0, Bytes::new(), "DELAY\u{1}x\u{2}");
        let f = StoreFields {
            queue_offset: 0,
            physical_offset: 0,
            store_timestamp: 0,
            store_host: "[::1]:1".parse().unwrap(),
        };
        let b = encode(&m, &f);
        let r = record(parse(&b, 0, true).unwrap());
        assert_eq!(r.tags_code(), 0);
        assert_eq!(r.delay_level(), 0);
        assert_eq!(r.store_host(), f.store_host);
    }

    #[test]
    fn negative_tags_hash_sign_extends() {
        let m = MessageToStore::new("T", 0, Bytes::new(), "TAGS\u{1}polygenelubricants\u{2}");
        let f = StoreFields {
            queue_offset: 0,
            physical_offset: 0,
            store_timestamp: 0,
            store_host: "1.1.1.1:1".parse().unwrap(),
        };
        let b = encode(&m, &f);
        assert_eq!(
            record(parse(&b, 0, true).unwrap()).tags_code(),
            i32::MIN as i64
        );
    }

    #[test]
    fn with_the_crc_property_no_changed_byte_parses() {
        // A sector torn at a power cut can change the header, topic or properties and
        // leave the body whole: BODYCRC passes, the whole-record CRC (__CRC32#) does not.
        let (mut m, f, plain) = sample();
        m.reserve_prop_crc();
        let b = encode(&m, &f);
        assert_eq!(b.len(), plain.len() + crate::CRC32_RESERVED_LEN);
        let r = record(parse(&b, 0, true).unwrap());
        assert!(r.property(crate::PROPERTY_CRC32).is_some());
        assert_eq!(r.property("TAGS"), Some("TagA"));
        // Every byte but the property's name (a tear that reaches the name leaves zeros
        // there and after it, which `looks_whole` refuses).
        let name = b.len() - crate::CRC32_RESERVED_LEN..b.len() - 12;
        let mut flipped = 0;
        for i in (0..b.len()).filter(|i| !name.contains(i)) {
            let mut c = b.clone();
            c[i] ^= 0x10;
            if let Ok(Parsed::Record(v)) = parse(&c, 0, true) {
                panic!("byte {i} changed, still parsed: {:?}", v.topic());
            }
            flipped += 1;
        }
        assert!(flipped > 100);
        // The same change in the store host of a record without the property parses.
        let mut c = plain.clone();
        c[70] ^= 0x10;
        assert!(matches!(parse(&c, 0, true), Ok(Parsed::Record(_))));
    }

    #[test]
    fn flipping_any_body_byte_is_a_crc_error() {
        let (_, _, b) = sample();
        let r = record(parse(&b, 0, true).unwrap());
        let body_start = r.body().as_ptr() as usize - b.as_ptr() as usize;
        let body_len = r.body().len();
        for i in body_start..body_start + body_len {
            for bit in [0x01u8, 0x80, 0xFF] {
                let mut c = b.clone();
                c[i] ^= bit;
                match parse(&c, 77, true) {
                    Err(Error::Corrupt { offset, reason }) => {
                        assert_eq!(offset, 77);
                        assert!(reason.contains("CRC"), "{reason}");
                    }
                    other => panic!("byte {i} flipped: {other:?}"),
                }
                // Without CRC checking the structure is still valid.
                assert!(matches!(parse(&c, 0, false), Ok(Parsed::Record(_))));
            }
        }
    }

    #[test]
    fn truncated_record_is_incomplete() {
        let (_, _, b) = sample();
        for n in 0..b.len() {
            assert!(
                matches!(parse(&b[..n], 0, true), Ok(Parsed::Incomplete)),
                "len {n}"
            );
        }
    }

    #[test]
    fn zero_filled_is_corrupt() {
        for n in [8, 91, 4096] {
            let z = vec![0u8; n];
            assert!(matches!(
                parse(&z, 123, true),
                Err(Error::Corrupt { offset: 123, .. })
            ));
        }
        assert!(matches!(parse(&[0u8; 7], 0, true), Ok(Parsed::Incomplete)));
    }

    #[test]
    fn blank_marker() {
        let mut buf = vec![0u8; 64];
        encode_blank(&mut buf, 64);
        assert!(matches!(
            parse(&buf, 0, true),
            Ok(Parsed::Blank { remaining: 64 })
        ));
        assert!(matches!(
            parse(&buf[..8], 0, true),
            Ok(Parsed::Blank { remaining: 64 })
        ));
        encode_blank(&mut buf, -1);
        assert!(matches!(parse(&buf, 0, true), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn bad_headers_are_corrupt() {
        let (_, _, b) = sample();
        let set32 = |at: usize, v: i32| {
            let mut c = b.clone();
            c[at..at + 4].copy_from_slice(&v.to_be_bytes());
            c
        };
        let is_corrupt = |c: &[u8]| matches!(parse(c, 0, false), Err(Error::Corrupt { .. }));
        assert!(is_corrupt(&set32(4, 0x1234_5678))); // magic
        assert!(is_corrupt(&set32(0, 90))); // below minimum
        assert!(is_corrupt(&set32(0, -5)));
        assert!(is_corrupt(&set32(
            0,
            (MAX_MESSAGE_SIZE + 64 * 1024 + 1) as i32
        )));
        assert!(is_corrupt(&set32(0, b.len() as i32 - 1))); // lengths do not add up
        let body_len_at = 68 + 16;
        assert!(is_corrupt(&set32(body_len_at, 63)));
        assert!(is_corrupt(&set32(body_len_at, 65)));
        assert!(is_corrupt(&set32(body_len_at, -1)));
        assert!(is_corrupt(&set32(body_len_at, i32::MAX)));
        // V2 magic on a v1-encoded record: the topic length reads as 2 bytes.
        assert!(is_corrupt(&set32(4, MAGIC_V2)));
        // Sysflag claiming IPv6 hosts shifts every field.
        assert!(is_corrupt(&set32(36, sysflag::BORNHOST_V6)));
        // Larger declared size than the buffer holds: wait for more bytes.
        assert!(matches!(
            parse(&set32(0, b.len() as i32 + 1), 0, false),
            Ok(Parsed::Incomplete)
        ));
        // Non-UTF-8 topic.
        let mut c = b.clone();
        let topic_at = 68 + 16 + 4 + 64 + 1;
        c[topic_at] = 0xFF;
        assert!(is_corrupt(&c));
        // Custom limit.
        assert!(matches!(
            parse_with_limit(&b, 0, true, b.len() - 1),
            Err(Error::Corrupt { .. })
        ));
    }

    fn arb_host() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::from((Ipv6Addr::from(ip), p))),
        ]
    }

    fn arb_topic() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_|%-]{1,127}",
            "[a-z0-9_-]{121,248}".prop_map(|g| format!("%RETRY%{g}")),
            "[A-Z0-9_]{1,250}".prop_map(|g| format!("%DLQ%{g}")),
        ]
    }

    fn arb_message() -> impl Strategy<Value = MessageToStore> {
        (
            (
                arb_topic(),
                0..=crate::MAX_QUEUE_ID,
                any::<i32>(),
                any::<i32>(),
                any::<i64>(),
                arb_host(),
            ),
            (
                any::<i32>(),
                any::<i64>(),
                proptest::collection::vec(any::<u8>(), 0..8192),
                proptest::collection::vec(("[A-Za-z_]{1,12}", "[^\u{0}\u{1}\u{2}]{1,40}"), 0..8),
            ),
        )
            .prop_map(
                |((topic, queue_id, flag, sys_flag, born_ts, born), (rt, pto, body, props))| {
                    let props = encode_properties(props);
                    let mut m = MessageToStore::new(topic, queue_id, body, props);
                    m.flag = flag;
                    m.sys_flag = sys_flag;
                    m.born_timestamp = born_ts;
                    m.born_host = born;
                    m.reconsume_times = rt;
                    m.prepared_transaction_offset = pto;
                    m
                },
            )
    }

    fn arb_fields() -> impl Strategy<Value = StoreFields> {
        (any::<i64>(), any::<i64>(), any::<i64>(), arb_host()).prop_map(|(q, p, t, h)| {
            StoreFields {
                queue_offset: q,
                physical_offset: p,
                store_timestamp: t,
                store_host: h,
            }
        })
    }

    proptest! {
        #[test]
        fn prop_round_trip(m in arb_message(), f in arb_fields()) {
            prop_assert!(m.validate(MAX_MESSAGE_SIZE).is_ok());
            let len = m.encoded_len(&f.store_host);
            let mut buf = vec![0xA5u8; len + 16];
            m.encode_into(&mut buf, &f);
            prop_assert!(buf[len..].iter().all(|&b| b == 0xA5));
            let r = match parse(&buf, f.physical_offset, true).unwrap() {
                Parsed::Record(r) => r,
                other => panic!("{other:?}"),
            };
            let mut v6 = 0;
            if m.born_host.is_ipv6() { v6 |= sysflag::BORNHOST_V6; }
            if f.store_host.is_ipv6() { v6 |= sysflag::STOREHOSTADDRESS_V6; }
            let expect_flag =
                (m.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOSTADDRESS_V6)) | v6;
            prop_assert_eq!(r.total_size() as usize, len);
            prop_assert_eq!(r.bytes().len(), len);
            prop_assert_eq!(r.magic(), if m.topic.len() > 127 { MAGIC_V2 } else { MAGIC_V1 });
            prop_assert_eq!(r.body_crc(), m.body_crc);
            prop_assert_eq!(r.queue_id(), m.queue_id);
            prop_assert_eq!(r.flag(), m.flag);
            prop_assert_eq!(r.queue_offset(), f.queue_offset);
            prop_assert_eq!(r.physical_offset(), f.physical_offset);
            prop_assert_eq!(r.sys_flag(), expect_flag);
            prop_assert_eq!(r.born_timestamp(), m.born_timestamp);
            prop_assert_eq!(r.born_host(), m.born_host);
            prop_assert_eq!(r.store_timestamp(), f.store_timestamp);
            prop_assert_eq!(r.store_host(), f.store_host);
            prop_assert_eq!(r.reconsume_times(), m.reconsume_times);
            prop_assert_eq!(r.prepared_transaction_offset(), m.prepared_transaction_offset);
            prop_assert_eq!(r.body(), &m.body[..]);
            prop_assert_eq!(r.topic(), m.topic.as_str());
            prop_assert_eq!(r.properties(), &m.properties[..]);
            let tags = find_property(&m.properties, "TAGS").map_or(0, |t| tags_hash(t) as i64);
            prop_assert_eq!(r.tags_code(), tags);
            prop_assert_eq!(peek_store_timestamp(&buf), Some(f.store_timestamp));
        }

        #[test]
        fn prop_parse_arbitrary_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            magic in prop_oneof![Just(MAGIC_V1), Just(MAGIC_V2), Just(BLANK_MAGIC), any::<i32>()],
            total in prop_oneof![0i32..700, any::<i32>()],
            check in any::<bool>(),
        ) {
            let _ = parse(&bytes, 0, check);
            let _ = peek_store_timestamp(&bytes);
            // Same bytes with a plausible header, so the inner checks get exercised.
            let mut b = bytes;
            if b.len() >= 8 {
                b[0..4].copy_from_slice(&total.to_be_bytes());
                b[4..8].copy_from_slice(&magic.to_be_bytes());
            }
            if let Ok(Parsed::Record(r)) = parse(&b, 0, check) {
                prop_assert_eq!(r.bytes().len(), r.total_size() as usize);
                let _ = (r.born_host(), r.store_host(), r.tags_code(), r.delay_level());
            }
            let _ = peek_store_timestamp(&b);
        }

        #[test]
        fn prop_parse_mutated_never_panics(
            m in arb_message(),
            f in arb_fields(),
            muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let len = m.encoded_len(&f.store_host);
            let mut buf = vec![0u8; len];
            m.encode_into(&mut buf, &f);
            for (i, v) in muts {
                let i = i.index(len);
                buf[i] = v;
            }
            for check in [false, true] {
                if let Ok(Parsed::Record(r)) = parse(&buf, 0, check) {
                    prop_assert_eq!(r.bytes().len(), r.total_size() as usize);
                    let _ = (r.born_host(), r.store_host(), r.tags_code(), r.delay_level());
                    let _ = (r.reconsume_times(), r.prepared_transaction_offset());
                }
                let cut = cut.index(len + 1);
                let _ = parse(&buf[..cut], 0, check);
            }
        }
    }
}
