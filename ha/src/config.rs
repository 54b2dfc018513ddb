//! HA settings, named after RocketMQ's `MessageStoreConfig` keys (spec 7.6). Plain data:
//! read by every HA thread, owned by none.

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

/// Master and slave HA settings.
#[derive(Debug, Clone)]
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
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            transfer_batch_size: 32 * 1024,
            heartbeat_interval: Duration::from_secs(5),
            housekeeping_interval: Duration::from_secs(20),
            reconnect_interval: Duration::from_secs(3),
            empty_slave_start: EmptySlaveStart::Oldest,
        }
    }
}
