//! `RemotingCommand`: one decoded remoting frame (spec §1.4), plus the
//! order-preserving `ExtFields` map and typed header-field getters.
//!
//! Custom headers travel as strings in `extFields` (§1.7); the typed getters
//! parse them and name the missing or malformed field in their error, which
//! the broker turns into an error response. Alias-aware variants (`*_any`)
//! serve SEND_MESSAGE_V2/SEND_BATCH_MESSAGE, whose header uses one-letter
//! keys (`a`..`n`) for the fields SEND_MESSAGE names in full (§3.1).

use std::fmt::Display;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::Bytes;

use crate::codes::{version, LanguageCode, SerializeType};
use crate::error::FrameError;

/// Language ringmq announces in the frames it builds. JAVA, like a Java
/// broker: every client version knows that name and code (older Java
/// clients predate RUST and NODE_JS).
pub const LOCAL_LANGUAGE: LanguageCode = LanguageCode::JAVA;
/// Version ordinal ringmq announces (Java 5.3.3's CURRENT_VERSION).
pub const LOCAL_VERSION: i32 = version::V5_3_3;

static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

/// Next request id from the per-process counter (wraps on overflow).
pub fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

/// Header `extFields`: string → string, in wire order.
///
/// Decoding keeps every entry, duplicates included, so a decoded header
/// re-encodes byte-for-byte; lookups return the *last* entry with the key,
/// matching Java's `HashMap` (last put wins).
///
/// Storage: every key and value is appended to one `text` arena and an entry holds
/// their spans, so decoding a header costs two allocations instead of two per field
/// (the send path decodes one such header per message). A replaced or removed value
/// stays in the arena as garbage until the map is dropped; headers are short-lived.
/// The entries live in a boxed slice whose used slots are a prefix (the rest are
/// [`Entry::UNUSED`]) rather than a `Vec`, which keeps `RemotingCommand` as small as it
/// was (it is moved through queues and returned in `Result`s).
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    slots: Box<[Entry]>,
}

/// Byte spans of one entry's key and value in `ExtFields::text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: (u32, u32),
    value: (u32, u32),
}

impl Entry {
    /// A free slot; no span starts at `u32::MAX` (see `span_offset`).
    const UNUSED: Entry = Entry {
        key: (u32::MAX, u32::MAX),
        value: (0, 0),
    };

    fn is_used(&self) -> bool {
        self.key.0 != u32::MAX
    }
}

impl ExtFields {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `entries` entries and `text` bytes of keys and values.
    pub fn with_capacity(entries: usize, text: usize) -> Self {
        Self {
            text: String::with_capacity(text),
            slots: vec![Entry::UNUSED; entries].into_boxed_slice(),
        }
    }

    /// The entries, in order.
    fn entries(&self) -> &[Entry] {
        let n = self.slots.partition_point(Entry::is_used);
        &self.slots[..n]
    }

    fn push_entry(&mut self, e: Entry) {
        let n = self.entries().len();
        if n == self.slots.len() {
            let mut grown = vec![Entry::UNUSED; (2 * n).max(8)];
            grown[..n].copy_from_slice(&self.slots);
            self.slots = grown.into_boxed_slice();
        }
        self.slots[n] = e;
    }

    fn span(&self, (start, end): (u32, u32)) -> &str {
        &self.text[start as usize..end as usize]
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries().iter().rposition(|e| self.span(e.key) == key)
    }

    /// Appends `s` to the arena; its span.
    fn put_text(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(s);
        (span_offset(start), span_offset(self.text.len()))
    }

