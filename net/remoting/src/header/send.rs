//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): one header type
//! for the three (spec §3.1).
//!
//! Code 10 names its fields in full (`topic`), 310 and 320 with one letter (`b`). Each
//! name is looked up first in the request's own form and then in the other, so a client
//! mixing the two is still understood, and an error names both, the request's own form
//! first: `missing header field "b" or "topic"` for a V2 send.
//!
//! This decoder runs once per send on the network core, so it reads `extFields` in one
//! pass (later duplicates win, as in [`ExtFields::get`](crate::command::ExtFields::get))
//! instead of one scan per field.

use crate::codes::request_code as rq;
use crate::command::{parse_field, FromExt, RemotingCommand};
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

const PRODUCER_GROUP: usize = 0;
const TOPIC: usize = 1;
const DEFAULT_TOPIC: usize = 2;
const DEFAULT_TOPIC_QUEUE_NUMS: usize = 3;
const QUEUE_ID: usize = 4;
const SYS_FLAG: usize = 5;
const BORN_TIMESTAMP: usize = 6;
const FLAG: usize = 7;
const PROPERTIES: usize = 8;
const RECONSUME_TIMES: usize = 9;
const MAX_RECONSUME_TIMES: usize = 11;
const BATCH: usize = 12;
const BROKER_NAME: usize = 13;

/// (long name of code 10, short name of codes 310/320), indexed by the constants above
/// (index 10 is `unitMode`); the short names are `a`..`n` in order.
const NAMES: [(&str, &str); 14] = [
    ("producerGroup", "a"),
    ("topic", "b"),
    ("defaultTopic", "c"),
    ("defaultTopicQueueNums", "d"),
    ("queueId", "e"),
    ("sysFlag", "f"),
    ("bornTimestamp", "g"),
    ("flag", "h"),
    ("properties", "i"),
    ("reconsumeTimes", "j"),
    ("unitMode", "k"), // not read: the broker does not act on it
    ("maxReconsumeTimes", "l"),
    ("batch", "m"),
    ("bname", "n"),
];

/// `defaultTopicQueueNums` when absent (the Java client's default).
pub const DEFAULT_TOPIC_QUEUE_NUMS_DEFAULT: i32 = 4;

/// The header of a send (`SendMessageRequestHeader`, V2 converted to it).
///
/// `unitMode` (`k`) is not read: the broker does not act on it, and it is ignored like an
/// unknown key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessageHeader<'a> {
    pub producer_group: Option<&'a str>,
    /// Required.
    pub topic: &'a str,
    /// Template for auto-creating `topic`; empty when absent.
    pub default_topic: &'a str,
    /// Queues of an auto-created topic; 4 when absent.
    pub default_topic_queue_nums: i32,
    /// Required; negative: the broker picks a queue.
    pub queue_id: i32,
    /// Message sysFlag (§4.4); 0 when absent.
    pub sys_flag: i32,
    /// 0 when absent.
    pub born_timestamp: i64,
    /// Application flag; 0 when absent.
    pub flag: i32,
    /// Properties string (§4.1); empty when absent.
    pub properties: &'a str,
    /// 0 when absent.
    pub reconsume_times: i32,
    /// Read with the rest, but a malformed value is kept here rather than failing the
    /// decode: only a send that honours the field (a single send to a retry topic, request
    /// version >= 121) is refused for it.
    pub max_reconsume_times: Result<Option<i32>, FrameError>,
    /// The body is a batch (§4.3). When absent: true for SEND_BATCH_MESSAGE only.
    pub batch: bool,
    /// `bname` / `n`: the broker the client targeted.
    pub broker_name: Option<&'a str>,
}

/// The fields of one send, by index, under each of the two names.
struct Fields<'a> {
    long: [Option<&'a str>; NAMES.len()],
    short: [Option<&'a str>; NAMES.len()],
    /// The request uses long names (code 10).
    long_first: bool,
}

impl<'a> Fields<'a> {
    fn read(cmd: &'a RemotingCommand) -> Self {
        let mut f = Fields {
            long: [None; NAMES.len()],
            short: [None; NAMES.len()],
            long_first: cmd.code == rq::SEND_MESSAGE,
        };
        for (key, value) in cmd.ext_fields.iter() {
            if let [c @ b'a'..=b'n'] = key.as_bytes() {
                f.short[usize::from(c - b'a')] = Some(value);
            } else if let Some(i) = NAMES.iter().position(|(long, _)| *long == key) {
                f.long[i] = Some(value);
            }
        }
        f
    }

    /// The request's own name of field `i`, then the other one.
    fn names(&self, i: usize) -> [&'static str; 2] {
        let (long, short) = NAMES[i];
        if self.long_first {
            [long, short]
        } else {
            [short, long]
        }
    }

    /// The value of field `i` and the name it was found under.
    fn entry(&self, i: usize) -> Option<(&'static str, &'a str)> {
        let [first, second] = self.names(i);
        let (a, b) = if self.long_first {
            (self.long[i], self.short[i])
        } else {
            (self.short[i], self.long[i])
        };
        a.map(|v| (first, v)).or_else(|| b.map(|v| (second, v)))
    }

    fn str_opt(&self, i: usize) -> Option<&'a str> {
        self.entry(i).map(|(_, v)| v)
    }

    fn str_req(&self, i: usize) -> Result<&'a str, FrameError> {
        self.str_opt(i).ok_or_else(|| self.missing(i))
    }

    fn opt<T: FromExt>(&self, i: usize) -> Result<Option<T>, FrameError> {
        self.entry(i).map(|(k, v)| parse_field(k, v)).transpose()
    }

    fn req<T: FromExt>(&self, i: usize) -> Result<T, FrameError> {
        self.opt(i)?.ok_or_else(|| self.missing(i))
    }

    fn missing(&self, i: usize) -> FrameError {
        FrameError::MissingField(self.names(i).iter().map(|n| (*n).to_owned()).collect())
    }
}

