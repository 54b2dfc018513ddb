//! Java's sort order for client ids and queues, which RocketMQ's rebalance
//! uses (`Collections.sort` of `cidAll` and `mqAll`) before allocating.
//!
//! Java's `String.compareTo` compares UTF-16 code units, not code points, so
//! it differs from Rust's `str` order (UTF-8 bytes) only between characters
//! above U+FFFF and those in U+E000..=U+FFFF. `MessageQueue.compareTo`
//! compares topic, then broker name, then `this.queueId - o.queueId`; that int
//! subtraction wraps for queue ids more than `i32::MAX` apart, which a real
//! queue id (0 up to a few thousand) never is, so plain `i32` order is used.

use std::cmp::Ordering;

use crate::route::MessageQueue;

/// Java's `String.compareTo`: lexicographic over UTF-16 code units.
pub fn cmp_str(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A string that sorts as Java's `String` does, for maps that stand in for a
/// Java `TreeMap<String, _>` whose iteration order shows in a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaString(pub String);

impl Ord for JavaString {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_str(&self.0, &other.0)
    }
}

impl PartialOrd for JavaString {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Java's `MessageQueue.compareTo`: topic, broker name, queue id.
pub fn cmp_message_queue(a: &MessageQueue, b: &MessageQueue) -> Ordering {
    cmp_str(&a.topic, &b.topic)
        .then_with(|| cmp_str(&a.broker_name, &b.broker_name))
        .then_with(|| a.queue_id.cmp(&b.queue_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_order_differs_from_utf8_above_the_bmp() {
        assert_eq!(cmp_str("\u{10000}", "\u{FFFD}"), Ordering::Less);
        assert_eq!("\u{10000}".cmp("\u{FFFD}"), Ordering::Greater);
        assert_eq!(cmp_str("ab", "abc"), Ordering::Less);
        assert_eq!(cmp_str("b", "abc"), Ordering::Greater);
        assert_eq!(cmp_str("x", "x"), Ordering::Equal);
    }

    #[test]
    fn queues_compare_by_topic_broker_id() {
        let q = MessageQueue::new;
        assert_eq!(
            cmp_message_queue(&q("A", "z", 9), &q("B", "a", 0)),
            Ordering::Less
        );
        assert_eq!(
            cmp_message_queue(&q("A", "b", 0), &q("A", "a", 9)),
            Ordering::Greater
        );
        assert_eq!(
            cmp_message_queue(&q("A", "a", 2), &q("A", "a", 10)),
            Ordering::Less
        );
    }
}
