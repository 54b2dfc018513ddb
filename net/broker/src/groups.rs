//! Subscription groups as requests name them (pull, heartbeat, lock, send-back): found,
//! or auto-created when `autoCreateSubscriptionGroup` allows it and the name is legal.
//! Every path that may add a group goes through [`find_or_create`], so the name rules
//! hold for the whole table.
//!
//! Runs on: the network core of the request.

use ringmq_engine::meta::SubscriptionGroupConfig;
use ringmq_remoting::codes::response_code as rs;

use super::{validate, Broker};

/// Why a group cannot be used: Apache RocketMQ's response code and a remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i32,
    pub remark: String,
}

/// Java's `findSubscriptionGroupConfig`, behind the name rules: the group's config, or
/// INVALID_PARAMETER for an illegal name, SUBSCRIPTION_GROUP_NOT_EXIST for an unknown
/// group the broker may not create.
pub fn find_or_create(b: &Broker, group: &str) -> Result<SubscriptionGroupConfig, Refusal> {
    if let Some(c) = b.subscription_groups.get(group) {
        return Ok(c);
    }
    if let Err(why) = validate::group_name(group) {
        return Err(Refusal {
            code: rs::INVALID_PARAMETER,
            remark: why,
        });
    }
    let count = b.subscription_groups.len();
    if b.cfg.auto_create_subscription_group && count >= b.cfg.max_subscription_groups {
        return Err(Refusal {
            code: rs::SYSTEM_ERROR,
            remark: format!(
                "the subscription group table is full ({count} groups, maxSubscriptionGroups)"
            ),
        });
    }
    // In memory; the housekeeping thread writes the table (no file I/O on a network core).
    let (config, created) = b
        .subscription_groups
        .get_or_add(group, b.cfg.auto_create_subscription_group);
    if created {
        b.mark_groups_dirty();
        tracing::info!(group, "auto-created subscription group");
    }
    config.ok_or_else(|| Refusal {
        code: rs::SUBSCRIPTION_GROUP_NOT_EXIST,
        remark: format!("subscription group [{group}] does not exist"),
    })
}
