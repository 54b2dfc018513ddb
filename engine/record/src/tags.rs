//! Tags hash code (§4.9): Java `String.hashCode()` over UTF-16 code units, 32-bit wrapping.
//! The ConsumeQueue tagsCode is this value sign-extended to `i64` (0 for no tags).

/// Java `String.hashCode()` of `tags`: `h = 31*h + unit` over UTF-16 code units.
#[inline]
pub fn tags_hash(tags: &str) -> i32 {
    let bytes = tags.as_bytes();
    if bytes.is_ascii() {
        // One UTF-16 unit per byte.
        return bytes
            .iter()
            .fold(0i32, |h, &b| h.wrapping_mul(31).wrapping_add(b as i32));
    }
    tags.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(tags_hash("hello"), 99_162_322);
        assert_eq!(tags_hash(""), 0);
        assert_eq!(tags_hash("TagA"), 2_598_919);
        // Wraps around like Java ("polygenelubricants".hashCode() == Integer.MIN_VALUE).
        assert_eq!(tags_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn non_bmp_uses_surrogate_pairs() {
        // U+1F600 is the surrogate pair D83D DE00 in UTF-16: 31*0xD83D + 0xDE00.
        assert_eq!(tags_hash("\u{1F600}"), 31 * 0xD83D + 0xDE00);
        assert_eq!(tags_hash("\u{1F600}"), 1_772_899);
        // BMP non-ASCII: one unit per char ("é" = U+00E9).
        assert_eq!(tags_hash("é"), 0xE9);
        assert_eq!(tags_hash("aé"), 97 * 31 + 0xE9);
    }
}
