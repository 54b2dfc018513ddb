//! The two HA frames of RocketMQ's classic replication (spec 7.2, 7.3), big-endian, no
//! handshake, version or checksum, and streaming decoders for both. Pure functions and
//! per-connection state: the master's reader thread runs [`ReportDecoder`], the slave's
//! session thread runs [`FrameDecoder`]; encoders run wherever frames are sent.
//!
//! ```text
//! slave -> master   offset 0  8  slaveMaxOffset (i64)
//! master -> slave   offset 0  8  phyOffset (i64)
//!                   offset 8  4  bodySize (i32, 0 = heartbeat)
//!                   offset 12 N  CommitLog bytes [phyOffset, phyOffset + N)
//! ```

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};

/// Size of a slave's offset report.
pub const REPORT_SIZE: usize = 8;
/// Size of a transfer frame's header.
pub const TRANSFER_HEADER_SIZE: usize = 12;

/// A malformed frame. The connection that carried it cannot continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A transfer frame announces a body larger than `haTransferBatchSize`.
    BodyTooLarge {
        phys_offset: i64,
        size: i32,
        max: usize,
    },
    /// A transfer frame announces a negative body size.
    NegativeBodySize { phys_offset: i64, size: i32 },
    /// A transfer frame or a report carries a negative CommitLog offset.
    NegativeOffset { offset: i64 },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BodyTooLarge {
                phys_offset,
                size,
                max,
            } => write!(
                f,
                "HA transfer frame at offset {phys_offset} announces {size} body bytes, more \
                 than haTransferBatchSize {max} (peer misconfigured or not an HA peer)"
            ),
            ProtocolError::NegativeBodySize { phys_offset, size } => write!(
                f,
                "HA transfer frame at offset {phys_offset} announces a negative body size {size}"
            ),
            ProtocolError::NegativeOffset { offset } => {
                write!(f, "HA frame carries a negative CommitLog offset {offset}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<ProtocolError> for io::Error {
    fn from(e: ProtocolError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Encodes a slave's offset report (spec 7.2).
pub fn encode_report(slave_max_offset: i64) -> [u8; REPORT_SIZE] {
    slave_max_offset.to_be_bytes()
}

/// Encodes a transfer frame header (spec 7.3); `body_size` 0 makes a heartbeat.
///
/// # Panics
/// If `body_size` does not fit the wire's i32 (callers cap it at the batch size).
pub fn encode_transfer_header(phys_offset: i64, body_size: usize) -> [u8; TRANSFER_HEADER_SIZE] {
    let size = i32::try_from(body_size).expect("HA frame body fits an i32");
    let mut h = [0u8; TRANSFER_HEADER_SIZE];
    h[..8].copy_from_slice(&phys_offset.to_be_bytes());
    h[8..].copy_from_slice(&size.to_be_bytes());
    h
}

/// Splits a transfer frame header into `(phyOffset, bodySize)`, unvalidated.
pub fn decode_transfer_header(h: &[u8; TRANSFER_HEADER_SIZE]) -> (i64, i32) {
    let phys = i64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let size = i32::from_be_bytes(h[8..].try_into().expect("4 bytes"));
    (phys, size)
}

/// One decoded transfer frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferFrame {
    pub phys_offset: i64,
    /// Raw CommitLog bytes; empty for a heartbeat.
    pub body: Bytes,
}

impl TransferFrame {
    pub fn is_heartbeat(&self) -> bool {
        self.body.is_empty()
    }
}

/// Streaming decoder of master -> slave transfer frames. Bytes may arrive split
/// anywhere; a body buffer is allocated only after its size was checked against
/// `max_body`, so the decoder never holds more than one header plus `max_body` bytes.
/// After an error it stays failed.
#[derive(Debug)]
pub struct FrameDecoder {
    max_body: usize,
    header: [u8; TRANSFER_HEADER_SIZE],
    header_len: usize,
    /// The frame whose body is being collected: offset, bytes so far, announced size.
    body: Option<(i64, BytesMut, usize)>,
    failed: Option<ProtocolError>,
}

impl FrameDecoder {
    pub fn new(max_body: usize) -> Self {
        FrameDecoder {
            max_body,
            header: [0; TRANSFER_HEADER_SIZE],
            header_len: 0,
            body: None,
            failed: None,
        }
    }

    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Whether the decoder sits between frames (no partial header or body held).
    pub fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.body.is_none() && self.failed.is_none()
    }

    /// Consumes bytes from the front of `input` until one frame is complete (returned)
    /// or `input` is empty (None: feed more).
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<TransferFrame>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            if let Some((phys, body, size)) = &mut self.body {
                let n = (*size - body.len()).min(input.len());
                body.extend_from_slice(&input[..n]);
                *input = &input[n..];
                if body.len() < *size {
                    return Ok(None);
                }
                let phys = *phys;
                let (_, body, _) = self.body.take().expect("body in progress");
                return Ok(Some(TransferFrame {
                    phys_offset: phys,
                    body: body.freeze(),
                }));
            }
            if input.is_empty() {
                return Ok(None);
            }
            let n = (TRANSFER_HEADER_SIZE - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
            self.header_len += n;
            *input = &input[n..];
            if self.header_len < TRANSFER_HEADER_SIZE {
                return Ok(None);
            }
            self.header_len = 0;
            let (phys, size) = decode_transfer_header(&self.header);
            let err = if phys < 0 {
                Some(ProtocolError::NegativeOffset { offset: phys })
            } else if size < 0 {
                Some(ProtocolError::NegativeBodySize {
                    phys_offset: phys,
                    size,
                })
            } else if size as usize > self.max_body {
                Some(ProtocolError::BodyTooLarge {
                    phys_offset: phys,
                    size,
                    max: self.max_body,
                })
            } else {
                None
            };
            if let Some(e) = err {
                self.failed = Some(e.clone());
                return Err(e);
            }
            if size == 0 {
                return Ok(Some(TransferFrame {
                    phys_offset: phys,
                    body: Bytes::new(),
                }));
            }
            self.body = Some((phys, BytesMut::with_capacity(size as usize), size as usize));
        }
    }
}

