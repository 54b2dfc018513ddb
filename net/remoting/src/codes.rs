//! Remoting code tables: request codes (spec §2.1), response codes (§2.2),
//! version ordinals (§2.3), and the two header enums `LanguageCode` (§1.4)
//! and `SerializeType` (§1.3).
//!
//! Codes are plain `i32` constants rather than enums because a broker must
//! carry and answer codes it does not know (`REQUEST_CODE_NOT_SUPPORTED`).
//! `request_code::name` / `response_code::name` give the spec name for logs.

/// Declares a module of `pub const NAME: i32` plus a `name(code)` lookup.
macro_rules! code_table {
    ($(#[$mdoc:meta])* $module:ident { $( $(#[$doc:meta])* $name:ident = $value:expr, )* }) => {
        $(#[$mdoc])*
        pub mod $module {
            $( $(#[$doc])* pub const $name: i32 = $value; )*

            /// The spec name of `code`, or `None` for a code not in the table.
            pub fn name(code: i32) -> Option<&'static str> {
                match code {
                    $( $name => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

code_table! {
    /// Request codes (spec §2.1). Codes marked "5.x" exist only in RocketMQ 5.
    request_code {
        /// Long-name send header (§3.1).
        SEND_MESSAGE = 10,
        /// §5.
        PULL_MESSAGE = 11,
        QUERY_MESSAGE = 12,
        QUERY_CONSUMER_OFFSET = 14,
        /// Usually oneway.
        UPDATE_CONSUMER_OFFSET = 15,
        UPDATE_AND_CREATE_TOPIC = 17,
        GET_ALL_TOPIC_CONFIG = 21,
        GET_BROKER_RUNTIME_INFO = 28,
        SEARCH_OFFSET_BY_TIMESTAMP = 29,
        GET_MAX_OFFSET = 30,
        GET_MIN_OFFSET = 31,
        GET_EARLIEST_MSG_STORETIME = 32,
        VIEW_MESSAGE_BY_ID = 33,
        HEART_BEAT = 34,
        UNREGISTER_CLIENT = 35,
        CONSUMER_SEND_MSG_BACK = 36,
        END_TRANSACTION = 37,
        GET_CONSUMER_LIST_BY_GROUP = 38,
        /// Broker → client.
        CHECK_TRANSACTION_STATE = 39,
        /// Broker → client, oneway.
        NOTIFY_CONSUMER_IDS_CHANGED = 40,
        LOCK_BATCH_MQ = 41,
        UNLOCK_BATCH_MQ = 42,
        GET_ALL_CONSUMER_OFFSET = 43,
        GET_ALL_DELAY_OFFSET = 45,
        CHECK_CLIENT_CONFIG = 46,
        /// 5.x only.
        GET_TIMER_CHECK_POINT = 60,
        /// 5.x only.
        GET_TIMER_METRICS = 61,
        /// Name server KV config (100-102).
        PUT_KV_CONFIG = 100,
        GET_KV_CONFIG = 101,
        DELETE_KV_CONFIG = 102,
        REGISTER_BROKER = 103,
        UNREGISTER_BROKER = 104,
        GET_ROUTEINFO_BY_TOPIC = 105,
        GET_BROKER_CLUSTER_INFO = 106,
        GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201,
        // mqadmin's broker requests (issue 15) and the name server's admin reads.
        UPDATE_BROKER_CONFIG = 25,
        GET_BROKER_CONFIG = 26,
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200,
        GET_TOPIC_STATS_INFO = 202,
        GET_CONSUMER_CONNECTION_LIST = 203,
        GET_PRODUCER_CONNECTION_LIST = 204,
        /// Name server admin (205-224).
        WIPE_WRITE_PERM_OF_BROKER = 205,
        GET_ALL_TOPIC_LIST_FROM_NAMESERVER = 206,
        DELETE_SUBSCRIPTIONGROUP = 207,
        GET_CONSUME_STATS = 208,
        DELETE_TOPIC_IN_BROKER = 215,
        DELETE_TOPIC_IN_NAMESRV = 216,
        GET_KVLIST_BY_NAMESPACE = 219,
        /// Broker → client, oneway.
        RESET_CONSUMER_CLIENT_OFFSET = 220,
        INVOKE_BROKER_TO_RESET_OFFSET = 222,
        GET_TOPICS_BY_CLUSTER = 224,
        GET_SYSTEM_TOPIC_LIST_FROM_NS = 304,
        /// Broker → client.
        GET_CONSUMER_RUNNING_INFO = 307,
        /// Broker → client.
        CONSUME_MESSAGE_DIRECTLY = 309,
        /// Short-name (`a`..`n`) send header (§3.1).
        SEND_MESSAGE_V2 = 310,
        /// Short-name send header, batch body.
        SEND_BATCH_MESSAGE = 320,
        QUERY_DATA_VERSION = 322,
        SEND_REPLY_MESSAGE = 324,
        SEND_REPLY_MESSAGE_V2 = 325,
        /// Name server admin.
        ADD_WRITE_PERM_OF_BROKER = 327,
        /// 5.x; same header and handler as PULL_MESSAGE.
        LITE_PULL_MESSAGE = 361,
        /// 5.x (POP mode).
        QUERY_ASSIGNMENT = 400,
        /// 5.x; slave sync.
        GET_ALL_MESSAGE_REQUEST_MODE = 402,
        /// 5.x; broker → name server in slave-acting-master mode.
        BROKER_HEARTBEAT = 904,
        /// First of the POP family; too large for the binary header's short code.
        POP_MESSAGE = 200050,
    }
}

code_table! {
    /// Response codes (spec §2.2; names from the 5.x `ResponseCode`).
    response_code {
        SUCCESS = 0,
        SYSTEM_ERROR = 1,
        SYSTEM_BUSY = 2,
        REQUEST_CODE_NOT_SUPPORTED = 3,
        TRANSACTION_FAILED = 4,
        FLUSH_DISK_TIMEOUT = 10,
        SLAVE_NOT_AVAILABLE = 11,
        FLUSH_SLAVE_TIMEOUT = 12,
        MESSAGE_ILLEGAL = 13,
        SERVICE_NOT_AVAILABLE = 14,
        VERSION_NOT_SUPPORTED = 15,
        NO_PERMISSION = 16,
        TOPIC_NOT_EXIST = 17,
        TOPIC_EXIST_ALREADY = 18,
        PULL_NOT_FOUND = 19,
        PULL_RETRY_IMMEDIATELY = 20,
        PULL_OFFSET_MOVED = 21,
        QUERY_NOT_FOUND = 22,
        SUBSCRIPTION_PARSE_FAILED = 23,
        SUBSCRIPTION_NOT_EXIST = 24,
        SUBSCRIPTION_NOT_LATEST = 25,
        SUBSCRIPTION_GROUP_NOT_EXIST = 26,
        FILTER_DATA_NOT_EXIST = 27,
        FILTER_DATA_NOT_LATEST = 28,
        /// 5.x; absent in 4.9.8.
        INVALID_PARAMETER = 29,
        TRANSACTION_SHOULD_COMMIT = 200,
        TRANSACTION_SHOULD_ROLLBACK = 201,
        TRANSACTION_STATE_UNKNOW = 202,
        TRANSACTION_STATE_GROUP_WRONG = 203,
        NO_BUYER_ID = 204,
        NOT_IN_CURRENT_UNIT = 205,
        CONSUMER_NOT_ONLINE = 206,
        CONSUME_MSG_TIMEOUT = 207,
        NO_MESSAGE = 208,
        /// 5.x meaning; 4.9.8 used 209–211 for ACL failures.
        POLLING_FULL = 209,
        POLLING_TIMEOUT = 210,
        BROKER_NOT_EXIST = 211,
        BROKER_DISPATCH_NOT_COMPLETE = 212,
        BROADCAST_CONSUMPTION = 213,
        FLOW_CONTROL = 215,
        NOT_LEADER_FOR_QUEUE = 501,
        ILLEGAL_OPERATION = 604,
        /// 5.x; sent by a shutting-down server to requests with version > 475.
        GO_AWAY = 1500,
        /// Client-local.
        RPC_UNKNOWN = -1000,
        RPC_ADDR_IS_NULL = -1002,
        RPC_SEND_TO_CHANNEL_FAILED = -1004,
        RPC_TIME_OUT = -1006,
        /// Controller mode only (2000–2016).
        CONTROLLER_FENCED_MASTER_EPOCH = 2000,
        CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH = 2001,
        CONTROLLER_INVALID_MASTER = 2002,
        CONTROLLER_INVALID_REPLICAS = 2003,
        CONTROLLER_MASTER_NOT_AVAILABLE = 2004,
        CONTROLLER_INVALID_REQUEST = 2005,
        CONTROLLER_BROKER_NOT_ALIVE = 2006,
        CONTROLLER_NOT_LEADER = 2007,
        CONTROLLER_BROKER_METADATA_NOT_EXIST = 2008,
        CONTROLLER_INVALID_CLEAN_BROKER_METADATA = 2009,
        CONTROLLER_BROKER_NEED_TO_BE_REGISTERED = 2010,
        CONTROLLER_MASTER_STILL_EXIST = 2011,
        CONTROLLER_ELECT_MASTER_FAILED = 2012,
        CONTROLLER_ALTER_SYNC_STATE_SET_FAILED = 2013,
        CONTROLLER_BROKER_ID_INVALID = 2014,
        CONTROLLER_JRAFT_INTERNAL_ERROR = 2015,
        CONTROLLER_BROKER_LIVE_INFO_NOT_EXISTS = 2016,
    }
}

/// `MQVersion.Version` ordinals carried in the header's `version` (spec §2.3).
pub mod version {
    /// Name server decodes REGISTER_BROKER bodies as RegisterBrokerBody from here.
    pub const V3_0_11: i32 = 37;
    /// Broker honours `maxReconsumeTimes` from here.
    pub const V3_4_9: i32 = 121;
    /// Name server returns standard JSON route data from here.
    pub const V4_9_4: i32 = 401;
    /// CURRENT_VERSION of Java 4.9.8.
    pub const V4_9_8: i32 = 409;
    /// Compressed RegisterBrokerBody carries the queue-mapping section from here.
    pub const V5_0_0: i32 = 413;
    /// Sent by rocketmq-client-rust 1.0.0.
    pub const V5_3_1_SNAPSHOT: i32 = 474;
    /// GO_AWAY is only returned to requests with a version above this.
    pub const V5_3_1: i32 = 475;
    /// CURRENT_VERSION of Java 5.3.3; what ringmq announces.
    pub const V5_3_3: i32 = 479;
}

/// Sender language (spec §1.4): the JSON header carries the name, the binary
/// header the one-byte code.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum LanguageCode {
    #[default]
    JAVA = 0,
    CPP = 1,
    DOTNET = 2,
    PYTHON = 3,
    DELPHI = 4,
    ERLANG = 5,
    RUBY = 6,
    OTHER = 7,
    HTTP = 8,
    GO = 9,
    PHP = 10,
    OMS = 11,
    RUST = 12,
    /// Absent in Java 4.9.8.
    NODE_JS = 13,
}

impl LanguageCode {
    /// Every language, in code order.
    pub const ALL: [LanguageCode; 14] = [
        Self::JAVA,
        Self::CPP,
        Self::DOTNET,
        Self::PYTHON,
        Self::DELPHI,
        Self::ERLANG,
        Self::RUBY,
        Self::OTHER,
        Self::HTTP,
        Self::GO,
        Self::PHP,
        Self::OMS,
        Self::RUST,
        Self::NODE_JS,
    ];

    /// The one-byte code used by the binary header.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The enum name used by the JSON header, e.g. `"JAVA"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::JAVA => "JAVA",
            Self::CPP => "CPP",
            Self::DOTNET => "DOTNET",
            Self::PYTHON => "PYTHON",
            Self::DELPHI => "DELPHI",
            Self::ERLANG => "ERLANG",
            Self::RUBY => "RUBY",
            Self::OTHER => "OTHER",
            Self::HTTP => "HTTP",
            Self::GO => "GO",
            Self::PHP => "PHP",
            Self::OMS => "OMS",
            Self::RUST => "RUST",
            Self::NODE_JS => "NODE_JS",
        }
    }

    /// Look up a binary code; `None` if unknown.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Look up a JSON name (exact, case-sensitive); `None` if unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// How a frame's header is encoded (spec §1.3): the top byte of the
/// header-length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SerializeType {
    /// JSON text header (§1.5). Default for every known client.
    #[default]
    Json = 0,
    /// ROCKETMQ binary header (§1.6).
    RocketMq = 1,
}

impl SerializeType {
    /// The byte stored in the header-length word.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// `None` for any byte other than 0 and 1.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    /// `"JSON"` / `"ROCKETMQ"`, as in the JSON header's `serializeTypeCurrentRPC`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_name_and_code_round_trip() {
        for (i, lang) in LanguageCode::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(lang.code()), i);
            assert_eq!(LanguageCode::from_code(lang.code()), Some(lang));
            assert_eq!(LanguageCode::from_name(lang.name()), Some(lang));
        }
        assert_eq!(LanguageCode::RUST.code(), 12);
        assert_eq!(LanguageCode::NODE_JS.name(), "NODE_JS");
        assert_eq!(LanguageCode::from_code(14), None);
        assert_eq!(LanguageCode::from_name("java"), None);
    }

    #[test]
    fn code_names() {
        assert_eq!(request_code::name(310), Some("SEND_MESSAGE_V2"));
        assert_eq!(request_code::name(13), None);
        assert_eq!(response_code::name(3), Some("REQUEST_CODE_NOT_SUPPORTED"));
        assert_eq!(response_code::name(-1006), Some("RPC_TIME_OUT"));
        assert_eq!(SerializeType::from_code(2), None);
        assert_eq!(SerializeType::from_code(1), Some(SerializeType::RocketMq));
    }
}
