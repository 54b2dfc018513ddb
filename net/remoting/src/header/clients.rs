//! Client registrations: UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38), and the
//! broker → client NOTIFY_CONSUMER_IDS_CHANGED (40) (spec §3.6-§3.8). HEART_BEAT (34)
//! carries its data in the body.

use crate::command::RemotingCommand;
use crate::error::FrameError;

use super::{put_opt, RequestHeader};

/// UNREGISTER_CLIENT (35). The groups are as sent; the broker treats an empty one as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnregisterClientHeader<'a> {
    pub client_id: &'a str,
    pub producer_group: Option<&'a str>,
    pub consumer_group: Option<&'a str>,
}

impl<'a> RequestHeader<'a> for UnregisterClientHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(UnregisterClientHeader {
            client_id: cmd.ext_str("clientID")?,
            producer_group: cmd.ext("producerGroup"),
            consumer_group: cmd.ext("consumerGroup"),
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("clientID", self.client_id);
        put_opt(cmd, "producerGroup", self.producer_group);
        put_opt(cmd, "consumerGroup", self.consumer_group);
    }
}

/// GET_CONSUMER_LIST_BY_GROUP (38).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumerListHeader<'a> {
    pub consumer_group: &'a str,
}

impl<'a> RequestHeader<'a> for GetConsumerListHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(GetConsumerListHeader {
            consumer_group: cmd.ext_str("consumerGroup")?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("consumerGroup", self.consumer_group);
    }
}

/// NOTIFY_CONSUMER_IDS_CHANGED (40), sent oneway by the broker to every member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConsumerIdsChangedHeader<'a> {
    pub consumer_group: &'a str,
}

impl<'a> RequestHeader<'a> for NotifyConsumerIdsChangedHeader<'a> {
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError> {
        Ok(NotifyConsumerIdsChangedHeader {
            consumer_group: cmd.ext_str("consumerGroup")?,
        })
    }

    fn encode(&self, cmd: &mut RemotingCommand) {
        cmd.set_ext("consumerGroup", self.consumer_group);
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
        let cmd = RemotingCommand::request(rq::UNREGISTER_CLIENT).with_ext("consumerGroup", "G");
        let e = UnregisterClientHeader::decode(&cmd).unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "clientID""#);
        let e = GetConsumerListHeader::decode(&RemotingCommand::request(
            rq::GET_CONSUMER_LIST_BY_GROUP,
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), r#"missing header field "consumerGroup""#);
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            id in text(), producer in prop::option::of(text()), consumer in prop::option::of(text()),
        ) {
            let h = UnregisterClientHeader {
                client_id: &id,
                producer_group: producer.as_deref(),
                consumer_group: consumer.as_deref(),
            };
            let mut cmd = RemotingCommand::request(rq::UNREGISTER_CLIENT);
            h.encode(&mut cmd);
            prop_assert_eq!(UnregisterClientHeader::decode(&cmd).unwrap(), h);

            let h = GetConsumerListHeader { consumer_group: &id };
            let mut cmd = RemotingCommand::request(rq::GET_CONSUMER_LIST_BY_GROUP);
            h.encode(&mut cmd);
            prop_assert_eq!(GetConsumerListHeader::decode(&cmd).unwrap(), h);

            let h = NotifyConsumerIdsChangedHeader { consumer_group: &id };
            let mut cmd = RemotingCommand::request(rq::NOTIFY_CONSUMER_IDS_CHANGED);
            h.encode(&mut cmd);
            prop_assert_eq!(NotifyConsumerIdsChangedHeader::decode(&cmd).unwrap(), h);
        }
    }
}
