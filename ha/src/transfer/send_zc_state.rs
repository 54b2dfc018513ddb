//! The send_zc path's bookkeeping, without I/O: which operations a round asks of the
//! kernel and for how many bytes ([`Round::plan`]), when every operation of a round that
//! will answer has ([`Round::done`]), where the answers leave the send cursor
//! ([`Round::settle`]), and the sends whose bytes the kernel may still read, each keeping
//! its tail pin until both its result and its notification came ([`Sends`]).
//!
//! [`SendZcPath`](super::send_zc::SendZcPath) owns one [`Round`] and one [`Sends`], turns
//! plans into io_uring submissions and feeds completions back in; all of it runs on that
//! path's sender thread. [`Sends`] is generic over what a send holds (the path's
//! `Arc<TailPin>`), so the tests below drive the whole state machine with plain values.

use std::collections::HashMap;
use std::io;

use crate::protocol::TRANSFER_HEADER_SIZE;

const HDR: usize = TRANSFER_HEADER_SIZE;

/// One operation of a round: the rest of a frame's header or body from byte `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Header { frame: usize, from: usize },
    Body { frame: usize, from: usize },
}

/// How far the queued frames have gone: frame `frame`, `hdr` bytes of its header and
/// `body` bytes of its body on the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    pub frame: usize,
    pub hdr: usize,
    pub body: usize,
}

/// What a finished round means for the path, besides the cursor it moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Go on from the cursor (a next round, or done).
    Going,
    /// The socket refused IORING_OP_SEND_ZC (EOPNOTSUPP): send the rest another way.
    ZcRefused,
}

/// The round in flight (or the last one).
#[derive(Default)]
pub(super) struct Round {
    /// `user_data` of `ops[0]`; op `k` has `base + k`.
    pub base: u64,
    pub ops: Vec<Op>,
    /// Each op's result once its (first) completion came. A header that succeeded posts
    /// none (IOSQE_CQE_SKIP_SUCCESS).
    pub results: Vec<Option<i32>>,
    /// Bytes each op asks for (its result when it moved everything).
    pub wants: Vec<i32>,
    /// Bodies that have not answered yet.
    pub bodies_left: usize,
}

impl Round {
    /// Plans the round from `at` over `frames` queued frames, frame `j` with a body of
    /// `body_len(j)` bytes: header (unless sent) and body of each frame, at most
    /// `max_frames` frames, with `user_data` from `base` on. Returns how many ids it took.
    pub fn plan(
        &mut self,
        base: u64,
        at: Cursor,
        frames: usize,
        body_len: impl Fn(usize) -> usize,
        max_frames: usize,
    ) -> u64 {
        self.ops.clear();
        for j in at.frame..frames.min(at.frame + max_frames) {
            let (h, b) = if j == at.frame {
                (at.hdr, at.body)
            } else {
                (0, 0)
            };
            if h < HDR {
                self.ops.push(Op::Header { frame: j, from: h });
            }
            self.ops.push(Op::Body { frame: j, from: b });
        }
        self.base = base;
        self.results.clear();
        self.results.resize(self.ops.len(), None);
        self.wants.clear();
        for op in &self.ops {
            self.wants.push(match *op {
                Op::Header { from, .. } => (HDR - from) as i32,
                Op::Body { frame, from } => (body_len(frame) - from) as i32,
            });
        }
        self.bodies_left = self
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Body { .. }))
            .count();
        self.ops.len() as u64
    }

    /// Whether every operation that will answer has: in chain order, each header that
    /// posted nothing succeeded, each body answered in full; a header that failed (or
    /// came up short) ends the round, because with IOSQE_CQE_SKIP_SUCCESS its failure
    /// also silences the cancellations of the operations after it; a body that failed
    /// is followed by one cancellation (-ECANCELED) per later operation.
    pub fn done(&self) -> bool {
        for k in 0..self.ops.len() {
            match (self.ops[k], self.results[k]) {
                (Op::Header { .. }, None) => {} // succeeded, or its body will tell
                (Op::Header { .. }, Some(_)) => return true,
                (Op::Body { .. }, None) => return false,
                (Op::Body { .. }, Some(r)) if r == self.wants[k] => {}
                (Op::Body { .. }, Some(_)) => {
                    return self.results[k + 1..].iter().all(Option::is_some)
                }
            }
        }
        true
    }

    /// Books the result completion of operation `id` (the first one only; ids outside
    /// this round are ignored). Returns the ids of the bodies a failed header silenced:
    /// they were cancelled without a result completion (only their notifications come).
    pub fn on_result(&mut self, id: u64, res: i32) -> Vec<u64> {
        let mut silenced = Vec::new();
        if let Some(k) = id
            .checked_sub(self.base)
            .map(|k| k as usize)
            .filter(|k| *k < self.ops.len())
        {
            if self.results[k].is_none() {
                self.results[k] = Some(res);
                if matches!(self.ops[k], Op::Body { .. }) {
                    self.bodies_left -= 1;
                } else if res != -libc::ECANCELED {
                    for j in k + 1..self.ops.len() {
                        if matches!(self.ops[j], Op::Body { .. }) && self.results[j].is_none() {
                            self.bodies_left -= 1;
                            silenced.push(self.base + j as u64);
                        }
                    }
                }
            }
        }
        silenced
    }

    /// Moves `at` over what the finished round sent: past every operation that moved
    /// everything, into the first one that came up short. An error other than a
    /// cancellation or a retry (EINTR, EAGAIN) fails the stream.
    pub fn settle(&self, at: &mut Cursor) -> io::Result<Settled> {
        for k in 0..self.ops.len() {
            let want = self.wants[k];
            match self.ops[k] {
                Op::Header { frame, from } => {
                    let r = self.results[k].unwrap_or(want);
                    if r == want {
                        *at = Cursor {
                            frame,
                            hdr: HDR,
                            body: 0,
                        };
                        continue;
                    }
                    if r > 0 {
                        *at = Cursor {
                            frame,
                            hdr: from + r as usize,
                            body: 0,
                        };
                        return Ok(Settled::Going);
                    }
                    return match r {
                        r if r == -libc::EINTR || r == -libc::EAGAIN || r == -libc::ECANCELED => {
                            Ok(Settled::Going)
                        }
                        r => Err(op_error("send a frame header", r)),
                    };
                }
                Op::Body { frame, from } => {
                    let r = self.results[k].unwrap_or(-libc::ECANCELED);
                    if r == want {
                        *at = Cursor {
                            frame: frame + 1,
                            hdr: 0,
                            body: 0,
                        };
                        continue;
                    }
                    if r > 0 {
                        *at = Cursor {
                            frame,
                            hdr: HDR,
                            body: from + r as usize,
                        };
                        return Ok(Settled::Going);
                    }
                    return match r {
                        r if r == -libc::EINTR || r == -libc::EAGAIN || r == -libc::ECANCELED => {
                            Ok(Settled::Going)
                        }
                        r if r == -libc::EOPNOTSUPP => Ok(Settled::ZcRefused),
                        r => Err(op_error("send_zc a frame body", r)),
                    };
                }
            }
        }
        Ok(Settled::Going)
    }
}

