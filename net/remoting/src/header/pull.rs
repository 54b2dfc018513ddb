//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361): `PullMessageRequestHeader` (spec §5.1).

use crate::command::RemotingCommand;
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

/// The header of a pull. `subVersion`, `maxMsgBytes` and the proxy fields are not read:
/// the broker does not act on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullMessageHeader<'a> {
    pub consumer_group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    /// ConsumeQueue offset to read from.
    pub queue_offset: i64,
    pub max_msg_nums: i32,
    /// Pull sysFlag bits (§5.1).
    pub sys_flag: i32,
    /// The consumer's offset, stored when the COMMIT_OFFSET bit is set; -1 when absent.
    pub commit_offset: i64,
    /// How long the broker may hold the request; 0 when absent.
    pub suspend_timeout_millis: i64,
    /// The subscription expression (SUBSCRIPTION bit).
    pub subscription: Option<&'a str>,
    /// `TAG` or `SQL92`.
    pub expression_type: Option<&'a str>,
}

impl<'a> RequestHeader<'a> for PullMessageHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(PullMessageHeader {
            consumer_group: cmd.ext_str("consumerGroup")?,
            topic: cmd.ext_str("topic")?,
            queue_id: cmd.ext_i32("queueId")?,
            queue_offset: cmd.ext_i64("queueOffset")?,
            max_msg_nums: cmd.ext_i32("maxMsgNums")?,
            sys_flag: cmd.ext_i32("sysFlag")?,
            commit_offset: cmd.ext_opt(&["commitOffset"])?.unwrap_or(-1),
            suspend_timeout_millis: cmd.ext_opt(&["suspendTimeoutMillis"])?.unwrap_or(0),
            subscription: cmd.ext("subscription"),
            expression_type: cmd.ext("expressionType"),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("consumerGroup", self.consumer_group);
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("queueId", self.queue_id);
        cmd.set_ext("queueOffset", self.queue_offset);
        cmd.set_ext("maxMsgNums", self.max_msg_nums);
        cmd.set_ext("sysFlag", self.sys_flag);
        cmd.set_ext("commitOffset", self.commit_offset);
        cmd.set_ext("suspendTimeoutMillis", self.suspend_timeout_millis);
        put_opt(cmd, "subscription", self.subscription);
        put_opt(cmd, "expressionType", self.expression_type);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codes::request_code as rq;
    use crate::header::test_util::text;

    fn required() -> RemotingCommand {
        RemotingCommand::request(rq::PULL_MESSAGE)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "T")
            .with_ext("queueId", 1)
            .with_ext("queueOffset", 10)
            .with_ext("maxMsgNums", 32)
            .with_ext("sysFlag", 2)
    }

    #[test]
    fn defaults_and_errors() {
        let cmd = required();
        let h = PullMessageHeader::decode(&cmd).unwrap();
        assert_eq!(
            (
                h.commit_offset,
                h.suspend_timeout_millis,
                h.subscription,
                h.expression_type
            ),
            (-1, 0, None, None)
        );
        for field in [
            "consumerGroup",
            "topic",
            "queueId",
            "queueOffset",
            "maxMsgNums",
            "sysFlag",
        ] {
            let mut cmd = required();
            cmd.ext_fields.remove(field);
            let e = PullMessageHeader::decode(&cmd).unwrap_err();
            assert_eq!(e.to_string(), format!("missing header field {field:?}"));
        }
        let cmd = required().with_ext("suspendTimeoutMillis", "soon");
        let e = PullMessageHeader::decode(&cmd).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"header field "suspendTimeoutMillis" has value "soon", expected a 64-bit integer"#
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            group in text(), topic in text(), queue_id in any::<i32>(), offset in any::<i64>(),
            max in any::<i32>(), flag in any::<i32>(), commit in any::<i64>(), suspend in any::<i64>(),
            subscription in prop::option::of(text()), expression in prop::option::of(text()),
        ) {
            let h = PullMessageHeader {
                consumer_group: &group,
                topic: &topic,
                queue_id,
                queue_offset: offset,
                max_msg_nums: max,
                sys_flag: flag,
                commit_offset: commit,
                suspend_timeout_millis: suspend,
                subscription: subscription.as_deref(),
                expression_type: expression.as_deref(),
            };
            let mut cmd = RemotingCommand::request(rq::PULL_MESSAGE);
            h.encode(&mut cmd);
            prop_assert_eq!(PullMessageHeader::decode(&cmd).unwrap(), h);
        }
    }
}
