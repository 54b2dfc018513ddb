//! Where a push consumer keeps its progress: per queue, the next offset to consume.
//!
//! Clustering groups keep it on the broker (RocketMQ's `RemoteBrokerOffsetStore`): the
//! table here is the in-memory copy, written to the broker every `persist_interval`
//! (oneway UPDATE_CONSUMER_OFFSET, as RocketMQ clients do), synchronously when a queue is
//! released, and on shutdown. Broadcasting consumers keep it in a local JSON file
//! (`LocalFileOffsetStore`), written atomically (temp file + rename).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::links::Links;
use super::options::{MessageModel, PushConsumerOptions};
use crate::connection::{ClientError, Result};
use crate::route::MessageQueue;
use crate::sync::lock;

pub struct OffsetStore {
    group: String,
    /// Some = broadcasting: the local file.
    local_file: Option<PathBuf>,
    table: Mutex<HashMap<MessageQueue, i64>>,
}

/// One line of the local offsets file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocalEntry {
    topic: String,
    broker_name: String,
    queue_id: i32,
    offset: i64,
}

impl OffsetStore {
    pub fn new(opts: &PushConsumerOptions) -> Result<Self> {
        let local_file = (opts.message_model == MessageModel::Broadcasting).then(|| {
            opts.local_offset_dir
                .join(sanitize(&opts.client_id))
                .join(sanitize(&opts.group))
                .join("offsets.json")
        });
        let mut table = HashMap::new();
        if let Some(path) = &local_file {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let entries: Vec<LocalEntry> = serde_json::from_slice(&bytes)
                        .map_err(|e| ClientError::Protocol(format!("{}: {e}", path.display())))?;
                    for e in entries {
                        table.insert(
                            MessageQueue::new(e.topic, e.broker_name, e.queue_id),
                            e.offset,
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Self {
            group: opts.group.clone(),
            local_file,
            table: Mutex::new(table),
        })
    }

    /// The in-memory offset of `mq`, if any.
    pub fn get(&self, mq: &MessageQueue) -> Option<i64> {
        lock(&self.table).get(mq).copied()
    }

    /// The stored offset of `mq`: the broker's committed offset (clustering) or the local
    /// file's (broadcasting). None = the group has none yet.
    pub fn read_stored(&self, links: &Links, mq: &MessageQueue) -> Result<Option<i64>> {
        if self.local_file.is_some() {
            return Ok(self.get(mq));
        }
        let found = links.broker_of(mq)?.query_offset(&self.group, mq)?;
        if let Some(o) = found {
            lock(&self.table).insert(mq.clone(), o);
        }
        Ok(found)
    }

    /// Records progress; with `increase_only` a smaller offset never replaces a larger one.
    pub fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        let mut t = lock(&self.table);
        let e = t.entry(mq.clone()).or_insert(offset);
        if !increase_only || offset > *e {
            *e = offset;
        }
    }

    /// Writes `mq`'s offset now and waits for the broker's answer (a queue being released:
    /// its next owner reads this).
    pub fn persist_now(&self, links: &Links, mq: &MessageQueue) -> Result<()> {
        if self.local_file.is_some() {
            return self.write_local();
        }
        let Some(offset) = self.get(mq) else {
            return Ok(());
        };
        links.broker_of(mq)?.update_offset(&self.group, mq, offset)
    }

    /// Writes the offsets of `mqs` (the queues currently held) without waiting.
    pub fn persist_all(&self, links: &Links, mqs: &[MessageQueue]) {
        if self.local_file.is_some() {
            if let Err(e) = self.write_local() {
                tracing::warn!(error = %e, "writing local consumer offsets failed");
            }
            return;
        }
        for mq in mqs {
            let Some(offset) = self.get(mq) else { continue };
            let sent = links
                .broker_of(mq)
                .and_then(|b| b.update_offset_oneway(&self.group, mq, offset));
            if let Err(e) = sent {
                tracing::warn!(queue = %mq, error = %e, "committing offset failed");
            }
        }
    }

    /// Forgets a released queue (clustering; a broadcasting file keeps every queue).
    pub fn remove(&self, mq: &MessageQueue) {
        if self.local_file.is_none() {
            lock(&self.table).remove(mq);
        }
    }

    fn write_local(&self) -> Result<()> {
        let Some(path) = &self.local_file else {
            return Ok(());
        };
        let mut entries: Vec<LocalEntry> = lock(&self.table)
            .iter()
            .map(|(q, o)| LocalEntry {
                topic: q.topic.clone(),
                broker_name: q.broker_name.clone(),
                queue_id: q.queue_id,
                offset: *o,
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.topic, &a.broker_name, a.queue_id).cmp(&(&b.topic, &b.broker_name, b.queue_id))
        });
        let json = serde_json::to_vec_pretty(&entries)
            .map_err(|e| ClientError::Protocol(format!("encoding offsets: {e}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// A client id or group as one path component.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@#%".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_offsets_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = PushConsumerOptions::new("127.0.0.1:1", "G");
        opts.message_model = MessageModel::Broadcasting;
        opts.local_offset_dir = dir.path().to_path_buf();
        let mq = MessageQueue::new("T", "b", 3);
        let store = OffsetStore::new(&opts).unwrap();
        store.update(&mq, 7, true);
        store.update(&mq, 5, true);
        assert_eq!(store.get(&mq), Some(7));
        store.write_local().unwrap();
        let again = OffsetStore::new(&opts).unwrap();
        assert_eq!(again.get(&mq), Some(7));
    }
}
