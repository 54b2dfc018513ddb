//! Typed request headers: each request the broker serves, read out of `extFields` once
//! (spec §1.7, §3, §5.1), so a processor works with fields rather than string look-ups.
//!
//! | file | headers |
//! | --- | --- |
//! | [`send`] | SEND_MESSAGE (10, long names), SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (310/320, `a`..`n`) |
//! | [`pull`] | PULL_MESSAGE / LITE_PULL_MESSAGE (11/361) |
//! | [`offsets`] | QUERY/UPDATE_CONSUMER_OFFSET (14/15), GET_MAX/MIN_OFFSET (30/31), SEARCH_OFFSET_BY_TIMESTAMP (29) |
//! | [`clients`] | UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38), NOTIFY_CONSUMER_IDS_CHANGED (40) |
//! | [`admin`] | UPDATE_AND_CREATE_TOPIC (17), GET_ROUTEINFO_BY_TOPIC (105) |
//! | [`send_back`] | CONSUMER_SEND_MSG_BACK (36) |
//! | [`admin_ops`] | mqadmin's broker requests: 215, 207, 202, 208, 203, 33, 222 |
//!
//! HEART_BEAT (34), LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42) carry everything in their
//! JSON bodies and the GET_ALL_* / runtime-info requests carry nothing, so they have no
//! header type.
//!
//! Headers borrow their strings from the command they were decoded from: decoding
//! allocates nothing unless a field is bad. A missing required field is
//! [`FrameError::MissingField`], a field that does not parse [`FrameError::MalformedField`];
//! both name the field, and the broker answers them with SYSTEM_ERROR. Optional fields
//! carry the default the broker has always used. Unknown keys are ignored (§1.7).
//!
//! Runs on: whichever thread decodes the command (the broker's network cores).

pub mod admin;
pub mod admin_ops;
pub mod clients;
pub mod offsets;
pub mod pull;
pub mod send;
pub mod send_back;

use crate::command::RemotingCommand;
use crate::error::FrameError;

pub use admin::{CreateTopicHeader, GetRouteInfoHeader};
pub use clients::{GetConsumerListHeader, NotifyConsumerIdsChangedHeader, UnregisterClientHeader};
pub use offsets::{
    BoundaryType, GetMaxOffsetHeader, GetMinOffsetHeader, QueryConsumerOffsetHeader,
    SearchOffsetHeader, UpdateConsumerOffsetHeader,
};
pub use pull::PullMessageHeader;
pub use send::SendMessageHeader;
pub use send_back::SendBackHeader;

/// A request's custom header, read from and written to a command's `extFields`.
pub trait RequestHeader<'a>: Sized {
    /// Reads the header of `cmd`, naming the first missing or malformed field.
    fn decode(cmd: &'a RemotingCommand) -> Result<Self, FrameError>;

    /// Writes every field that has a value into `cmd`'s `extFields` (absent optional
    /// fields are left out, as Java leaves out null ones).
    fn encode(&self, cmd: &mut RemotingCommand);
}

/// Sets `key` when `value` is present.
fn put_opt(cmd: &mut RemotingCommand, key: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        cmd.set_ext(key, v);
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use proptest::prelude::*;

    /// A header string as a client might send it: any non-control text, empty included.
    pub fn text() -> impl Strategy<Value = String> {
        "[^\\x00-\\x1f]{0,24}"
    }
}
