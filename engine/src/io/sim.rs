//! A simulated disk behind the I/O gate, for deterministic crash tests. Everything lives
//! in memory and every choice comes from one seed.
//!
//! Per file it keeps what reads see (`cur`) and what survives a crash (`durable`), and the
//! 512-byte sectors written since the last sync. An fdatasync (or an RWF_DSYNC write, for
//! the sectors it wrote) makes them durable. [`SimDisk::crash`] kills every open handle
//! and ring (their later operations fail with EIO); [`SimDisk::restart`] then builds the
//! disk a reboot finds: each unsynced sector independently survives, vanishes or is torn
//! (a prefix of its new bytes over the old). A failed fdatasync drops the dirty state of
//! its sectors without making them durable, as Linux does, so a retry succeeds although
//! nothing was synced.
//!
//! It also enforces O_DIRECT alignment (4096-byte offsets, lengths and buffers: EINVAL),
//! returns short ring writes, fails the N-th data operation with EIO or ENOSPC, and
//! completes ring operations in any order (linked fdatasyncs after their write, cancelled
//! when the write fell short).
//!
//! Simplifications: directory entries (create, rename, unlink) and file sizes are durable
//! at once; the doorbell eventfd is the real one, polled.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::gate::{Completion, Disk, Entry, FileOps, GateFile, Kind, Open, WriteRing};
use super::PAGE;

const SECTOR: u64 = 512;
/// Fake fds handed out for io_uring ops start here (never a real fd of the process).
const FD_BASE: RawFd = 1 << 24;

/// What the simulated disk does wrong, beyond crashing.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimFaults {
    /// Out of 1000 ring writes, how many come back short.
    pub short_writes_per_mille: u32,
    /// The data operation (write, sync, allocate) with this number fails with `errno`.
    pub fail_op: Option<(u64, i32)>,
    /// Out of 1000 ring submissions, how many leave each ready op in flight a while
    /// longer (completions out of order and late).
    pub delay_per_mille: u32,
    /// The power fails at the data operation with this number (it fails with EIO, as
    /// does everything after it until `restart`).
    pub crash_at_op: Option<u64>,
    /// At a crash an unsynced sector may also be torn (a prefix of its new bytes over
    /// the old ones). Off: sectors are atomic, as disks promise for 512-byte sectors,
    /// and each one survives or vanishes.
    pub torn_sectors: bool,
}

