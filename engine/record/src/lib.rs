//! ringmq-record: RocketMQ's stored-record layout (spec `rocketmq-wire.md` §4.1–§4.10).
//!
//! Its own crate so that the client (which decodes pulled records and encodes batch bodies)
//! depends on the byte layout only, not on the CommitLog writer or io_uring.
//!
//! This module owns the bytes of one CommitLog record and everything derived from them:
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | magics, size limits, fixed field positions, sysFlag bits |
//! | `crc.rs` | masked CRC32 (§4.10) |
//! | `tags.rs` | tags hash = Java `String.hashCode` (§4.9) |
//! | `prop_crc.rs` | the whole-record CRC property `__CRC32#` (RocketMQ 5's `enabledAppendPropCRC`) |
//! | `properties.rs` | the `\x01`/`\x02` properties string and well-known keys (§4.1, §4.2) |
//! | `encode.rs` | [`MessageToStore`] → record bytes on the writer thread (§4.5), blank marker (§4.6) |
//! | `decode.rs` | zero-copy [`RecordView`] over stored bytes, validation (§4.5, §4.6) |
//! | `batch.rs` | the client-side batch body (§4.3) |
//! | `msgid.rs` | offsetMsgId (§4.7) |
//! | `uniq_key.rs` | UNIQ_KEY generation |
//! | `clock.rs` | wall-clock milliseconds, as RocketMQ stamps them |
//! | `error.rs` | [`Error`]: corrupt bytes or an invalid message |
//!
//! All integers are big-endian. Nothing here does I/O.

mod batch;
pub mod clock;
mod crc;
mod decode;
mod encode;
mod error;
mod msgid;
mod prop_crc;
mod properties;
mod tags;
mod uniq_key;

pub use batch::{decode_batch, encode_batch, encode_batch_item, BatchItem, BATCH_ITEM_OVERHEAD};
pub use crc::crc32;
pub use decode::{parse, parse_with_limit, peek_store_timestamp, Parsed, RecordView};
pub use encode::{encode_blank, MessageToStore, StoreFields};
pub use error::{Error, Result};
pub use msgid::{decode_offset_msg_id, offset_msg_id, OffsetMsgId};
pub use prop_crc::{
    fill_prop_crc, has_prop_crc, prop_crc_matches, reserve_prop_crc, CRC32_RESERVED_LEN,
    PROPERTY_CRC32,
};
pub use properties::{
    decode_properties, edit_properties, encode_properties, encode_properties_into, find_property,
    keys, put_property, PropertyIter,
};
pub use tags::tags_hash;
pub use uniq_key::new_uniq_key;

/// Magic code of a v1 record (1-byte topic length).
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic code of a v2 record (2-byte topic length; used when the topic is longer than 127).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic code of the end-of-file blank marker (§4.6).
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;
/// Size of the blank marker: `int remaining` + `int BLANK_MAGIC`. A record is only written
/// into a file if `record_len + END_FILE_MIN_BLANK_LENGTH <= remaining`.
pub const END_FILE_MIN_BLANK_LENGTH: usize = 8;
/// Default `maxMessageSize`: largest accepted body (4 MiB).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Largest total record size [`parse`] accepts: a maximal body plus 64 KiB of headers,
/// topic and properties.
pub const MAX_RECORD_SIZE: usize = MAX_MESSAGE_SIZE + 64 * 1024;
/// Smallest possible record: IPv4 hosts, magic v1, empty body, topic and properties.
pub const MIN_RECORD_SIZE: usize = 91;
/// Longest topic (UTF-8 bytes) for ordinary topics.
pub const TOPIC_MAX_LEN: usize = 127;
/// Longest topic (UTF-8 bytes) for `%RETRY%` / `%DLQ%` topics (stored with magic v2).
pub const RETRY_TOPIC_MAX_LEN: usize = 255;
/// Longest properties string (stored as a signed 2-byte length).
pub const PROPERTIES_MAX_LEN: usize = i16::MAX as usize;
/// Largest queue id a record may carry: the store indexes each topic's ConsumeQueues by
/// id, so anything above this could not be indexed (and would make per-queue tables huge).
pub const MAX_QUEUE_ID: i32 = 65_535;
/// Prefix of retry topics.
pub const RETRY_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of dead-letter topics.
pub const DLQ_TOPIC_PREFIX: &str = "%DLQ%";

/// Fixed byte positions inside a record (valid for every host-address variant).
pub mod pos {
    pub const TOTAL_SIZE: usize = 0;
    pub const MAGIC: usize = 4;
    pub const BODY_CRC: usize = 8;
    pub const QUEUE_ID: usize = 12;
    pub const FLAG: usize = 16;
    pub const QUEUE_OFFSET: usize = 20;
    pub const PHYSICAL_OFFSET: usize = 28;
    pub const SYS_FLAG: usize = 36;
    pub const BORN_TIMESTAMP: usize = 40;
    /// Start of the born host; everything after it depends on the address families.
    pub const BORN_HOST: usize = 48;
}

/// Message sysFlag bits (§4.4).
pub mod sysflag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    /// Mask of the two transaction-type bits.
    pub const TRANSACTION_MASK: i32 = 0xC;
    pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOSTADDRESS_V6: i32 = 0x20;
    pub const NEED_UNWRAP: i32 = 0x40;
    pub const INNER_BATCH: i32 = 0x80;
    /// Mask of the compression-type bits (0 is read as ZLIB).
    pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
    pub const COMPRESSION_LZ4: i32 = 0x100;
    pub const COMPRESSION_ZSTD: i32 = 0x200;
    pub const COMPRESSION_ZLIB: i32 = 0x300;

    /// The transaction type bits of `sys_flag` (one of the `TRANSACTION_*_TYPE` values).
    #[inline]
    pub fn transaction_type(sys_flag: i32) -> i32 {
        sys_flag & TRANSACTION_MASK
    }
}

/// Size of a host field: 4-byte IPv4 or 16-byte IPv6 address, plus a 4-byte port.
#[inline]
pub(crate) fn host_len(addr: &std::net::SocketAddr) -> usize {
    match addr {
        std::net::SocketAddr::V4(_) => 8,
        std::net::SocketAddr::V6(_) => 20,
    }
}

/// Properties as the broker stores them: no NUL byte, and a 0x02 after the last entry.
pub fn properties_well_formed(props: &[u8]) -> bool {
    !props.contains(&0) && props.last().is_none_or(|&b| b == 0x02)
}

/// Whether a record that parsed (with its body CRC checked) is also whole: RocketMQ's CRC
/// covers only the body, so a write torn inside the topic or properties would otherwise
/// go unnoticed. A torn O_DIRECT write leaves zeros where sectors did not reach the disk,
/// which shows up as a NUL in the topic or properties, or as properties that no longer
/// end in 0x02 (a zeroed header sector breaks the position or length checks instead).
pub fn looks_whole(view: &RecordView<'_>) -> bool {
    view.topic().bytes().all(|b| b >= 0x20) && properties_well_formed(view.properties())
}
