//! GET_CONSUMER_LIST_BY_GROUP (38) (spec §3.7, §6.11): the clientIDs of a consumer group.
//!
//! Runs on: the network core of the connection the request came on.

use serde_json::json;

use crate::Broker;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::{GetConsumerListHeader, RequestHeader};

/// GET_CONSUMER_LIST_BY_GROUP (38): body `{"consumerIdList":[...]}` (§3.7, §6.11).
pub fn get_consumer_list_by_group(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let group = GetConsumerListHeader::decode(req)?.consumer_group;
    let ids = b.clients.consumer_ids(group);
    if ids.is_empty() {
        tracing::warn!(
            group,
            "GET_CONSUMER_LIST_BY_GROUP for a group without consumers"
        );
        return Ok(RemotingCommand::response_to(
            req,
            rs::SYSTEM_ERROR,
            Some(format!("no consumer for this group, {group}")),
        ));
    }
    let body = json!({ "consumerIdList": ids }).to_string();
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None).with_body(body))
}