    /// Value of the last entry named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.span(self.slots[i].value))
    }

    /// Set `key` (replacing the value the lookup would return) or append it.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let value = self.put_text(value.as_ref());
        self.set_value(key.as_ref(), value);
    }

    /// [`insert`](Self::insert) with the value written as `value`'s `Display` text,
    /// straight into the arena.
    pub fn insert_display(&mut self, key: &str, value: impl Display) {
        use std::fmt::Write;
        let start = self.text.len();
        write!(self.text, "{value}").expect("writing to a String cannot fail");
        let value = (span_offset(start), span_offset(self.text.len()));
        self.set_value(key, value);
    }

    fn set_value(&mut self, key: &str, value: (u32, u32)) {
        match self.position(key) {
            Some(i) => self.slots[i].value = value,
            None => {
                let key = self.put_text(key);
                self.push_entry(Entry { key, value });
            }
        }
    }

    /// Append without looking for an existing key (decoders use this).
    pub fn push(&mut self, key: String, value: String) {
        self.push_str(&key, &value);
    }

    /// [`push`](Self::push) from borrowed text.
    pub fn push_str(&mut self, key: &str, value: &str) {
        let key = self.put_text(key);
        let value = self.put_text(value);
        self.push_entry(Entry { key, value });
    }

    /// The arena, for a decoder that unescapes a key or value straight into it; the
    /// text it appends becomes an entry through [`push_spans`](Self::push_spans).
    pub(crate) fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    /// Appends the entry whose key and value a decoder wrote at these byte spans of
    /// [`text_mut`](Self::text_mut).
    pub(crate) fn push_spans(&mut self, key: (usize, usize), value: (usize, usize)) {
        assert!(key.0 <= key.1 && value.0 <= value.1 && key.1.max(value.1) <= self.text.len());
        assert!(self.text.is_char_boundary(key.0) && self.text.is_char_boundary(key.1));
        assert!(self.text.is_char_boundary(value.0) && self.text.is_char_boundary(value.1));
        self.push_entry(Entry {
            key: (span_offset(key.0), span_offset(key.1)),
            value: (span_offset(value.0), span_offset(value.1)),
        });
    }

    /// Remove every entry named `key`; returns the value the lookup returned.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.position(key)?;
        let value = self.span(self.slots[pos].value).to_owned();
        let n = self.entries().len();
        let mut kept = 0;
        for i in 0..n {
            let e = self.slots[i];
            if self.span(e.key) != key {
                self.slots[kept] = e;
                kept += 1;
            }
        }
        self.slots[kept..n].fill(Entry::UNUSED);
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Entries in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries()
            .iter()
            .map(|e| (self.span(e.key), self.span(e.value)))
    }
}

/// A byte offset in the arena as stored (headers are far below 4 GiB: frames are capped
/// at 16 MiB by default and 2 GiB by the length word).
/// `u32::MAX` itself is never a span offset: it marks a free slot.
fn span_offset(at: usize) -> u32 {
    u32::try_from(at)
        .ok()
        .filter(|&at| at != u32::MAX)
        .expect("extFields text over 4 GiB")
}

impl PartialEq for ExtFields {
    /// Equal when the entries are, in order (garbage in the arena does not count).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl std::fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<(&str, &str)> = self.iter().collect();
        f.debug_tuple("ExtFields").field(&pairs).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut out = ExtFields::new();
        for (k, v) in iter {
            out.push_str(k.as_ref(), v.as_ref());
        }
        out
    }
}

impl From<Vec<(String, String)>> for ExtFields {
    fn from(v: Vec<(String, String)>) -> Self {
        v.into_iter().collect()
    }
}

