//! Connections to Redis: connect with timeouts, check the server, parse replies.
//!
//! Every connection has a connect timeout, and read and write timeouts, so that a
//! dead or partitioned Redis makes a command fail instead of hanging (a blocking read
//! gets a read timeout 5 s longer than its `BLOCK`). Replies are parsed defensively:
//! whoever can write to Redis can put anything in a stream.

use std::io;
use std::time::{Duration, Instant};

use redis::Value;

use super::config::{redact, Resolved, GROUP};
use crate::error::{Error, ErrorKind, Result};

/// The oldest server version with everything the cluster uses (XAUTOCLAIM, XPENDING
/// IDLE, GETDEL, XADD NOMKSTREAM, XTRIM MINID).
pub(crate) const MIN_VERSION: (u32, u32) = (6, 2);

/// A `BrokerUnavailable` error for `what`, with the client's error as its source.
pub(crate) fn broker_error(what: &str, e: redis::RedisError) -> Error {
    Error::new(ErrorKind::BrokerUnavailable)
        .with_message(what.to_owned())
        .with_source(io::Error::other(e.to_string()))
}

/// Connects with the options' timeouts; blocking reads wait at most `read_timeout`.
pub(crate) fn connect(cfg: &Resolved, read_timeout: Duration) -> Result<redis::Connection> {
    let o = &cfg.opts;
    let what = || format!("cannot connect to Redis at {}", redact(&o.url));
    let client = client(o).map_err(|e| {
        Error::new(ErrorKind::InvalidInput)
            .with_message(format!("the cluster URL {}", redact(&o.url)))
            .with_source(io::Error::other(e.to_string()))
    })?;
    let con = client
        .get_connection_with_timeout(o.connect_timeout)
        .map_err(|e| broker_error(&what(), e))?;
    con.set_read_timeout(Some(read_timeout))
        .and_then(|()| con.set_write_timeout(Some(o.command_timeout)))
        .map_err(|e| broker_error(&what(), e))?;
    Ok(con)
}

/// The options' URL with `TCP_NODELAY` set: every command and pipeline goes out in
/// one write and is answered before the next, so Nagle's algorithm can only hold a
/// pipeline's last segment back until an acknowledgement (up to 40 ms on Linux).
fn info(o: &super::config::Options) -> redis::RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    Ok(o.url
        .as_str()
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true)))
}

#[cfg(not(feature = "cluster-tls"))]
fn client(o: &super::config::Options) -> redis::RedisResult<redis::Client> {
    redis::Client::open(info(o)?)
}

/// A client for `redis://`, or `rediss://` with the options' CA (else the system's).
#[cfg(feature = "cluster-tls")]
fn client(o: &super::config::Options) -> redis::RedisResult<redis::Client> {
    // rustls needs a process-wide provider; ring is the one this feature builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &o.tls_root_cert {
        Some(pem) => redis::Client::build_with_tls(
            info(o)?,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => redis::Client::open(info(o)?),
    }
}

/// Connects, retrying with backoff (50 ms doubling to 2 s) until `deadline`.
pub(crate) fn reconnect(
    cfg: &Resolved,
    read_timeout: Duration,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> Result<redis::Connection> {
    let mut wait = Duration::from_millis(50);
    loop {
        match connect(cfg, read_timeout) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() + wait >= deadline || stop() => return Err(e),
            Err(_) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// What `INFO` says about the server, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerInfo {
    pub(crate) version: String,
    pub(crate) run_id: String,
    /// Set when the eviction policy can drop the cluster's keys.
    pub(crate) warning: Option<String>,
}

/// Checks `INFO` text: Redis (or a compatible server such as Valkey, which reports a
/// compatible `redis_version`) at least 6.2, and warns unless `maxmemory_policy` is
/// `noeviction`.
pub(crate) fn check_info(info: &str) -> Result<ServerInfo> {
    let field = |name: &str| {
        info.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        })
    };
    let version = field("redis_version").ok_or_else(|| {
        Error::new(ErrorKind::BrokerUnavailable)
            .with_message("the server's INFO has no redis_version: not a Redis-compatible server")
    })?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if v < MIN_VERSION {
        return Err(
            Error::new(ErrorKind::BrokerUnavailable).with_message(format!(
                "Redis {version} is too old for a cluster pool: it needs {}.{} or newer",
                MIN_VERSION.0, MIN_VERSION.1
            )),
        );
    }
    let policy = field("maxmemory_policy").unwrap_or_default();
    let warning = (!policy.is_empty() && policy != "noeviction").then(|| {
        format!(
            "Redis runs with maxmemory-policy {policy}: under memory pressure it may evict \
             queued tasks or results; set maxmemory-policy noeviction"
        )
    });
    Ok(ServerInfo {
        version,
        run_id: field("run_id").unwrap_or_default(),
        warning,
    })
}

