//! The entries a cluster writes to Redis: task and result headers, the payload or
//! blob reference, and the HMAC-SHA256 that signs them.
//!
//! A task entry has the fields `h` (a [`TaskHeader`]), `n` (the task's name, for
//! messages), either `p` (the payload: the codec's encoding of the chunk's `Vec<A>`, exactly
//! what the local process pool sends its workers) or `b` (a [`BlobRef`]), and `s`.
//! A result entry has `h` (a [`ResultHeader`]), `p` or `b`, and `s`.
//!
//! `s` is HMAC-SHA256 under the cluster's shared key over the stream's key and every
//! other field, each length-prefixed, so no field can be changed, dropped, moved to
//! another field or copied to another stream without the MAC failing. Everything read
//! from Redis is untrusted: the MAC is checked before any other field is parsed, and
//! every length is checked against the bytes present.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::process::{ExitStatus, Signal};

/// The wire version; a host or client that reads another answers `Decode`.
pub(crate) const VERSION: u16 = 3;

/// The fields of an entry, in signing order.
pub(crate) type Fields = Vec<(&'static str, Vec<u8>)>;

type HmacSha256 = Hmac<Sha256>;

/// Signs `fields` written to `stream` (see the [module docs](self)).
pub(crate) fn sign(key: &[u8], stream: &str, fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    mac(key, stream, fields).finalize().into_bytes().to_vec()
}

fn mac(key: &[u8], stream: &str, fields: &[(&str, Vec<u8>)]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    let mut put = |b: &[u8]| {
        m.update(&(b.len() as u64).to_le_bytes());
        m.update(b);
    };
    put(stream.as_bytes());
    for (name, value) in fields {
        put(name.as_bytes());
        put(value);
    }
    m
}

/// Checks the MAC `s` of `fields` read from `stream`, in constant time.
pub(crate) fn verify(key: &[u8], stream: &str, fields: &[(&str, Vec<u8>)], s: &[u8]) -> bool {
    mac(key, stream, fields).verify_slice(s).is_ok()
}

/// A signed entry as read from a stream: its id and its fields, MAC checked.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) h: Vec<u8>,
    pub(crate) n: Vec<u8>,
    pub(crate) p: Option<Vec<u8>>,
    pub(crate) b: Option<Vec<u8>>,
}

