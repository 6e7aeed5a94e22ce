//! A small SMTP server (RFC 5321) for inbound mail: it takes messages for the addresses an
//! [`Inbox`] accepts and hands each whole message over before answering `250`, so a message is
//! either stored or refused, never lost between the two. It is meant to sit behind the MX of
//! the inbound domain (or a relay that forwards to it); it offers no TLS and no relaying.
//! Every limit is checked while reading: line length, message size, recipients, errors and
//! commands per session, idle time, session length, sessions at once (in all and per client)
//! and messages being read at once. Lines end in CRLF: a bare LF never ends the data (no SMTP
//! smuggling), and a message holding one is refused.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The longest command line taken (RFC 5321 asks for 512 octets; extensions add some).
const MAX_COMMAND: usize = 2048;
/// The longest line of a message taken (RFC 5322 allows 998 octets; some senders exceed it).
const MAX_TEXT_LINE: usize = 64 * 1024;
/// Recipients per message.
const MAX_RECIPIENTS: usize = 20;
/// Bad commands before the session is closed.
const MAX_ERRORS: usize = 10;
/// Commands in one session.
const MAX_COMMANDS: usize = 1000;
/// Sessions served at once; more are told to come back (`421`).
const MAX_SESSIONS: usize = 64;
/// Sessions one client address may hold at once.
const MAX_PER_PEER: usize = 8;
/// Messages being read at once (each holds up to the size limit in memory).
const MAX_DATA_AT_ONCE: usize = 8;
/// How long a client may stay silent.
const IDLE: Duration = Duration::from_secs(60);
/// How long one session may last in all.
const SESSION_LIMIT: Duration = Duration::from_secs(600);

/// The envelope of one message.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The client's address.
    pub peer: SocketAddr,
    /// The reverse path (`MAIL FROM`; empty for bounces).
    pub mail_from: String,
    /// The accepted recipients (`RCPT TO`).
    pub recipients: Vec<String>,
}

/// Why a message was not taken.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Try again later (`451`): the store was unavailable.
    Temporary(String),
    /// Do not try again (`550`): the message cannot be taken.
    Permanent(String),
}

/// Where received mail goes.
#[async_trait::async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Whether mail for `address` is taken (asked at `RCPT TO`); `Err` when that cannot be
    /// told now (the client tries again later).
    async fn accepts(&self, address: &str) -> Result<bool, Refusal>;
    /// Takes one whole message; it is stored when this returns `Ok`.
    async fn deliver(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Refusal>;
}

/// How the server presents itself and what it takes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The name in the greeting.
    pub hostname: String,
    /// The largest message taken, in bytes.
    pub max_size: usize,
}

/// Serves SMTP on `listener` until `shutdown` completes (sessions in progress are dropped:
/// their senders retry, as SMTP senders do).
pub async fn serve(
    listener: TcpListener,
    inbox: Arc<dyn Inbox>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let settings = Arc::new(settings);
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    let readers = Arc::new(Semaphore::new(MAX_DATA_AT_ONCE));
    let peers: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, peer)) = accepted else {
            // Out of descriptors or a reset during the handshake: wait a moment, go on.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let permit = sessions.clone().try_acquire_owned().ok();
        let seat = permit
            .and_then(|permit| PeerSeat::take(&peers, client_of(peer.ip())).map(|s| (permit, s)));
        let Some((permit, seat)) = seat else {
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"421 4.7.0 too many connections; try again later\r\n")
                    .await;
            });
            continue;
        };
        let (inbox, settings, readers) = (inbox.clone(), settings.clone(), readers.clone());
        tokio::spawn(async move {
            let served = tokio::time::timeout(
                SESSION_LIMIT,
                session(stream, peer, inbox.as_ref(), &settings, &readers),
            )
            .await;
            match served {
                Ok(Err(error)) => tracing::debug!(%peer, %error, "SMTP session ended"),
                Err(_) => tracing::debug!(%peer, "SMTP session ran too long"),
                Ok(Ok(())) => {}
            }
            drop((permit, seat));
        });
    }
}

/// The client an address belongs to: an IPv4 address, or an IPv6 /64 (what one host or
/// network usually holds whole).
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(segments))
        }
    }
}