impl From<ExtFields> for Vec<(String, String)> {
    fn from(e: ExtFields) -> Self {
        e.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// A header-field type the typed getters can parse.
pub trait FromExt: Sized {
    /// Used in `MalformedField` messages, e.g. "a 32-bit integer".
    const EXPECTED: &'static str;
    fn from_ext(s: &str) -> Option<Self>;
}

impl FromExt for i32 {
    const EXPECTED: &'static str = "a 32-bit integer";
    fn from_ext(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl FromExt for i64 {
    const EXPECTED: &'static str = "a 64-bit integer";
    fn from_ext(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl FromExt for bool {
    const EXPECTED: &'static str = "true or false";
    /// `true`/`false`, case-insensitive (Java's parseBoolean maps anything
    /// else to false; ringmq reports it instead).
    fn from_ext(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("true") {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }
}

impl FromExt for String {
    const EXPECTED: &'static str = "a string";
    fn from_ext(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

/// `value` of header field `key` as a `T`, or `MalformedField` naming the field.
pub fn parse_field<T: FromExt>(key: &str, value: &str) -> Result<T, FrameError> {
    T::from_ext(value).ok_or_else(|| FrameError::MalformedField {
        field: key.to_owned(),
        value: value.to_owned(),
        expected: T::EXPECTED,
    })
}

/// One remoting command (request or response), header plus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (requests) or response code (responses).
    pub code: i32,
    pub language: LanguageCode,
    /// Sender's MQVersion ordinal (§2.3).
    pub version: i32,
    /// Request id; a response carries its request's opaque.
    pub opaque: i32,
    /// Bit 0 = response, bit 1 = oneway.
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    /// Zero-copy slice of the receive buffer on decode.
    pub body: Bytes,
    /// Header form of this frame; responses inherit the request's.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// Flag bit 0: this command is a response.
    pub const RESPONSE_FLAG: i32 = 1;
    /// Flag bit 1: oneway request, no response may be sent.
    pub const ONEWAY_FLAG: i32 = 2;

    /// A request with a fresh opaque, JSON header, no fields, empty body.
    pub fn request(code: i32) -> Self {
        Self {
            code,
            language: LOCAL_LANGUAGE,
            version: LOCAL_VERSION,
            opaque: next_opaque(),
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A response to `req`: its opaque, its serialize type, response flag set.
    pub fn response_to(req: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        Self {
            code,
            language: LOCAL_LANGUAGE,
            version: LOCAL_VERSION,
            opaque: req.opaque,
            flag: Self::RESPONSE_FLAG,
            remark,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: req.serialize_type,
        }
    }

    pub fn is_response(&self) -> bool {
        self.flag & Self::RESPONSE_FLAG != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & Self::ONEWAY_FLAG != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= Self::ONEWAY_FLAG;
    }

    pub fn mark_response(&mut self) {
        self.flag |= Self::RESPONSE_FLAG;
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_serialize_type(mut self, t: SerializeType) -> Self {
        self.serialize_type = t;
        self
    }

    /// Builder form of [`set_ext`](Self::set_ext).
    pub fn with_ext(mut self, key: impl AsRef<str>, value: impl Display) -> Self {
        self.set_ext(key, value);
        self
    }

    /// Set a header field to the `Display` text of `value` (decimal for
    /// integers, `true`/`false` for booleans, as Java's `toString`).
    pub fn set_ext(&mut self, key: impl AsRef<str>, value: impl Display) {
        self.ext_fields.insert_display(key.as_ref(), value);
    }

    /// Raw value of a header field.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// Raw value of the first of `keys` that is present, with that key.
    pub fn ext_entry_any<'k>(&self, keys: &[&'k str]) -> Option<(&'k str, &str)> {
        keys.iter()
            .find_map(|k| self.ext_fields.get(k).map(|v| (*k, v)))
    }

    /// Raw value of the first of `keys` that is present.
    pub fn ext_any(&self, keys: &[&str]) -> Option<&str> {
        self.ext_entry_any(keys).map(|(_, v)| v)
    }

    /// Optional typed field under any of `keys`: `Ok(None)` when absent,
    /// `MalformedField` when present but unparsable.
    pub fn ext_opt<T: FromExt>(&self, keys: &[&str]) -> Result<Option<T>, FrameError> {
        self.ext_entry_any(keys)
            .map(|(key, value)| parse_field(key, value))
            .transpose()
    }

    /// Required typed field under any of `keys`: `MissingField` when absent.
    pub fn ext_req<T: FromExt>(&self, keys: &[&str]) -> Result<T, FrameError> {
        self.ext_opt(keys)?
            .ok_or_else(|| FrameError::MissingField(keys.iter().map(|k| (*k).to_owned()).collect()))
    }

    /// Required string field.
    pub fn ext_str(&self, key: &str) -> Result<&str, FrameError> {
        self.ext_str_any(&[key])
    }

    /// Required string field under any of `keys`, e.g. `&["b", "topic"]`.
    pub fn ext_str_any(&self, keys: &[&str]) -> Result<&str, FrameError> {
        self.ext_any(keys)
            .ok_or_else(|| FrameError::MissingField(keys.iter().map(|k| (*k).to_owned()).collect()))
    }

    /// Required `int` field.
    pub fn ext_i32(&self, key: &str) -> Result<i32, FrameError> {
        self.ext_req(&[key])
    }

    /// Required `int` field under any of `keys`.
    pub fn ext_i32_any(&self, keys: &[&str]) -> Result<i32, FrameError> {
        self.ext_req(keys)
    }

    /// Required `long` field.
    pub fn ext_i64(&self, key: &str) -> Result<i64, FrameError> {
        self.ext_req(&[key])
    }

    /// Required `long` field under any of `keys`.
    pub fn ext_i64_any(&self, keys: &[&str]) -> Result<i64, FrameError> {
        self.ext_req(keys)
    }

    /// Required `boolean` field.
    pub fn ext_bool(&self, key: &str) -> Result<bool, FrameError> {
        self.ext_req(&[key])
    }

    /// Required `boolean` field under any of `keys`.
    pub fn ext_bool_any(&self, keys: &[&str]) -> Result<bool, FrameError> {
        self.ext_req(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{request_code, response_code};

    #[test]
    fn request_and_response_flags() {
        let mut req = RemotingCommand::request(request_code::PULL_MESSAGE)
            .with_serialize_type(SerializeType::RocketMq);
        assert!(!req.is_response() && !req.is_oneway());
        let next = RemotingCommand::request(request_code::PULL_MESSAGE);
        assert_eq!(next.opaque, req.opaque.wrapping_add(1));
        req.opaque = 77;
        let resp = RemotingCommand::response_to(
            &req,
            response_code::PULL_NOT_FOUND,
            Some("no msg".into()),
        );
        assert!(resp.is_response() && !resp.is_oneway());
        assert_eq!(resp.opaque, 77);
        assert_eq!(resp.serialize_type, SerializeType::RocketMq);
        assert_eq!(resp.remark.as_deref(), Some("no msg"));
        req.mark_oneway();
        assert!(req.is_oneway() && !req.is_response());
    }

    #[test]
    fn typed_getters() {
        let cmd = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_ext("b", "TopicA")
            .with_ext("e", 3)
            .with_ext("g", 1_700_000_000_000i64)
            .with_ext("m", true)
            .with_ext("k", "FALSE")
            .with_ext("bad", "12x");
        assert_eq!(cmd.ext_str_any(&["b", "topic"]), Ok("TopicA"));
        assert_eq!(cmd.ext_str_any(&["topic", "b"]), Ok("TopicA"));
        assert_eq!(cmd.ext_i32_any(&["e", "queueId"]), Ok(3));
        assert_eq!(cmd.ext_i64("g"), Ok(1_700_000_000_000));
        assert_eq!(cmd.ext_bool("m"), Ok(true));
        assert_eq!(cmd.ext_bool("k"), Ok(false));
        assert_eq!(cmd.ext_opt::<i32>(&["j", "reconsumeTimes"]), Ok(None));

        let e = cmd.ext_str("topic").unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "topic""#);
        assert!(!e.closes_connection());
        let e = cmd.ext_i32("bad").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"header field "bad" has value "12x", expected a 32-bit integer"#
        );
        assert!(cmd.ext_i32("g").is_err(), "i64 value overflows i32");
        assert!(cmd.ext_bool("b").is_err());
        let e = cmd.ext_i64_any(&["h", "flag"]).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "h" or "flag""#);
    }

    #[test]
    fn commands_stay_small() {
        // Moved through queues and returned in `Result`s (clippy's result_large_err).
        assert!(std::mem::size_of::<RemotingCommand>() < 128);
    }

    #[test]
    fn ext_fields_last_wins_and_order() {
        let mut e = ExtFields::new();
        e.push("a".into(), "1".into());
        e.push("b".into(), "2".into());
        e.push("a".into(), "3".into());
        assert_eq!(e.get("a"), Some("3"));
        e.insert("a", "4");
        assert_eq!(e.get("a"), Some("4"));
        e.insert("c", "5");
        let keys: Vec<_> = e.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "a", "c"]);
        assert_eq!(e.remove("a"), Some("4".into()));
        assert_eq!(e.get("a"), None);
        assert_eq!(e.len(), 2);
    }
}
