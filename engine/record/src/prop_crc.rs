//! The whole-record CRC that RocketMQ 5 keeps in a property (`enabledAppendPropCRC`):
//! the last 20 bytes of the properties are `__CRC32#`, `\x01`, ten ASCII digits (least
//! significant first, zero-padded) and `\x02`; the digits are the masked CRC32 (§4.10)
//! of every record byte before those 20, taken once the queue offset, physical offset
//! and store timestamp are in place. Sources (Apache RocketMQ 5.x): `MessageConst.
//! PROPERTY_CRC32`, `CommitLog.CRC32_RESERVED_LEN`, `MessageDecoder.createCrc32`, the
//! append callback's `enabledAppendPropCRC` branch, and the `forceVerifyPropCRC` check
//! of `CommitLog.checkMessageAndReturnSize` (which reads the digits back in reverse).
//!
//! BODYCRC covers only the body, so a record whose header, topic or properties were torn
//! (a sector half-written at a power cut) still parses. With the property, a record is
//! whole only if all of it is.
//!
//! The reservation is added to the properties before encoding (the record's length is
//! known then); the digits are filled in on the writer thread once the queue offset,
//! physical offset and store timestamp are in place.

use bytes::{BufMut, Bytes, BytesMut};

use crate::crc::crc32;
use crate::properties::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};

/// RocketMQ's `MessageConst.PROPERTY_CRC32`.
pub const PROPERTY_CRC32: &str = "__CRC32#";
/// RocketMQ's `CommitLog.CRC32_RESERVED_LEN`: name, `\x01`, 10 digits, `\x02`.
pub const CRC32_RESERVED_LEN: usize = PROPERTY_CRC32.len() + 1 + 10 + 1;

const DIGITS: usize = 10;

/// Whether `props` ends with a CRC property (name, separator, ten digits, separator) that
/// starts a property of its own.
pub fn has_prop_crc(props: &[u8]) -> bool {
    let n = props.len();
    if n < CRC32_RESERVED_LEN {
        return false;
    }
    let tail = &props[n - CRC32_RESERVED_LEN..];
    let name = PROPERTY_CRC32.len();
    tail[..name] == *PROPERTY_CRC32.as_bytes()
        && tail[name] == NAME_VALUE_SEPARATOR
        && tail[name + 1..name + 1 + DIGITS]
            .iter()
            .all(u8::is_ascii_digit)
        && tail[CRC32_RESERVED_LEN - 1] == PROPERTY_SEPARATOR
        && (n == CRC32_RESERVED_LEN || props[n - CRC32_RESERVED_LEN - 1] == PROPERTY_SEPARATOR)
}

/// `props` with a zeroed CRC property appended (and the `\x02` before it that RocketMQ
/// adds when the last property lacks one). Unchanged if it already ends with one.
pub fn reserve_prop_crc(props: &Bytes) -> Bytes {
    if has_prop_crc(props) {
        return props.clone();
    }
    let sep = !props.is_empty() && props[props.len() - 1] != PROPERTY_SEPARATOR;
    let mut out = BytesMut::with_capacity(props.len() + usize::from(sep) + CRC32_RESERVED_LEN);
    out.put_slice(props);
    if sep {
        out.put_u8(PROPERTY_SEPARATOR);
    }
    out.put_slice(PROPERTY_CRC32.as_bytes());
    out.put_u8(NAME_VALUE_SEPARATOR);
    out.put_bytes(b'0', DIGITS);
    out.put_u8(PROPERTY_SEPARATOR);
    out.freeze()
}

/// Writes the CRC of `record[..len - 20]` into the digits of the record's trailing CRC
/// property. The caller checked [`has_prop_crc`] on the properties (which end the record).
pub fn fill_prop_crc(record: &mut [u8]) {
    let n = record.len();
    let mut crc = crc32(&record[..n - CRC32_RESERVED_LEN]);
    let digits = n - 1 - DIGITS..n - 1;
    for d in &mut record[digits] {
        *d = b'0' + (crc % 10) as u8;
        crc /= 10;
    }
}

/// For a record whose properties end with a CRC property: whether it is intact (digits,
/// separators) and its digits equal the CRC of the bytes before it. None when the
/// properties do not end with the property's name in its place. A torn tail that kept
/// the name but not the digits is a mismatch; one that lost the name is left to
/// `looks_whole` (the bytes a torn write leaves are zeros).
pub fn prop_crc_matches(record: &[u8], props: &[u8]) -> Option<bool> {
    let n = props.len();
    if n < CRC32_RESERVED_LEN
        || props[n - CRC32_RESERVED_LEN..n - CRC32_RESERVED_LEN + PROPERTY_CRC32.len()]
            != *PROPERTY_CRC32.as_bytes()
    {
        return None;
    }
    if !has_prop_crc(props) {
        return Some(false);
    }
    let n = record.len();
    let mut stored = 0u64;
    for &d in record[n - 1 - DIGITS..n - 1].iter().rev() {
        stored = stored * 10 + u64::from(d - b'0');
    }
    Some(stored == u64::from(crc32(&record[..n - CRC32_RESERVED_LEN])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_is_rocketmq_layout() {
        let r = reserve_prop_crc(&Bytes::from_static(b"TAGS\x01a"));
        assert_eq!(&r[..], b"TAGS\x01a\x02__CRC32#\x010000000000\x02");
        assert!(has_prop_crc(&r));
        assert_eq!(reserve_prop_crc(&r), r, "not reserved twice");
        let empty = reserve_prop_crc(&Bytes::new());
        assert_eq!(empty.len(), CRC32_RESERVED_LEN);
        assert!(has_prop_crc(&empty));
        assert!(
            !has_prop_crc(b"X__CRC32#\x010000000000\x02"),
            "inside another value"
        );
    }

    #[test]
    fn digits_are_least_significant_first() {
        let mut rec = b"abc".to_vec();
        rec.extend_from_slice(&reserve_prop_crc(&Bytes::new()));
        fill_prop_crc(&mut rec);
        let crc = crc32(b"abc");
        let want: String = format!("{crc:010}").chars().rev().collect();
        assert_eq!(&rec[3 + 9..3 + 19], want.as_bytes());
        assert_eq!(prop_crc_matches(&rec, &rec[3..]), Some(true));
        rec[1] ^= 1;
        assert_eq!(prop_crc_matches(&rec, &rec[3..]), Some(false));
    }
}
