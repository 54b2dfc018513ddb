//! Hand-written fast paths for the JSON header form (spec §1.5), used by `header_json`.
//!
//! [`decode`] parses the headers clients actually send (an object of integers, strings,
//! nulls and one flat `extFields` object of strings) straight into a command, with one
//! allocation per string and no serde machinery. It is a *subset* parser: on anything
//! outside that subset (numbers or nested values inside `extFields` or unknown keys,
//! floats, duplicate fields, lone surrogates, malformed input of any kind) it returns
//! `None` and `header_json::decode` runs the serde decoder, which either accepts the
//! input with its own (lenient) rules or produces the error. So for every input the
//! result is exactly the serde decoder's; the tests there check both paths agree.
//!
//! [`encode`] writes the same bytes `serde_json` writes for the header (same key order,
//! same escapes: `\"`, `\\`, `\b \t \n \f \r`, other control bytes as `\u00xx`), without
//! going through a `Serializer`.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::codes::{LanguageCode, SerializeType};
use crate::command::{ExtFields, RemotingCommand};

/// Appends the JSON header of `cmd` to `dst`; byte-for-byte what serde_json writes.
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    dst.put_slice(b"{\"code\":");
    put_i32(dst, cmd.code);
    dst.put_slice(b",\"language\":\"");
    dst.put_slice(cmd.language.name().as_bytes());
    dst.put_slice(b"\",\"version\":");
    put_i32(dst, cmd.version);
    dst.put_slice(b",\"opaque\":");
    put_i32(dst, cmd.opaque);
    dst.put_slice(b",\"flag\":");
    put_i32(dst, cmd.flag);
    if let Some(remark) = &cmd.remark {
        dst.put_slice(b",\"remark\":");
        put_str(dst, remark);
    }
    dst.put_slice(b",\"extFields\":{");
    for (i, (k, v)) in cmd.ext_fields.iter().enumerate() {
        if i > 0 {
            dst.put_u8(b',');
        }
        put_str(dst, k);
        dst.put_u8(b':');
        put_str(dst, v);
    }
    dst.put_slice(b"},\"serializeTypeCurrentRPC\":\"");
    dst.put_slice(SerializeType::Json.name().as_bytes());
    dst.put_slice(b"\"}");
}

fn put_i32(dst: &mut BytesMut, v: i32) {
    let mut buf = itoa_buf();
    dst.put_slice(format_i64(&mut buf, i64::from(v)));
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal text of `v` in the tail of `buf`.
fn format_i64(buf: &mut [u8; 20], v: i64) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// The JSON header of a response (language, version and flag as
/// `RemotingCommand::response_to` sets them) whose extFields are `fields` in order, each
/// value its `Display` text: the bytes [`encode`] writes for that command, without
/// building it. Keys must be distinct (as `set_ext` would leave them).
pub fn encode_response(
    dst: &mut BytesMut,
    code: i32,
    opaque: i32,
    remark: Option<&str>,
    fields: &[(&str, &dyn std::fmt::Display)],
) {
    use std::fmt::Write;
    dst.put_slice(b"{\"code\":");
    put_i32(dst, code);
    dst.put_slice(b",\"language\":\"");
    dst.put_slice(crate::command::LOCAL_LANGUAGE.name().as_bytes());
    dst.put_slice(b"\",\"version\":");
    put_i32(dst, crate::command::LOCAL_VERSION);
    dst.put_slice(b",\"opaque\":");
    put_i32(dst, opaque);
    dst.put_slice(b",\"flag\":");
    put_i32(dst, RemotingCommand::RESPONSE_FLAG);
    if let Some(remark) = remark {
        dst.put_slice(b",\"remark\":");
        put_str(dst, remark);
    }
    dst.put_slice(b",\"extFields\":{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            dst.put_u8(b',');
        }
        put_str(dst, k);
        dst.put_slice(b":\"");
        write!(Escaping(dst), "{v}").expect("writing to a buffer cannot fail");
        dst.put_u8(b'"');
    }
    dst.put_slice(b"},\"serializeTypeCurrentRPC\":\"");
    dst.put_slice(SerializeType::Json.name().as_bytes());
    dst.put_slice(b"\"}");
}

/// Writes text into a buffer escaped as inside a JSON string literal.
struct Escaping<'a>(&'a mut BytesMut);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        put_escaped(self.0, s);
        Ok(())
    }
}

/// A JSON string literal of `s`, escaped as serde_json escapes it.
pub fn put_str(dst: &mut BytesMut, s: &str) {
    dst.reserve(s.len() + 2);
    dst.put_u8(b'"');
    put_escaped(dst, s);
    dst.put_u8(b'"');
}

/// The inside of [`put_str`]'s literal.
fn put_escaped(dst: &mut BytesMut, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0x00..=0x1F => 0,
            _ => continue,
        };
        dst.put_slice(&bytes[start..i]);
        start = i + 1;
        if short != 0 {
            dst.put_slice(&[b'\\', short]);
        } else {
            dst.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]);
        }
    }
    dst.put_slice(&bytes[start..]);
}

