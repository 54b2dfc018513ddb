//! The only path from the engine to the kernel.
//!
//! | file | owns |
//! | --- | --- |
//! | `aligned` | 4096-aligned heap buffers for O_DIRECT |
//! | `tail_ring` | the double-mapped tail ring the writer encodes into and readers copy from |
//! | `direct_file` | opening, probing, preallocating and reading segment files |
//! | `uring` | the writer's io_uring: fixed-buffer writes, fdatasync, eventfd wake-ups |
//! | `write_ring` | the [`write_ring::WriteRing`] trait the writer drives and the completions it reaps |
//! | `wake` | an eventfd other threads use to wake a sleeping ring |
//! | `gate` | the I/O gate: the [`gate::Disk`] every file operation goes through, and the real one |
//! | `sim` | a simulated disk behind the gate: lost and torn unsynced sectors at a crash, short writes, EIO/ENOSPC, completions in any order |
//! | `faults` | failure injection points for tests (ENOSPC, EIO) |

pub mod aligned;
pub mod direct_file;
pub mod faults;
pub mod gate;
pub mod sim;
pub mod tail_ring;
pub mod uring;
pub mod wake;
pub mod write_ring;

/// The page size O_DIRECT transfers are aligned to.
pub const PAGE: usize = 4096;

/// Rounds `x` down to a multiple of [`PAGE`].
#[inline]
pub fn align_down(x: u64) -> u64 {
    x & !(PAGE as u64 - 1)
}

/// Rounds `x` up to a multiple of [`PAGE`].
#[inline]
pub fn align_up(x: u64) -> u64 {
    (x + PAGE as u64 - 1) & !(PAGE as u64 - 1)
}