/// Reads and checks the server's `INFO server` and `INFO memory`.
pub(crate) fn server_info(con: &mut redis::Connection) -> Result<ServerInfo> {
    let mut text = String::new();
    for section in ["server", "memory"] {
        let v: Value = redis::cmd("INFO")
            .arg(section)
            .query(con)
            .map_err(|e| broker_error("INFO failed", e))?;
        text.push_str(&string(&v).unwrap_or_default());
        text.push('\n');
    }
    check_info(&text)
}

/// Creates the task stream's consumer group (and the stream) unless it exists.
pub(crate) fn ensure_group(con: &mut redis::Connection, cfg: &Resolved) -> Result<()> {
    let r: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(cfg.tasks())
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(con);
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(broker_error("cannot create the task stream's group", e)),
    }
}

/// Whether an error means the connection is gone (as opposed to a refused command).
pub(crate) fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

// ---- reply parsing -------------------------------------------------------------

pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn string(v: &Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

pub(crate) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// One stream entry as the server sent it: id and raw field pairs (`None` fields:
/// the entry was deleted while pending).
pub(crate) type RawEntry = (String, Option<Vec<(Vec<u8>, Vec<u8>)>>);

/// Parses one entry: `[id, [f1, v1, f2, v2, …] | nil]`.
pub(crate) fn entry(v: &Value) -> Option<RawEntry> {
    let a = array(v)?;
    let id = string(a.first()?)?;
    let fields = match a.get(1)? {
        Value::Nil => None,
        f => {
            let f = array(f)?;
            if f.len() % 2 != 0 {
                return None;
            }
            Some(
                f.chunks(2)
                    .map(|p| Some((bytes(&p[0])?.to_vec(), bytes(&p[1])?.to_vec())))
                    .collect::<Option<Vec<_>>>()?,
            )
        }
    };
    Some((id, fields))
}

/// Parses a list of entries (XRANGE, XCLAIM); malformed ones are skipped.
pub(crate) fn entries(v: &Value) -> Vec<RawEntry> {
    array(v).map_or_else(Vec::new, |a| a.iter().filter_map(entry).collect())
}

/// Parses an XREAD/XREADGROUP reply: the entries of every stream, in order.
pub(crate) fn read_reply(v: &Value) -> Vec<RawEntry> {
    let streams: Vec<&Value> = match v {
        Value::Nil => return Vec::new(),
        Value::Array(a) => a
            .iter()
            .filter_map(|s| array(s).and_then(|p| p.get(1)))
            .collect(),
        Value::Map(m) => m.iter().map(|(_, e)| e).collect(),
        _ => return Vec::new(),
    };
    streams.into_iter().flat_map(entries).collect()
}

/// Parses a stream id `ms-seq`.
pub(crate) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (a, b) = id.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_checked() {
        let ok = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\n# Memory\r\nmaxmemory_policy:noeviction\r\n";
        let i = check_info(ok).unwrap();
        assert_eq!(
            (i.version.as_str(), i.run_id.as_str(), i.warning),
            ("7.0.15", "abc", None)
        );
        let old = check_info("redis_version:6.0.9\r\n").unwrap_err();
        assert_eq!(old.kind(), ErrorKind::BrokerUnavailable);
        assert!(old.to_string().contains("6.0.9"), "{old}");
        assert!(check_info("redis_version:6.2.0\r\n").is_ok());
        for p in ["allkeys-lru", "volatile-lru"] {
            let w = check_info(&format!("redis_version:7.2.0\r\nmaxmemory_policy:{p}\r\n"))
                .unwrap()
                .warning
                .unwrap();
            assert!(w.contains(p), "{w}");
        }
        // Valkey reports a compatible redis_version beside its own.
        let valkey =
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n";
        assert!(check_info(valkey).is_ok());
        assert!(check_info("server_name:other\r\n").is_err());
    }

    #[test]
    fn replies_are_parsed_defensively() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let e = Value::Array(vec![
            b("1-1"),
            Value::Array(vec![b("h"), b("x"), b("s"), b("y")]),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![
            b("{p}:tasks"),
            Value::Array(vec![
                e.clone(),
                Value::Int(3),
                Value::Array(vec![b("2-0"), Value::Nil]),
            ]),
        ])]);
        let got = read_reply(&reply);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "1-1");
        assert_eq!(got[0].1.as_ref().unwrap().len(), 2);
        assert!(got[1].1.is_none());
        // Odd field counts and non-arrays are dropped.
        let odd = Value::Array(vec![b("3-0"), Value::Array(vec![b("h")])]);
        assert!(entry(&odd).is_none());
        assert!(read_reply(&Value::Int(1)).is_empty());
        assert_eq!(parse_id("12-3"), Some((12, 3)));
        assert_eq!(parse_id("12"), None);
    }
}