/// A SEND_ZC the kernel may still read from: what it holds (its pin) stays until its
/// notification.
struct Pending<P> {
    pin: P,
    len: usize,
    /// Its result completion came.
    answered: bool,
    /// Its notification came (possibly first).
    notified: bool,
}

/// The sends whose bytes the kernel may still read, by `user_data`. A send is released
/// (what it holds dropped) once its result came without IORING_CQE_F_MORE, or once
/// both its result and its notification came, in either order.
pub(super) struct Sends<P> {
    map: HashMap<u64, Pending<P>>,
    bytes: usize,
}

impl<P> Default for Sends<P> {
    fn default() -> Self {
        Sends {
            map: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<P> Sends<P> {
    /// Books send `id` of `len` bytes, holding `pin` until the kernel is done with it.
    pub fn insert(&mut self, id: u64, pin: P, len: usize) {
        self.map.insert(
            id,
            Pending {
                pin,
                len,
                answered: false,
                notified: false,
            },
        );
        self.bytes += len;
    }

    /// The result completion of send `id` came; `more`: a notification follows.
    pub fn answered(&mut self, id: u64, more: bool) {
        if let Some(p) = self.map.get_mut(&id) {
            p.answered = true;
            if !more || p.notified {
                self.release(id);
            }
        }
    }

    /// The notification of send `id` came.
    pub fn notified(&mut self, id: u64) {
        if let Some(p) = self.map.get_mut(&id) {
            p.notified = true;
            if p.answered {
                self.release(id);
            }
        }
    }

    /// The kernel is done with send `id`: what it holds may go.
    fn release(&mut self, id: u64) {
        if let Some(p) = self.map.remove(&id) {
            self.bytes -= p.len;
            drop(p.pin);
        }
    }

    /// Drops every send (the connection was reset: nothing they name reaches a peer).
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of the sends not yet released.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What the sends not yet released hold.
    pub fn pins(&self) -> impl Iterator<Item = &P> {
        self.map.values().map(|p| &p.pin)
    }
}

pub(super) fn op_error(what: &str, res: i32) -> io::Error {
    if res < 0 {
        let e = io::Error::from_raw_os_error(-res);
        io::Error::new(e.kind(), format!("{what}: {e}"))
    } else {
        io::Error::new(
            io::ErrorKind::WriteZero,
            format!("{what}: the socket took {res} bytes"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_round_is_done_once_every_op_answered() {
        let mut r = Round {
            base: 10,
            ops: vec![
                Op::Header { frame: 0, from: 0 },
                Op::Body { frame: 0, from: 0 },
            ],
            results: vec![None, None],
            wants: vec![HDR as i32, 100],
            bodies_left: 1,
        };
        assert!(!r.done());
        r.results[1] = Some(100);
        r.bodies_left = 0;
        assert!(r.done(), "a header that succeeded posts nothing");
        r.results[1] = None;
        r.results[0] = Some(-libc::EPIPE);
        assert!(
            r.done(),
            "a failed header silences the cancellations after it"
        );
        let mut r = Round {
            base: 0,
            ops: vec![
                Op::Body { frame: 0, from: 0 },
                Op::Header { frame: 1, from: 0 },
                Op::Body { frame: 1, from: 0 },
            ],
            results: vec![Some(-libc::ECONNRESET), None, None],
            wants: vec![100, HDR as i32, 100],
            bodies_left: 1,
        };
        assert!(!r.done(), "a failed body: the cancellations after it come");
        r.results[1] = Some(-libc::ECANCELED);
        r.results[2] = Some(-libc::ECANCELED);
        assert!(r.done());
    }

    #[test]
    fn a_plan_resumes_from_the_cursor() {
        let mut r = Round::default();
        let at = Cursor {
            frame: 1,
            hdr: 5,
            body: 0,
        };
        assert_eq!(r.plan(7, at, 3, |j| [100, 200, 300][j], 8), 4);
        assert_eq!(
            r.ops,
            [
                Op::Header { frame: 1, from: 5 },
                Op::Body { frame: 1, from: 0 },
                Op::Header { frame: 2, from: 0 },
                Op::Body { frame: 2, from: 0 },
            ]
        );
        assert_eq!(r.wants, [(HDR - 5) as i32, 200, HDR as i32, 300]);
        assert_eq!((r.base, r.bodies_left), (7, 2));
        // A cursor inside a body: the header is on the socket, no header op.
        let at = Cursor {
            frame: 0,
            hdr: HDR,
            body: 40,
        };
        assert_eq!(r.plan(20, at, 3, |j| [100, 200, 300][j], 2), 3);
        assert_eq!(r.ops[0], Op::Body { frame: 0, from: 40 });
        assert_eq!(r.wants[0], 60);
    }

    #[test]
    fn settling_moves_the_cursor_to_the_first_short_operation() {
        let mut r = Round::default();
        r.plan(0, Cursor::default(), 2, |j| [100, 200][j], 8);
        // Frame 0 whole (its header posted nothing), frame 1's header too, its body short.
        assert!(r.on_result(1, 100).is_empty());
        assert!(r.on_result(3, 50).is_empty());
        assert!(r.done(), "nothing after the short body");
        let mut at = Cursor::default();
        assert_eq!(r.settle(&mut at).unwrap(), Settled::Going);
        assert_eq!(
            at,
            Cursor {
                frame: 1,
                hdr: HDR,
                body: 50
            }
        );
        // A failed header silences the body after it and fails the stream.
        r.plan(10, Cursor::default(), 1, |j| [100][j], 8);
        assert_eq!(r.on_result(10, -libc::EPIPE), vec![11]);
        assert_eq!(r.bodies_left, 0);
        assert!(r.done());
        let e = r.settle(&mut Cursor::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        // A socket without zero-copy says so.
        r.plan(20, Cursor::default(), 1, |j| [100][j], 8);
        r.on_result(21, -libc::EOPNOTSUPP);
        assert_eq!(
            r.settle(&mut Cursor::default()).unwrap(),
            Settled::ZcRefused
        );
    }

    #[test]
    fn a_send_keeps_its_pin_until_result_and_notification() {
        let mut s: Sends<std::rc::Rc<()>> = Sends::default();
        let pin = std::rc::Rc::new(());
        s.insert(1, pin.clone(), 10);
        s.insert(2, pin.clone(), 20);
        s.insert(3, pin.clone(), 30);
        assert_eq!(
            (s.len(), s.bytes(), std::rc::Rc::strong_count(&pin)),
            (3, 60, 4)
        );
        s.answered(1, true); // a notification follows
        assert_eq!(s.bytes(), 60);
        s.notified(1);
        s.notified(2); // the notification first
        assert_eq!(s.bytes(), 50);
        s.answered(2, true);
        s.answered(3, false); // no notification comes (the send failed)
        assert!(s.is_empty());
        assert_eq!((s.bytes(), std::rc::Rc::strong_count(&pin)), (0, 1));
        // Late or unknown completions change nothing.
        s.notified(3);
        s.answered(9, false);
        assert_eq!(s.bytes(), 0);
    }
}
