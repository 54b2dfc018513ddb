//! Maps keyed by `MessageQueue` as fastjson writes them: the key is a JSON object, which
//! standard JSON does not allow (`{{"brokerName":"b","queueId":0,"topic":"T"}:{...}}`).
//! Java's `RemotingSerializable.decode` reads exactly this, so the broker writes it; the
//! admin tool and the push consumer (RESET_CONSUMER_CLIENT_OFFSET) read it back with
//! [`parse_object_key_map`].

use serde_json::Value;

/// A `MessageQueue` key, fields in fastjson's (alphabetical) order.
pub fn mq_key(topic: &str, broker_name: &str, queue_id: i32) -> String {
    serde_json::json!({"brokerName": broker_name, "queueId": queue_id, "topic": topic}).to_string()
}

/// `{key:value,...}` from already-encoded keys and values.
pub fn object_key_map(entries: impl IntoIterator<Item = (String, String)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&k);
        out.push(':');
        out.push_str(&v);
    }
    out.push('}');
    out
}

/// Reads the map under `field` of a fastjson object whose keys may be objects: returns
/// (key, value) pairs. Other fields of the outer object are returned in the second slot.
#[allow(clippy::type_complexity)]
pub fn parse_object_key_map(
    body: &[u8],
    field: &str,
) -> Result<(Vec<(Value, Value)>, serde_json::Map<String, Value>), String> {
    let mut p = Parser { s: body, at: 0 };
    let mut entries = Vec::new();
    let mut others = serde_json::Map::new();
    p.expect(b'{')?;
    if p.peek() == Some(b'}') {
        return Ok((entries, others));
    }
    loop {
        let name = match p.value()? {
            Value::String(s) => s,
            other => return Err(format!("outer key {other} is not a string")),
        };
        p.expect(b':')?;
        if name == field {
            p.expect(b'{')?;
            if p.peek() == Some(b'}') {
                p.at += 1;
            } else {
                loop {
                    let k = p.value()?;
                    p.expect(b':')?;
                    let v = p.value()?;
                    entries.push((k, v));
                    if p.sep()? {
                        break;
                    }
                }
            }
        } else {
            others.insert(name, p.value()?);
        }
        if p.sep()? {
            break;
        }
    }
    Ok((entries, others))
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() != Some(c) {
            return Err(format!("expected {:?} at byte {}", c as char, self.at));
        }
        self.at += 1;
        Ok(())
    }

    /// After an entry: true at the closing `}`, false after a `,`.
    fn sep(&mut self) -> Result<bool, String> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(false)
            }
            Some(b'}') => {
                self.at += 1;
                Ok(true)
            }
            _ => Err(format!("expected ',' or '}}' at byte {}", self.at)),
        }
    }

    /// One JSON value (bare integer keys inside it are not expected here).
    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        let mut it = serde_json::Deserializer::from_slice(&self.s[self.at..]).into_iter::<Value>();
        let v = it
            .next()
            .ok_or_else(|| format!("value expected at byte {}", self.at))?
            .map_err(|e| format!("bad value at byte {}: {e}", self.at))?;
        self.at += it.byte_offset();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keyed_maps_round_trip() {
        let body = format!(
            "{{\"offsetTable\":{},\"consumeTps\":1.5}}",
            object_key_map([
                (mq_key("T", "b", 0), "{\"maxOffset\":3}".to_string()),
                (mq_key("T", "b", 1), "7".to_string()),
            ])
        );
        assert!(body.contains("{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}:"));
        let (entries, others) = parse_object_key_map(body.as_bytes(), "offsetTable").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0["queueId"], 0);
        assert_eq!(entries[0].1["maxOffset"], 3);
        assert_eq!(entries[1].1, 7);
        assert_eq!(others["consumeTps"], 1.5);
        let (e, _) = parse_object_key_map(b"{\"offsetTable\":{}}", "offsetTable").unwrap();
        assert!(e.is_empty());
        assert!(parse_object_key_map(b"{\"offsetTable\":{1:", "offsetTable").is_err());
    }
}
