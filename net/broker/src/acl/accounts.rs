//! The accounts file, in the format of RocketMQ's `plain_acl.yml`:
//!
//! ```yaml
//! globalWhiteRemoteAddresses: ["10.10.103.*"]
//! accounts:
//!   - accessKey: RocketMQ
//!     secretKey: "12345678"
//!     whiteRemoteAddress: 192.168.0.*
//!     admin: false
//!     defaultTopicPerm: DENY
//!     defaultGroupPerm: SUB
//!     topicPerms: [topicA=DENY, topicB=PUB|SUB]
//!     groupPerms: [groupA=SUB]
//! ```
//!
//! Scalars may be written as numbers or booleans (`secretKey: 12345678`), as YAML allows.
//! As in RocketMQ, keys must be at least 6 characters, unset default permissions are
//! DENY, and a file with a bad entry is refused as a whole.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::addr::AddrPattern;
use super::perm;

/// The accounts file, read.
#[derive(Debug, Default)]
pub struct Accounts {
    pub global_white: Vec<AddrPattern>,
    pub by_key: HashMap<String, Account>,
}

pub struct Account {
    pub secret_key: String,
    pub white: AddrPattern,
    pub admin: bool,
    pub default_topic_perm: u8,
    pub default_group_perm: u8,
    pub topic_perms: HashMap<String, u8>,
    pub group_perms: HashMap<String, u8>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("secret_key", &"<redacted>")
            .field("white", &self.white)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// A YAML scalar of any type, kept as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FileForm {
    global_white_remote_addresses: Option<Vec<Option<Scalar>>>,
    accounts: Option<Vec<AccountForm>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AccountForm {
    access_key: Option<Scalar>,
    secret_key: Option<Scalar>,
    white_remote_address: Option<Scalar>,
    admin: Option<Scalar>,
    default_topic_perm: Option<Scalar>,
    default_group_perm: Option<Scalar>,
    topic_perms: Option<Vec<Option<Scalar>>>,
    group_perms: Option<Vec<Option<Scalar>>>,
}

fn text(s: Option<Scalar>) -> String {
    s.map(Scalar::text).unwrap_or_default()
}

/// `name=PERM` entries.
fn perms(entries: Option<Vec<Option<Scalar>>>, what: &str) -> Result<HashMap<String, u8>, String> {
    let mut out = HashMap::new();
    for e in entries.unwrap_or_default().into_iter().flatten() {
        let e = e.text();
        let Some((name, p)) = e.split_once('=') else {
            return Err(format!("{what} entry {e:?} is not name=PERM"));
        };
        out.insert(name.trim().to_string(), perm::parse(p));
    }
    Ok(out)
}

impl Accounts {
    /// Reads the accounts file at `path`.
    pub fn load(path: &Path) -> Result<Accounts, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Accounts::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(yaml: &str) -> Result<Accounts, String> {
        let form: FileForm = if yaml.trim().is_empty() {
            FileForm::default()
        } else {
            serde_yaml_ng::from_str::<Option<FileForm>>(yaml)
                .map_err(|e| format!("not an accounts file: {e}"))?
                .unwrap_or_default()
        };
        let mut accounts = Accounts::default();
        for a in form.global_white_remote_addresses.unwrap_or_default() {
            accounts.global_white.push(AddrPattern::parse(&text(a))?);
        }
        for a in form.accounts.unwrap_or_default() {
            let access_key = text(a.access_key);
            let secret_key = text(a.secret_key);
            if access_key.len() < 6 || secret_key.len() < 6 {
                return Err(format!(
                    "account {access_key:?}: accessKey and secretKey must be at least 6 characters"
                ));
            }
            let account = Account {
                secret_key,
                white: AddrPattern::parse(&text(a.white_remote_address))?,
                admin: text(a.admin).trim().eq_ignore_ascii_case("true"),
                default_topic_perm: a
                    .default_topic_perm
                    .map_or(perm::DENY, |p| perm::parse(&p.text())),
                default_group_perm: a
                    .default_group_perm
                    .map_or(perm::DENY, |p| perm::parse(&p.text())),
                topic_perms: perms(a.topic_perms, "topicPerms")?,
                group_perms: perms(a.group_perms, "groupPerms")?,
            };
            if accounts
                .by_key
                .insert(access_key.clone(), account)
                .is_some()
            {
                return Err(format!("account {access_key:?} is listed twice"));
            }
        }
        Ok(accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rocketmq_sample() {
        let a = Accounts::parse(
            r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB
  - accessKey: rocketmq2
    secretKey: "12345678"
    whiteRemoteAddress: 192.168.1.*
    admin: true
"#,
        )
        .unwrap();
        assert_eq!(a.global_white.len(), 2);
        let r = &a.by_key["RocketMQ"];
        assert_eq!(r.secret_key, "12345678");
        assert_eq!(r.white, AddrPattern::Nobody);
        assert!(!r.admin);
        assert_eq!(r.default_group_perm, perm::SUB);
        assert_eq!(r.topic_perms["topicB"], perm::PUB | perm::SUB);
        assert_eq!(r.group_perms["groupC"], perm::SUB);
        let r2 = &a.by_key["rocketmq2"];
        assert!(r2.admin);
        assert_eq!(r2.default_topic_perm, perm::DENY);
        assert!(format!("{r2:?}").contains("redacted"));
    }

    #[test]
    fn refuses_bad_files() {
        assert!(
            Accounts::parse("accounts:\n  - accessKey: short\n    secretKey: 12345678\n").is_err()
        );
        assert!(Accounts::parse("accounts: [").is_err());
        assert!(Accounts::parse(
            "accounts:\n  - accessKey: abcdefg\n    secretKey: 12345678\n    topicPerms: [nope]\n"
        )
        .is_err());
        assert!(Accounts::parse("").unwrap().by_key.is_empty());
    }
}
