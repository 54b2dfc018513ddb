//! Admin and name-server-style requests with headers: UPDATE_AND_CREATE_TOPIC (17) and
//! GET_ROUTEINFO_BY_TOPIC (105) (spec §3.12, §3.15). The GET_ALL_* requests, runtime info
//! and cluster info carry no header fields.

use crate::command::RemotingCommand;
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

/// UPDATE_AND_CREATE_TOPIC (17) (`CreateTopicRequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicHeader<'a> {
    pub topic: &'a str,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    /// `SINGLE_TAG` or `MULTI_TAG` as sent; the broker checks it (INVALID_PARAMETER).
    pub topic_filter_type: Option<&'a str>,
    /// 0 when absent.
    pub topic_sys_flag: i32,
    /// false when absent.
    pub order: bool,
    /// Read (a malformed value is refused), not acted on.
    pub force: Option<bool>,
    /// Attribute changes, `+key=value,-key` (5.x).
    pub attributes: Option<&'a str>,
}

impl<'a> RequestHeader<'a> for CreateTopicHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(CreateTopicHeader {
            topic: cmd.ext_str("topic")?,
            read_queue_nums: cmd.ext_i32("readQueueNums")?,
            write_queue_nums: cmd.ext_i32("writeQueueNums")?,
            perm: cmd.ext_i32("perm")?,
            topic_sys_flag: cmd.ext_opt(&["topicSysFlag"])?.unwrap_or(0),
            order: cmd.ext_opt(&["order"])?.unwrap_or(false),
            force: cmd.ext_opt(&["force"])?,
            topic_filter_type: cmd.ext("topicFilterType"),
            attributes: cmd.ext("attributes"),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
        cmd.set_ext("readQueueNums", self.read_queue_nums);
        cmd.set_ext("writeQueueNums", self.write_queue_nums);
        cmd.set_ext("perm", self.perm);
        put_opt(cmd, "topicFilterType", self.topic_filter_type);
        cmd.set_ext("topicSysFlag", self.topic_sys_flag);
        cmd.set_ext("order", self.order);
        put_opt(cmd, "force", self.force);
        put_opt(cmd, "attributes", self.attributes);
    }
}

/// GET_ROUTEINFO_BY_TOPIC (105).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRouteInfoHeader<'a> {
    pub topic: &'a str,
    /// Read (a malformed value is refused); the broker always answers standard JSON.
    pub accept_standard_json_only: Option<bool>,
}

impl<'a> RequestHeader<'a> for GetRouteInfoHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(GetRouteInfoHeader {
            topic: cmd.ext_str("topic")?,
            accept_standard_json_only: cmd.ext_opt(&["acceptStandardJsonOnly"])?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("topic", self.topic);
        put_opt(
            cmd,
            "acceptStandardJsonOnly",
            self.accept_standard_json_only,
        );
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codes::request_code as rq;
    use crate::header::test_util::text;

    #[test]
    fn defaults_and_errors() {
        let cmd = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "T")
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4);
        let e = CreateTopicHeader::decode(&cmd).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "perm""#);
        let cmd = cmd.with_ext("perm", 6);
        let h = CreateTopicHeader::decode(&cmd).unwrap();
        assert_eq!((h.topic_sys_flag, h.order, h.force), (0, false, None));
        assert_eq!((h.topic_filter_type, h.attributes), (None, None));
        let e = CreateTopicHeader::decode(&cmd.with_ext("order", "1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"header field "order" has value "1", expected true or false"#
        );
        let cmd = RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", "T")
            .with_ext("acceptStandardJsonOnly", "x");
        assert!(GetRouteInfoHeader::decode(&cmd).is_err());
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            topic in text(), r in any::<i32>(), w in any::<i32>(), perm in any::<i32>(),
            filter in prop::option::of(text()), sys in any::<i32>(), order in any::<bool>(),
            force in prop::option::of(any::<bool>()), attributes in prop::option::of(text()),
        ) {
            let h = CreateTopicHeader {
                topic: &topic,
                read_queue_nums: r,
                write_queue_nums: w,
                perm,
                topic_filter_type: filter.as_deref(),
                topic_sys_flag: sys,
                order,
                force,
                attributes: attributes.as_deref(),
            };
            let mut cmd = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC);
            h.encode(&mut cmd);
            prop_assert_eq!(CreateTopicHeader::decode(&cmd).unwrap(), h);

            let h = GetRouteInfoHeader { topic: &topic, accept_standard_json_only: force };
            let mut cmd = RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC);
            h.encode(&mut cmd);
            prop_assert_eq!(GetRouteInfoHeader::decode(&cmd).unwrap(), h);
        }
    }
}
