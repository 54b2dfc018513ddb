//! The message properties string (§4.1): `name \x01 value \x02` repeated, UTF-8, and the
//! well-known property keys (§4.2).
//!
//! Decoding follows Java's tolerant `string2messageProperties`: split on 0x02 (a missing
//! trailing 0x02 is fine), the first 0x01 of a segment separates name and value, and a
//! segment is kept only if both are non-empty. Later duplicates win (Java `HashMap.put`).

use bytes::{BufMut, Bytes, BytesMut};

/// Separator between a name and its value.
pub const NAME_VALUE_SEPARATOR: u8 = 0x01;
/// Terminator after every entry (including the last).
pub const PROPERTY_SEPARATOR: u8 = 0x02;

/// Well-known property names (§4.2).
pub mod keys {
    pub const TAGS: &str = "TAGS";
    pub const KEYS: &str = "KEYS";
    pub const WAIT: &str = "WAIT";
    pub const DELAY: &str = "DELAY";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const CLUSTER: &str = "CLUSTER";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const TRACE_ON: &str = "TRACE_ON";
    pub const CRC32: &str = "__CRC32#";
    pub const MSG_TYPE: &str = "MSG_TYPE";
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const TTL: &str = "TTL";
    pub const INNER_NUM: &str = "INNER_NUM";
    pub const INNER_BASE: &str = "INNER_BASE";
    pub const POP_CK: &str = "POP_CK";
}

/// Appends `name \x01 value \x02` for every pair to `dst`. Pairs are written as given
/// (the caller skips absent values); names/values must not contain 0x01 or 0x02.
pub fn encode_properties_into<K, V>(dst: &mut Vec<u8>, pairs: impl IntoIterator<Item = (K, V)>)
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    for (k, v) in pairs {
        dst.extend_from_slice(k.as_ref().as_bytes());
        dst.push(NAME_VALUE_SEPARATOR);
        dst.extend_from_slice(v.as_ref().as_bytes());
        dst.push(PROPERTY_SEPARATOR);
    }
}

/// Encodes the pairs into a properties string (every entry followed by 0x02).
pub fn encode_properties<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut out = Vec::new();
    encode_properties_into(&mut out, pairs);
    // Only whole `&str`s and ASCII separators were appended.
    String::from_utf8(out).expect("properties built from &str are UTF-8")
}

/// Non-allocating iterator over the `(name, value)` byte pairs Java would keep, in order
/// (duplicates included; the last one is the effective value).
#[derive(Clone, Debug)]
pub struct PropertyIter<'a> {
    rest: &'a [u8],
}

impl<'a> PropertyIter<'a> {
    pub fn new(props: &'a [u8]) -> Self {
        PropertyIter { rest: props }
    }
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (seg, rest) = match self.rest.iter().position(|&b| b == PROPERTY_SEPARATOR) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            if let Some(sep) = seg.iter().position(|&b| b == NAME_VALUE_SEPARATOR) {
                if sep > 0 && sep + 1 < seg.len() {
                    return Some((&seg[..sep], &seg[sep + 1..]));
                }
            }
        }
        None
    }
}

/// Effective value of property `name` (last occurrence wins), without allocating.
/// Returns `None` when absent or when the value is not valid UTF-8.
pub fn find_property<'a>(props: &'a [u8], name: &str) -> Option<&'a str> {
    let name = name.as_bytes();
    let mut found = None;
    for (k, v) in PropertyIter::new(props) {
        if k == name {
            found = Some(v);
        }
    }
    found.and_then(|v| std::str::from_utf8(v).ok())
}

/// Decodes the properties string into `(name, value)` pairs in first-seen order; a later
/// duplicate replaces the earlier value. Invalid UTF-8 is replaced (like Java's decoder).
pub fn decode_properties(props: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in PropertyIter::new(props) {
        let k = String::from_utf8_lossy(k);
        let v = String::from_utf8_lossy(v).into_owned();
        match out.iter_mut().find(|(ek, _)| *ek == k) {
            Some(entry) => entry.1 = v,
            None => out.push((k.into_owned(), v)),
        }
    }
    out
}

/// `props` without the `remove` names (and without the names of `add`), followed by the
/// `add` pairs; every entry is terminated, malformed segments are dropped (as Java's
/// decode/re-encode does).
pub fn edit_properties(props: &[u8], remove: &[&str], add: &[(&str, &str)]) -> Bytes {
    let extra: usize = add.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = BytesMut::with_capacity(props.len() + extra);
    for (k, v) in PropertyIter::new(props) {
        let dropped =
            remove.iter().any(|r| r.as_bytes() == k) || add.iter().any(|(a, _)| a.as_bytes() == k);
        if !dropped {
            out.put_slice(k);
            out.put_u8(0x01);
            out.put_slice(v);
            out.put_u8(0x02);
        }
    }
    for (k, v) in add {
        put_property(&mut out, k, v);
    }
    out.freeze()
}

/// Appends one `name \x01 value \x02` entry.
pub fn put_property(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_u8(0x01);
    out.put_slice(value.as_bytes());
    out.put_u8(0x02);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_terminates_every_entry() {
        let s = encode_properties([("TAGS", "TagA"), ("KEYS", "k1 k2")]);
        assert_eq!(s, "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}");
        assert_eq!(encode_properties(Vec::<(&str, &str)>::new()), "");
    }

    #[test]
    fn round_trip() {
        let pairs = vec![
            ("TAGS".to_string(), "TagA".to_string()),
            ("UNIQ_KEY".to_string(), "0A0B".to_string()),
            ("é".to_string(), "日本".to_string()),
        ];
        let s = encode_properties(pairs.iter().map(|(k, v)| (k, v)));
        assert_eq!(decode_properties(s.as_bytes()), pairs);
        assert_eq!(find_property(s.as_bytes(), "UNIQ_KEY"), Some("0A0B"));
        assert_eq!(find_property(s.as_bytes(), "é"), Some("日本"));
        assert_eq!(find_property(s.as_bytes(), "DELAY"), None);
    }

    #[test]
    fn tolerant_decoding_like_java() {
        // Missing trailing separator, empty segments, empty name/value, no separator,
        // value containing 0x01, duplicate key (last wins).
        let raw = b"\x02\x02a\x01\x02\x01b\x02noval\x02TAGS\x01x\x02k\x01v\x01w\x02TAGS\x01y";
        assert_eq!(
            decode_properties(raw),
            vec![("TAGS".into(), "y".into()), ("k".into(), "v\u{1}w".into())]
        );
        assert_eq!(find_property(raw, "TAGS"), Some("y"));
        assert_eq!(find_property(raw, "k"), Some("v\u{1}w"));
        assert_eq!(find_property(raw, "a"), None);
        assert_eq!(find_property(raw, "noval"), None);
        assert_eq!(find_property(b"", "TAGS"), None);
        // Name is matched exactly, not as a prefix.
        assert_eq!(find_property(b"TAGSX\x01v\x02", "TAGS"), None);
        assert_eq!(find_property(b"ab\x01c", "ab"), Some("c"));
    }

    #[test]
    fn edit_properties_replaces_and_removes() {
        let p = edit_properties(
            b"TAGS\x01a\x02DELAY\x013\x02junk\x02WAIT\x01true",
            &[super::keys::TAGS],
            &[(super::keys::DELAY, "-1"), (super::keys::REAL_QID, "2")],
        );
        assert_eq!(&p[..], b"WAIT\x01true\x02DELAY\x01-1\x02REAL_QID\x012\x02");
        assert!(edit_properties(b"", &[], &[]).is_empty());
    }
}
