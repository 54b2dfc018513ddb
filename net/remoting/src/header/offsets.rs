//! Consumer offsets and queue offset queries: QUERY_CONSUMER_OFFSET (14),
//! UPDATE_CONSUMER_OFFSET (15), GET_MAX_OFFSET (30), GET_MIN_OFFSET (31),
//! SEARCH_OFFSET_BY_TIMESTAMP (29) (spec §3.3, §3.4, §3.10).

use crate::command::RemotingCommand;
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

/// QUERY_CONSUMER_OFFSET (14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConsumerOffsetHeader<'a> {
    pub consumer_group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    /// 5.x; only an explicit `false` changes anything.
    pub set_zero_if_not_found: Option<bool>,
}

impl<'a> RequestHeader<'a> for QueryConsumerOffsetHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(QueryConsumerOffsetHeader {
            consumer_group: cmd.ext_str("consumerGroup")?,
            topic: cmd.ext_str("topic")?,
            queue_id: cmd.ext_i32("queueId")?,
            set_zero_if_not_found: cmd.ext_opt(&["setZeroIfNotFound"])?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("consumerGroup", self.consumer_group);
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("queueId", self.queue_id);
        put_opt(cmd, "setZeroIfNotFound", self.set_zero_if_not_found);
    }
}

/// UPDATE_CONSUMER_OFFSET (15). `queueId` and `commitOffset` are required by Java, but a
/// request without them is answered INVALID_PARAMETER (not SYSTEM_ERROR), so they are
/// optional here and the processor refuses their absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConsumerOffsetHeader<'a> {
    pub consumer_group: &'a str,
    pub topic: &'a str,
    pub queue_id: Option<i32>,
    /// The next offset to consume.
    pub commit_offset: Option<i64>,
}

impl<'a> RequestHeader<'a> for UpdateConsumerOffsetHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(UpdateConsumerOffsetHeader {
            consumer_group: cmd.ext_str("consumerGroup")?,
            topic: cmd.ext_str("topic")?,
            queue_id: cmd.ext_opt(&["queueId"])?,
            commit_offset: cmd.ext_opt(&["commitOffset"])?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("consumerGroup", self.consumer_group);
        cmd.set_ext("topic", self.topic);
        put_opt(cmd, "queueId", self.queue_id);
        put_opt(cmd, "commitOffset", self.commit_offset);
    }
}

/// GET_MAX_OFFSET (30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMaxOffsetHeader<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    /// 5.x; read (a malformed value is refused) but every dispatched entry counts as
    /// committed in ringmq.
    pub committed: Option<bool>,
}

impl<'a> RequestHeader<'a> for GetMaxOffsetHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(GetMaxOffsetHeader {
            topic: cmd.ext_str("topic")?,
            queue_id: cmd.ext_i32("queueId")?,
            committed: cmd.ext_opt(&["committed"])?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("queueId", self.queue_id);
        put_opt(cmd, "committed", self.committed);
    }
}

/// GET_MIN_OFFSET (31).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMinOffsetHeader<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
}

impl<'a> RequestHeader<'a> for GetMinOffsetHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(GetMinOffsetHeader {
            topic: cmd.ext_str("topic")?,
            queue_id: cmd.ext_i32("queueId")?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("queueId", self.queue_id);
    }
}

/// Which side of a timestamp SEARCH_OFFSET_BY_TIMESTAMP answers (Java's `BoundaryType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BoundaryType {
    /// The first offset stored at or after the time.
    #[default]
    Lower,
    /// The last offset stored at or before the time.
    Upper,
}

impl BoundaryType {
    /// `upper` in any case (spaces around ignored) is UPPER; anything else, absent
    /// included, is LOWER, as in Java.
    pub fn parse(s: Option<&str>) -> BoundaryType {
        match s {
            Some(t) if t.trim().eq_ignore_ascii_case("upper") => BoundaryType::Upper,
            _ => BoundaryType::Lower,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BoundaryType::Lower => "LOWER",
            BoundaryType::Upper => "UPPER",
        }
    }
}

/// SEARCH_OFFSET_BY_TIMESTAMP (29).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOffsetHeader<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    /// Store time, ms since the epoch.
    pub timestamp: i64,
    pub boundary_type: BoundaryType,
}