impl Entry {
    /// Checks the raw `(field, value)` pairs of entry `id` of `stream`: exactly the
    /// fields a signed entry has, each once, and a valid MAC. `None` if anything is off.
    pub(crate) fn verified(
        key: &[u8],
        stream: &str,
        id: String,
        raw: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Option<Entry> {
        let mut h = None;
        let mut n = None;
        let mut p = None;
        let mut b = None;
        let mut s = None;
        for (name, value) in raw {
            let slot = match name.as_slice() {
                b"h" => &mut h,
                b"n" => &mut n,
                b"p" => &mut p,
                b"b" => &mut b,
                b"s" => &mut s,
                _ => return None,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        let h = h?;
        let s = s?;
        let mut fields: Fields = vec![("h", h)];
        if let Some(n) = n {
            fields.push(("n", n));
        }
        match (p, b) {
            (Some(p), None) => fields.push(("p", p)),
            (None, Some(b)) => fields.push(("b", b)),
            _ => return None,
        }
        if !verify(key, stream, &fields, &s) {
            return None;
        }
        let _ = id;
        let mut e = Entry {
            h: Vec::new(),
            n: Vec::new(),
            p: None,
            b: None,
        };
        for (name, v) in fields {
            match name {
                "h" => e.h = v,
                "n" => e.n = v,
                "p" => e.p = Some(v),
                _ => e.b = Some(v),
            }
        }
        Some(e)
    }
}

/// Reads little-endian fields from a byte slice, failing on a short one.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (a, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

fn malformed(what: &str) -> Error {
    Error::new(ErrorKind::Decode).with_message(format!("a malformed {what} in the cluster stream"))
}

/// The fixed part of a task entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    /// The client that submitted it (its result stream is named after it).
    pub(crate) client: [u8; 16],
    /// The client's id for this task; a result carries it back.
    pub(crate) task: u64,
    /// The [task key](super::registry).
    pub(crate) key: u64,
    /// Items in the chunk.
    pub(crate) items: u32,
    /// The client's retries of this task so far.
    pub(crate) attempt: u8,
    /// Deliveries after which a host that finds the task abandoned gives up on it.
    pub(crate) max_deliveries: u8,
    /// The task's time limit on the host in milliseconds (0: none but the host's own).
    pub(crate) timeout_ms: u32,
    /// The client's [build key](super::host::build_key) when it runs its tasks only on
    /// hosts of its own build ([`Options::same_build`](super::Options::same_build));
    /// 0: any build with the task's key.
    pub(crate) build: u64,
}

pub(crate) const TASK_HEADER_LEN: usize = 2 + 16 + 8 + 8 + 4 + 1 + 1 + 4 + 8;

impl TaskHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(TASK_HEADER_LEN);
        v.extend_from_slice(&VERSION.to_le_bytes());
        v.extend_from_slice(&self.client);
        v.extend_from_slice(&self.task.to_le_bytes());
        v.extend_from_slice(&self.key.to_le_bytes());
        v.extend_from_slice(&self.items.to_le_bytes());
        v.push(self.attempt);
        v.push(self.max_deliveries);
        v.extend_from_slice(&self.timeout_ms.to_le_bytes());
        v.extend_from_slice(&self.build.to_le_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<TaskHeader> {
        let mut r = Reader(b);
        let parse = |r: &mut Reader<'_>| {
            if r.u16()? != VERSION {
                return None;
            }
            let h = TaskHeader {
                client: r.take()?,
                task: r.u64()?,
                key: r.u64()?,
                items: r.u32()?,
                attempt: r.u8()?,
                max_deliveries: r.u8()?,
                timeout_ms: r.u32()?,
                build: r.u64()?,
            };
            r.0.is_empty().then_some(h)
        };
        parse(&mut r).ok_or_else(|| malformed("task header"))
    }
}

/// How a task ended, as a host reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The payload is the chunk's encoded `ChunkOut<R>`.
    Ok = 0,
    /// The payload is a [`WireError`].
    Failed = 1,
}

/// The fixed part of a result entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultHeader {
    pub(crate) task: u64,
    pub(crate) status: Status,
    /// How many times the task was delivered to a host (2 or more: reclaimed).
    pub(crate) deliveries: u32,
    /// Microseconds the host spent on it, from hand-over to its local pool to the answer.
    pub(crate) run_us: u64,
}

pub(crate) const RESULT_HEADER_LEN: usize = 2 + 8 + 1 + 4 + 8;

impl ResultHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(RESULT_HEADER_LEN);
        v.extend_from_slice(&VERSION.to_le_bytes());
        v.extend_from_slice(&self.task.to_le_bytes());
        v.push(self.status as u8);
        v.extend_from_slice(&self.deliveries.to_le_bytes());
        v.extend_from_slice(&self.run_us.to_le_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<ResultHeader> {
        let mut r = Reader(b);
        let parse = |r: &mut Reader<'_>| {
            if r.u16()? != VERSION {
                return None;
            }
            let h = ResultHeader {
                task: r.u64()?,
                status: match r.u8()? {
                    0 => Status::Ok,
                    1 => Status::Failed,
                    _ => return None,
                },
                deliveries: r.u32()?,
                run_us: r.u64()?,
            };
            r.0.is_empty().then_some(h)
        };
        parse(&mut r).ok_or_else(|| malformed("result header"))
    }
}

/// A payload kept in its own key (`b`): the key, the payload's length and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRef {
    pub(crate) key: String,
    pub(crate) len: u64,
    pub(crate) sha256: [u8; 32],
}

