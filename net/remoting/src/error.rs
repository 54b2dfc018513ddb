//! `FrameError`: everything that can go wrong turning bytes into a
//! `RemotingCommand` (and back), or reading a typed header field.
//!
//! Two classes, told apart by [`FrameError::closes_connection`]:
//! framing/header errors leave the byte stream in an unknown state, so the
//! connection must be closed (as Java does, spec §1.2); field errors concern
//! one well-framed request, which should be answered with an error response
//! (unless it is oneway).

use std::fmt;

/// Longest stretch of an offending value quoted in a `Display` message.
const QUOTE_MAX: usize = 64;

/// A framing, header or header-field error. `Display` says exactly what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is negative (read as a signed 32-bit int).
    NegativeFrameLength(i32),
    /// The length prefix is below 4, so it cannot hold the header-length word.
    FrameTooShort(u32),
    /// The frame (the value of the length prefix) is above the limit.
    FrameTooLarge { len: u64, max: usize },
    /// Top byte of the header-length word is neither 0 (JSON) nor 1 (ROCKETMQ).
    UnknownSerializeType(u8),
    /// headerLength > totalLength − 4.
    HeaderExceedsFrame { header_len: u32, frame_len: u32 },
    /// The JSON header is not valid JSON or lacks/mistypes a standard field.
    BadJsonHeader(String),
    /// The ROCKETMQ binary header is truncated or inconsistent.
    BadBinaryHeader(String),
    /// Encoding: the header does not fit the 24-bit header-length field.
    HeaderTooLarge(usize),
    /// A required header field (any of the listed aliases) is absent.
    MissingField(Vec<String>),
    /// A header field is present but does not parse as the expected type.
    MalformedField {
        field: String,
        value: String,
        expected: &'static str,
    },
}

impl FrameError {
    /// True for framing/header errors (close the connection); false for a
    /// bad typed field (answer the request with an error response).
    pub fn closes_connection(&self) -> bool {
        !matches!(self, Self::MissingField(_) | Self::MalformedField { .. })
    }
}

fn quote(s: &str) -> String {
    if s.len() <= QUOTE_MAX {
        return format!("{s:?}");
    }
    let mut end = QUOTE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..end], s.len())
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NegativeFrameLength(n) => write!(f, "negative frame length {n}"),
            Self::FrameTooShort(n) => write!(
                f,
                "frame length {n} is smaller than the 4-byte header-length word"
            ),
            Self::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte limit")
            }
            Self::UnknownSerializeType(t) => {
                write!(
                    f,
                    "unknown serialize type {t} (expected 0=JSON or 1=ROCKETMQ)"
                )
            }
            Self::HeaderExceedsFrame {
                header_len,
                frame_len,
            } => write!(
                f,
                "header length {header_len} exceeds frame length {frame_len} minus 4"
            ),
            Self::BadJsonHeader(why) => write!(f, "invalid JSON header: {why}"),
            Self::BadBinaryHeader(why) => write!(f, "invalid ROCKETMQ binary header: {why}"),
            Self::HeaderTooLarge(n) => write!(
                f,
                "header of {n} bytes does not fit the 24-bit header length (max 16777215)"
            ),
            Self::MissingField(names) => {
                write!(f, "missing header field ")?;
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        write!(f, " or ")?;
                    }
                    write!(f, "{n:?}")?;
                }
                Ok(())
            }
            Self::MalformedField {
                field,
                value,
                expected,
            } => write!(
                f,
                "header field {field:?} has value {}, expected {expected}",
                quote(value)
            ),
        }
    }
}

impl std::error::Error for FrameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_class() {
        let e = FrameError::FrameTooLarge {
            len: 20_000_000,
            max: 16_777_216,
        };
        assert_eq!(
            e.to_string(),
            "frame of 20000000 bytes exceeds the 16777216-byte limit"
        );
        assert!(e.closes_connection());
        let e = FrameError::MissingField(vec!["b".into(), "topic".into()]);
        assert_eq!(e.to_string(), r#"missing header field "b" or "topic""#);
        assert!(!e.closes_connection());
        let e = FrameError::MalformedField {
            field: "queueId".into(),
            value: "x".repeat(100),
            expected: "a 32-bit integer",
        };
        let s = e.to_string();
        assert!(
            s.starts_with(r#"header field "queueId" has value "xxxx"#),
            "{s}"
        );
        assert!(s.ends_with("(100 bytes), expected a 32-bit integer"), "{s}");
        assert!(!e.closes_connection());
    }
}