/// Streaming decoder of slave -> master offset reports. Like RocketMQ's master it keeps
/// only the last complete 8-byte value of what arrived (older ones are superseded).
/// Negative offsets are refused (RocketMQ accepts anything; apache/rocketmq#3015).
#[derive(Debug, Default)]
pub struct ReportDecoder {
    partial: [u8; REPORT_SIZE],
    len: usize,
    failed: Option<ProtocolError>,
}

impl ReportDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes all of `input`; returns the last report it completed, if any.
    pub fn decode(&mut self, mut input: &[u8]) -> Result<Option<i64>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut last = None;
        while !input.is_empty() {
            let n = (REPORT_SIZE - self.len).min(input.len());
            self.partial[self.len..self.len + n].copy_from_slice(&input[..n]);
            self.len += n;
            input = &input[n..];
            if self.len == REPORT_SIZE {
                self.len = 0;
                let v = i64::from_be_bytes(self.partial);
                if v < 0 {
                    let e = ProtocolError::NegativeOffset { offset: v };
                    self.failed = Some(e.clone());
                    return Err(e);
                }
                last = Some(v);
            }
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_big_endian() {
        let h = encode_transfer_header(0x0102_0304_0506_0708, 0x0a0b);
        assert_eq!(h, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x0a, 0x0b]);
        assert_eq!(encode_report(258), [0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn split_header_and_body() {
        let mut wire = encode_transfer_header(4096, 3).to_vec();
        wire.extend_from_slice(b"abc");
        wire.extend_from_slice(&encode_transfer_header(4099, 0));
        let mut d = FrameDecoder::new(16);
        let mut frames = Vec::new();
        for byte in wire.chunks(1) {
            let mut input = byte;
            while let Some(f) = d.decode(&mut input).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].phys_offset, &frames[0].body[..]),
            (4096, &b"abc"[..])
        );
        assert!(frames[1].is_heartbeat() && frames[1].phys_offset == 4099);
        assert!(d.at_boundary());
    }
}
