//! VIEW_MESSAGE_BY_ID (33): the stored record at a CommitLog offset (decoded by the caller
//! from an offsetMsgId, spec §4.7), byte for byte, as `MessageDecoder.decode` reads it.

use super::{error, success};
use crate::Broker;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::admin_ops::ViewMessageHeader;
use ringmq_remoting::header::RequestHeader;

pub fn view_message_by_id(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let offset = ViewMessageHeader::decode(req)?.offset;
    match b.store.read_message_at(offset) {
        Ok(record) => Ok(success(req).with_body(record)),
        Err(e) => Ok(error(
            req,
            rs::SYSTEM_ERROR,
            format!("can not find message by the offset, {offset}: {e}"),
        )),
    }
}
