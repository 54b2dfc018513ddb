//! RocketMQ's delay levels (`messageDelayLevel`): level i is the i-th duration of
//! "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".

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
    /// Parses RocketMQ's space-separated list (units s, m, h, d).
    pub fn parse(text: &str) -> Result<Self> {
        let mut millis = Vec::new();
        for token in text.split_whitespace() {
            let (num, unit) = token.split_at(token.len() - 1);
            let n: i64 = num
                .parse()
                .map_err(|_| Error::Invalid(format!("bad delay level {token:?}")))?;
            let scale = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(Error::Invalid(format!("bad delay level unit in {token:?}"))),
            };
            millis.push(n * scale);
        }
        if millis.is_empty() {
            return Err(Error::Invalid("messageDelayLevel is empty".into()));
        }
        Ok(DelayLevels { millis })
    }

    pub fn max_level(&self) -> i32 {
        self.millis.len() as i32
    }

    /// Delay of `level` (1-based; clamped to the maximum; 0 or less means none).
    pub fn delay_ms(&self, level: i32) -> i64 {
        if level <= 0 {
            return 0;
        }
        self.millis[(level.min(self.max_level()) - 1) as usize]
    }
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
    }
}
