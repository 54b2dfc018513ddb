//! RocketMQ CRC32 (§4.10): standard IEEE CRC-32 (as `java.util.zip.CRC32`) with the top
//! bit cleared. Used for BODYCRC and the register-broker `bodyCrc32`.

/// Masked CRC32 of `bytes` (`crc32 & 0x7FFF_FFFF`).
#[inline]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) & 0x7FFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(crc32(b"hello"), 907_060_870);
        assert_eq!(crc32(b""), 0);
        // crc32("123456789") = 0xCBF43926; masked clears the top bit.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926 & 0x7FFF_FFFF);
    }
}
