//! UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) and DELETE_SUBSCRIPTIONGROUP (207).

use super::{error, success};
use crate::Broker;
use ringmq_engine::meta::SubscriptionGroupConfig;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::admin_ops::DeleteGroupHeader;
use ringmq_remoting::header::RequestHeader;

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): the body is a `SubscriptionGroupConfig`
/// (fastjson), stored whole (created or replaced).
pub fn update_and_create_subscription_group(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let config: SubscriptionGroupConfig = match ringmq_engine::meta::json::from_slice(&req.body) {
        Ok(c) => c,
        Err(e) => {
            return Ok(error(
                req,
                rs::INVALID_PARAMETER,
                format!("bad SubscriptionGroupConfig body: {e}"),
            ))
        }
    };
    let group = config.group_name.clone();
    if let Err(why) = validate_group_name(&group) {
        return Ok(error(req, rs::INVALID_PARAMETER, why));
    }
    if config.retry_queue_nums < 0 || config.retry_max_times < -1 {
        return Ok(error(
            req,
            rs::INVALID_PARAMETER,
            "retryQueueNums must be >= 0 and retryMaxTimes >= -1",
        ));
    }
    match b.subscription_groups.put(config) {
        Ok(()) => {
            tracing::info!(
                group,
                "subscription group created or updated by admin request"
            );
            Ok(success(req))
        }
        Err(e) => Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("cannot store subscription group {group}: {e}"),
        )),
    }
}

/// DELETE_SUBSCRIPTIONGROUP (207): forgets the group's config and, with `cleanOffset`, its
/// committed offsets on every topic. Deleting a group that does not exist succeeds (Java).
pub fn delete_subscription_group(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = DeleteGroupHeader::decode(req)?;
    if let Err(e) = b.subscription_groups.remove(h.group_name) {
        return Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("cannot delete subscription group {}: {e}", h.group_name),
        ));
    }
    if h.clean_offset {
        b.consumer_offsets.remove_group(h.group_name);
        if let Err(e) = b.consumer_offsets.persist() {
            tracing::error!(error = %e, "persisting consumer offsets after a group deletion failed");
        }
    }
    tracing::info!(
        group = h.group_name,
        clean_offset = h.clean_offset,
        "subscription group deleted by admin request"
    );
    Ok(success(req))
}

/// RocketMQ's group-name rule: 1..=255 of `[%|a-zA-Z0-9_-]`.
fn validate_group_name(group: &str) -> Result<(), String> {
    if group.is_empty() || group.len() > 255 {
        return Err(format!("group name {group:?} must be 1..=255 characters"));
    }
    if !group
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'%' | b'|' | b'_' | b'-'))
    {
        return Err(format!(
            "group name {group:?} contains characters other than [%|a-zA-Z0-9_-]"
        ));
    }
    Ok(())
}
