//! Client registrations: HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP
//! (38), and the broker → client NOTIFY_CONSUMER_IDS_CHANGED (40) (spec §3.5-§3.8, §6.2).
//!
//! | file | owns | runs on |
//! | --- | --- | --- |
//! | `heartbeat_data` | the HEART_BEAT body (`HeartbeatData`, `SubscriptionData`), parsed tolerantly | network cores |
//! | `registry` | [`ClientRegistry`]: consumer and producer members per group, register, unregister, look-ups | network cores, housekeeping |
//! | `notify` | NOTIFY_CONSUMER_IDS_CHANGED to every member of a changed group | whoever changed it |
//! | `expiry` | dropping members idle for 120 s or whose connection closed | housekeeping, network cores |
//! | `heart_beat` | the HEART_BEAT processor | network cores |
//! | `unregister` | the UNREGISTER_CLIENT processor | network cores |
//! | `consumer_list` | the GET_CONSUMER_LIST_BY_GROUP processor | network cores |
//! | `views` | counts and outboxes for admin requests and metrics | network cores, scrape thread |
//!
//! Imports run one way: the processors use the registry and the body parser; `notify` and
//! `expiry` add methods to the registry; the registry imports only the body types.

mod consumer_list;
mod expiry;
mod heart_beat;
mod heartbeat_data;
mod notify;
mod registry;
#[cfg(test)]
mod tests;
mod unregister;
mod views;

pub use consumer_list::get_consumer_list_by_group;
pub use expiry::CHANNEL_EXPIRED_TIMEOUT;
pub use heart_beat::{heart_beat, MAX_GROUPS_PER_HEARTBEAT, MAX_SUBSCRIPTIONS_PER_CONSUMER};
pub use heartbeat_data::SubscriptionData;
pub use notify::BROADCASTING;
pub use registry::{ClientRegistry, ConsumerMember, ProducerMember};
pub use unregister::unregister_client;
