//! ACL, RocketMQ style (`aclEnable=true`): every request is checked against the accounts
//! file (`plainAclFile`, RocketMQ's `plain_acl.yml` format) before it is routed; a refused
//! request gets NO_PERMISSION (16) and a remark naming the access key, never the secret.
//!
//! | file | owns |
//! | --- | --- |
//! | `accounts` | the accounts file, read and checked |
//! | `addr` | white-list address patterns |
//! | `perm` | permission bits and when an owned one grants a needed one |
//! | `needs` | which topics, groups and admin right a request needs |
//! | `decide` | the decision for one request (white lists, signature, permissions) |
//! | `reload` | the thread that rereads the file when it changes |
//!
//! Runs on: the network cores ([`gate`], [`Acl::check`]: a lock held only to clone an
//! `Arc`); the reload thread.

pub mod accounts;
pub mod addr;
pub mod decide;
pub mod needs;
pub mod perm;
mod reload;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmq_engine::sync::lock;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;

use crate::conn::ConnInfo;
use crate::BrokerConfig;
use accounts::Accounts;

/// How often the reload thread looks at the file's modification time.
pub const RELOAD_POLL: Duration = Duration::from_millis(500);

/// The accounts in force, shared with the reload thread.
pub struct Shared {
    pub path: PathBuf,
    accounts: Mutex<Arc<Accounts>>,
}

impl Shared {
    pub fn accounts(&self) -> Arc<Accounts> {
        lock(&self.accounts).clone()
    }

    fn replace(&self, accounts: Accounts) {
        *lock(&self.accounts) = Arc::new(accounts);
    }
}

/// The broker's ACL: the accounts in force and the thread that reloads them.
pub struct Acl {
    shared: Arc<Shared>,
    _reload: reload::Reloader,
}

impl Acl {
    /// With `aclEnable`: reads the accounts file (a bad or missing file stops the broker
    /// from starting) and starts the reload thread. Without: `None`, and a warning that
    /// anyone who reaches the port can administer the broker.
    pub fn open(cfg: &BrokerConfig) -> Result<Option<Acl>, String> {
        if !cfg.acl_enable {
            tracing::warn!(
                port = cfg.listen_port,
                "aclEnable=false: anyone who can reach this broker's port can send, consume, \
                 move offsets and administer topics and groups"
            );
            return Ok(None);
        }
        let path = cfg.plain_acl_file.clone();
        let (accounts, stamp) =
            reload::read(&path).map_err(|e| format!("aclEnable=true, but {e}"))?;
        tracing::info!(
            file = %path.display(),
            accounts = accounts.by_key.len(),
            "aclEnable=true: requests are checked against the accounts file"
        );
        let shared = Arc::new(Shared {
            path,
            accounts: Mutex::new(Arc::new(accounts)),
        });
        let reloader = reload::Reloader::start(shared.clone(), stamp, RELOAD_POLL)
            .map_err(|e| format!("cannot start the ACL reload thread: {e}"))?;
        Ok(Some(Acl {
            shared,
            _reload: reloader,
        }))
    }

    /// `Err` with the refusal's remark when `req` from `peer` may not be served.
    pub fn check(&self, peer: IpAddr, req: &RemotingCommand) -> Result<(), String> {
        decide::check(&self.shared.accounts(), peer, req)
    }

    pub fn accounts(&self) -> Arc<Accounts> {
        self.shared.accounts()
    }
}

/// The answer to a refused request: NO_PERMISSION, or nothing for a oneway request.
pub fn refusal(req: &RemotingCommand, remark: String) -> Option<RemotingCommand> {
    (!req.is_oneway()).then(|| RemotingCommand::response_to(req, rs::NO_PERMISSION, Some(remark)))
}

/// `Err` with the answer (none for oneway) when the broker's ACL refuses `req`. Always
/// `Ok` when ACL is off.
pub fn gate(
    acl: Option<&Acl>,
    conn: &ConnInfo,
    req: &RemotingCommand,
) -> Result<(), Option<RemotingCommand>> {
    let Some(acl) = acl else { return Ok(()) };
    acl.check(conn.peer.ip(), req).map_err(|remark| {
        tracing::debug!(peer = %conn.peer, code = req.code, %remark, "request refused by ACL");
        refusal(req, remark)
    })
}
