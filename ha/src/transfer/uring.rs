//! The one place the HA transfer paths build an io_uring: the preferred set-up flags,
//! the fallback without the optional ones, and the checks for what a path cannot do
//! without (IOSQE_CQE_SKIP_SUCCESS, timed waits, opcodes). Runs on the thread that will
//! own the ring (a ring belongs to its creator): the master's HA loop, the slave's
//! receiver, and the stand-alone paths' users. `slave` imports it too.

use std::io;

use io_uring::{IoUring, Probe};

/// What a ring must offer, and what it would like to have.
pub(crate) struct RingSpec {
    /// Submission queue entries.
    pub entries: u32,
    /// Completion queue entries (None: the kernel's default, twice `entries`).
    pub cq_entries: Option<u32>,
    /// Cooperative task work (IORING_SETUP_COOP_TASKRUN with IORING_SETUP_TASKRUN_FLAG)
    /// where the kernel has it: completions that arrive while the owner sleeps neither
    /// interrupt nor wake it; they are run at its next syscall, or when the ring flags
    /// them (IORING_SQ_TASKRUN). A kernel without it gets a ring without it.
    pub coop_taskrun: bool,
    /// Whether the ring must take timed waits (IORING_FEAT_EXT_ARG).
    pub timed_waits: bool,
    /// Opcodes the kernel must support, each with its name for the error (empty: no
    /// probe, no syscall).
    pub opcodes: &'static [(u8, &'static str)],
}

/// A ring built to `spec`: with the preferred flags, else without them; failing with
/// [`io::ErrorKind::Unsupported`] if it lacks IOSQE_CQE_SKIP_SUCCESS (every HA ring links
/// operations with it), timed waits when asked for, or one of the opcodes.
pub(crate) fn build(spec: &RingSpec) -> io::Result<IoUring> {
    let ring = match build_with(spec, spec.coop_taskrun) {
        Ok(ring) => ring,
        Err(_) if spec.coop_taskrun => build_with(spec, false)?,
        Err(e) => return Err(e),
    };
    if !ring.params().is_feature_skip_cqe_on_success() {
        return Err(unsupported("IOSQE_CQE_SKIP_SUCCESS"));
    }
    if spec.timed_waits && !ring.params().is_feature_ext_arg() {
        return Err(unsupported("timed waits (IORING_FEAT_EXT_ARG)"));
    }
    if !spec.opcodes.is_empty() {
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if let Some((_, name)) = spec
            .opcodes
            .iter()
            .find(|(code, _)| !probe.is_supported(*code))
        {
            return Err(unsupported(name));
        }
    }
    Ok(ring)
}

fn build_with(spec: &RingSpec, coop_taskrun: bool) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    if let Some(cq) = spec.cq_entries {
        builder.setup_cqsize(cq);
    }
    if coop_taskrun {
        builder.setup_coop_taskrun().setup_taskrun_flag();
    }
    builder.build(spec.entries)
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("the kernel's io_uring lacks {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::opcode;

    #[test]
    fn a_ring_with_every_wish_builds_here() {
        let ring = build(&RingSpec {
            entries: 8,
            cq_entries: Some(64),
            coop_taskrun: true,
            timed_waits: true,
            opcodes: &[(opcode::Splice::CODE, "IORING_OP_SPLICE")],
        })
        .expect("a 6.x kernel builds this ring");
        assert_eq!(ring.params().cq_entries(), 64);
    }

    #[test]
    fn a_missing_opcode_is_named() {
        // No kernel has opcode 255 (they count up from 0 and are far below it).
        let Err(e) = build(&RingSpec {
            entries: 8,
            cq_entries: None,
            coop_taskrun: false,
            timed_waits: false,
            opcodes: &[(u8::MAX, "opcode 255")],
        }) else {
            panic!("the ring was built although no kernel has opcode 255");
        };
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("opcode 255"), "{e}");
    }
}
