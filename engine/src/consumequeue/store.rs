//! All ConsumeQueues of a broker, keyed by (topic, queueId), under one `consumequeue`
//! directory. Lookups from net threads take a read lock and do not allocate; queues are
//! created (in memory; their directories on first `put`) by the dispatcher or by a reader
//! that needs one.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::warn;

use super::queue::ConsumeQueue;
use crate::io::gate::{disk, Kind};
use crate::sync::{read, write};
use crate::{Error, Result};

/// Largest queue id accepted (queues of a topic are held in a Vec indexed by id); the
/// writer refuses records above it (`MessageToStore::validate`).
pub use crate::record::MAX_QUEUE_ID;

type QueueMap = HashMap<String, Vec<Option<Arc<ConsumeQueue>>>>;

/// Owner of every [`ConsumeQueue`].
pub struct ConsumeQueueStore {
    root: PathBuf,
    entries_per_file: usize,
    queues: RwLock<QueueMap>,
    /// Records the dispatcher or recovery skipped because they cannot be indexed.
    unindexable: AtomicU64,
}

impl std::fmt::Debug for ConsumeQueueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueueStore")
            .field("root", &self.root)
            .field("entries_per_file", &self.entries_per_file)
            .finish_non_exhaustive()
    }
}

impl ConsumeQueueStore {
    /// Opens every queue found under `root_dir/<topic>/<queueId>/` (`root_dir` is the
    /// `consumequeue` directory; missing = no queues, nothing is created). Directory names
    /// are raw topic names (`%RETRY%group` included).
    pub fn open(root_dir: &Path, entries_per_file: usize) -> Result<Self> {
        let mut map = QueueMap::new();
        for (topic, topic_dir) in subdirs(root_dir)? {
            for (name, _) in subdirs(&topic_dir)? {
                let Some(queue_id) = parse_queue_id(&name) else {
                    warn!(path = %topic_dir.join(&name).display(), "ignoring non-queue directory");
                    continue;
                };
                let q = ConsumeQueue::open(root_dir, &topic, queue_id, entries_per_file)?;
                insert(&mut map, topic.clone(), queue_id, Arc::new(q));
            }
        }
        Ok(ConsumeQueueStore {
            root: root_dir.to_owned(),
            entries_per_file,
            queues: RwLock::new(map),
            unindexable: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn entries_per_file(&self) -> usize {
        self.entries_per_file
    }

    /// Records skipped because they could not be indexed (see [`Self::skip_unindexable`]).
    pub fn unindexable(&self) -> u64 {
        self.unindexable.load(Ordering::Relaxed)
    }

    /// Counts a record at `phys_offset` that cannot be indexed (a queue id or topic the
    /// store cannot hold, an offset outside its queue): it is logged once, here, and
    /// skipped, so it can neither wedge the dispatcher nor stop the store from opening.
    pub fn skip_unindexable(&self, phys_offset: i64, topic: &str, queue_id: i32, why: &Error) {
        let n = self.unindexable.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            phys_offset,
            topic,
            queue_id,
            error = %why,
            skipped_total = n,
            "record cannot be indexed; skipped (it stays in the CommitLog)"
        );
    }

    /// The queue, if it exists (no allocation).
    pub fn get(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        let idx = usize::try_from(queue_id).ok()?;
        self.read_map().get(topic)?.get(idx)?.clone()
    }

    /// The queue, created empty (no files yet) when missing. Refuses topic names that are
    /// not a single path component and queue ids outside `0..=MAX_QUEUE_ID`.
    pub fn get_or_create(&self, topic: &str, queue_id: i32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.get(topic, queue_id) {
            return Ok(q);
        }
        check_name(topic, queue_id)?;
        let mut map = self.write_map();
        let idx = queue_id as usize;
        if let Some(Some(q)) = map.get(topic).and_then(|v| v.get(idx)) {
            return Ok(Arc::clone(q));
        }
        let q = Arc::new(ConsumeQueue::open(
            &self.root,
            topic,
            queue_id,
            self.entries_per_file,
        )?);
        insert(&mut map, topic.to_owned(), queue_id, Arc::clone(&q));
        Ok(q)
    }

    /// Every queue as (topic, queueId, queue), sorted by topic then id.
    pub fn all(&self) -> Vec<(String, i32, Arc<ConsumeQueue>)> {
        let map = self.read_map();
        let mut v: Vec<_> = map
            .iter()
            .flat_map(|(t, qs)| {
                qs.iter()
                    .enumerate()
                    .filter_map(move |(i, q)| Some((t.clone(), i as i32, Arc::clone(q.as_ref()?))))
            })
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// Calls `f` on a snapshot of every queue (no lock held during the calls, so `f` may
    /// use the store).
    pub fn for_each(&self, mut f: impl FnMut(&str, i32, &Arc<ConsumeQueue>)) {
        for (t, id, q) in self.all() {
            f(&t, id, &q);
        }
    }

    /// (topic, queueId, max offset) of every queue: the writer's next queue offsets at start.
    pub fn max_offsets(&self) -> Vec<(String, i32, i64)> {
        self.all()
            .into_iter()
            .map(|(t, id, q)| (t, id, q.max_offset()))
            .collect()
    }

    /// Forgets every queue of `topic` and deletes `<root>/<topic>/` with its files (an
    /// admin's topic deletion). Returns how many queues were removed. The caller keeps the
    /// dispatcher out meanwhile (see `MessageStore::delete_topic_queues`); a reader still
    /// holding a removed queue reads its already-open files until it drops them.
    pub fn remove_topic(&self, topic: &str) -> Result<usize> {
        check_name(topic, 0)?;
        let removed = self.write_map().remove(topic).unwrap_or_default();
        // Settles what each queue still owes its files, so a flush from a snapshot taken
        // before the removal finds nothing to do in a directory that is gone.
        for q in removed.iter().flatten() {
            let _ = q.flush();
        }
        let dir = self.root.join(topic);
        match disk().remove_dir_all(&dir) {
            Ok(()) => super::files::fsync_dirs(&self.root)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("remove {}", dir.display()), e)),
        }
        Ok(removed.into_iter().flatten().count())
    }

    /// [`ConsumeQueue::truncate_to_phys`] on every queue; stops at the first error.
    pub fn truncate_to_phys(&self, phys_end: i64) -> Result<()> {
        self.all()
            .iter()
            .try_for_each(|(_, _, q)| q.truncate_to_phys(phys_end))
    }

    /// [`ConsumeQueue::flush`] on every queue; tries them all and returns the first error.
    pub fn flush_all(&self) -> Result<()> {
        let mut first = Ok(());
        for (_, _, q) in self.all() {
            if let Err(e) = q.flush() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    fn read_map(&self) -> RwLockReadGuard<'_, QueueMap> {
        read(&self.queues)
    }

    fn write_map(&self) -> RwLockWriteGuard<'_, QueueMap> {
        write(&self.queues)
    }
}

fn insert(map: &mut QueueMap, topic: String, queue_id: i32, q: Arc<ConsumeQueue>) {
    let idx = queue_id as usize;
    let v = map.entry(topic).or_default();
    if v.len() <= idx {
        v.resize(idx + 1, None);
    }
    v[idx] = Some(q);
}

fn check_name(topic: &str, queue_id: i32) -> Result<()> {
    let bad_topic = topic.is_empty()
        || topic == "."
        || topic == ".."
        || topic.len() > 255
        || topic.contains(['/', '\0']);
    if bad_topic {
        return Err(Error::Invalid(format!(
            "topic name {topic:?} cannot name a consume queue"
        )));
    }
    if !(0..=MAX_QUEUE_ID).contains(&queue_id) {
        return Err(Error::Invalid(format!(
            "queue id {queue_id} outside 0..={MAX_QUEUE_ID}"
        )));
    }
    Ok(())
}

/// A canonical decimal queue id (`"3"`, not `"03"` or `"+3"`).
fn parse_queue_id(name: &str) -> Option<i32> {
    let id: i32 = name.parse().ok()?;
    (id.to_string() == name && (0..=MAX_QUEUE_ID).contains(&id)).then_some(id)
}

/// The UTF-8-named subdirectories of `dir` (none if it is missing), others skipped with a
/// warning.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = match disk().list(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let path = dir.join(&ent.name);
        match ent.name.into_string() {
            Ok(name) if ent.kind == Kind::Dir => out.push((name, path)),
            _ => warn!(path = %path.display(), "ignoring unexpected entry in consume queue dir"),
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumequeue::CqEntry;
    use std::fs;

    fn entry(k: i64) -> CqEntry {
        CqEntry {
            phys_offset: k * 64,
            size: 64,
            tags_code: 0,
        }
    }

    #[test]
    fn open_rediscovers_queues_including_retry_topics() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("consumequeue");
        {
            let s = ConsumeQueueStore::open(&root, 4).unwrap();
            assert!(s.all().is_empty());
            assert!(s.get("TopicA", 0).is_none());
            let a1 = s.get_or_create("TopicA", 1).unwrap();
            let retry = s.get_or_create("%RETRY%group", 0).unwrap();
            let empty = s.get_or_create("TopicB", 2).unwrap();
            assert!(Arc::ptr_eq(&a1, &s.get_or_create("TopicA", 1).unwrap()));
            assert!(Arc::ptr_eq(&a1, &s.get("TopicA", 1).unwrap()));
            assert!(s.get("TopicA", 0).is_none());
            for k in 0..6 {
                a1.put(k, entry(k)).unwrap();
            }
            for k in 0..3 {
                retry.put(k, entry(10 + k)).unwrap();
            }
            assert_eq!(empty.max_offset(), 0);
            assert!(!empty.dir().exists(), "no files before the first put");
            s.flush_all().unwrap();
            assert!(root
                .join("%RETRY%group")
                .join("0")
                .join("00000000000000000000")
                .is_file());
        }
        fs::create_dir_all(root.join("TopicA").join("junk")).unwrap();
        let s = ConsumeQueueStore::open(&root, 4).unwrap();
        assert_eq!(
            s.max_offsets(),
            vec![
                ("%RETRY%group".to_owned(), 0, 3),
                ("TopicA".to_owned(), 1, 6)
            ]
        );
        assert_eq!(
            s.get("%RETRY%group", 0).unwrap().get(2).unwrap(),
            Some(entry(12))
        );
        let mut seen = Vec::new();
        s.for_each(|t, id, q| seen.push((t.to_owned(), id, q.min_offset())));
        assert_eq!(seen.len(), 2);
        // entry k ends at 64k+64; retry entries 10..13 end at 704..832
        s.truncate_to_phys(256).unwrap();
        assert_eq!(
            s.max_offsets(),
            vec![
                ("%RETRY%group".to_owned(), 0, 0),
                ("TopicA".to_owned(), 1, 4)
            ]
        );
    }

