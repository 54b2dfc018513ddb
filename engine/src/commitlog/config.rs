//! CommitLog settings, named after RocketMQ's `MessageStoreConfig` keys where one exists.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// RocketMQ's `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Acknowledge once the record is in the tail ring in shared memory, or else once
    /// its O_DIRECT write completed: either survives a broker process crash, not a power
    /// cut (see `tail_shm_dir`, `ack_before_write`); fdatasync every `flush_interval`.
    Async,
    /// Acknowledge only once the record is durable (group commit).
    Sync,
}

/// How a SYNC_FLUSH write is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMethod {
    /// The write itself carries RWF_DSYNC (FUA where the device supports it).
    Dsync,
    /// A plain write linked to an fdatasync in the same submission.
    Fdatasync,
}

#[derive(Debug, Clone)]
pub struct CommitLogConfig {
    /// `<storePathRootDir>/commitlog`.
    pub dir: PathBuf,
    /// `mappedFileSizeCommitLog`: bytes per segment file (multiple of 4096).
    pub segment_size: u64,
    /// `flushDiskType`.
    pub flush_mode: FlushMode,
    pub sync_method: SyncMethod,
    /// `syncFlushTimeout`: past it a SYNC_FLUSH append reports FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout: Duration,
    /// `flushIntervalCommitLog`: the ASYNC_FLUSH fdatasync period.
    pub flush_interval: Duration,
    /// Bytes of the most recent log kept in memory (multiple of 4096, >= 4 max records).
    pub ring_capacity: usize,
    /// `maxMessageSize`: largest body accepted.
    pub max_message_size: usize,
    /// Address written into every record's STOREHOST and used for offsetMsgId.
    pub store_host: SocketAddr,
    /// Core the writer thread is pinned to (None: not pinned).
    pub writer_core: Option<usize>,
    /// Bounded length of the append queue between callers and the writer.
    pub queue_capacity: usize,
    /// Write zeros over a new segment after fallocate, so later durable writes need no
    /// extent conversion (a journal commit each). None: only under SYNC_FLUSH, where it
    /// cuts the durable-write latency; under ASYNC_FLUSH it would only cost bandwidth.
    pub zero_fill_segments: Option<bool>,
    /// How long the writer busy-polls its queue and completions before it sleeps. A
    /// pinned writer trades this much CPU after each burst for not paying a cross-core
    /// wake-up (10-20 us in a VM) on the next append. 0 turns it off (tests on 2 cores).
    pub writer_spin: Duration,
    /// Answer an append that does not wait for durability (ASYNC_FLUSH, or `WAIT=false`)
    /// as soon as it is in the writer's in-memory tail ring, before its write. Faster
    /// answers, but a broker process crash (kill -9, OOM kill) LOSES acknowledged
    /// messages. Default false: such an append is answered once its O_DIRECT write
    /// completed (`write_end` covers it), so it survives a process crash as RocketMQ's
    /// page-cache write does; a power cut may still lose it until the next fdatasync.
    /// A broker.conf key for it should name the loss (`ackBeforeWrite`).
    /// Moot when the ring lives in shared memory (`tail_shm_dir`): then every such
    /// append is answered from the ring, and survives a process crash all the same.
    pub ack_before_write: bool,
    /// `tailRingShmDir`: a tmpfs directory for the tail ring's file (default `/dev/shm`).
    /// There the ring outlives a crash of the broker process, and start-up writes back
    /// what it holds (see `commitlog::crash_tail`), so an ASYNC_FLUSH append is answered
    /// as soon as it is in the ring: it survives a kill -9 as RocketMQ's page cache write
    /// does (not a power cut). None, or a directory that is not a tmpfs: the ring is
    /// private memory and such appends wait for their O_DIRECT write.
    pub tail_shm_dir: Option<PathBuf>,
    /// `enabledAppendPropCRC`: every appended record carries RocketMQ's whole-record CRC
    /// property (`__CRC32#`, 20 bytes), so recovery and reads can tell a record torn
    /// anywhere (header, topic, properties), not only in its body. Default false, as
    /// RocketMQ has it. Records that carry the property are verified whatever this says.
    pub append_prop_crc: bool,
}

impl CommitLogConfig {
    /// Defaults as RocketMQ has them, for a store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CommitLogConfig {
            dir: root.into().join("commitlog"),
            segment_size: 1 << 30,
            flush_mode: FlushMode::Async,
            sync_method: SyncMethod::Dsync,
            sync_flush_timeout: Duration::from_secs(5),
            flush_interval: Duration::from_millis(500),
            ring_capacity: 64 << 20,
            max_message_size: 4 << 20,
            store_host: "127.0.0.1:10911".parse().expect("literal address"),
            writer_core: None,
            queue_capacity: 8192,
            zero_fill_segments: None,
            writer_spin: Duration::from_micros(50),
            ack_before_write: false,
            tail_shm_dir: Some(PathBuf::from("/dev/shm")),
            append_prop_crc: false,
        }
    }

    /// Whether new segments are zero-filled (see `zero_fill_segments`).
    pub fn zero_fill(&self) -> bool {
        self.zero_fill_segments
            .unwrap_or(self.flush_mode == FlushMode::Sync)
    }

    /// The largest record the log must hold: body limit plus header, topic and properties.
    pub fn max_record_size(&self) -> u64 {
        self.max_message_size as u64 + 64 * 1024
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let bad = |why: String| Err(crate::Error::Invalid(why));
        if !self.segment_size.is_multiple_of(4096) || self.segment_size < 64 * 1024 {
            return bad(format!(
                "mappedFileSizeCommitLog {} must be a multiple of 4096 and >= 64 KiB",
                self.segment_size
            ));
        }
        if !self.ring_capacity.is_multiple_of(4096)
            || (self.ring_capacity as u64) < 4 * self.max_record_size().min(self.segment_size)
        {
            return bad(format!(
                "tail ring of {} bytes is too small for records of {}",
                self.ring_capacity,
                self.max_record_size()
            ));
        }
        if self.ring_capacity > 512 << 20 {
            return bad("tail ring larger than 512 MiB cannot be registered with io_uring".into());
        }
        Ok(())
    }
}
