//! Handles on tail-ring bytes that outlive the tail's read lock: for handing ring bytes
//! to the kernel (the HA master's IORING_OP_SEND_ZC), which reads them after the call
//! that queued them has returned.
//!
//! | type | keeps |
//! | --- | --- |
//! | [`TailPin`] | the bytes of one range unchanged: the writer never moves the window past a pinned start |
//! | [`TailBuffer`] | the whole ring mapping alive (to register it as an io_uring fixed buffer) |
//!
//! A pin holds the writer back once the log has grown by a ring's capacity past it. The
//! writer then waits, and after [`PIN_PRESSURE_AFTER`] raises *pin pressure*:
//! [`CommitLog::pin_revoke_below`](super::CommitLog::pin_revoke_below) becomes the offset
//! the writer needs to reach, and a holder of a pin below it is expected to give it up
//! soon (the HA master aborts that slave's connection, which frees the kernel's
//! references). Producers are therefore never held up for long by a stalled reader.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// How long the writer waits for pins before it raises pin pressure.
///
/// Long enough that a healthy slave's send_zc notifications (one round trip after the
/// bytes left) come back without any pressure; short enough that producers blocked
/// behind a stalled slave wait at most about this long plus the time its sender needs
/// to abort the connection.
pub const PIN_PRESSURE_AFTER: Duration = Duration::from_millis(100);

/// The bytes `[phys, phys + len)` of the tail ring, pinned: the writer does not rewrite
/// them while this lives. Dropping it releases the pin and wakes the writer.
pub struct TailPin {
    shared: Arc<Shared>,
    phys: u64,
    len: usize,
}

impl TailPin {
    /// Pins the range if it is in the ring and below `append_end`.
    pub(super) fn new(shared: &Arc<Shared>, phys: u64, len: usize) -> Option<TailPin> {
        shared
            .tail
            .pin(phys, len, &shared.progress)
            .then(|| TailPin {
                shared: shared.clone(),
                phys,
                len,
            })
    }

    /// Log offset of the first pinned byte.
    pub fn phys(&self) -> i64 {
        self.phys as i64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the first pinned byte; the `len()` bytes from it are contiguous and
    /// lie inside [`TailBuffer`]'s mapping.
    pub fn as_ptr(&self) -> *const u8 {
        self.shared.tail.ring().ptr(self.phys)
    }

    /// The pinned bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the range was in the window [retain_start, append_end) when pinned.
        // While the pin lives, advance_retain keeps retain_start <= phys, so the writer
        // writes only offsets in [append_end, phys + capacity), none of which shares a
        // ring slot with [phys, phys + len) (len <= capacity); a truncation (the only
        // thing that lowers append_end) waits until no pin is held. The mapping lives as
        // long as `shared`, which this pin holds, and the slice borrows the pin.
        unsafe { self.shared.tail.ring().slice(self.phys, self.len) }
    }
}

impl Drop for TailPin {
    fn drop(&mut self) {
        if self.shared.tail.unpin(self.phys) {
            // The writer waits for pins and may be asleep.
            self.shared.doorbell.ring();
        }
    }
}

impl std::fmt::Debug for TailPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TailPin({}+{})", self.phys, self.len)
    }
}

/// The whole tail-ring mapping (both halves of the double mapping), kept mapped while
/// this lives: what an io_uring registers as a fixed buffer so that sends of pinned
/// bytes need no per-send page pinning.
pub struct TailBuffer {
    shared: Arc<Shared>,
}

impl TailBuffer {
    pub(super) fn new(shared: &Arc<Shared>) -> TailBuffer {
        TailBuffer {
            shared: shared.clone(),
        }
    }

    /// Start of the mapping. Every [`TailPin::as_ptr`] range of the same log lies in
    /// `[as_ptr(), as_ptr() + len())`.
    pub fn as_ptr(&self) -> *const u8 {
        self.shared.tail.ring().mapping().0
    }

    /// Length of the mapping (twice the ring capacity).
    pub fn len(&self) -> usize {
        self.shared.tail.ring().mapping().1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `pin` is a range of this mapping (the same log).
    pub fn holds(&self, pin: &TailPin) -> bool {
        Arc::ptr_eq(&self.shared, &pin.shared)
    }
}
