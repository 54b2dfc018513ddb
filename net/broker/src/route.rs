//! Which processor serves which request code, and the conventions they share: a
//! processor gets the broker, the connection it was called on and the request, and
//! returns the response (or a header error, answered with SYSTEM_ERROR naming the field).
//! Oneway requests get no response, ever. Unknown codes get REQUEST_CODE_NOT_SUPPORTED.

use std::sync::Arc;

use super::conn::{header_error, ConnInfo};
use super::{admin, admin_ops, clients, locks, offsets, pull, send_back, Broker};
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

/// Whether the connection loop should hand this request to `send` (batched per turn).
pub fn is_send(code: i32) -> bool {
    matches!(
        code,
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE
    )
}

/// Serves every request except sends. Returns None for oneway requests.
pub async fn process(
    b: &Arc<Broker>,
    conn: &Arc<ConnInfo>,
    req: RemotingCommand,
) -> Option<RemotingCommand> {
    let oneway = req.is_oneway();
    let started = std::time::Instant::now();
    let result = match req.code {
        rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE => pull::process(b, conn.id, &req).await,
        rq::CONSUMER_SEND_MSG_BACK => send_back::consumer_send_msg_back(b, &req).await,
        other => sync_process(b, conn, other, &req),
    };
    let response = result.unwrap_or_else(|e| header_error(&req, &e));
    b.metrics
        .rpc
        .record(req.code, response.code, started.elapsed());
    (!oneway).then_some(response)
}

fn sync_process(
    b: &Broker,
    conn: &ConnInfo,
    code: i32,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    match code {
        rq::QUERY_CONSUMER_OFFSET => offsets::query_consumer_offset(b, req),
        rq::UPDATE_CONSUMER_OFFSET => offsets::update_consumer_offset(b, req),
        rq::GET_MAX_OFFSET => offsets::get_max_offset(b, req),
        rq::GET_MIN_OFFSET => offsets::get_min_offset(b, req),
        rq::SEARCH_OFFSET_BY_TIMESTAMP => offsets::search_offset_by_timestamp(b, req),
        rq::HEART_BEAT => clients::heart_beat(b, conn, req),
        rq::UNREGISTER_CLIENT => clients::unregister_client(b, conn, req),
        rq::GET_CONSUMER_LIST_BY_GROUP => clients::get_consumer_list_by_group(b, req),
        rq::LOCK_BATCH_MQ => locks::lock_batch_mq(b, req),
        rq::UNLOCK_BATCH_MQ => locks::unlock_batch_mq(b, req),
        rq::UPDATE_AND_CREATE_TOPIC => admin::update_and_create_topic(b, req),
        rq::GET_ALL_TOPIC_CONFIG => admin::get_all_topic_config(b, req),
        rq::GET_ROUTEINFO_BY_TOPIC => admin::get_route_info_by_topic(b, req),
        rq::GET_BROKER_CLUSTER_INFO => admin::get_broker_cluster_info(b, req),
        rq::GET_BROKER_RUNTIME_INFO => admin_ops::get_broker_runtime_info(b, req),
        rq::GET_ALL_CONSUMER_OFFSET => admin::get_all_consumer_offset(b, req),
        rq::GET_ALL_DELAY_OFFSET => admin::get_all_delay_offset(b, req),
        rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => admin::get_all_subscription_group_config(b, req),
        rq::DELETE_TOPIC_IN_BROKER => admin_ops::delete_topic_in_broker(b, req),
        rq::GET_TOPIC_STATS_INFO => admin_ops::get_topic_stats_info(b, req),
        rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            admin_ops::update_and_create_subscription_group(b, req)
        }
        rq::DELETE_SUBSCRIPTIONGROUP => admin_ops::delete_subscription_group(b, req),
        rq::GET_CONSUME_STATS => admin_ops::get_consume_stats(b, req),
        rq::GET_CONSUMER_CONNECTION_LIST => admin_ops::get_consumer_connection_list(b, req),
        rq::VIEW_MESSAGE_BY_ID => admin_ops::view_message_by_id(b, req),
        rq::INVOKE_BROKER_TO_RESET_OFFSET => admin_ops::invoke_broker_to_reset_offset(b, req),
        rq::GET_BROKER_CONFIG => admin_ops::get_broker_config(b, req),
        rq::UPDATE_BROKER_CONFIG => admin_ops::update_broker_config(b, req),
        other => Ok(RemotingCommand::response_to(
            req,
            rs::REQUEST_CODE_NOT_SUPPORTED,
            Some(format!(" request type {other} not supported")),
        )),
    }
}
