//! The client-side batch body (§4.3): concatenated items of
//! `TOTALSIZE, MAGIC(0), BODYCRC(0), FLAG, bodyLen, body, propsLen(short), props`.
//!
//! [`decode_batch`] slices bodies and properties out of the request `Bytes` without
//! copying; [`encode_batch`] produces the layout the Java and Rust clients send.

use bytes::{BufMut, Bytes};

use super::PROPERTIES_MAX_LEN;
use crate::{Error, Result};

/// Fixed bytes per item: total size, magic, body CRC, flag, body length, properties length.
pub const BATCH_ITEM_OVERHEAD: usize = 22;

/// One message of a batch send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchItem {
    pub flag: i32,
    pub body: Bytes,
    /// The item's properties string (§4.1), as sent.
    pub properties: Bytes,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits a batch body into its items. Each item's TOTALSIZE must equal
/// `22 + bodyLength + propertiesLength` and lie inside the buffer; magic and body CRC are
/// ignored (clients write 0). An empty batch body is an error.
pub fn decode_batch(data: &Bytes) -> Result<Vec<BatchItem>> {
    let buf: &[u8] = data;
    if buf.is_empty() {
        return Err(Error::Invalid("batch body is empty".into()));
    }
    let mut items = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let index = items.len();
        let left = buf.len() - at;
        let bad = |why: String| {
            Err(Error::Invalid(format!(
                "batch item {index} at byte {at}: {why}"
            )))
        };
        if left < BATCH_ITEM_OVERHEAD {
            return bad(format!(
                "truncated: {left} bytes left, header needs {BATCH_ITEM_OVERHEAD}"
            ));
        }
        let total = be_i32(buf, at);
        let flag = be_i32(buf, at + 12);
        let body_len = be_i32(buf, at + 16);
        if body_len < 0 || body_len as usize > left - BATCH_ITEM_OVERHEAD {
            return bad(format!(
                "body length {body_len} exceeds the {left} bytes left"
            ));
        }
        let body_start = at + 20;
        let body_end = body_start + body_len as usize;
        let props_len = i16::from_be_bytes([buf[body_end], buf[body_end + 1]]);
        let props_start = body_end + 2;
        if props_len < 0 || props_start + props_len as usize > buf.len() {
            return bad(format!(
                "properties length {props_len} exceeds the bytes left"
            ));
        }
        let end = props_start + props_len as usize;
        if total < 0 || total as usize != end - at {
            return bad(format!(
                "total size {total} does not match 22 + body {body_len} + properties {props_len}"
            ));
        }
        items.push(BatchItem {
            flag,
            body: data.slice(body_start..body_end),
            properties: data.slice(props_start..end),
        });
        at = end;
    }
    Ok(items)
}

/// Appends one item in the batch layout to `dst`. Fails if the properties exceed 32767
/// bytes or the item would exceed `i32::MAX` bytes.
pub fn encode_batch_item(
    dst: &mut Vec<u8>,
    flag: i32,
    body: &[u8],
    properties: &[u8],
) -> Result<()> {
    if properties.len() > PROPERTIES_MAX_LEN {
        return Err(Error::Invalid(format!(
            "properties size {} exceeds {PROPERTIES_MAX_LEN}",
            properties.len()
        )));
    }
    let total = BATCH_ITEM_OVERHEAD + body.len() + properties.len();
    if total > i32::MAX as usize {
        return Err(Error::Invalid(format!(
            "batch item of {total} bytes is too large"
        )));
    }
    dst.reserve(total);
    dst.put_i32(total as i32);
    dst.put_i32(0); // magic: ignored by the broker
    dst.put_i32(0); // body CRC: computed by the broker
    dst.put_i32(flag);
    dst.put_i32(body.len() as i32);
    dst.put_slice(body);
    dst.put_i16(properties.len() as i16);
    dst.put_slice(properties);
    Ok(())
}

/// Encodes items into one batch body.
pub fn encode_batch(items: &[BatchItem]) -> Result<Bytes> {
    let size = items
        .iter()
        .map(|i| BATCH_ITEM_OVERHEAD + i.body.len() + i.properties.len())
        .sum();
    let mut out = Vec::with_capacity(size);
    for item in items {
        encode_batch_item(&mut out, item.flag, &item.body, &item.properties)?;
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items() -> Vec<BatchItem> {
        vec![
            BatchItem {
                flag: 1,
                body: Bytes::from_static(b"hello"),
                properties: Bytes::from_static(b"UNIQ_KEY\x01A\x02"),
            },
            BatchItem {
                flag: -7,
                body: Bytes::new(),
                properties: Bytes::new(),
            },
            BatchItem {
                flag: 0,
                body: Bytes::from(vec![9u8; 300]),
                properties: Bytes::from_static(b"TAGS\x01x\x02"),
            },
        ]
    }

    #[test]
    fn round_trip_without_copying() {
        let data = encode_batch(&items()).unwrap();
        assert_eq!(&data[..4], &(22 + 5 + 11i32).to_be_bytes());
        assert_eq!(&data[4..12], &[0u8; 8]);
        let decoded = decode_batch(&data).unwrap();
        assert_eq!(decoded, items());
        // Bodies point into the request buffer.
        let base = data.as_ptr() as usize;
        let p = decoded[0].body.as_ptr() as usize;
        assert!(p >= base && p < base + data.len());
    }

    #[test]
    fn truncated_and_inconsistent_are_invalid() {
        let data = encode_batch(&items()).unwrap();
        for n in 1..data.len() {
            match decode_batch(&data.slice(..n)) {
                Err(Error::Invalid(_)) => {}
                other => {
                    // A cut exactly at an item boundary is a valid shorter batch.
                    let ok = other.unwrap();
                    assert!(ok.len() < 3, "cut {n}");
                    assert_eq!(&ok[..], &items()[..ok.len()]);
                }
            }
        }
        assert!(matches!(
            decode_batch(&Bytes::new()),
            Err(Error::Invalid(_))
        ));
        let mut bad = data.to_vec();
        bad[3] += 1; // total size no longer matches
        assert!(matches!(
            decode_batch(&Bytes::from(bad)),
            Err(Error::Invalid(_))
        ));
        let mut bad = data.to_vec();
        bad[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            decode_batch(&Bytes::from(bad)),
            Err(Error::Invalid(_))
        ));
        let mut bad = data.to_vec();
        bad[16..20].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_batch(&Bytes::from(bad)),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn oversized_properties_rejected() {
        let mut v = Vec::new();
        assert!(encode_batch_item(&mut v, 0, b"", &vec![b'a'; 32768]).is_err());
        assert!(encode_batch_item(&mut v, 0, b"", &vec![b'a'; 32767]).is_ok());
    }

    proptest! {
        #[test]
        fn prop_batch_round_trip(raw in proptest::collection::vec(
            (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..512),
             proptest::collection::vec(any::<u8>(), 0..64)), 1..10)) {
            let items: Vec<BatchItem> = raw.into_iter()
                .map(|(flag, b, p)| BatchItem { flag, body: b.into(), properties: p.into() })
                .collect();
            let data = encode_batch(&items).unwrap();
            prop_assert_eq!(decode_batch(&data).unwrap(), items);
        }

        #[test]
        fn prop_batch_arbitrary_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_batch(&Bytes::from(b));
        }
    }
}
