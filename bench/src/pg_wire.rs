//! A TCP proxy in front of Postgres that counts what its clients send, read from the frontend
//! protocol (v3): round trips, and the statements each carried. `load-bench statements` puts it
//! between the local runner and a throwaway cluster, so that the round trips of a request are
//! counted, not estimated.
//!
//! A round trip is everything a client sends between two answers of the server on that
//! connection: it ends when the server's first bytes come back. Statements the client pipelines
//! (sends before the first answer arrives) therefore share one round trip; a statement the client
//! sends only after reading an answer starts the next. Only unencrypted connections can be read
//! (every database of the benchmarks is local and plain).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the clients sent since the last [`WireCounter::take`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WireStats {
    /// Round trips by what they carried: the statements executed in them, in order (`‖` between
    /// two), `prepare …` for a named statement's parse, `close` for a statement's release.
    pub round_trips: BTreeMap<String, u64>,
    /// Executions by statement (its label).
    pub executions: BTreeMap<String, u64>,
    /// Messages by their type byte (`P`arse, `B`ind, `E`xecute, `S`ync, `Q`uery, `C`lose, …).
    pub messages: BTreeMap<char, u64>,
    /// The full text of each statement label that appears above.
    pub statements: BTreeMap<String, String>,
}

impl WireStats {
    /// All round trips.
    pub fn total_round_trips(&self) -> u64 {
        self.round_trips.values().sum()
    }

    /// All statement executions (extended protocol `Execute` and simple `Query` messages).
    pub fn total_executions(&self) -> u64 {
        self.executions.values().sum()
    }
}

/// The running proxy. Dropping it stops accepting; open connections are forwarded until closed.
pub struct WireCounter {
    port: u16,
    stats: Arc<Mutex<WireStats>>,
    accept: JoinHandle<()>,
}

impl WireCounter {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Mutex::new(WireStats::default()));
        let shared = stats.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, stats) = (upstream.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        forward(client, server, stats).await;
                    }
                });
            }
        });
        Ok(Self {
            port,
            stats,
            accept,
        })
    }

    /// The port clients connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The counts so far (round trips still waiting for their answer are not in them yet), and
    /// zero again.
    pub fn take(&self) -> WireStats {
        std::mem::take(&mut *self.stats.lock().unwrap())
    }
}

impl Drop for WireCounter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One connection: the client's round trip in the making, shared by both directions.
struct Connection {
    reader: FrontendReader,
    round_trip: Vec<String>,
    stats: Arc<Mutex<WireStats>>,
}

impl Connection {
    /// The server answered: what the client sent before is one round trip.
    fn answered(&mut self) {
        if self.round_trip.is_empty() {
            return;
        }
        let key = self.round_trip.join(" ‖ ");
        self.round_trip.clear();
        *self
            .stats
            .lock()
            .unwrap()
            .round_trips
            .entry(key)
            .or_default() += 1;
    }
}

