//! Request signing for brokers with ACL on, as RocketMQ's `AclClientRPCHook` does it: every
//! request carries an `AccessKey` ext field and a `Signature` ext field, the base64 of
//! HMAC-SHA1 (keyed with the secret key) over the values of every other ext field sorted
//! by field name, followed by the body. A broker verifies with [`signature`] too.
//!
//! Set [`Credentials`] in [`crate::ConnectOptions::credentials`] and the connection signs
//! every request it sends.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use ringmq_remoting::command::{ExtFields, RemotingCommand};
use sha1::Sha1;

/// Ext field naming the account.
pub const ACCESS_KEY: &str = "AccessKey";
/// Ext field carrying the signature (left out of what is signed).
pub const SIGNATURE: &str = "Signature";

/// An account's keys. The secret never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
        }
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Adds `AccessKey` and `Signature` to `cmd` (after every other field is set).
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        cmd.ext_fields.insert(ACCESS_KEY, self.access_key.clone());
        let sig = signature(&cmd.ext_fields, &cmd.body, &self.secret_key);
        cmd.ext_fields.insert(SIGNATURE, sig);
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// base64(HMAC-SHA1(secret, values of `fields` but `Signature`, sorted by name, then
/// `body`)). A field named twice counts once, with the value a lookup returns (the last).
pub fn signature(fields: &ExtFields, body: &[u8], secret: &str) -> String {
    let mut sorted = BTreeMap::new();
    for (k, v) in fields.iter() {
        if k != SIGNATURE {
            sorted.insert(k, v);
        }
    }
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    for v in sorted.values() {
        mac.update(v.as_bytes());
    }
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The known answer of rocketmq-client-rust 1.0.0's `AclClientRPCHook` test: fields
    /// a=first, z=last, AccessKey=ak, SecurityToken=token, body "body", secret "secret".
    #[test]
    fn matches_the_rocketmq_rust_client() {
        let mut cmd = RemotingCommand::request(10);
        cmd.body = bytes::Bytes::from_static(b"body");
        cmd.ext_fields.insert("z", "last");
        cmd.ext_fields.insert("a", "first");
        cmd.ext_fields.insert("SecurityToken", "token");
        cmd.ext_fields.insert(SIGNATURE, "stale");
        Credentials::new("ak", "secret").sign(&mut cmd);
        assert_eq!(cmd.ext_fields.get(ACCESS_KEY), Some("ak"));
        assert_eq!(
            cmd.ext_fields.get(SIGNATURE),
            Some("wuJkFDNRMKY6aFXTDwT/vg0UC8M=")
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", Credentials::new("ak", "s3cr3t-value"));
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }
}