impl<'a> RequestHeader<'a> for SendMessageHeader<'a> {
    /// Fields are checked in the order below, so the first bad one is the one named.
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        let f = Fields::read(cmd);
        let topic = f.str_req(TOPIC)?;
        let default_topic = f.str_opt(DEFAULT_TOPIC).unwrap_or_default();
        let default_topic_queue_nums = f
            .opt(DEFAULT_TOPIC_QUEUE_NUMS)?
            .unwrap_or(DEFAULT_TOPIC_QUEUE_NUMS_DEFAULT);
        let queue_id = f.req(QUEUE_ID)?;
        let sys_flag = f.opt(SYS_FLAG)?.unwrap_or(0);
        let born_timestamp = f.opt(BORN_TIMESTAMP)?.unwrap_or(0);
        let flag = f.opt(FLAG)?.unwrap_or(0);
        let properties = f.str_opt(PROPERTIES).unwrap_or_default();
        let reconsume_times = f.opt(RECONSUME_TIMES)?.unwrap_or(0);
        let batch = f.opt(BATCH)?.unwrap_or(cmd.code == rq::SEND_BATCH_MESSAGE);
        Ok(SendMessageHeader {
            producer_group: f.str_opt(PRODUCER_GROUP),
            topic,
            default_topic,
            default_topic_queue_nums,
            queue_id,
            sys_flag,
            born_timestamp,
            flag,
            properties,
            reconsume_times,
            max_reconsume_times: f.opt(MAX_RECONSUME_TIMES),
            batch,
            broker_name: f.str_opt(BROKER_NAME),
        })
    }

    /// Long names for SEND_MESSAGE, short names otherwise.
    fn encode(&self, cmd: &mut RemotingCommand) {
        let long = cmd.code == rq::SEND_MESSAGE;
        let name = |i: usize| if long { NAMES[i].0 } else { NAMES[i].1 };
        put_opt(cmd, name(PRODUCER_GROUP), self.producer_group);
        cmd.set_ext(name(TOPIC), self.topic);
        cmd.set_ext(name(DEFAULT_TOPIC), self.default_topic);
        cmd.set_ext(
            name(DEFAULT_TOPIC_QUEUE_NUMS),
            self.default_topic_queue_nums,
        );
        cmd.set_ext(name(QUEUE_ID), self.queue_id);
        cmd.set_ext(name(SYS_FLAG), self.sys_flag);
        cmd.set_ext(name(BORN_TIMESTAMP), self.born_timestamp);
        cmd.set_ext(name(FLAG), self.flag);
        cmd.set_ext(name(PROPERTIES), self.properties);
        cmd.set_ext(name(RECONSUME_TIMES), self.reconsume_times);
        if let Ok(max) = &self.max_reconsume_times {
            put_opt(cmd, name(MAX_RECONSUME_TIMES), *max);
        }
        cmd.set_ext(name(BATCH), self.batch);
        put_opt(cmd, name(BROKER_NAME), self.broker_name);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::header::test_util::text;

    fn v2(fields: &[(&str, &str)]) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(rq::SEND_MESSAGE_V2);
        for (k, v) in fields {
            cmd.set_ext(*k, v);
        }
        cmd
    }

    #[test]
    fn short_and_long_names_decode_alike() {
        let short = v2(&[
            ("a", "PG"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "8"),
            ("e", "3"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "7"),
            ("i", "TAGS\u{1}x\u{2}"),
            ("j", "2"),
            ("k", "false"),
            ("l", "5"),
            ("m", "false"),
            ("n", "broker-a"),
        ]);
        let h = SendMessageHeader::decode(&short).unwrap();
        assert_eq!(
            h,
            SendMessageHeader {
                producer_group: Some("PG"),
                topic: "T",
                default_topic: "TBW102",
                default_topic_queue_nums: 8,
                queue_id: 3,
                sys_flag: 0,
                born_timestamp: 1_700_000_000_000,
                flag: 7,
                properties: "TAGS\u{1}x\u{2}",
                reconsume_times: 2,
                max_reconsume_times: Ok(Some(5)),
                batch: false,
                broker_name: Some("broker-a"),
            }
        );
        let mut long = RemotingCommand::request(rq::SEND_MESSAGE);
        for (i, (k, v)) in short.ext_fields.iter().enumerate() {
            assert_eq!(k, NAMES[i].1);
            long.set_ext(NAMES[i].0, v);
        }
        assert_eq!(SendMessageHeader::decode(&long).unwrap(), h);
    }

    #[test]
    fn defaults_and_precedence() {
        let plain = v2(&[("b", "T"), ("e", "-1")]);
        let h = SendMessageHeader::decode(&plain).unwrap();
        assert_eq!(
            (h.default_topic, h.default_topic_queue_nums, h.properties),
            ("", 4, "")
        );
        assert_eq!(
            (h.sys_flag, h.born_timestamp, h.flag, h.reconsume_times),
            (0, 0, 0, 0)
        );
        assert_eq!((h.max_reconsume_times, h.batch), (Ok(None), false));
        assert_eq!((h.producer_group, h.broker_name), (None, None));

        let mut batch = v2(&[("b", "T"), ("e", "0")]);
        batch.code = rq::SEND_BATCH_MESSAGE;
        assert!(SendMessageHeader::decode(&batch).unwrap().batch);
        batch.set_ext("m", false);
        assert!(!SendMessageHeader::decode(&batch).unwrap().batch);

        // The request's own form wins; the other is a fallback; the last duplicate wins.
        let mut mixed = v2(&[("topic", "Long"), ("b", "Short"), ("queueId", "1")]);
        assert_eq!(SendMessageHeader::decode(&mixed).unwrap().topic, "Short");
        assert_eq!(SendMessageHeader::decode(&mixed).unwrap().queue_id, 1);
        mixed.code = rq::SEND_MESSAGE;
        assert_eq!(SendMessageHeader::decode(&mixed).unwrap().topic, "Long");
        mixed.ext_fields.push("topic".into(), "Later".into());
        assert_eq!(SendMessageHeader::decode(&mixed).unwrap().topic, "Later");
    }

    #[test]
    fn errors_name_the_field_in_the_request_form_first() {
        let e = SendMessageHeader::decode(&v2(&[("e", "1")])).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "b" or "topic""#);
        let mut long = RemotingCommand::request(rq::SEND_MESSAGE).with_ext("topic", "T");
        let e = SendMessageHeader::decode(&long).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "queueId" or "e""#);
        long.set_ext("queueId", "x");
        let e = SendMessageHeader::decode(&long).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"header field "queueId" has value "x", expected a 32-bit integer"#
        );
        // The first bad field in decode order is named.
        let e = SendMessageHeader::decode(&v2(&[("b", "T"), ("e", "1"), ("g", "t"), ("f", "s")]))
            .unwrap_err();
        assert!(e.to_string().starts_with(r#"header field "f""#), "{e}");
        let e =
            SendMessageHeader::decode(&v2(&[("b", "T"), ("e", "1"), ("m", "yes")])).unwrap_err();
        assert!(e.to_string().starts_with(r#"header field "m""#), "{e}");
        // A bad maxReconsumeTimes is kept for the sends that read it.
        let bad_max = v2(&[("b", "T"), ("e", "1"), ("l", "many")]);
        let h = SendMessageHeader::decode(&bad_max).unwrap();
        assert_eq!(
            h.max_reconsume_times.unwrap_err().to_string(),
            r#"header field "l" has value "many", expected a 32-bit integer"#
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            code in prop::sample::select(vec![rq::SEND_MESSAGE, rq::SEND_MESSAGE_V2, rq::SEND_BATCH_MESSAGE]),
            producer_group in prop::option::of(text()),
            topic in text(),
            default_topic in text(),
            nums in any::<i32>(),
            queue_id in any::<i32>(),
            sys_flag in any::<i32>(),
            born_timestamp in any::<i64>(),
            flag in any::<i32>(),
            properties in text(),
            reconsume_times in any::<i32>(),
            max_reconsume_times in prop::option::of(any::<i32>()),
            batch in any::<bool>(),
            broker_name in prop::option::of(text()),
        ) {
            let h = SendMessageHeader {
                producer_group: producer_group.as_deref(),
                topic: &topic,
                default_topic: &default_topic,
                default_topic_queue_nums: nums,
                queue_id,
                sys_flag,
                born_timestamp,
                flag,
                properties: &properties,
                reconsume_times,
                max_reconsume_times: Ok(max_reconsume_times),
                batch,
                broker_name: broker_name.as_deref(),
            };
            let mut cmd = RemotingCommand::request(code);
            h.encode(&mut cmd);
            let long = code == rq::SEND_MESSAGE;
            for (k, _) in cmd.ext_fields.iter() {
                prop_assert_eq!(k.len() == 1, !long, "key {}", k);
            }
            prop_assert_eq!(SendMessageHeader::decode(&cmd).unwrap(), h);
        }
    }
}