/// One of a client's sessions, given back when dropped.
struct PeerSeat {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerSeat {
    /// A seat for `ip`, unless it holds [`MAX_PER_PEER`] sessions already.
    fn take(peers: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<Self> {
        let mut held = peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(ip).or_insert(0);
        if *count >= MAX_PER_PEER {
            return None;
        }
        *count += 1;
        Some(Self {
            peers: peers.clone(),
            ip,
        })
    }
}

impl Drop for PeerSeat {
    fn drop(&mut self) {
        let mut held = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// What reading one line found.
enum Line {
    /// A line without its ending, and whether that ending was CRLF (not a bare LF).
    Text(Vec<u8>, bool),
    /// A line longer than the limit (read to its end and dropped), and whether it ended in CRLF.
    TooLong(bool),
    /// The client closed the connection.
    Closed,
}

/// Reads one line of at most `max` bytes, giving up after [`IDLE`].
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin), max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    // The last byte read before the one at hand (what precedes a LF may be in an earlier chunk).
    let mut last: Option<u8> = None;
    loop {
        let buffer = tokio::time::timeout(IDLE, reader.fill_buf())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if buffer.is_empty() {
            return Ok(Line::Closed);
        }
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(end) => (&buffer[..=end], true),
            None => (buffer, false),
        };
        let used = chunk.len();
        let before_lf = if done {
            if used >= 2 {
                Some(chunk[used - 2])
            } else {
                last
            }
        } else {
            None
        };
        last = chunk.last().copied();
        if !too_long {
            if line.len() + used > max + 2 {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            if too_long {
                return Ok(Line::TooLong(before_lf == Some(b'\r')));
            }
            line.pop();
            let crlf = line.last() == Some(&b'\r');
            if crlf {
                line.pop();
            }
            return Ok(Line::Text(line, crlf));
        }
    }
}

/// The address inside `<...>` after `MAIL FROM:` or `RCPT TO:`, and the parameters after it.
fn path_of(argument: &str) -> Option<(String, &str)> {
    let argument = argument.trim_start();
    let rest = argument.strip_prefix('<')?;
    let end = rest.find('>')?;
    let address = rest[..end].trim();
    // A source route (`<@a,@b:user@host>`) names the mailbox after its colon.
    let address = address.rsplit(':').next().unwrap_or(address);
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    Some((address.to_owned(), &rest[end + 1..]))
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    inbox: &dyn Inbox,
    settings: &Settings,
    readers: &Semaphore,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut reply = async |text: String| -> std::io::Result<()> {
        write.write_all(text.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
        write.flush().await
    };
    reply(format!("220 {} Formwork ESMTP ready", settings.hostname)).await?;
    let mut greeted = false;
    let mut mail_from: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut errors = 0;
    let mut commands = 0;
    loop {
        if errors >= MAX_ERRORS {
            reply("421 4.7.0 too many errors; closing".to_owned()).await?;
            return Ok(());
        }
        commands += 1;
        if commands > MAX_COMMANDS {
            reply("421 4.7.0 too many commands; closing".to_owned()).await?;
            return Ok(());
        }
        let line = match read_line(&mut reader, MAX_COMMAND).await? {
            Line::Closed => return Ok(()),
            Line::TooLong(_) => {
                errors += 1;
                reply("500 5.5.6 line too long".to_owned()).await?;
                continue;
            }
            Line::Text(line, _) => line,
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                greeted = true;
                (mail_from, recipients) = (None, Vec::new());
                reply(format!(
                    "250-{} greets you\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 SMTPUTF8",
                    settings.hostname, settings.max_size
                ))
                .await?;
            }
            "HELO" => {
                greeted = true;
                (mail_from, recipients) = (None, Vec::new());
                reply(format!("250 {}", settings.hostname)).await?;
            }
            "MAIL" => {
                let Some(argument) = strip_keyword(argument, "FROM:") else {
                    errors += 1;
                    reply("501 5.5.4 use MAIL FROM:<address>".to_owned()).await?;
                    continue;
                };
                if !greeted {
                    errors += 1;
                    reply("503 5.5.1 say EHLO first".to_owned()).await?;
                    continue;
                }
                if mail_from.is_some() {
                    errors += 1;
                    reply("503 5.5.1 a message is already started".to_owned()).await?;
                    continue;
                }
                let Some((address, parameters)) = path_of(argument) else {
                    errors += 1;
                    reply("501 5.1.7 bad sender address".to_owned()).await?;
                    continue;
                };
                let declared = parameters
                    .split_whitespace()
                    .filter_map(|p| p.to_ascii_uppercase().strip_prefix("SIZE=")?.parse().ok())
                    .next()
                    .unwrap_or(0usize);
                if declared > settings.max_size {
                    reply(format!(
                        "552 5.3.4 messages are at most {} bytes",
                        settings.max_size
                    ))
                    .await?;
                    continue;
                }
                mail_from = Some(address);
                reply("250 2.1.0 sender ok".to_owned()).await?;
            }
            "RCPT" => {
                let Some(argument) = strip_keyword(argument, "TO:") else {
                    errors += 1;
                    reply("501 5.5.4 use RCPT TO:<address>".to_owned()).await?;
                    continue;
                };
                if mail_from.is_none() {
                    errors += 1;
                    reply("503 5.5.1 say MAIL FROM first".to_owned()).await?;
                    continue;
                }
                let Some((address, _)) = path_of(argument) else {
                    errors += 1;
                    reply("501 5.1.3 bad recipient address".to_owned()).await?;
                    continue;
                };
                if recipients.len() >= MAX_RECIPIENTS {
                    reply("452 4.5.3 too many recipients".to_owned()).await?;
                    continue;
                }
                match inbox.accepts(&address).await {
                    Ok(true) => {
                        recipients.push(address);
                        reply("250 2.1.5 recipient ok".to_owned()).await?;
                    }
                    Ok(false) => {
                        errors += 1;
                        reply("550 5.1.1 no such mailbox here".to_owned()).await?;
                    }
                    Err(Refusal::Temporary(why) | Refusal::Permanent(why)) => {
                        reply(format!("451 4.3.0 {}", one_line(&why))).await?;
                    }
                }
            }
            "DATA" => {
                if recipients.is_empty() {
                    errors += 1;
                    reply("503 5.5.1 no valid recipients".to_owned()).await?;
                    continue;
                }
                let Ok(_reading) = readers.try_acquire() else {
                    reply("451 4.3.2 too busy; try again later".to_owned()).await?;
                    continue;
                };
                reply("354 end data with <CR><LF>.<CR><LF>".to_owned()).await?;
                let message = match read_data(&mut reader, settings.max_size).await? {
                    Data::Message(message) => message,
                    Data::TooLarge => {
                        (mail_from, recipients) = (None, Vec::new());
                        reply(format!(
                            "552 5.3.4 messages are at most {} bytes",
                            settings.max_size
                        ))
                        .await?;
                        continue;
                    }
                    Data::BareLineFeed => {
                        (mail_from, recipients) = (None, Vec::new());
                        reply("550 5.6.11 lines must end in CRLF, not a bare LF".to_owned())
                            .await?;
                        continue;
                    }
                };
                let envelope = Envelope {
                    peer,
                    mail_from: mail_from.take().unwrap_or_default(),
                    recipients: std::mem::take(&mut recipients),
                };
                match inbox.deliver(&envelope, &message).await {
                    Ok(()) => reply("250 2.0.0 message filed".to_owned()).await?,
                    Err(Refusal::Temporary(why)) => {
                        reply(format!("451 4.3.0 {}", one_line(&why))).await?;
                    }
                    Err(Refusal::Permanent(why)) => {
                        reply(format!("550 5.6.0 {}", one_line(&why))).await?;
                    }
                }
            }
            "RSET" => {
                (mail_from, recipients) = (None, Vec::new());
                reply("250 2.0.0 reset".to_owned()).await?;
            }
            "NOOP" => reply("250 2.0.0 ok".to_owned()).await?,
            "VRFY" => reply("252 2.1.5 cannot verify; send and see".to_owned()).await?,
            "QUIT" => {
                reply("221 2.0.0 bye".to_owned()).await?;
                return Ok(());
            }
            _ => {
                errors += 1;
                reply("502 5.5.2 command not implemented".to_owned()).await?;
            }
        }
    }
}

/// `argument` after `keyword` (case-insensitive), as in `FROM:<a@b>`.
fn strip_keyword<'a>(argument: &'a str, keyword: &str) -> Option<&'a str> {
    let head = argument.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &argument[keyword.len()..])
}

