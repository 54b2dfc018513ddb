//! HA settings, named after RocketMQ's `MessageStoreConfig` keys (spec 7.6). Plain data:
//! read by every HA thread, owned by none.

use std::fmt;
use std::time::Duration;

/// Where the master starts streaming to a slave whose first report is 0 (an empty slave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptySlaveStart {
    /// The master's oldest stored byte (`CommitLog::min_offset`). ringmq's default: the
    /// engine's raw append needs a slave log that is contiguous from its first byte, and
    /// an empty ringmq store begins at 0, so it can only follow a full copy.
    #[default]
    Oldest,
    /// RocketMQ's rule (spec 7.4): the start of the master's last CommitLog file,
    /// `max - max % mappedFileSizeCommitLog`. Right for Java slaves, which create their
    /// first file at whatever offset the first frame carries.
    LastSegment,
}

/// Master and slave HA settings. `Debug` shows whether a token is set, never the token.
#[derive(Clone)]
pub struct HaConfig {
    /// `haTransferBatchSize` (32 KiB): most CommitLog bytes in one transfer frame. The
    /// slave refuses larger frames, so both sides must agree.
    pub transfer_batch_size: usize,
    /// `haSendHeartbeatInterval` (5 s): the master sends an empty frame after this long
    /// without data; the slave reports its offset at least this often.
    pub heartbeat_interval: Duration,
    /// `haHousekeepingInterval` (20 s): a peer that sends nothing for this long is dropped.
    pub housekeeping_interval: Duration,
    /// Pause between a slave's failed connection (or lost session) and its next attempt.
    /// RocketMQ waits 5 s; ringmq 3 s.
    pub reconnect_interval: Duration,
    /// Where an empty slave starts (see [`EmptySlaveStart`]).
    pub empty_slave_start: EmptySlaveStart,
    /// `haAuthToken`: when set, every HA connection opens with the auth handshake of
    /// [`crate::auth`] (both sides need the same token); None speaks the classic protocol.
    pub auth_token: Option<String>,
    /// This broker's `brokerClusterName`. A slave sends it in the handshake; a master with
    /// it set refuses an authenticated slave of another cluster.
    pub cluster_name: Option<String>,
    /// This broker's `brokerName` (a master and its slaves share it). A slave sends it in
    /// the handshake; a master with it set refuses a slave of another broker group.
    pub broker_name: Option<String>,
    /// `haCore`: the core the master's HA loop is pinned to; None leaves it unpinned
    /// (the broker sets it only with `pinThreads`).
    pub core: Option<usize>,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            transfer_batch_size: 32 * 1024,
            heartbeat_interval: Duration::from_secs(5),
            housekeeping_interval: Duration::from_secs(20),
            reconnect_interval: Duration::from_secs(3),
            empty_slave_start: EmptySlaveStart::Oldest,
            auth_token: None,
            cluster_name: None,
            broker_name: None,
            core: None,
        }
    }
}

impl fmt::Debug for HaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HaConfig")
            .field("transfer_batch_size", &self.transfer_batch_size)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("housekeeping_interval", &self.housekeeping_interval)
            .field("reconnect_interval", &self.reconnect_interval)
            .field("empty_slave_start", &self.empty_slave_start)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("cluster_name", &self.cluster_name)
            .field("broker_name", &self.broker_name)
            .field("core", &self.core)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_never_shows_the_token() {
        let cfg = super::HaConfig {
            auth_token: Some("s3cret".into()),
            ..Default::default()
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
