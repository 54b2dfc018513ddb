//! offsetMsgId (§4.7): store address bytes + store port (int) + physical offset (long),
//! rendered as upper-case hex: 32 characters for IPv4, 56 for IPv6.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The offsetMsgId of the record at `phys_offset` stored by `store_host`.
pub fn offset_msg_id(store_host: &SocketAddr, phys_offset: i64) -> String {
    OffsetMsgId::new(store_host, phys_offset).to_string()
}

/// [`offset_msg_id`] as a `Display` value: writes the hex without allocating (the send
/// path writes one per stored message straight into its response).
#[derive(Debug, Clone, Copy)]
pub struct OffsetMsgId {
    raw: [u8; 28],
    len: usize,
}

impl OffsetMsgId {
    pub fn new(store_host: &SocketAddr, phys_offset: i64) -> Self {
        let mut raw = [0u8; 28];
        let n = match store_host {
            SocketAddr::V4(a) => {
                raw[..4].copy_from_slice(&a.ip().octets());
                4
            }
            SocketAddr::V6(a) => {
                raw[..16].copy_from_slice(&a.ip().octets());
                16
            }
        };
        raw[n..n + 4].copy_from_slice(&(store_host.port() as i32).to_be_bytes());
        raw[n + 4..n + 12].copy_from_slice(&phys_offset.to_be_bytes());
        OffsetMsgId { raw, len: n + 12 }
    }
}

impl std::fmt::Display for OffsetMsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hex = [0u8; 56];
        for (i, &b) in self.raw[..self.len].iter().enumerate() {
            hex[2 * i] = HEX[(b >> 4) as usize];
            hex[2 * i + 1] = HEX[(b & 0xF) as usize];
        }
        let text = std::str::from_utf8(&hex[..2 * self.len]).expect("hex digits are ASCII");
        f.write_str(text)
    }
}

/// Inverse of [`offset_msg_id`] (hex digits of either case). `None` unless `id` has 32
/// (IPv4) or 56 (IPv6) hex digits and the port is in 0..=65535.
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, i64)> {
    let s = id.as_bytes();
    let addr_len = match s.len() {
        32 => 4,
        56 => 16,
        _ => return None,
    };
    let mut raw = [0u8; 28];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        raw[i] = (hi * 16 + lo) as u8;
    }
    let port = i32::from_be_bytes(raw[addr_len..addr_len + 4].try_into().ok()?);
    let port = u16::try_from(port).ok()?;
    let offset = i64::from_be_bytes(raw[addr_len + 4..addr_len + 12].try_into().ok()?);
    let addr = if addr_len == 4 {
        let ip: [u8; 4] = raw[..4].try_into().ok()?;
        SocketAddr::from((Ipv4Addr::from(ip), port))
    } else {
        let ip: [u8; 16] = raw[..16].try_into().ok()?;
        SocketAddr::from((Ipv6Addr::from(ip), port))
    };
    Some((addr, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_vector() {
        let host: SocketAddr = "10.0.0.1:10911".parse().unwrap();
        let id = offset_msg_id(&host, 0x1234);
        assert_eq!(id, "0A00000100002A9F0000000000001234");
        assert_eq!(decode_offset_msg_id(&id), Some((host, 0x1234)));
        assert_eq!(
            decode_offset_msg_id(&id.to_lowercase()),
            Some((host, 0x1234))
        );
    }

    #[test]
    fn ipv6_round_trip() {
        let host: SocketAddr = "[2001:db8::7]:65535".parse().unwrap();
        let id = offset_msg_id(&host, i64::MAX);
        assert_eq!(id.len(), 56);
        assert!(id.starts_with("20010DB8"));
        assert_eq!(decode_offset_msg_id(&id), Some((host, i64::MAX)));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode_offset_msg_id(""), None);
        assert_eq!(decode_offset_msg_id(&"0".repeat(31)), None);
        assert_eq!(decode_offset_msg_id(&"G".repeat(32)), None);
        // Port 0x00010000 does not fit a u16.
        assert_eq!(
            decode_offset_msg_id("0A000001000100000000000000001234"),
            None
        );
        // Multi-byte UTF-8 of the right byte length is not hex.
        assert_eq!(decode_offset_msg_id(&"é".repeat(16)), None);
    }
}