/// A reason as one reply line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// What reading a message found.
#[derive(Debug, PartialEq, Eq)]
enum Data {
    /// The message, dot-stuffing undone.
    Message(Vec<u8>),
    /// It was larger than the limit.
    TooLarge,
    /// A line of it ended in a bare LF.
    BareLineFeed,
}

/// Reads a message up to a lone dot between CRLFs, undoing dot-stuffing; a message too large
/// or holding a bare LF is read to its end and dropped, so the session can go on.
async fn read_data(reader: &mut (impl AsyncBufRead + Unpin), max: usize) -> std::io::Result<Data> {
    let mut message = Vec::new();
    let mut too_large = false;
    let mut bare_lf = false;
    // DATA's own line ended in CRLF.
    let mut after_crlf = true;
    loop {
        let (line, crlf) = match read_line(reader, MAX_TEXT_LINE).await? {
            Line::Closed => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed inside DATA",
                ));
            }
            Line::TooLong(crlf) => {
                too_large = true;
                after_crlf = crlf;
                if !crlf {
                    bare_lf = true;
                }
                continue;
            }
            Line::Text(line, crlf) => (line, crlf),
        };
        if line == b"." && crlf && after_crlf {
            return Ok(if bare_lf {
                Data::BareLineFeed
            } else if too_large {
                Data::TooLarge
            } else {
                Data::Message(message)
            });
        }
        after_crlf = crlf;
        if !crlf {
            bare_lf = true;
        }
        if too_large || bare_lf {
            continue;
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        if message.len() + text.len() + 2 > max {
            too_large = true;
            message = Vec::new();
            continue;
        }
        message.extend_from_slice(text);
        message.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_their_brackets() {
        assert_eq!(
            path_of("<li.na@example.com> SIZE=100").map(|(a, p)| (a, p.to_owned())),
            Some(("li.na@example.com".to_owned(), " SIZE=100".to_owned()))
        );
        assert_eq!(path_of("<>").map(|(a, _)| a), Some(String::new()));
        assert_eq!(
            path_of("<@relay.example:li@example.com>").map(|(a, _)| a),
            Some("li@example.com".to_owned())
        );
        assert!(path_of("li@example.com").is_none());
        assert!(path_of("<li @example.com>").is_none());
        assert_eq!(strip_keyword("from:<a@b>", "FROM:"), Some("<a@b>"));
        assert_eq!(strip_keyword("TO", "TO:"), None);
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_capped() {
        let mut input: &[u8] = b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n";
        let message = read_data(&mut input, 1000).await.expect("read");
        assert_eq!(
            message,
            Data::Message(b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n".to_vec())
        );
        let mut input: &[u8] = b"0123456789\r\n0123456789\r\n.\r\nNOOP\r\n";
        assert_eq!(
            read_data(&mut input, 15).await.expect("read"),
            Data::TooLarge
        );
        // The rest of the session is still there to read.
        let Line::Text(next, true) = read_line(&mut input, 100).await.expect("line") else {
            panic!("no next line");
        };
        assert_eq!(next, b"NOOP");
    }

    #[tokio::test]
    async fn a_line_past_the_limit_still_lets_the_data_end() {
        let mut input = b"Subject: big\r\n\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_TEXT_LINE + 10));
        input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
        let mut reader: &[u8] = &input;
        assert_eq!(
            read_data(&mut reader, 1_000_000).await.expect("read"),
            Data::TooLarge
        );
        let Line::Text(next, true) = read_line(&mut reader, 100).await.expect("line") else {
            panic!("no next line");
        };
        assert_eq!(next, b"NOOP");
    }

    #[tokio::test]
    async fn a_bare_line_feed_never_ends_the_data() {
        // `\n.\n` and `\n.\r\n` are text; only CRLF . CRLF ends it, and the message is refused.
        let mut input: &[u8] =
            b"Subject: hi\r\n\r\nbody\n.\nMAIL FROM:<x@y.z>\n.\r\nRCPT TO:<a@b.c>\r\n.\r\nNOOP\r\n";
        assert_eq!(
            read_data(&mut input, 1000).await.expect("read"),
            Data::BareLineFeed
        );
        let Line::Text(next, true) = read_line(&mut input, 100).await.expect("line") else {
            panic!("no next line");
        };
        assert_eq!(next, b"NOOP");
    }
}