impl BlobRef {
    pub(crate) fn of(key: String, payload: &[u8]) -> BlobRef {
        BlobRef {
            key,
            len: payload.len() as u64,
            sha256: Sha256::digest(payload).into(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + self.key.len());
        v.extend_from_slice(&self.len.to_le_bytes());
        v.extend_from_slice(&self.sha256);
        v.extend_from_slice(self.key.as_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<BlobRef> {
        let mut r = Reader(b);
        let parse = |r: &mut Reader<'_>| {
            let len = r.u64()?;
            let sha256 = r.take::<32>()?;
            let key = std::str::from_utf8(r.0).ok()?.to_owned();
            Some(BlobRef { key, len, sha256 })
        };
        parse(&mut r).ok_or_else(|| malformed("blob reference"))
    }

    /// Checks that `bytes` are the payload this reference names.
    pub(crate) fn check(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 != self.len || Sha256::digest(bytes).as_slice() != self.sha256 {
            return Err(Error::new(ErrorKind::Decode).with_message(format!(
                "the payload in {} does not match its entry (length or SHA-256)",
                self.key
            )));
        }
        Ok(())
    }
}

/// The kinds of error a host can report, by wire code (index).
const KINDS: [ErrorKind; 14] = [
    ErrorKind::WorkerDied,
    ErrorKind::Timeout,
    ErrorKind::Decode,
    ErrorKind::Encode,
    ErrorKind::BinaryMismatch,
    ErrorKind::NotRegistered,
    ErrorKind::PoolClosed,
    ErrorKind::Panicked,
    ErrorKind::BrokerUnavailable,
    ErrorKind::Start,
    ErrorKind::Os,
    ErrorKind::InvalidInput,
    ErrorKind::Corrupt,
    ErrorKind::Cancelled,
];

/// An error as a host sends it: kind, message, exit status and the host's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireError {
    kind: u8,
    message: String,
    /// `(signaled, code or signal number, core dumped)`.
    status: Option<(bool, i32, bool)>,
    host: String,
}

impl WireError {
    pub(crate) fn new(e: &Error, host: &str) -> WireError {
        let kind = KINDS.iter().position(|k| *k == e.kind()).unwrap_or(10) as u8;
        let message = match (e.kind(), e.message()) {
            (ErrorKind::Os, _) | (_, None) => e.to_string(),
            (_, Some(m)) => m.to_owned(),
        };
        WireError {
            kind,
            message,
            status: e.exit_status().map(|s| match s {
                ExitStatus::Exited(c) => (false, c, false),
                ExitStatus::Signaled {
                    signal,
                    core_dumped,
                } => (true, signal.as_raw(), core_dumped),
            }),
            host: host.to_owned(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        crate::ipc::codec::encode(self)
            .map(|e| e.bytes)
            .unwrap_or_default()
    }

    /// Decodes a host's error into the [`Error`] the caller sees, naming the host.
    pub(crate) fn decode(b: &[u8]) -> Error {
        // Bounded: the codec refuses lengths beyond the input.
        let w: WireError = match crate::ipc::codec::decode(b, Vec::new()) {
            Ok(w) => w,
            Err(_) => return malformed("error result"),
        };
        let kind = KINDS.get(w.kind as usize).copied().unwrap_or(ErrorKind::Os);
        let mut e = Error::new(kind).with_message(format!("{} (on host {})", w.message, w.host));
        if let Some((signaled, n, core)) = w.status {
            e = e.with_status(if signaled {
                ExitStatus::Signaled {
                    signal: Signal::from_raw(n),
                    core_dumped: core,
                }
            } else {
                ExitStatus::Exited(n)
            });
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-test-key";

    fn task_fields() -> Fields {
        let h = TaskHeader {
            client: [7; 16],
            task: 42,
            key: 0xdead_beef,
            items: 3,
            attempt: 1,
            max_deliveries: 3,
            timeout_ms: 0,
            build: 0,
        };
        vec![
            ("h", h.encode()),
            ("n", b"app::f".to_vec()),
            ("p", vec![1, 2, 3]),
        ]
    }

    fn raw(fields: &Fields, s: Vec<u8>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut r: Vec<_> = fields
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.clone()))
            .collect();
        r.push((b"s".to_vec(), s));
        r
    }

    #[test]
    fn headers_round_trip() {
        let h = TaskHeader {
            client: [1; 16],
            task: u64::MAX,
            key: 5,
            items: 9,
            attempt: 2,
            max_deliveries: 3,
            timeout_ms: 1500,
            build: 0x0123_4567_89ab_cdef,
        };
        assert_eq!(TaskHeader::decode(&h.encode()).unwrap(), h);
        let r = ResultHeader {
            task: 77,
            status: Status::Failed,
            deliveries: 2,
            run_us: 1234,
        };
        assert_eq!(ResultHeader::decode(&r.encode()).unwrap(), r);
        // Short, long, or another version: refused.
        let enc = h.encode();
        assert!(TaskHeader::decode(&enc[..enc.len() - 1]).is_err());
        assert!(TaskHeader::decode(&[enc.clone(), vec![0]].concat()).is_err());
        let mut v2 = enc.clone();
        v2[0] = VERSION as u8 + 1;
        assert!(TaskHeader::decode(&v2).is_err());
        let mut bad = r.encode();
        bad[10] = 9;
        assert!(ResultHeader::decode(&bad).is_err());
    }

    #[test]
    fn mac_covers_every_byte_the_stream_and_the_key() {
        let f = task_fields();
        let s = sign(KEY, "{p}:tasks", &f);
        assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), raw(&f, s.clone())).is_some());
        // Another stream, another key.
        assert!(Entry::verified(KEY, "{q}:tasks", "1-0".into(), raw(&f, s.clone())).is_none());
        assert!(Entry::verified(
            b"another-key-16bytes",
            "{p}:tasks",
            "1-0".into(),
            raw(&f, s.clone())
        )
        .is_none());
        // Every byte of every field, and of the MAC.
        for i in 0..f.len() {
            for j in 0..f[i].1.len() {
                let mut g = f.clone();
                g[i].1[j] ^= 1;
                assert!(
                    Entry::verified(KEY, "{p}:tasks", "1-0".into(), raw(&g, s.clone())).is_none(),
                    "field {} byte {j}",
                    f[i].0
                );
            }
        }
        for j in 0..s.len() {
            let mut t = s.clone();
            t[j] ^= 0x80;
            assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), raw(&f, t)).is_none());
        }
        // A payload moved to the blob field, a dropped name, an extra or repeated field.
        let mut moved = raw(&f, s.clone());
        moved[2].0 = b"b".to_vec();
        assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), moved).is_none());
        let mut dropped = raw(&f, s.clone());
        dropped.remove(1);
        assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), dropped).is_none());
        let mut extra = raw(&f, s.clone());
        extra.push((b"x".to_vec(), vec![]));
        assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), extra).is_none());
        let mut twice = raw(&f, s.clone());
        twice.push((b"h".to_vec(), f[0].1.clone()));
        assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), twice).is_none());
        // Unsigned.
        let mut unsigned = raw(&f, s);
        unsigned.pop();
        assert!(Entry::verified(KEY, "{p}:tasks", "1-0".into(), unsigned).is_none());
    }

    #[test]
    fn blob_refs_check_their_payload() {
        let b = BlobRef::of("{p}:blob:x:1:a".into(), b"payload");
        let d = BlobRef::decode(&b.encode()).unwrap();
        assert_eq!(d, b);
        d.check(b"payload").unwrap();
        assert_eq!(d.check(b"payloaD").unwrap_err().kind(), ErrorKind::Decode);
        assert!(d.check(b"payload!").is_err());
        assert!(BlobRef::decode(&[0; 39]).is_err());
    }

    #[test]
    fn errors_round_trip_with_status_and_host() {
        let e = Error::new(ErrorKind::WorkerDied)
            .with_status(ExitStatus::Signaled {
                signal: Signal::SIGSEGV,
                core_dumped: false,
            })
            .with_message("worker pid 12");
        let d = WireError::decode(&WireError::new(&e, "host-a").encode());
        assert_eq!(d.kind(), ErrorKind::WorkerDied);
        assert_eq!(d.signal(), Some(Signal::SIGSEGV));
        assert!(d.to_string().contains("host-a"), "{d}");
        assert!(d.to_string().contains("worker pid 12"), "{d}");
        for k in KINDS {
            let w = WireError::new(&Error::new(k), "h");
            assert_eq!(WireError::decode(&w.encode()).kind(), k);
        }
        assert_eq!(WireError::decode(&[0xff; 3]).kind(), ErrorKind::Decode);
    }
}
