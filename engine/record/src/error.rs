//! The record codec's error: bytes that are not a valid record, or a message that cannot
//! become one. The engine maps both onto its own `Error` variants of the same names.

/// Result alias of the record codec.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Stored bytes failed validation (bad magic, size, CRC, position).
    Corrupt { offset: i64, reason: String },
    /// A message or batch is malformed or exceeds a limit (body size, topic, properties).
    Invalid(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Corrupt { offset, reason } => {
                write!(f, "corrupt record at offset {offset}: {reason}")
            }
            Error::Invalid(why) => write!(f, "invalid request: {why}"),
        }
    }
}

impl std::error::Error for Error {}
