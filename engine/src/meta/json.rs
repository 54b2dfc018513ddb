//! The fastjson dialect (wire spec §6.1) and the shared load path of the metadata files.
//!
//! Java writes maps with integer keys unquoted (`{"offsetTable":{"T1@G1":{0:42}}}`), which
//! is not standard JSON. [`quote_bare_keys`] rewrites such keys into quoted ones so that
//! serde_json can parse them (serde_json turns `"0"` into an integer map key); [`from_slice`]
//! applies it before parsing. For the consumer-offset and delay-offset tables we emit the
//! unquoted form ourselves ([`push_int_key_map`]) because that is what Java peers are
//! certain to read (§11).

use std::borrow::Cow;
use std::fmt::Display;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::atomic_file::{bak_path, read_if_exists};
use crate::{Error, Result};

/// Quotes every bare (unquoted) object key in `input`; returns the input unchanged when it
/// has none. Works on bytes: UTF-8 continuation bytes never look like `"`, `\` or brackets.
pub fn quote_bare_keys(input: &[u8]) -> Cow<'_, [u8]> {
    // Stack of open containers: true = object, false = array.
    let mut stack: Vec<bool> = Vec::new();
    let mut expecting_key = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => {
                    in_string = true;
                    expecting_key = false;
                }
                b'{' => {
                    stack.push(true);
                    expecting_key = true;
                }
                b'[' => {
                    stack.push(false);
                    expecting_key = false;
                }
                b'}' | b']' => {
                    stack.pop();
                    expecting_key = false;
                }
                b',' => expecting_key = stack.last() == Some(&true),
                b':' => expecting_key = false,
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if expecting_key => {
                    let end = input[i..]
                        .iter()
                        .position(|c| b" \t\r\n:,{}[]\"".contains(c))
                        .map_or(input.len(), |p| i + p);
                    let buf = out.get_or_insert_with(|| input[..i].to_vec());
                    buf.push(b'"');
                    buf.extend_from_slice(&input[i..end]);
                    buf.push(b'"');
                    expecting_key = false;
                    i = end;
                    continue;
                }
                _ => {}
            }
        }
        if let Some(buf) = out.as_mut() {
            buf.push(b);
        }
        i += 1;
    }
    match out {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(input),
    }
}

/// Parses JSON in either the standard or the fastjson dialect (bare integer keys).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(&quote_bare_keys(bytes))
}

/// Appends `{k:v,...}` with bare keys, as fastjson writes `Map<Integer, Long>`.
pub fn push_int_key_map<'a, K, V>(
    out: &mut String,
    entries: impl IntoIterator<Item = (&'a K, &'a V)>,
) where
    K: Display + 'a,
    V: Display + 'a,
{
    out.push('{');
    for (n, (k, v)) in entries.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&format!("{k}:{v}"));
    }
    out.push('}');
}

/// Appends `value` as standard JSON.
pub fn push_json<T: Serialize + ?Sized>(out: &mut String, value: &T) {
    // Serializing plain data (strings, numbers, derived structs with string keys) cannot fail.
    out.push_str(&serde_json::to_string(value).expect("metadata serializes to JSON"));
}

/// Deserializes `null` as `T::default()` (Java peers may write nulls; fastjson omits them).
pub fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Loads a metadata file: the file itself, or (when it is missing or empty, e.g. after a
/// Java broker crashed mid-write) its `.bak`, or `None` when neither has content.
/// A file that does not parse is an [`Error::Json`] naming it.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    for candidate in [path.to_path_buf(), bak_path(path)] {
        let Some(bytes) = read_if_exists(&candidate)? else {
            continue;
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if candidate != path {
            tracing::warn!(path = %path.display(), "metadata file missing or empty; loading its .bak");
        }
        return from_slice(&bytes).map(Some).map_err(|source| Error::Json {
            path: candidate,
            source,
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn q(s: &str) -> String {
        String::from_utf8(quote_bare_keys(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn quotes_only_bare_keys() {
        assert_eq!(q(r#"{"a":{0:42,-1:40}}"#), r#"{"a":{"0":42,"-1":40}}"#);
        assert_eq!(q("{\n\t1 : 2,\n\t3:4}"), "{\n\t\"1\" : 2,\n\t\"3\":4}");
        // Values, array elements and text inside strings are untouched.
        let standard = r#"{"a":[1,2,{"b":"x{1:2}, \"q\" 3:"}],"c":{"0":1},"d":true}"#;
        assert!(matches!(
            quote_bare_keys(standard.as_bytes()),
            Cow::Borrowed(_)
        ));
        assert_eq!(q("[{1:2},{3:4}]"), r#"[{"1":2},{"3":4}]"#);
        assert_eq!(q("{}"), "{}");
    }

    #[test]
    fn both_key_forms_parse_and_bare_form_is_emitted() {
        let a: BTreeMap<i32, i64> = from_slice(b"{1:17,2:0}").unwrap();
        let b: BTreeMap<i32, i64> = from_slice(br#"{"1":17,"2":0}"#).unwrap();
        assert_eq!(a, b);
        let mut s = String::new();
        push_int_key_map(&mut s, &a);
        assert_eq!(s, "{1:17,2:0}");
        assert!(from_slice::<BTreeMap<i32, i64>>(b"{1:").is_err());
    }

    proptest::proptest! {
        #[test]
        fn standard_json_is_left_alone(m in proptest::collection::btree_map(".*", (".*", proptest::num::i64::ANY), 0..8)) {
            let s = serde_json::to_string(&m).unwrap();
            proptest::prop_assert!(matches!(quote_bare_keys(s.as_bytes()), Cow::Borrowed(_)));
        }

        #[test]
        fn bare_key_maps_round_trip(
            m in proptest::collection::btree_map(".*", proptest::collection::btree_map(proptest::num::i32::ANY, proptest::num::i64::ANY, 0..5), 0..5)
        ) {
            let mut s = String::from("{");
            for (n, (k, inner)) in m.iter().enumerate() {
                if n > 0 { s.push(','); }
                push_json(&mut s, k);
                s.push_str(" :\n\t");
                push_int_key_map(&mut s, inner);
            }
            s.push('}');
            let back: BTreeMap<String, BTreeMap<i32, i64>> = from_slice(s.as_bytes()).unwrap();
            proptest::prop_assert_eq!(back, m);
        }
    }
}