    #[test]
    fn remove_topic_deletes_its_queues_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = ConsumeQueueStore::open(dir.path(), 4).unwrap();
        for id in 0..2 {
            s.get_or_create("Gone", id)
                .unwrap()
                .put(0, entry(id as i64))
                .unwrap();
        }
        s.get_or_create("Kept", 0)
            .unwrap()
            .put(0, entry(9))
            .unwrap();
        s.flush_all().unwrap();
        assert_eq!(s.remove_topic("Gone").unwrap(), 2);
        assert!(!dir.path().join("Gone").exists());
        assert!(s.get("Gone", 0).is_none());
        assert_eq!(s.max_offsets(), vec![("Kept".to_owned(), 0, 1)]);
        assert_eq!(s.remove_topic("Gone").unwrap(), 0, "twice is fine");
        assert!(s.remove_topic("..").is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = ConsumeQueueStore::open(dir.path(), 4).unwrap();
        for t in ["", ".", "..", "a/b"] {
            assert!(
                matches!(s.get_or_create(t, 0), Err(Error::Invalid(_))),
                "{t:?}"
            );
        }
        assert!(matches!(s.get_or_create("T", -1), Err(Error::Invalid(_))));
        assert!(matches!(
            s.get_or_create("T", MAX_QUEUE_ID + 1),
            Err(Error::Invalid(_))
        ));
        assert!(s.get("T", -1).is_none());
        assert_eq!(parse_queue_id("03"), None);
        assert_eq!(parse_queue_id("12"), Some(12));
    }
}