/// A small deterministic generator (xorshift64* seeded through splitmix64).
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        SimRng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, n)` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000) < p as u64
    }
}

#[derive(Default, Clone)]
struct Inode {
    cur: Vec<u8>,
    durable: Vec<u8>,
    unsynced: BTreeSet<u64>,
}

impl Inode {
    fn write(&mut self, at: u64, bytes: &[u8]) {
        let end = at as usize + bytes.len();
        if self.cur.len() < end {
            self.cur.resize(end, 0);
        }
        self.cur[at as usize..end].copy_from_slice(bytes);
        let mut s = at / SECTOR;
        while s * SECTOR < end as u64 {
            self.unsynced.insert(s);
            s += 1;
        }
    }

    /// fdatasync: the dirty sectors become durable (a sector whose dirty state a failed
    /// fsync dropped is not dirty any more, and stays as it was on disk).
    fn sync(&mut self) {
        self.sync_range(0, u64::MAX);
        self.durable.truncate(self.cur.len());
    }

    /// Makes the sectors of `[at, end)` durable (RWF_DSYNC).
    fn sync_range(&mut self, at: u64, end: u64) {
        if self.durable.len() < self.cur.len() {
            self.durable.resize(self.cur.len(), 0);
        }
        let dirty: Vec<u64> = self
            .unsynced
            .range(at / SECTOR..end.div_ceil(SECTOR))
            .copied()
            .collect();
        for s in dirty {
            self.unsynced.remove(&s);
            let (a, b) = self.sector(s, self.cur.len());
            self.durable[a..b].copy_from_slice(&self.cur[a..b]);
        }
    }

    fn sector(&self, s: u64, len: usize) -> (usize, usize) {
        let a = ((s * SECTOR) as usize).min(len);
        (a, (a + SECTOR as usize).min(len))
    }

    /// The content a reboot finds.
    fn after_crash(&self, rng: &mut SimRng, torn: bool) -> Vec<u8> {
        let mut out = self.durable.clone();
        for &s in &self.unsynced {
            let (a, b) = self.sector(s, out.len().min(self.cur.len()));
            if a >= b {
                continue;
            }
            match rng.below(if torn { 3 } else { 2 }) {
                0 => out[a..b].copy_from_slice(&self.cur[a..b]),
                1 => {}
                _ => {
                    let cut = a + rng.below((b - a) as u64) as usize;
                    out[a..cut].copy_from_slice(&self.cur[a..cut]);
                }
            }
        }
        out
    }
}

struct State {
    rng: SimRng,
    faults: SimFaults,
    /// Bumped by each crash; handles and rings of an older generation are dead.
    gen: u64,
    dead: bool,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    files: HashMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: HashSet<PathBuf>,
    /// Data operations so far (for `fail_op`).
    ops: u64,
    /// fd -> (inode, generation, O_DIRECT) for ring ops.
    fds: HashMap<RawFd, (u64, u64, bool)>,
    next_fd: RawFd,
}

impl State {
    /// Counts a data operation; the injected error if it is the chosen one.
    fn data_op(&mut self, can_enospc: bool) -> io::Result<()> {
        self.ops += 1;
        if self.faults.crash_at_op == Some(self.ops) {
            self.dead = true;
            self.gen += 1;
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        match self.faults.fail_op {
            Some((n, errno)) if n == self.ops && (errno != libc::ENOSPC || can_enospc) => {
                Err(io::Error::from_raw_os_error(errno))
            }
            Some((n, _)) if n == self.ops => Err(io::Error::from_raw_os_error(libc::EIO)),
            _ => Ok(()),
        }
    }

    fn check(&self, gen: u64) -> io::Result<()> {
        if self.dead || gen != self.gen {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.dirs.contains(p),
            _ => true,
        }
    }
}

struct Shared {
    state: Mutex<State>,
}

/// The simulated disk. Clones share one disk.
#[derive(Clone)]
pub struct SimDisk(Arc<Shared>);

impl SimDisk {
    pub fn new(seed: u64, faults: SimFaults) -> Self {
        let mut dirs = BTreeSet::new();
        dirs.insert(PathBuf::from("/"));
        SimDisk(Arc::new(Shared {
            state: Mutex::new(State {
                rng: SimRng::new(seed),
                faults,
                gen: 0,
                dead: false,
                inodes: HashMap::new(),
                next_ino: 1,
                files: HashMap::new(),
                dirs,
                locks: HashSet::new(),
                ops: 0,
                fds: HashMap::new(),
                next_fd: FD_BASE,
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power cut: every open handle and ring fails from now on.
    pub fn crash(&self) {
        let mut s = self.lock();
        s.dead = true;
        s.gen += 1;
    }

    /// Reboot after [`crash`](Self::crash): each unsynced sector survives, vanishes or is
    /// torn; locks are released; `faults` apply from now on.
    pub fn restart(&self, faults: SimFaults) {
        let mut s = self.lock();
        let torn = s.faults.torn_sectors;
        let State { inodes, rng, .. } = &mut *s;
        let mut ids: Vec<u64> = inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let inode = inodes.get_mut(&id).expect("listed");
            let data = inode.after_crash(rng, torn);
            *inode = Inode {
                cur: data.clone(),
                durable: data,
                unsynced: BTreeSet::new(),
            };
        }
        s.locks.clear();
        s.fds.clear();
        s.dead = false;
        s.faults = faults;
        s.ops = 0;
    }

    /// Whether the power failed (a `crash` or `crash_at_op`) and no restart followed.
    pub fn crashed(&self) -> bool {
        self.lock().dead
    }

    /// Data operations done since the last restart.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    /// Every file's current content, by path (to compare two recoveries).
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let s = self.lock();
        let mut out: Vec<_> = s
            .files
            .iter()
            .map(|(p, id)| (p.clone(), s.inodes[id].cur.clone()))
            .collect();
        out.sort();
        out
    }

    /// A copy of this disk's durable state (what a crash now would keep, at most).
    pub fn fork(&self, seed: u64) -> SimDisk {
        let s = self.lock();
        let copy = SimDisk::new(seed, s.faults);
        {
            let mut c = copy.lock();
            c.inodes = s.inodes.clone();
            c.next_ino = s.next_ino;
            c.files = s.files.clone();
            c.dirs = s.dirs.clone();
        }
        copy
    }

    fn handle(&self, ino: u64, gen: u64, direct: bool, lock: Option<PathBuf>) -> GateFile {
        GateFile::new(SimFile {
            disk: self.clone(),
            ino,
            gen,
            direct,
            lock,
            fd: std::sync::OnceLock::new(),
        })
    }
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

fn aligned(x: u64) -> bool {
    x.is_multiple_of(PAGE as u64)
}

impl Disk for SimDisk {
    fn write_ring(&self, _entries: u32) -> crate::Result<Box<dyn WriteRing>> {
        let gen = self.lock().gen;
        Ok(Box::new(SimRing {
            disk: self.clone(),
            gen,
            queued: Vec::new(),
            inflight: Vec::new(),
            done: Vec::new(),
            wake: None,
            counters: (0, 0),
        }))
    }

    fn open(&self, path: &Path, how: Open) -> io::Result<GateFile> {
        let mut s = self.lock();
        s.check(s.gen)?;
        let existing = s.files.get(path).copied();
        let ino = match (existing, how) {
            (Some(id), Open::Truncate) => {
                let inode = s.inodes.get_mut(&id).expect("inode of a file");
                *inode = Inode::default();
                id
            }
            (Some(id), _) => id,
            (None, Open::Read | Open::ReadWrite) => return Err(enoent()),
            (None, _) => {
                if !s.parent_exists(path) {
                    return Err(enoent());
                }
                let id = s.next_ino;
                s.next_ino += 1;
                s.inodes.insert(id, Inode::default());
                s.files.insert(path.to_owned(), id);
                id
            }
        };
        let gen = s.gen;
        drop(s);
        Ok(self.handle(ino, gen, how == Open::Direct, None))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let s = self.lock();
        s.check(s.gen)?;
        if !s.dirs.contains(dir) {
            return Err(enoent());
        }
        let mut out = Vec::new();
        for p in s.files.keys() {
            if p.parent() == Some(dir) {
                out.push(Entry {
                    name: p.file_name().expect("a file name").to_owned(),
                    kind: Kind::File,
                });
            }
        }
        for p in &s.dirs {
            if p.parent() == Some(dir) {
                out.push(Entry {
                    name: p.file_name().expect("a dir name").to_owned(),
                    kind: Kind::Dir,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        let s = self.lock();
        s.check(s.gen)?;
        Ok(if s.files.contains_key(path) {
            Some(Kind::File)
        } else if s.dirs.contains(path) {
            Some(Kind::Dir)
        } else {
            None
        })
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(s.gen)?;
        for a in dir.ancestors() {
            if a.as_os_str().is_empty() {
                continue;
            }
            if s.files.contains_key(a) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            s.dirs.insert(a.to_owned());
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(s.gen)?;
        s.files.remove(path).map(|_| ()).ok_or_else(enoent)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(s.gen)?;
        if !s.dirs.contains(dir) {
            return Err(enoent());
        }
        s.files.retain(|p, _| !p.starts_with(dir));
        s.dirs.retain(|p| !p.starts_with(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(s.gen)?;
        let id = s.files.remove(from).ok_or_else(enoent)?;
        s.files.insert(to.to_owned(), id);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(s.gen)?;
        let id = *s.files.get(from).ok_or_else(enoent)?;
        if s.files.contains_key(to) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        s.files.insert(to.to_owned(), id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.check(s.gen)?;
        if !s.dirs.contains(dir) {
            return Err(enoent());
        }
        s.data_op(false)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        Ok(path.to_owned())
    }

    fn lock(&self, path: &Path) -> io::Result<GateFile> {
        let mut s = self.lock();
        s.check(s.gen)?;
        if !s.locks.insert(path.to_owned()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let id = match s.files.get(path) {
            Some(&id) => id,
            None => {
                let id = s.next_ino;
                s.next_ino += 1;
                s.inodes.insert(id, Inode::default());
                s.files.insert(path.to_owned(), id);
                id
            }
        };
        let gen = s.gen;
        drop(s);
        Ok(self.handle(id, gen, false, Some(path.to_owned())))
    }
}

struct SimFile {
    disk: SimDisk,
    ino: u64,
    gen: u64,
    direct: bool,
    /// The lock this handle holds (released on drop).
    lock: Option<PathBuf>,
    fd: std::sync::OnceLock<RawFd>,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if let Some(path) = &self.lock {
            let mut s = self.disk.lock();
            if s.gen == self.gen {
                s.locks.remove(path);
            }
        }
    }
}

impl SimFile {
    fn check_direct(&self, off: u64, len: usize, ptr: usize) -> io::Result<()> {
        if self.direct && !(aligned(off) && aligned(len as u64) && aligned(ptr as u64)) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }
}

impl FileOps for SimFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.check_direct(off, buf.len(), buf.as_ptr() as usize)?;
        let s = self.disk.lock();
        s.check(self.gen)?;
        let cur = &s.inodes[&self.ino].cur;
        let from = (off as usize).min(cur.len());
        let n = buf.len().min(cur.len() - from);
        buf[..n].copy_from_slice(&cur[from..from + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<usize> {
        self.check_direct(off, buf.len(), buf.as_ptr() as usize)?;
        let mut s = self.disk.lock();
        s.check(self.gen)?;
        s.data_op(true)?;
        s.inodes.get_mut(&self.ino).expect("inode").write(off, buf);
        Ok(buf.len())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.check(self.gen)?;
        let res = s.data_op(false);
        let inode = s.inodes.get_mut(&self.ino).expect("inode");
        match res {
            Ok(()) => inode.sync(),
            // The kernel drops the dirty state of what it failed to write.
            Err(_) => inode.unsynced.clear(),
        }
        res
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.check(self.gen)?;
        s.data_op(true)?;
        let inode = s.inodes.get_mut(&self.ino).expect("inode");
        if (inode.cur.len() as u64) < len {
            inode.cur.resize(len as usize, 0);
            inode.durable.resize(len as usize, 0);
        }
        Ok(())
    }

    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.check(self.gen)?;
        s.data_op(false)?;
        let inode = s.inodes.get_mut(&self.ino).expect("inode");
        let to = to.min(inode.cur.len() as u64);
        if from < to {
            inode.write(from, &vec![0u8; (to - from) as usize]);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.check(self.gen)?;
        let inode = s.inodes.get_mut(&self.ino).expect("inode");
        inode.cur.resize(len as usize, 0);
        inode.durable.resize(len as usize, 0);
        inode.unsynced.retain(|&sec| sec * SECTOR < len);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let s = self.disk.lock();
        s.check(self.gen)?;
        Ok(s.inodes[&self.ino].cur.len() as u64)
    }

    fn data_region(&self, from: u64) -> io::Result<Option<(u64, u64)>> {
        let end = self.size()?;
        Ok((from < end).then_some((from, end)))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(*self.fd.get_or_init(|| {
            let mut s = self.disk.lock();
            let fd = s.next_fd;
            s.next_fd += 1;
            s.fds.insert(fd, (self.ino, self.gen, self.direct));
            fd
        }))
    }
}

/// A buffer the writer promised to keep valid until its op completes.
#[derive(Clone, Copy)]
struct Buf(*const u8, usize);
// SAFETY: the pointers are only read while the op is in flight, which the writer's
// safety contract (`WriteRing`) keeps them valid for; the ring stays on the writer thread.
unsafe impl Send for Buf {}

enum Op {
    Write {
        fd: RawFd,
        bufs: Vec<Buf>,
        offset: u64,
        dsync: bool,
    },
    Fsync {
        fd: RawFd,
    },
}

/// One op and the ops linked behind it (each runs only if the previous one fully
/// succeeded).
struct Chain(Vec<(Op, u64)>);

struct WakeRead(RawFd, u64);

/// The writer's ring on a [`SimDisk`].
struct SimRing {
    disk: SimDisk,
    gen: u64,
    /// Ops pushed since the last submit; the last chain may still be open (linked).
    queued: Vec<(Chain, bool)>,
    inflight: Vec<Chain>,
    done: Vec<Completion>,
    wake: Option<WakeRead>,
    counters: (u64, u64),
}

impl SimRing {
    fn push(&mut self, op: Op, link: bool, user_data: u64) {
        self.counters.0 += 1;
        match self.queued.last_mut() {
            Some((chain, true)) => {
                chain.0.push((op, user_data));
                self.queued.last_mut().expect("exists").1 = link;
            }
            _ => self.queued.push((Chain(vec![(op, user_data)]), link)),
        }
    }

    fn run_chain(&mut self, chain: Chain) {
        let mut ok = true;
        for (op, user_data) in chain.0 {
            let result = if ok { self.run(&op) } else { -libc::ECANCELED };
            let full = match &op {
                Op::Write { bufs, .. } => result >= 0 && result as usize == total(bufs),
                Op::Fsync { .. } => result >= 0,
            };
            ok &= full;
            self.done.push(Completion { user_data, result });
        }
    }

    fn run(&mut self, op: &Op) -> i32 {
        let mut guard = self.disk.lock();
        let s = &mut *guard;
        let fd = match op {
            Op::Write { fd, .. } | Op::Fsync { fd } => *fd,
        };
        let Some(&(ino, gen, direct)) = s.fds.get(&fd) else {
            return -libc::EBADF;
        };
        if s.check(gen).is_err() || s.check(self.gen).is_err() {
            return -libc::EIO;
        }
        match op {
            Op::Fsync { .. } => {
                let res = s.data_op(false);
                let inode = s.inodes.get_mut(&ino).expect("inode");
                match res {
                    Ok(()) => {
                        inode.sync();
                        0
                    }
                    Err(e) => {
                        inode.unsynced.clear();
                        -e.raw_os_error().unwrap_or(libc::EIO)
                    }
                }
            }
            Op::Write {
                bufs,
                offset,
                dsync,
                ..
            } => {
                let len = total(bufs);
                if direct
                    && (!aligned(*offset)
                        || !aligned(len as u64)
                        || bufs
                            .iter()
                            .any(|b| !aligned(b.0 as u64) || !aligned(b.1 as u64)))
                {
                    return -libc::EINVAL;
                }
                if let Err(e) = s.data_op(true) {
                    return -e.raw_os_error().unwrap_or(libc::EIO);
                }
                let mut n = len;
                if len > 0 && s.rng.per_mille(s.faults.short_writes_per_mille) {
                    n = (s.rng.below(len as u64) / SECTOR * SECTOR) as usize;
                }
                let mut bytes = Vec::with_capacity(n);
                for b in bufs {
                    let take = b.1.min(n - bytes.len());
                    // SAFETY: the writer keeps every buffer of an op in flight valid and
                    // unchanged until its completion is reaped (`WriteRing` contract).
                    bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(b.0, take) });
                }
                let inode = s.inodes.get_mut(&ino).expect("inode");
                inode.write(*offset, &bytes);
                // RWF_DSYNC syncs what the write took, short or not.
                if *dsync && n > 0 {
                    inode.sync_range(*offset, *offset + n as u64);
                }
                n as i32
            }
        }
    }

    fn poll_wake(&mut self) {
        let Some(WakeRead(fd, user_data)) = self.wake else {
            return;
        };
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live local from the doorbell eventfd
        // (non-blocking); the result is checked.
        let r = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        if r == 8 {
            self.wake = None;
            self.done.push(Completion {
                user_data,
                result: 8,
            });
        }
    }

    /// Runs what is ready: every in-flight chain, in a random order, except those the
    /// delay fault keeps a while longer.
    fn progress(&mut self) {
        for (chain, _) in std::mem::take(&mut self.queued) {
            self.inflight.push(chain);
        }
        let mut ready = std::mem::take(&mut self.inflight);
        let (delay, mut kept) = {
            let mut s = self.disk.lock();
            let p = s.faults.delay_per_mille;
            let n = ready.len();
            for i in (1..n).rev() {
                let j = s.rng.below(i as u64 + 1) as usize;
                ready.swap(i, j);
            }
            let delay: Vec<bool> = (0..n).map(|_| s.rng.per_mille(p)).collect();
            (delay, Vec::new())
        };
        for (chain, later) in ready.into_iter().zip(delay) {
            if later {
                kept.push(chain);
            } else {
                self.run_chain(chain);
            }
        }
        self.inflight = kept;
        self.poll_wake();
    }
}

fn total(bufs: &[Buf]) -> usize {
    bufs.iter().map(|b| b.1).sum()
}

impl WriteRing for SimRing {
    unsafe fn register(&mut self, _buffers: &[(*mut u8, usize)]) -> bool {
        true
    }

    unsafe fn push_write(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        offset: u64,
        _buf_index: u16,
        dsync: bool,
        link: bool,
        user_data: u64,
    ) {
        let op = Op::Write {
            fd,
            bufs: vec![Buf(ptr, len as usize)],
            offset,
            dsync,
        };
        self.push(op, link, user_data);
    }

    unsafe fn push_writev(
        &mut self,
        fd: RawFd,
        iovecs: *const libc::iovec,
        count: u32,
        offset: u64,
        dsync: bool,
        link: bool,
        user_data: u64,
    ) {
        // SAFETY: the caller keeps the iovec array valid until completion; it is read now.
        let vecs = unsafe { std::slice::from_raw_parts(iovecs, count as usize) };
        let bufs = vecs
            .iter()
            .map(|v| Buf(v.iov_base as *const u8, v.iov_len))
            .collect();
        let op = Op::Write {
            fd,
            bufs,
            offset,
            dsync,
        };
        self.push(op, link, user_data);
    }

    fn push_fdatasync(&mut self, fd: RawFd, user_data: u64) {
        self.push(Op::Fsync { fd }, false, user_data);
    }

    unsafe fn push_eventfd_read(&mut self, fd: RawFd, _buf: *mut u64, user_data: u64) {
        self.counters.0 += 1;
        self.wake = Some(WakeRead(fd, user_data));
    }

    fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<()> {
        self.counters.1 += 1;
        let until = timeout.map(|t| Instant::now() + t);
        loop {
            self.progress();
            if self.done.len() >= want {
                return Ok(());
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                return Ok(());
            }
            if self.inflight.is_empty() {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    fn has_completions(&mut self) -> bool {
        if self.done.is_empty() {
            self.progress();
        }
        !self.done.is_empty()
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.done);
    }

    fn counters(&self) -> (u64, u64) {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::aligned::AlignedBuf;

    fn setup(seed: u64) -> (SimDisk, GateFile) {
        let d = SimDisk::new(seed, SimFaults::default());
        d.create_dir_all(Path::new("/s")).unwrap();
        let f = d.open(Path::new("/s/f"), Open::Create).unwrap();
        (d, f)
    }

    #[test]
    fn synced_bytes_survive_and_unsynced_sectors_survive_vanish_or_tear() {
        let mut seen = [false; 3];
        for seed in 0..64 {
            let (d, f) = setup(seed);
            f.write_all_at(&[1u8; 1024], 0).unwrap();
            f.sync_data().unwrap();
            f.write_all_at(&[2u8; 512], 512).unwrap();
            d.set_faults(SimFaults {
                torn_sectors: true,
                ..SimFaults::default()
            });
            d.crash();
            assert!(
                f.sync_data().is_err(),
                "a handle from before the crash is dead"
            );
            d.restart(SimFaults::default());
            let f = d.open(Path::new("/s/f"), Open::Read).unwrap();
            let mut buf = [0u8; 1024];
            f.read_exact_at(&mut buf, 0).unwrap();
            assert!(buf[..512].iter().all(|&b| b == 1), "synced sector kept");
            let new = buf[512..].iter().filter(|&&b| b == 2).count();
            assert!(buf[512..512 + new].iter().all(|&b| b == 2));
            assert!(buf[512 + new..].iter().all(|&b| b == 1));
            seen[match new {
                512 => 0,
                0 => 1,
                _ => 2,
            }] = true;
        }
        assert_eq!(seen, [true; 3], "survive, vanish and tear all happen");
    }

    #[test]
    fn a_failed_fsync_drops_the_dirty_state() {
        let (d, f) = setup(1);
        f.write_all_at(&[7u8; 512], 0).unwrap();
        d.set_faults(SimFaults {
            fail_op: Some((d.ops() + 1, libc::EIO)),
            ..SimFaults::default()
        });
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap(); // the retry "succeeds"...
        d.crash();
        d.restart(SimFaults::default());
        let f = d.open(Path::new("/s/f"), Open::Read).unwrap();
        let mut buf = [9u8; 512];
        let n = f.read_full_at(&mut buf, 0).unwrap();
        assert!(buf[..n].iter().all(|&b| b == 0), "...but synced nothing");
    }

    #[test]
    fn direct_files_need_aligned_transfers() {
        let d = SimDisk::new(3, SimFaults::default());
        d.create_dir_all(Path::new("/s")).unwrap();
        let f = d.open(Path::new("/s/d"), Open::Direct).unwrap();
        let buf = AlignedBuf::new(2 * PAGE);
        f.write_all_at(buf.as_slice(), 0).unwrap();
        let e = f.write_all_at(&buf.as_slice()[..100], 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let e = f.write_all_at(&buf.as_slice()[..PAGE], 512).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
