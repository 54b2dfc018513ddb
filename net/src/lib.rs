//! ringmq-net: the RocketMQ remoting protocol for ringmq.
//!
//! - [`codes`]: request/response codes, version ordinals, `LanguageCode`, `SerializeType`.
//! - [`command`]: `RemotingCommand` with typed, alias-aware header-field getters.
//! - [`header_json`] / [`header_binary`]: the two header forms.
//! - [`frame`]: frame encoding and the streaming `FrameDecoder`.
//! - [`error`]: `FrameError`, split into connection-closing and per-request errors.
//!
//! - [`broker`]: the broker's state and request processors.
//! - [`server`]: the io_uring network loops, one per core.
//! - [`client`]: producer, pull consumer and route lookup (load generator, tests).
//!
//! Wire facts: `/work/shared/spec/rocketmq-wire.md` §1–§3.

pub mod broker;
pub mod client;
pub mod codes;
pub mod command;
pub mod error;
pub mod frame;
pub mod header_binary;
pub mod header_json;
pub mod server;

pub use codes::{request_code, response_code, LanguageCode, SerializeType};
pub use command::{ExtFields, RemotingCommand};
pub use error::FrameError;
pub use frame::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME};
