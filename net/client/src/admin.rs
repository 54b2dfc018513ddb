//! Administrative requests a client may send: UPDATE_AND_CREATE_TOPIC (17, spec §3.12).

use std::time::Duration;

use super::connection::{expect_success, new_request, Connection, Result};
use ringmq_remoting::codes::{request_code, SerializeType};

/// Creates (or updates) `topic` with `queues` read and write queues, perm READ|WRITE.
pub fn create_topic(
    conn: &Connection,
    topic: &str,
    queues: i32,
    st: SerializeType,
    timeout: Duration,
) -> Result<()> {
    let cmd = new_request(request_code::UPDATE_AND_CREATE_TOPIC, st)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", queues)
        .with_ext("writeQueueNums", queues)
        .with_ext("perm", 6)
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", 0)
        .with_ext("order", false);
    expect_success(conn.request(cmd, timeout)?)?;
    Ok(())
}