impl<'a> RequestHeader<'a> for SearchOffsetHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(SearchOffsetHeader {
            topic: cmd.ext_str("topic")?,
            queue_id: cmd.ext_i32("queueId")?,
            timestamp: cmd.ext_i64("timestamp")?,
            boundary_type: BoundaryType::parse(cmd.ext("boundaryType")),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("queueId", self.queue_id);
        cmd.set_ext("timestamp", self.timestamp);
        cmd.set_ext("boundaryType", self.boundary_type.name());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codes::request_code as rq;
    use crate::header::test_util::text;

    fn round_trip<'a, H: RequestHeader<'a> + PartialEq + std::fmt::Debug>(
        h: &H,
        cmd: &'a mut RemotingCommand,
    ) -> H {
        h.encode(cmd);
        let cmd: &'a RemotingCommand = cmd;
        H::decode(cmd).unwrap()
    }

    #[test]
    fn errors_name_the_field() {
        let cmd = RemotingCommand::request(rq::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "T");
        let e = QueryConsumerOffsetHeader::decode(&cmd).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "queueId""#);
        let cmd = cmd
            .with_ext("queueId", 0)
            .with_ext("setZeroIfNotFound", "maybe");
        let e = QueryConsumerOffsetHeader::decode(&cmd).unwrap_err();
        assert!(e.to_string().contains("setZeroIfNotFound"), "{e}");

        let cmd = RemotingCommand::request(rq::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "T");
        let h = UpdateConsumerOffsetHeader::decode(&cmd).unwrap();
        assert_eq!((h.queue_id, h.commit_offset), (None, None));
        let e =
            UpdateConsumerOffsetHeader::decode(&cmd.with_ext("commitOffset", "1.5")).unwrap_err();
        assert!(e.to_string().contains("commitOffset"), "{e}");

        let cmd = RemotingCommand::request(rq::SEARCH_OFFSET_BY_TIMESTAMP)
            .with_ext("topic", "T")
            .with_ext("queueId", 0);
        let e = SearchOffsetHeader::decode(&cmd).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "timestamp""#);
        let e =
            GetMinOffsetHeader::decode(&RemotingCommand::request(rq::GET_MIN_OFFSET)).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "topic""#);
    }

    #[test]
    fn boundary_type_is_lenient() {
        assert_eq!(BoundaryType::parse(None), BoundaryType::Lower);
        assert_eq!(BoundaryType::parse(Some(" Upper ")), BoundaryType::Upper);
        assert_eq!(BoundaryType::parse(Some("UPPER")), BoundaryType::Upper);
        assert_eq!(BoundaryType::parse(Some("lower")), BoundaryType::Lower);
        assert_eq!(BoundaryType::parse(Some("sideways")), BoundaryType::Lower);
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            group in text(), topic in text(), queue_id in any::<i32>(), offset in any::<i64>(),
            set_zero in prop::option::of(any::<bool>()), maybe_queue in prop::option::of(any::<i32>()),
            maybe_offset in prop::option::of(any::<i64>()), upper in any::<bool>(),
        ) {
            let mut cmd = RemotingCommand::request(rq::QUERY_CONSUMER_OFFSET);
            let h = QueryConsumerOffsetHeader { consumer_group: &group, topic: &topic, queue_id, set_zero_if_not_found: set_zero };
            prop_assert_eq!(round_trip(&h, &mut cmd), h);
            let mut cmd = RemotingCommand::request(rq::UPDATE_CONSUMER_OFFSET);
            let h = UpdateConsumerOffsetHeader { consumer_group: &group, topic: &topic, queue_id: maybe_queue, commit_offset: maybe_offset };
            prop_assert_eq!(round_trip(&h, &mut cmd), h);
            let mut cmd = RemotingCommand::request(rq::GET_MAX_OFFSET);
            let h = GetMaxOffsetHeader { topic: &topic, queue_id, committed: set_zero };
            prop_assert_eq!(round_trip(&h, &mut cmd), h);
            let mut cmd = RemotingCommand::request(rq::GET_MIN_OFFSET);
            let h = GetMinOffsetHeader { topic: &topic, queue_id };
            prop_assert_eq!(round_trip(&h, &mut cmd), h);
            let mut cmd = RemotingCommand::request(rq::SEARCH_OFFSET_BY_TIMESTAMP);
            let boundary_type = if upper { BoundaryType::Upper } else { BoundaryType::Lower };
            let h = SearchOffsetHeader { topic: &topic, queue_id, timestamp: offset, boundary_type };
            prop_assert_eq!(round_trip(&h, &mut cmd), h);
        }
    }
}