async fn forward(client: TcpStream, server: TcpStream, stats: Arc<Mutex<WireStats>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let connection = Arc::new(Mutex::new(Connection {
        reader: FrontendReader::default(),
        round_trip: Vec::new(),
        stats,
    }));
    let upstream = {
        let connection = connection.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                {
                    // Counted before it is forwarded, so that the answer finds it counted.
                    let mut c = connection.lock().unwrap();
                    let Connection {
                        reader,
                        round_trip,
                        stats,
                    } = &mut *c;
                    reader.read(&buf[..n], round_trip, &mut stats.lock().unwrap());
                }
                if to_server.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown().await;
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            connection.lock().unwrap().answered();
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Reads the client's side of the protocol: the untyped start-up packets, then typed messages.
#[derive(Default)]
struct FrontendReader {
    pending: Vec<u8>,
    started: bool,
    /// Encrypted or unreadable: forwarded, no longer counted.
    opaque: bool,
    /// Statement name → label (the unnamed statement is "").
    prepared: HashMap<String, String>,
    /// Portal name → the label of its statement.
    portals: HashMap<String, String>,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

impl FrontendReader {
    /// Takes `bytes` the client sent; every complete message is counted into `stats`, and what
    /// it does is added to `round_trip`.
    fn read(&mut self, bytes: &[u8], round_trip: &mut Vec<String>, stats: &mut WireStats) {
        if self.opaque {
            return;
        }
        self.pending.extend_from_slice(bytes);
        loop {
            let header = if self.started { 5 } else { 4 };
            if self.pending.len() < header {
                return;
            }
            let at = header - 4;
            let length = u32::from_be_bytes(self.pending[at..at + 4].try_into().unwrap()) as usize;
            if length < 4 {
                self.opaque = true;
                return;
            }
            let total = at + length;
            if self.pending.len() < total {
                return;
            }
            let message: Vec<u8> = self.pending.drain(..total).collect();
            if self.started {
                self.typed(message[0], &message[5..], round_trip, stats);
            } else {
                let code = message
                    .get(4..8)
                    .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
                    .unwrap_or(0);
                // The server answers an SSL or GSS request with one byte; a `N` (no) is followed
                // by the real start-up packet, which this reader then takes. A yes would make
                // the rest unreadable, but no client of the benchmarks asks for one with a
                // server that offers it.
                if code != SSL_REQUEST && code != GSSENC_REQUEST {
                    self.started = true;
                }
            }
        }
    }

    fn typed(
        &mut self,
        kind: u8,
        body: &[u8],
        round_trip: &mut Vec<String>,
        stats: &mut WireStats,
    ) {
        *stats.messages.entry(kind as char).or_default() += 1;
        let mut fields = body.split(|b| *b == 0).map(String::from_utf8_lossy);
        match kind {
            b'P' => {
                let name = fields.next().unwrap_or_default().into_owned();
                let sql = fields.next().unwrap_or_default();
                let label = label(&sql, stats);
                if !name.is_empty() {
                    round_trip.push(format!("prepare {label}"));
                }
                self.prepared.insert(name, label);
            }
            b'B' => {
                let portal = fields.next().unwrap_or_default().into_owned();
                let statement = fields.next().unwrap_or_default();
                let label = self
                    .prepared
                    .get(statement.as_ref())
                    .cloned()
                    .unwrap_or_else(|| format!("(unknown statement {statement})"));
                self.portals.insert(portal, label);
            }
            b'E' => {
                let portal = fields.next().unwrap_or_default();
                let label = self
                    .portals
                    .get(portal.as_ref())
                    .cloned()
                    .unwrap_or_else(|| format!("(unknown portal {portal})"));
                *stats.executions.entry(label.clone()).or_default() += 1;
                round_trip.push(label);
            }
            b'Q' => {
                // A simple query may hold several statements, each executed (and counted by
                // pg_stat_statements) on its own. Split after the literals are folded, so that
                // no `;` inside a string is taken for the end of a statement.
                let sql = fields.next().unwrap_or_default();
                for statement in without_literals(&sql).split(';') {
                    if statement.trim().is_empty() {
                        continue;
                    }
                    let label = label(statement, stats);
                    *stats.executions.entry(label.clone()).or_default() += 1;
                    round_trip.push(label);
                }
            }
            b'C' => round_trip.push("close".into()),
            // Terminate: the pool closing a connection, not part of a request.
            _ => {}
        }
    }
}

/// A statement's label: the start of its text (whitespace collapsed) and a short hash of the
/// whole, since many statements begin alike (every admitted request starts with the admission).
/// Literals are folded to `?` first, so that a simple query with its values written into the
/// text (an id, a timestamp) is one statement, as pg_stat_statements counts it.
fn label(sql: &str, stats: &mut WireStats) -> String {
    let text = without_literals(&sql.split_whitespace().collect::<Vec<_>>().join(" "));
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let start: String = text.chars().take(40).collect();
    let label = format!("{start}… #{:04x}", hasher.finish() & 0xffff);
    stats.statements.entry(label.clone()).or_insert(text);
    label
}

/// `text` with every quoted string and every number that stands alone replaced by `?`.
fn without_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if c == '\'' {
            // '' inside a string is an escaped quote: the string goes on.
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    Some('\'') | None => break,
                    Some(_) => {}
                }
            }
            out.push('?');
            previous = '?';
        } else if c.is_ascii_digit()
            && !(previous.is_alphanumeric() || previous == '_' || previous == '$')
        {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
            out.push('?');
            previous = '?';
        } else {
            out.push(c);
            previous = c;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        let body = b"\x00\x03\x00\x00user\x00postgres\x00\x00";
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    }

    /// Parse, bind, execute and sync of an unnamed statement, as `query_typed` sends it.
    fn unnamed(sql: &str) -> Vec<u8> {
        let mut m = message(b'P', format!("\0{sql}\0\0\0").as_bytes());
        m.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
        m.extend(message(b'D', b"P\0"));
        m.extend(message(b'E', b"\0\0\0\0\0"));
        m.extend(message(b'S', b""));
        m
    }

    #[test]
    fn pipelined_statements_share_a_round_trip_and_waited_ones_do_not() {
        let stats = Arc::new(Mutex::new(WireStats::default()));
        let mut c = Connection {
            reader: FrontendReader::default(),
            round_trip: Vec::new(),
            stats: stats.clone(),
        };
        let send = |c: &mut Connection, bytes: &[u8]| {
            let mut s = stats.lock().unwrap();
            c.reader.read(bytes, &mut c.round_trip, &mut s);
        };
        send(&mut c, &startup());
        c.answered();
        // Two statements in one write, then a third after the answer, split across two reads.
        let mut both = unnamed("SELECT a");
        both.extend(unnamed("SELECT b"));
        send(&mut c, &both);
        c.answered();
        let third = unnamed("SELECT c");
        send(&mut c, &third[..7]);
        send(&mut c, &third[7..]);
        c.answered();
        c.answered();

        let stats = stats.lock().unwrap().clone();
        assert_eq!(stats.total_round_trips(), 2);
        assert_eq!(stats.total_executions(), 3);
        assert_eq!(stats.messages[&'S'], 3);
        let keys: Vec<&String> = stats.round_trips.keys().collect();
        assert!(
            keys.iter()
                .any(|k| k.contains("SELECT a") && k.contains("SELECT b"))
        );
    }

    #[test]
    fn each_statement_of_a_simple_query_counts() {
        let mut s = WireStats::default();
        let mut reader = FrontendReader::default();
        let mut trip = Vec::new();
        reader.read(&startup(), &mut trip, &mut s);
        let query = message(
            b'Q',
            b"SET LOCAL x = off; UPDATE t SET a = ';' WHERE id = 5\0",
        );
        reader.read(&query, &mut trip, &mut s);
        assert_eq!(trip.len(), 2);
        assert!(trip[1].starts_with("UPDATE t SET a = ? WHERE id = ?"));
        assert_eq!(s.total_executions(), 2);
    }

    #[test]
    fn literals_are_folded_but_parameters_and_names_are_not() {
        assert_eq!(
            without_literals("UPDATE orders SET a = 'x''y', b = 1.5 WHERE id = $1 AND s2 = 7"),
            "UPDATE orders SET a = ?, b = ? WHERE id = $1 AND s2 = ?"
        );
    }

    #[test]
    fn a_named_statement_is_prepared_once_and_then_bound_by_name() {
        let mut s = WireStats::default();
        let mut reader = FrontendReader::default();
        let mut trip = Vec::new();
        reader.read(&startup(), &mut trip, &mut s);
        let mut prepare = message(b'P', b"s0\0SELECT $1\0\0\0");
        prepare.extend(message(b'D', b"Ss0\0"));
        prepare.extend(message(b'S', b""));
        reader.read(&prepare, &mut trip, &mut s);
        assert!(trip[0].starts_with("prepare SELECT $1"));
        trip.clear();
        let mut run = message(b'B', b"\0s0\0\0\0\0\0\0\0");
        run.extend(message(b'E', b"\0\0\0\0\0"));
        run.extend(message(b'S', b""));
        reader.read(&run, &mut trip, &mut s);
        assert_eq!(trip.len(), 1);
        assert!(trip[0].starts_with("SELECT $1"));
        assert_eq!(s.total_executions(), 1);
    }
}
