//! CONSUMER_SEND_MSG_BACK (36): `ConsumerSendMsgBackRequestHeader` (spec §3.11).

use crate::command::RemotingCommand;
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

/// The header of a send-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBackHeader<'a> {
    /// CommitLog physical offset of the consumed message.
    pub offset: i64,
    pub group: &'a str,
    /// 0: the broker picks `3 + reconsumeTimes`; negative: straight to the DLQ.
    pub delay_level: i32,
    pub origin_msg_id: Option<&'a str>,
    pub origin_topic: Option<&'a str>,
    /// false when absent.
    pub unit_mode: bool,
    /// Overrides the group's `retryMaxTimes` when the request version is >= 121.
    pub max_reconsume_times: Option<i32>,
}

impl<'a> RequestHeader<'a> for SendBackHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(SendBackHeader {
            offset: cmd.ext_i64("offset")?,
            group: cmd.ext_str("group")?,
            delay_level: cmd.ext_i32("delayLevel")?,
            origin_msg_id: cmd.ext("originMsgId"),
            origin_topic: cmd.ext("originTopic"),
            unit_mode: cmd.ext_opt(&["unitMode"])?.unwrap_or(false),
            max_reconsume_times: cmd.ext_opt(&["maxReconsumeTimes"])?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("offset", self.offset);
        cmd.set_ext("group", self.group);
        cmd.set_ext("delayLevel", self.delay_level);
        put_opt(cmd, "originMsgId", self.origin_msg_id);
        put_opt(cmd, "originTopic", self.origin_topic);
        cmd.set_ext("unitMode", self.unit_mode);
        put_opt(cmd, "maxReconsumeTimes", self.max_reconsume_times);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codes::request_code as rq;
    use crate::header::test_util::text;

    #[test]
    fn errors_name_the_field() {
        let cmd = RemotingCommand::request(rq::CONSUMER_SEND_MSG_BACK)
            .with_ext("offset", 1)
            .with_ext("group", "G");
        let e = SendBackHeader::decode(&cmd).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "delayLevel""#);
        let cmd = cmd.with_ext("delayLevel", 0);
        let h = SendBackHeader::decode(&cmd).unwrap();
        assert_eq!((h.unit_mode, h.max_reconsume_times), (false, None));
        let e = SendBackHeader::decode(&cmd.with_ext("maxReconsumeTimes", "")).unwrap_err();
        assert!(e.to_string().contains("maxReconsumeTimes"), "{e}");
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            offset in any::<i64>(), group in text(), delay_level in any::<i32>(),
            origin_msg_id in prop::option::of(text()), origin_topic in prop::option::of(text()),
            unit_mode in any::<bool>(), max in prop::option::of(any::<i32>()),
        ) {
            let h = SendBackHeader {
                offset,
                group: &group,
                delay_level,
                origin_msg_id: origin_msg_id.as_deref(),
                origin_topic: origin_topic.as_deref(),
                unit_mode,
                max_reconsume_times: max,
            };
            let mut cmd = RemotingCommand::request(rq::CONSUMER_SEND_MSG_BACK);
            h.encode(&mut cmd);
            prop_assert_eq!(SendBackHeader::decode(&cmd).unwrap(), h);
        }
    }
}
