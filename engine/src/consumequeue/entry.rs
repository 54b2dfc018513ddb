//! One ConsumeQueue entry, [`CqEntry`]: the 20 big-endian bytes RocketMQ stores per
//! message (physical offset, size, tags code), and the sizes of the index files. Pure data;
//! any thread.

/// Bytes per ConsumeQueue entry (RocketMQ `CQ_STORE_UNIT_SIZE`).
pub const CQ_ENTRY_SIZE: usize = 20;
/// RocketMQ's default entries per file (`mappedFileSizeConsumeQueue` = 300 000 x 20 bytes).
pub const DEFAULT_ENTRIES_PER_FILE: usize = 300_000;

pub(super) const ENTRY_BYTES: i64 = CQ_ENTRY_SIZE as i64;

/// One ConsumeQueue entry: where the message's record lies in the CommitLog and its tag hash
/// (for `SCHEDULE_TOPIC_XXXX`, the delivery time). Stored big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CqEntry {
    pub phys_offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

impl CqEntry {
    /// RocketMQ's filler for the slots before a queue's first entry (`fillPreBlank`).
    pub const BLANK: CqEntry = CqEntry {
        phys_offset: 0,
        size: i32::MAX,
        tags_code: 0,
    };

    pub fn encode(&self) -> [u8; CQ_ENTRY_SIZE] {
        let mut b = [0u8; CQ_ENTRY_SIZE];
        b[0..8].copy_from_slice(&self.phys_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    /// Decodes the first 20 bytes of `b` (panics if shorter: a caller bug).
    pub fn decode(b: &[u8]) -> CqEntry {
        let b: &[u8; CQ_ENTRY_SIZE] = b[..CQ_ENTRY_SIZE].try_into().expect("20 bytes");
        CqEntry {
            phys_offset: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            size: i32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
            tags_code: i64::from_be_bytes(b[12..20].try_into().expect("8 bytes")),
        }
    }

    /// RocketMQ's rule for a written entry; zeroed (unwritten) slots fail it.
    pub fn is_valid(&self) -> bool {
        self.phys_offset >= 0 && self.size > 0
    }

    pub fn is_blank(&self) -> bool {
        *self == Self::BLANK
    }

    /// CommitLog offset just past the record.
    pub fn phys_end(&self) -> i64 {
        self.phys_offset + i64::from(self.size)
    }
}
