//! RocketMQ's delay levels (`messageDelayLevel`): level i is the i-th duration of
//! "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
//!
//! A message whose `DELAY` property names a level waits in queue `level - 1` of
//! [`SCHEDULE_TOPIC`]; its ConsumeQueue tagsCode is the delivery time (store time plus the
//! level's delay), and the broker's schedule service moves it to its real topic once that
//! time has passed (wire spec §9).

use crate::record::{edit_properties, keys, sysflag, MessageToStore};
use crate::{Error, Result};

/// The topic delayed messages wait in, one queue per level (queue id = level - 1).
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
pub const DEFAULT_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayLevels {
    millis: Vec<i64>,
}

impl Default for DelayLevels {
    fn default() -> Self {
        Self::parse(DEFAULT_LEVELS).expect("default delay levels parse")
    }
}

impl DelayLevels {
    /// Parses RocketMQ's space-separated list (units s, m, h, d; non-negative numbers).
    pub fn parse(text: &str) -> Result<Self> {
        let mut millis = Vec::new();
        for token in text.split_whitespace() {
            let bad = |why: &str| Error::Invalid(format!("bad delay level {token:?}: {why}"));
            let unit = token
                .chars()
                .last()
                .expect("split_whitespace yields non-empty");
            let num = &token[..token.len() - unit.len_utf8()];
            let scale: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => return Err(bad("the unit must be one of s, m, h, d")),
            };
            let n: i64 = num
                .parse()
                .map_err(|_| bad("expected a number followed by a unit"))?;
            if n < 0 {
                return Err(bad("a delay cannot be negative"));
            }
            millis.push(n.checked_mul(scale).ok_or_else(|| bad("too large"))?);
        }
        if millis.is_empty() {
            return Err(Error::Invalid("messageDelayLevel is empty".into()));
        }
        Ok(DelayLevels { millis })
    }

    pub fn max_level(&self) -> i32 {
        self.millis.len() as i32
    }

    /// `level` clamped to the highest level (RocketMQ clamps rather than refuses);
    /// 0 or less stays as given (no delay).
    pub fn clamp(&self, level: i32) -> i32 {
        level.min(self.max_level())
    }

    /// Delay of `level` (1-based; clamped to the maximum; 0 or less means none).
    pub fn delay_ms(&self, level: i32) -> i64 {
        if level <= 0 {
            return 0;
        }
        self.millis[(self.clamp(level) - 1) as usize]
    }

    /// The `SCHEDULE_TOPIC_XXXX` queue of a level (`delayLevel2QueueId`).
    pub fn queue_id(level: i32) -> i32 {
        level - 1
    }

    /// The level a `SCHEDULE_TOPIC_XXXX` queue holds (`queueId2DelayLevel`).
    pub fn level_of_queue(queue_id: i32) -> i32 {
        queue_id + 1
    }
}

/// Whether a message with this sysFlag is delayed by its `DELAY` property: only
/// non-transactional and commit messages are (`HookUtils.handleScheduleMessage`).
pub fn delay_applies(sys_flag: i32) -> bool {
    matches!(
        sysflag::transaction_type(sys_flag),
        sysflag::TRANSACTION_NOT_TYPE | sysflag::TRANSACTION_COMMIT_TYPE
    )
}

/// Makes `msg` wait in `SCHEDULE_TOPIC_XXXX` for delay `level` (> 0; clamped to the
/// highest level): `DELAY` is set to the clamped level, `REAL_TOPIC` / `REAL_QID` to the
/// message's topic and queue, and the message moves to queue `level - 1`
/// (`HookUtils.transformDelayLevelMessage`).
pub fn to_schedule_topic(msg: &mut MessageToStore, level: i32, levels: &DelayLevels) {
    debug_assert!(level > 0);
    let level = levels.clamp(level).max(1);
    let (level_text, qid_text) = (level.to_string(), msg.queue_id.to_string());
    msg.properties = edit_properties(
        &msg.properties,
        &[],
        &[
            (keys::DELAY, &level_text),
            (keys::REAL_TOPIC, &msg.topic),
            (keys::REAL_QID, &qid_text),
        ],
    );
    msg.topic = SCHEDULE_TOPIC.to_owned();
    msg.queue_id = DelayLevels::queue_id(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_levels() {
        let l = DelayLevels::default();
        assert_eq!(l.max_level(), 18);
        assert_eq!(l.delay_ms(1), 1_000);
        assert_eq!(l.delay_ms(5), 60_000);
        assert_eq!(l.delay_ms(18), 7_200_000);
        assert_eq!(l.delay_ms(99), 7_200_000);
        assert_eq!(l.delay_ms(0), 0);
        assert_eq!(l.delay_ms(-1), 0);
        assert_eq!(l.clamp(99), 18);
        assert_eq!(l.clamp(-1), -1);
        assert_eq!(DelayLevels::queue_id(1), 0);
        assert_eq!(DelayLevels::level_of_queue(17), 18);
    }

    #[test]
    fn custom_and_bad_levels() {
        let l = DelayLevels::parse(" 1s  2s\t3m 1d 0s ").unwrap();
        assert_eq!(l.max_level(), 5);
        assert_eq!(l.delay_ms(3), 180_000);
        assert_eq!(l.delay_ms(4), 86_400_000);
        assert_eq!(l.delay_ms(5), 0);
        for bad in [
            "",
            "   ",
            "1x",
            "s",
            "-1s",
            "1é",
            "é",
            "1.5s",
            "99999999999999999d",
        ] {
            assert!(DelayLevels::parse(bad).is_err(), "{bad:?}");
        }
    }
}
