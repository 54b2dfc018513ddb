//! JSON header form (spec §1.5).
//!
//! Encoding writes straight into the caller's buffer:
//! `{"code":..,"language":"JAVA","version":..,"opaque":..,"flag":..,
//! ["remark":"..",]"extFields":{..},"serializeTypeCurrentRPC":"JSON"}`.
//! `serializeTypeCurrentRPC` and a valid `language` name are required by
//! rocketmq-client-rust 1.0.0 (§1.9); a missing remark is omitted, as Java does.
//!
//! Decoding accepts any key order, ignores unknown keys (including
//! `serializeTypeCurrentRPC`: the frame's type byte rules), allows
//! `remark`/`extFields` to be absent or null, and requires `code`.
//! `version`/`opaque`/`flag` default to 0 and `language` to JAVA (Java's
//! field defaults); an unknown language name or code reads as OTHER.
//! extFields values are strings; numbers and booleans are accepted as their
//! JSON text and null values are dropped.

use std::fmt;

use bytes::BytesMut;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::codes::{LanguageCode, SerializeType};
use crate::command::{ExtFields, RemotingCommand};
use crate::error::FrameError;
use crate::json_fast;

/// Append the JSON header of `cmd` to `dst` (body and length words excluded).
///
/// Written by hand (`json_fast::encode`); the bytes are those of the serde form below,
/// which the tests keep as the reference.
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    json_fast::encode(cmd, dst);
}

/// The serde_json encoding of the header: the reference `encode` must match.
#[cfg(test)]
fn encode_serde(cmd: &RemotingCommand, dst: &mut BytesMut) {
    use bytes::BufMut;
    // Writing into a BytesMut cannot fail and every value is serialisable.
    serde_json::to_writer(dst.writer(), &JsonOut(cmd)).expect("JSON header write is infallible");
}

/// Rough size of the JSON header, for reserving buffer space.
pub fn estimated_len(cmd: &RemotingCommand) -> usize {
    let remark = cmd.remark.as_ref().map_or(0, |r| r.len() + 12);
    let ext: usize = cmd
        .ext_fields
        .iter()
        .map(|(k, v)| k.len() + v.len() + 6)
        .sum();
    128 + remark + ext
}

/// Parse a JSON header into a command with an empty body.
///
/// The common case goes through the hand-written subset parser (`json_fast::decode`,
/// no serde machinery); whatever it declines, serde decides, so the result is always
/// serde's.
pub fn decode(src: &[u8]) -> Result<RemotingCommand, FrameError> {
    if let Some(cmd) = json_fast::decode(src) {
        return Ok(cmd);
    }
    decode_serde(src)
}

fn decode_serde(src: &[u8]) -> Result<RemotingCommand, FrameError> {
    // serde's derive would also accept a JSON array in field order.
    if src.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(FrameError::BadJsonHeader("not a JSON object".into()));
    }
    let h: JsonIn =
        serde_json::from_slice(src).map_err(|e| FrameError::BadJsonHeader(e.to_string()))?;
    Ok(RemotingCommand {
        code: h.code,
        language: h.language.map_or(LanguageCode::JAVA, |l| l.0),
        version: h.version.unwrap_or(0),
        opaque: h.opaque.unwrap_or(0),
        flag: h.flag.unwrap_or(0),
        remark: h.remark,
        ext_fields: h.ext_fields.unwrap_or_default(),
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

#[cfg_attr(not(test), allow(dead_code))]
struct JsonOut<'a>(&'a RemotingCommand);

impl Serialize for JsonOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut st = s.serialize_struct("RemotingCommand", 8)?;
        st.serialize_field("code", &c.code)?;
        st.serialize_field("language", c.language.name())?;
        st.serialize_field("version", &c.version)?;
        st.serialize_field("opaque", &c.opaque)?;
        st.serialize_field("flag", &c.flag)?;
        if let Some(remark) = &c.remark {
            st.serialize_field("remark", remark)?;
        }
        st.serialize_field("extFields", &c.ext_fields)?;
        st.serialize_field("serializeTypeCurrentRPC", SerializeType::Json.name())?;
        st.end()
    }
}

impl Serialize for ExtFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Deserialize)]
struct JsonIn {
    code: i32,
    #[serde(default)]
    language: Option<LenientLanguage>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default)]
    opaque: Option<i32>,
    #[serde(default)]
    flag: Option<i32>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<ExtFields>,
}

/// Language by name (or, as fastjson also allows, by number); unknown → OTHER.
struct LenientLanguage(LanguageCode);

