//! ringmq-remoting: the RocketMQ remoting protocol, and the network loops that serve it.
//!
//! | module | owns | runs on |
//! | --- | --- | --- |
//! | [`codes`] | request/response codes, version ordinals, `LanguageCode`, `SerializeType` | any |
//! | [`command`] | `RemotingCommand` with typed, alias-aware header-field getters | any |
//! | [`header_json`] / [`header_binary`] | the two header forms | any |
//! | `json_fast` | hand-written JSON header encoder and common-case decoder behind `header_json` | any |
//! | [`frame`] | frame encoding and the streaming `FrameDecoder` | any |
//! | [`error`] | `FrameError`, split into connection-closing and per-request errors | any |
//! | [`header`] | typed request headers (`RequestHeader`), one file per area | any |
//! | [`server`] | thread-per-core io_uring loops serving a [`server::Service`] | network cores |
//!
//! It depends on no other ringmq crate: the broker plugs its processors in through
//! [`server::Service`], the client uses the codec only.
//!
//! Wire facts: `shared/spec/rocketmq-wire.md` §1–§3.

pub mod codes;
pub mod command;
pub mod error;
pub mod frame;
pub mod header;
pub mod header_binary;
pub mod header_json;
mod json_fast;
pub mod server;

pub use codes::{request_code, response_code, LanguageCode, SerializeType};
pub use command::{ExtFields, RemotingCommand};
pub use error::FrameError;
pub use frame::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME};
pub use header::RequestHeader;
