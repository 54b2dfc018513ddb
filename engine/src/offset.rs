//! The two kinds of offset the engine hands out, as distinct types, and every conversion
//! between them and the wire's signed longs in one place.
//!
//! - [`PhyOffset`]: a byte position in the CommitLog (RocketMQ's `commitLogOffset`,
//!   the PHYSICALOFFSET field, `append_end`/`write_end`/`durable_end`).
//! - [`QueueOffset`]: the index of an entry in one ConsumeQueue (the QUEUEOFFSET field).
//!
//! Both are unsigned inside the engine; the wire and the public API carry them as `i64`
//! (Java longs). A negative value from outside is refused at the border
//! ([`PhyOffset::from_wire`]), and a value past `i64::MAX` can never leave
//! ([`PhyOffset::wire`] asserts it).

use std::fmt;

macro_rules! offset_type {
    ($name:ident, $what:literal) => {
        #[doc = $what]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(u64);

        impl $name {
            pub const ZERO: $name = $name(0);

            #[inline]
            pub const fn new(at: u64) -> Self {
                $name(at)
            }

            /// The value as the wire and the public API carry it. Asserts it fits.
            #[inline]
            pub fn wire(self) -> i64 {
                assert!(
                    self.0 <= i64::MAX as u64,
                    concat!(stringify!($name), " {} does not fit a Java long"),
                    self.0
                );
                self.0 as i64
            }

            /// A value from the wire or the public API; None if negative.
            #[inline]
            pub fn from_wire(at: i64) -> Option<Self> {
                u64::try_from(at).ok().map($name)
            }

            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The offset `n` further on.
            #[inline]
            pub fn plus(self, n: u64) -> Self {
                $name(
                    self.0
                        .checked_add(n)
                        .expect(concat!(stringify!($name), " overflow")),
                )
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

offset_type!(PhyOffset, "A byte position in the CommitLog.");
offset_type!(QueueOffset, "The index of an entry in one ConsumeQueue.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_refusals() {
        assert_eq!(PhyOffset::from_wire(42).unwrap().wire(), 42);
        assert_eq!(PhyOffset::from_wire(-1), None);
        assert_eq!(QueueOffset::new(7).plus(3), QueueOffset::new(10));
        assert!(PhyOffset::new(1) < PhyOffset::new(2));
    }

    #[test]
    #[should_panic(expected = "does not fit a Java long")]
    fn too_large_for_the_wire() {
        let _ = PhyOffset::new(u64::MAX).wire();
    }
}
