//! Headers of mqadmin's broker requests (Java's `*RequestHeader` field names):
//! DELETE_TOPIC_IN_BROKER (215), DELETE_SUBSCRIPTIONGROUP (207), GET_TOPIC_STATS_INFO (202),
//! GET_CONSUME_STATS (208), GET_CONSUMER_CONNECTION_LIST (203), VIEW_MESSAGE_BY_ID (33) and
//! INVOKE_BROKER_TO_RESET_OFFSET (222). UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) and
//! UPDATE_BROKER_CONFIG (25) carry bodies only; GET_BROKER_CONFIG (26) carries nothing.

use crate::command::RemotingCommand;
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

/// DELETE_TOPIC_IN_BROKER (215) and GET_TOPIC_STATS_INFO (202): just `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicHeader<'a> {
    pub topic: &'a str,
}

impl<'a> RequestHeader<'a> for TopicHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(TopicHeader {
            topic: cmd.ext_str("topic")?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
    }
}

/// DELETE_SUBSCRIPTIONGROUP (207) (`DeleteSubscriptionGroupRequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupHeader<'a> {
    pub group_name: &'a str,
    /// Also forget the group's committed offsets (false when absent).
    pub clean_offset: bool,
}

impl<'a> RequestHeader<'a> for DeleteGroupHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(DeleteGroupHeader {
            group_name: cmd.ext_str("groupName")?,
            clean_offset: cmd.ext_opt(&["cleanOffset"])?.unwrap_or(false),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("groupName", self.group_name);
        cmd.set_ext("cleanOffset", self.clean_offset);
    }
}

/// GET_CONSUME_STATS (208) and GET_CONSUMER_CONNECTION_LIST (203): `consumerGroup`, and
/// for the stats an optional `topic` (absent: every topic the group consumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupHeader<'a> {
    pub consumer_group: &'a str,
    pub topic: Option<&'a str>,
}

impl<'a> RequestHeader<'a> for ConsumerGroupHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(ConsumerGroupHeader {
            consumer_group: cmd.ext_str("consumerGroup")?,
            topic: cmd.ext("topic").filter(|t| !t.is_empty()),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("consumerGroup", self.consumer_group);
        put_opt(cmd, "topic", self.topic);
    }
}

/// VIEW_MESSAGE_BY_ID (33) (`ViewMessageRequestHeader`): the CommitLog offset decoded
/// from an offsetMsgId; 5.x adds the topic (read, not required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewMessageHeader<'a> {
    pub offset: i64,
    pub topic: Option<&'a str>,
}

impl<'a> RequestHeader<'a> for ViewMessageHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(ViewMessageHeader {
            offset: cmd.ext_i64("offset")?,
            topic: cmd.ext("topic"),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("offset", self.offset);
        put_opt(cmd, "topic", self.topic);
    }
}

/// INVOKE_BROKER_TO_RESET_OFFSET (222) (`ResetOffsetRequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsetHeader<'a> {
    pub topic: &'a str,
    pub group: &'a str,
    /// Store time to reset to, in ms; -1 = the queues' max offsets.
    pub timestamp: i64,
    /// false: only move offsets back (Java's `isForce`).
    pub is_force: bool,
    /// 5.x: one queue only (-1 or absent: every queue).
    pub queue_id: i32,
    /// 5.x: an explicit offset for `queue_id` instead of a time.
    pub offset: Option<i64>,
}

impl<'a> RequestHeader<'a> for ResetOffsetHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(ResetOffsetHeader {
            topic: cmd.ext_str("topic")?,
            group: cmd.ext_str("group")?,
            timestamp: cmd.ext_i64("timestamp")?,
            is_force: cmd.ext_opt(&["isForce"])?.unwrap_or(false),
            queue_id: cmd.ext_opt(&["queueId"])?.unwrap_or(-1),
            offset: cmd.ext_opt(&["offset"])?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("group", self.group);
        cmd.set_ext("timestamp", self.timestamp);
        cmd.set_ext("isForce", self.is_force);
        cmd.set_ext("queueId", self.queue_id);
        put_opt(cmd, "offset", self.offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::request_code as rq;

    #[test]
    fn admin_ops_headers_round_trip() {
        let mut cmd = RemotingCommand::request(rq::INVOKE_BROKER_TO_RESET_OFFSET);
        let h = ResetOffsetHeader {
            topic: "T",
            group: "G",
            timestamp: 42,
            is_force: true,
            queue_id: -1,
            offset: None,
        };
        h.encode(&mut cmd);
        assert_eq!(ResetOffsetHeader::decode(&cmd).unwrap(), h);

        let mut cmd = RemotingCommand::request(rq::DELETE_SUBSCRIPTIONGROUP);
        cmd.set_ext("groupName", "G");
        let d = DeleteGroupHeader::decode(&cmd).unwrap();
        assert!(!d.clean_offset);

        let mut cmd = RemotingCommand::request(rq::GET_CONSUME_STATS);
        cmd.set_ext("consumerGroup", "G");
        cmd.set_ext("topic", "");
        assert_eq!(ConsumerGroupHeader::decode(&cmd).unwrap().topic, None);

        let cmd = RemotingCommand::request(rq::VIEW_MESSAGE_BY_ID);
        assert!(ViewMessageHeader::decode(&cmd).is_err());
    }
}