/// The common-case header, or `None` when the serde decoder must decide (see the module
/// comment).
pub fn decode(src: &[u8]) -> Option<RemotingCommand> {
    let mut p = Parser { src, at: 0 };
    p.ws();
    p.eat(b'{')?;
    let mut code = None;
    let mut language = None;
    let mut version = None;
    let mut opaque = None;
    let mut flag = None;
    let mut remark = None;
    let mut ext_fields = None;
    p.ws();
    if p.peek()? == b'}' {
        p.at += 1;
    } else {
        loop {
            p.ws();
            let key = p.str_cow()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            match &*key {
                "code" => once(&mut code, p.i32()?)?,
                "version" => once(&mut version, p.opt(Parser::i32)?)?,
                "opaque" => once(&mut opaque, p.opt(Parser::i32)?)?,
                "flag" => once(&mut flag, p.opt(Parser::i32)?)?,
                "remark" => once(&mut remark, p.opt(Parser::string)?)?,
                "language" => once(
                    &mut language,
                    p.opt(|p| {
                        let name = p.str_cow()?;
                        Some(LanguageCode::from_name(&name).unwrap_or(LanguageCode::OTHER))
                    })?,
                )?,
                "extFields" => once(&mut ext_fields, p.opt(Parser::ext_fields)?)?,
                _ => p.scalar_to_skip()?,
            }
            p.ws();
            match p.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    p.ws();
    if p.at != src.len() {
        return None;
    }
    Some(RemotingCommand {
        code: code?,
        language: language.flatten().unwrap_or(LanguageCode::JAVA),
        version: version.flatten().unwrap_or(0),
        opaque: opaque.flatten().unwrap_or(0),
        flag: flag.flatten().unwrap_or(0),
        remark: remark.flatten(),
        ext_fields: ext_fields.flatten().unwrap_or_default(),
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// Sets a field seen for the first time; a duplicate is the serde decoder's to refuse.
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

struct Parser<'a> {
    src: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// JSON whitespace as serde_json reads it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.src.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// `null` as `None`, else `value`.
    fn opt<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        value(self).map(Some)
    }

    /// A plain integer (`-?(0|[1-9][0-9]*)`, not `-0`) that fits an i32.
    fn i32(&mut self) -> Option<i32> {
        let neg = self.peek()? == b'-';
        if neg {
            self.at += 1;
        }
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let digits = &self.src[start..self.at];
        if digits.is_empty()
            || digits.len() > 10
            || (digits[0] == b'0' && (digits.len() > 1 || neg))
        {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        let mut v: i64 = 0;
        for d in digits {
            v = v * 10 + i64::from(d - b'0');
        }
        i32::try_from(if neg { -v } else { v }).ok()
    }

    /// A string literal, unescaped; `None` for a control byte, invalid UTF-8 or a
    /// surrogate escape.
    fn string(&mut self) -> Option<String> {
        self.str_cow().map(Cow::into_owned)
    }

    /// [`string`](Self::string), borrowed from the input when it has no escapes (keys,
    /// language names and skipped values need no allocation).
    fn str_cow(&mut self) -> Option<Cow<'a, str>> {
        let src: &'a [u8] = self.src;
        let start = self.at + 1;
        if self.peek()? != b'"' {
            return None;
        }
        self.at = start;
        self.skip_plain();
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    let s = std::str::from_utf8(&src[start..self.at]).ok()?;
                    self.at += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' | 0x00..=0x1F => break,
                _ => self.at += 1,
            }
        }
        self.at = start - 1;
        let mut out = String::new();
        self.string_into(&mut out)?;
        Some(Cow::Owned(out))
    }

    /// [`string`](Self::string), appended to `out` (left with garbage on `None`).
    fn string_into(&mut self, out: &mut String) -> Option<()> {
        self.eat(b'"')?;
        let start = self.at;
        // Fast scan: most strings have no escapes.
        self.skip_plain();
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    out.push_str(std::str::from_utf8(&self.src[start..self.at]).ok()?);
                    self.at += 1;
                    return Some(());
                }
                b'\\' => break,
                0x00..=0x1F => return None,
                _ => self.at += 1,
            }
        }
        let mut raw = Vec::with_capacity(self.at - start + 16);
        raw.extend_from_slice(&self.src[start..self.at]);
        loop {
            match self.next()? {
                b'"' => {
                    out.push_str(std::str::from_utf8(&raw).ok()?);
                    return Some(());
                }
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0C,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let hex = self.src.get(self.at..self.at + 4)?;
                            self.at += 4;
                            let hex = std::str::from_utf8(hex).ok()?;
                            let n = u32::from_str_radix(hex, 16).ok()?;
                            // Surrogates (pairs or lone) are left to serde.
                            let ch = char::from_u32(n)?;
                            let mut tmp = [0u8; 4];
                            raw.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                            continue;
                        }
                        _ => return None,
                    };
                    raw.push(c);
                }
                0x00..=0x1F => return None,
                b => raw.push(b),
            }
        }
    }

    /// Moves past the bytes that need no attention inside a string (anything but `"`,
    /// `\\` and control bytes), eight at a time.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        // A byte of `x` is zero iff the same byte of the result has its high bit set
        // (exact when no byte of `x` is >= 0x80 after the masking below).
        let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        while let Some(chunk) = self.src.get(self.at..self.at + 8) {
            let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // Bytes >= 0x80 (UTF-8) are plain: clear their high bit before comparing, and
            // count them out of the control-byte test.
            let low = x & !HIGH;
            let quote = zero_byte(low ^ (ONES * u64::from(b'"')));
            let backslash = zero_byte(low ^ (ONES * u64::from(b'\\')));
            // byte < 0x20 iff (byte & 0x7f) < 0x20 and the byte's high bit is clear.
            let control = low.wrapping_sub(ONES * 0x20) & !low & !x & HIGH;
            if quote | backslash | control != 0 {
                return; // the byte-by-byte loop finds which one
            }
            self.at += 8;
        }
    }

    /// A flat object of string (or null, dropped) values, unescaped straight into the
    /// map's one text buffer (escapes only shrink text, so the rest of the header bounds
    /// its size).
    fn ext_fields(&mut self) -> Option<ExtFields> {
        self.eat(b'{')?;
        let mut out = ExtFields::with_capacity(16, self.src.len() - self.at);
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(out);
        }
        loop {
            self.ws();
            let text = out.text_mut();
            let key_start = text.len();
            self.string_into(text)?;
            let key_end = text.len();
            self.ws();
            self.eat(b':')?;
            self.ws();
            if self.peek()? == b'n' {
                self.literal(b"null")?;
                text.truncate(key_start);
            } else {
                self.string_into(text)?;
                let value_end = text.len();
                out.push_spans((key_start, key_end), (key_end, value_end));
            }
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(out),
                _ => return None,
            }
        }
    }

    /// The value of a key the header does not know: a string, `null`, `true` or `false`.
    fn scalar_to_skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.str_cow().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_format_like_itoa() {
        for v in [0, 1, -1, 9, 10, 479, i32::MAX, i32::MIN] {
            let mut b = BytesMut::new();
            put_i32(&mut b, v);
            assert_eq!(&b[..], v.to_string().as_bytes());
        }
    }

    #[test]
    fn strings_escape_like_serde_json() {
        let samples = [
            "",
            "plain",
            "q\"b\\s/",
            "\u{0}\u{1}\u{2}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "ré\"mark😀",
            "UNIQ_KEY\u{1}AC11\u{2}WAIT\u{1}true\u{2}",
        ];
        for s in samples {
            let mut b = BytesMut::new();
            put_str(&mut b, s);
            assert_eq!(
                &b[..],
                serde_json::to_string(s).unwrap().as_bytes(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn skip_plain_stops_at_or_before_the_first_special_byte() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: &[u8] = b"ab\"\\\x00\x01\x1f\x20\x7f\x80\xa2\xdc\xff~";
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let src: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        b'a' + (r >> 8) as u8 % 26
                    }
                })
                .collect();
            let first_special = src
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(src.len());
            let mut p = Parser { src: &src, at: 0 };
            p.skip_plain();
            assert!(p.at <= first_special, "{src:?}: skipped to {}", p.at);
            assert_eq!(p.at % 8, 0);
            // Bytes >= 0x80 may stop it early (the byte loop then goes on); ASCII may not.
            if src.is_ascii() {
                assert!(
                    first_special - p.at < 8,
                    "{src:?}: stopped early at {}",
                    p.at
                );
            }
        }
    }

    #[test]
    fn subset_parser_declines_what_it_does_not_handle() {
        for src in [
            &br#"{"code":1.0}"#[..],
            br#"{"code":01}"#,
            br#"{"code":-0}"#,
            br#"{"code":1,"code":1}"#,
            br#"{"code":1,"extFields":{"n":5}}"#,
            br#"{"code":1,"x":[1]}"#,
            br#"{"code":1,"x":7}"#,
            br#"{"code":1,"remark":"\ud83d\ude00"}"#,
            br#"{"code":1,"language":12}"#,
            br#"{"code":1} x"#,
            b"{\"code\":1,\"remark\":\"\xff\"}",
            b"{\"code\":1,\"remark\":\"\x01\"}",
            b"\x0c{\"code\":1}",
            br#"{"code":2147483648}"#,
            br#"{}"#,
        ] {
            assert!(decode(src).is_none(), "{}", String::from_utf8_lossy(src));
        }
    }
}