impl<'de> Deserialize<'de> for LenientLanguage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientLanguage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a language name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LenientLanguage(
                    LanguageCode::from_name(v).unwrap_or(LanguageCode::OTHER),
                ))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                let lang = u8::try_from(v).ok().and_then(LanguageCode::from_code);
                Ok(LenientLanguage(lang.unwrap_or(LanguageCode::OTHER)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(LenientLanguage(LanguageCode::OTHER))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ExtFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = ExtFields::new();
                while let Some((k, v)) = m.next_entry::<String, ExtValueIn>()? {
                    if let Some(v) = v.0 {
                        out.push(k, v);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// An extFields value: string, or a scalar taken as its text; null → None.
struct ExtValueIn(Option<String>);

impl<'de> Deserialize<'de> for ExtValueIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ExtValueIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null extFields value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ExtValueIn(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ExtValueIn(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ExtValueIn(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ExtValueIn(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ExtValueIn(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ExtValueIn(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ExtValueIn(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{request_code, response_code};

    fn enc(cmd: &RemotingCommand) -> String {
        let mut b = BytesMut::new();
        encode(cmd, &mut b);
        let mut reference = BytesMut::new();
        encode_serde(cmd, &mut reference);
        assert_eq!(b, reference, "hand-written and serde encodings differ");
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// The fast decoder, where it answers, answers as serde does; true if it answered.
    fn agree(src: &[u8]) -> bool {
        let serde = decode_serde(src);
        let fast = json_fast::decode(src);
        let answered = fast.is_some();
        if let Some(fast) = fast {
            assert_eq!(Ok(fast), serde, "{}", String::from_utf8_lossy(src));
        }
        assert_eq!(decode(src), serde);
        answered
    }

    #[test]
    fn fast_and_serde_decoders_agree() {
        for (i, src) in [
            &br#"{"code":310,"extFields":{"a":"PG","b":"TopicA","i":"UNIQ_KEY\u0001AC\u0002W"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#[..],
            br#"{"code":10,"language":"RUST","version":474,"opaque":3,"flag":0,"remark":null,"extFields":{"topic":"T","z":null},"serializeTypeCurrentRPC":"JSON"}"#,
            br#" { "code" : -2147483648 , "remark" : "a\"b\\c\/\b\f\n\r\t\u00e9\u4e3b" , "extFields" : { } } "#,
            br#"{"code":1,"language":"KLINGON","version":null,"opaque":null,"flag":null,"language2":true,"x":false,"y":null,"w":"s"}"#,
            br#"{"code":1,"extFields":null,"language":null}"#,
            "{\"code\":1,\"remark\":\"ré😀\",\"extFields\":{\"主题\":\"v\"}}".as_bytes(),
            br#"{"code":1,"code":2}"#,
            br#"{"code":1,"extFields":{"n":5,"b":true}}"#,
            br#"{"code":1} trailing"#,
            br#"{"code":1,}"#,
            br#"{"code":1"#,
            br#"{"code":1,"extFields":{"a":"1",}}"#,
            br#"{"code":1,"remark":"\x"}"#,
            br#"{"code":1,"remark":"\u12"}"#,
            br#"{"code":1,"language":nul}"#,
            b"",
        ]
        .into_iter()
        .enumerate()
        {
            // The first six are the common case the fast decoder exists for.
            assert_eq!(agree(src), i < 6, "{}", String::from_utf8_lossy(src));
        }
    }

    fn sample() -> RemotingCommand {
        RemotingCommand {
            code: 310,
            language: LanguageCode::RUST,
            version: 474,
            opaque: -5,
            flag: 2,
            remark: Some("ré\"mark\u{1}😀".into()),
            ext_fields: [("b", "主题"), ("a", ""), ("z\n", "v\\")]
                .into_iter()
                .collect(),
            body: bytes::Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    #[test]
    fn round_trip_every_field() {
        let cmd = sample();
        assert_eq!(decode(enc(&cmd).as_bytes()).unwrap(), cmd);
        // Empty remark, no extFields, every language, extreme numbers.
        for lang in LanguageCode::ALL {
            let c = RemotingCommand {
                code: i32::MIN,
                language: lang,
                version: i32::MAX,
                opaque: 0,
                flag: 1,
                remark: Some(String::new()),
                ext_fields: ExtFields::new(),
                ..sample()
            };
            assert_eq!(decode(enc(&c).as_bytes()).unwrap(), c);
        }
        let c = RemotingCommand {
            remark: None,
            ..sample()
        };
        assert_eq!(decode(enc(&c).as_bytes()).unwrap(), c);
    }

    #[test]
    fn golden_response_encoding() {
        let mut req = RemotingCommand::request(request_code::SEND_MESSAGE);
        req.opaque = 7;
        let mut resp = RemotingCommand::response_to(&req, response_code::SUCCESS, None);
        resp.set_ext("msgId", "C0A8000100002A9F0000000000000000");
        resp.set_ext("queueId", 1);
        resp.set_ext("queueOffset", 5i64);
        assert_eq!(
            enc(&resp),
            r#"{"code":0,"language":"JAVA","version":479,"opaque":7,"flag":1,"extFields":{"msgId":"C0A8000100002A9F0000000000000000","queueId":"1","queueOffset":"5"},"serializeTypeCurrentRPC":"JSON"}"#
        );
        let err =
            RemotingCommand::response_to(&req, 3, Some(" request type 99 not supported".into()));
        assert_eq!(
            enc(&err),
            r#"{"code":3,"language":"JAVA","version":479,"opaque":7,"flag":1,"remark":" request type 99 not supported","extFields":{},"serializeTypeCurrentRPC":"JSON"}"#
        );
    }

    #[test]
    fn golden_java_send_v2_request() {
        // SEND_MESSAGE_V2 as a Java 5.3.3 client sends it (spec §1.5, §3.1):
        // sorted keys, all extFields values strings, control-char separators
        // in the properties string escaped as \u0001 / \u0002.
        let src = br#"{"code":310,"extFields":{"a":"PG","b":"TopicA","c":"TBW102","d":"4","e":"0","f":"0","g":"1700000000000","h":"0","i":"UNIQ_KEY\u0001AC1100010000\u0002WAIT\u0001true\u0002TAGS\u0001TagA","j":"0","k":"false","m":"false","n":"broker-a"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        let c = decode(src).unwrap();
        assert_eq!(
            (c.code, c.language, c.version, c.opaque, c.flag),
            (310, LanguageCode::JAVA, 479, 7, 0)
        );
        assert_eq!(c.remark, None);
        assert_eq!(c.ext_str_any(&["b", "topic"]), Ok("TopicA"));
        assert_eq!(c.ext_i32_any(&["d", "defaultTopicQueueNums"]), Ok(4));
        assert_eq!(
            c.ext_i64_any(&["g", "bornTimestamp"]),
            Ok(1_700_000_000_000)
        );
        assert_eq!(c.ext_bool_any(&["m", "batch"]), Ok(false));
        assert_eq!(
            c.ext("i"),
            Some("UNIQ_KEY\u{1}AC1100010000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA")
        );
        let keys: Vec<_> = c.ext_fields.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "m", "n"]
        );
    }

    #[test]
    fn golden_rust_client_send_request() {
        // SEND_MESSAGE as rocketmq-client-rust 1.0.0 writes it (§1.5, §1.9):
        // "remark":null present, RUST, version 474, fixed key order.
        let src = br#"{"code":10,"language":"RUST","version":474,"opaque":3,"flag":0,"remark":null,"extFields":{"producerGroup":"PG","topic":"TopicA","defaultTopic":"TBW102","defaultTopicQueueNums":"4","queueId":"-1","sysFlag":"0","bornTimestamp":"1700000000000","flag":"0","properties":"WAIT\u0001true\u0002","reconsumeTimes":"0","unitMode":"false","batch":"false"},"serializeTypeCurrentRPC":"JSON"}"#;
        let c = decode(src).unwrap();
        assert_eq!(
            (c.code, c.language, c.version, c.opaque),
            (10, LanguageCode::RUST, 474, 3)
        );
        assert_eq!(c.remark, None);
        assert_eq!(c.ext_i32_any(&["e", "queueId"]), Ok(-1));
        assert_eq!(c.ext_str("producerGroup"), Ok("PG"));
        assert_eq!(c.ext_fields.len(), 12);
    }

    #[test]
    fn lenient_and_strict_parts() {
        let c =
            decode(br#" {"code":34, "extFields":null, "remark":null, "x":[1,{"y":2}]} "#).unwrap();
        assert_eq!(
            (c.code, c.language, c.version, c.opaque, c.flag),
            (34, LanguageCode::JAVA, 0, 0, 0)
        );
        assert!(c.ext_fields.is_empty());
        let c = decode(br#"{"code":1,"language":"KLINGON","extFields":{"n":5,"b":true,"z":null}}"#)
            .unwrap();
        assert_eq!(c.language, LanguageCode::OTHER);
        assert_eq!(c.ext("n"), Some("5"));
        assert_eq!(c.ext("b"), Some("true"));
        assert_eq!(c.ext("z"), None);
        assert_eq!(
            decode(br#"{"code":1,"language":12}"#).unwrap().language,
            LanguageCode::RUST
        );

        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"code":"10"}"#,
            br#"{"code":4294967296}"#,
            br#"{"code":1,"extFields":{"a":[1]}}"#,
            br#"{"code":1,"extFields":"x"}"#,
            br#"{"code":1} trailing"#,
            br#"{"code":1,"code":2}"#,
            b"[1]",
            b"",
            b"{\"code\":1,\"remark\":\"\xff\"}",
        ] {
            let e = decode(bad).unwrap_err();
            assert!(matches!(e, FrameError::BadJsonHeader(_)), "{e}");
            assert!(e.closes_connection());
        }
        let e = decode(b"{}").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid JSON header: missing field `code`"),
            "{e}"
        );
    }
}
