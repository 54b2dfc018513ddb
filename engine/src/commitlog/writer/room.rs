//! Room in the tail ring for new records: a slot can be rewritten once its older lap is on
//! disk and no reader or pin needs it. Tail pins (`commitlog::pin`: ring bytes the HA
//! master handed to the kernel) hold the window back; after PIN_PRESSURE_AFTER the writer
//! raises pin pressure so their holder lets go. Writer thread only.

use std::time::Instant;

use super::Writer;
use crate::commitlog::pin::PIN_PRESSURE_AFTER;
use crate::io::align_down;

/// Room (or a truncation) waiting for tail pins to go.
#[derive(Debug, Clone, Copy)]
pub(super) struct PinWait {
    /// When pins first held the writer up (in this stretch).
    pub since: Instant,
    /// `Tail::unpins` read before the pins were found in the way: if it moved since, a
    /// pin went away and it is worth looking again.
    pub unpins: u64,
}

impl Writer {
    /// Ensures ring slots up to `end` can be written: their older lap must be on disk
    /// and forgotten by readers. False if the disk is too far behind (wait for a write)
    /// or a pin holds the window below what is needed (wait for the pin to go).
    pub(super) fn make_room(&mut self, end: u64) -> bool {
        let cap = self.shared.tail.capacity();
        let need = end.saturating_sub(cap);
        let retain = self.shared.tail.retain_start();
        if need <= retain {
            self.pins_out_of_the_way();
            return true;
        }
        let limit = align_down(self.write_end);
        if need > limit {
            return false;
        }
        let unpins = self.shared.tail.unpins();
        // Move in big steps so readers rarely meet the write lock. Pins clamp the move.
        let moved_to = self.shared.tail.advance_retain((need + cap / 4).min(limit));
        if moved_to < need {
            self.held_by_pins(need, unpins);
            return false;
        }
        self.pins_out_of_the_way();
        true
    }

    /// Pins keep the window below `need`: remember since when, and raise pin pressure
    /// once that has lasted PIN_PRESSURE_AFTER.
    pub(super) fn held_by_pins(&mut self, need: u64, unpins: u64) {
        let since = self.pin_wait.map_or_else(Instant::now, |w| w.since);
        self.pin_wait = Some(PinWait { since, unpins });
        self.shared.tail.set_pin_waiter(true);
        if since.elapsed() >= PIN_PRESSURE_AFTER {
            if self.shared.tail.revoke_below() < need {
                tracing::warn!(
                    need,
                    pinned_floor = ?self.shared.tail.pinned_floor(),
                    waited_ms = since.elapsed().as_millis() as u64,
                    "tail pins hold the CommitLog writer up; raising pin pressure"
                );
            }
            self.shared.tail.set_revoke_below(Some(need));
        }
    }

    /// Nothing is waiting for pins (any more): drop the pressure.
    pub(super) fn pins_out_of_the_way(&mut self) {
        if self.pin_wait.take().is_some() {
            self.shared.tail.set_pin_waiter(false);
            self.shared.tail.set_revoke_below(None);
        }
    }
}
