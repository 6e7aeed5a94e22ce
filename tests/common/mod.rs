//! Test helpers shared by every integration test: a real server on 127.0.0.1:0 over a fresh
//! database (SQLite file or PostgreSQL), typed HTTP helpers, clock control, job draining, and
//! spawning the real binary for process-level tests.
#![allow(dead_code, unreachable_pub)]

pub mod browser;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use formwork::app::{self, Services};
use formwork::clock::{OffsetClock, SharedClock};
use formwork::config::ServeConfig;
use formwork::store::Db;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

/// The admin created by bootstrap in every test app.
pub const ADMIN_EMAIL: &str = "admin@formwork.local";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-123";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` once per database.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Postgres).await }
            )*
        }
    };
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("FORMWORK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, empty database of `backend`; returns its URL (and the folder holding a SQLite file).
pub async fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}/formwork.db", dir.path().display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let admin_url = postgres_admin_url();
            let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required for these tests ({admin_url}): {e}")
            });
            let name = format!("fwt_{}", uuid::Uuid::new_v4().simple());
            let template = std::env::var("FORMWORK_TEST_PG_TEMPLATE").ok();
            let sql = match template {
                Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
                None => format!("CREATE DATABASE {name}"),
            };
            admin
                .execute_unprepared(&sql)
                .await
                .expect("create test database");
            let _ = admin.close().await;
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url)
                .to_owned();
            (format!("{base}/{name}"), None)
        }
    }
}

/// A running Formwork on a fresh database, with background workers off (tests drain jobs).
pub struct TestApp {
    pub services: Services,
    pub clock: Arc<OffsetClock>,
    pub address: String,
    pub database_url: String,
    pub backend: Backend,
    /// Where the app takes inbound mail over SMTP (with `Options::inbound`).
    pub inbound: Option<std::net::SocketAddr>,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    inbound_stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The domain of test apps' inbound addresses.
pub const INBOUND_DOMAIN: &str = "inbound.formwork.test";

/// Options for [`TestApp::spawn_with`].
#[derive(Debug, Clone)]
pub struct Options {
    pub demo: bool,
    /// Import the demo records too (slower; most tests start from an empty CRM).
    pub demo_data: bool,
    pub body_limit: u64,
    pub configure: fn(&mut ServeConfig),
    /// The SMTP server to send through (an [`SmtpSink`]'s).
    pub smtp_url: Option<String>,
    /// Take inbound mail (for `@INBOUND_DOMAIN`) on a free local port.
    pub inbound: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            demo: true,
            demo_data: false,
            body_limit: 2 * 1024 * 1024,
            configure: |_| {},
            smtp_url: None,
            inbound: false,
        }
    }
}

impl TestApp {
    /// A server with the demo workspace and the admin account.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    /// A server with options.
    pub async fn spawn_with(backend: Backend, options: Options) -> Self {
        if std::env::var_os("FORMWORK_LOG").is_some() {
            formwork::telemetry::init();
        }
        let (database_url, dir) = fresh_database(backend).await;
        let mut config = ServeConfig::with_database(&database_url);
        config.admin_password = Some(ADMIN_PASSWORD.to_owned());
        config.demo = options.demo;
        config.demo_data = options.demo_data;
        config.body_limit = options.body_limit;
        config.test_mode = true;
        config.workers = 2;
        config.smtp_url = options.smtp_url.clone();
        if options.inbound {
            // The address is bound below (a free port); this turns inbound mail on.
            config.inbound_smtp_listen = Some("127.0.0.1:0".parse().expect("address"));
            config.inbound_domain = Some(INBOUND_DOMAIN.to_owned());
        }
        // Tests drive tokens harder than people do; the limit has its own test.
        config.token_rate_limit = 0;
        (options.configure)(&mut config);
        let db = Db::connect(&config.database).await.expect("connect");
        db.migrate().await.expect("migrate");
        let clock = Arc::new(OffsetClock::new());
        let services = Services::new(db, SharedClock::new(clock.clone()), config);
        app::bootstrap(&services).await.expect("bootstrap");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = services.clone();
        tokio::spawn(async move {
            let _ = formwork::http::serve(listener, serving, async {
                let _ = stopped.await;
            })
            .await;
        });
        let (inbound, inbound_stop) = if options.inbound {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind inbound");
            let at = listener.local_addr().expect("inbound addr");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(formwork::emails::inbound::serve(
                listener,
                services.clone(),
                async {
                    let _ = stopped.await;
                },
            ));
            (Some(at), Some(stop))
        } else {
            (None, None)
        };
        Self {
            services,
            clock,
            address,
            database_url,
            backend,
            inbound,
            _dir: dir,
            stop: Some(stop),
            inbound_stop,
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A client with no credentials.
    pub fn anonymous(&self) -> Client {
        Client::new(self.address.clone())
    }

    /// A client signed in as `email`.
    pub async fn login(&self, email: &str, password: &str) -> Client {
        let mut client = self.anonymous();
        let (status, body) = client
            .send(
                Method::POST,
                "/api/v1/account/login",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
        client.csrf = body["csrf_token"].as_str().map(str::to_owned);
        client
    }

    /// A client signed in as the bootstrap admin.
    pub async fn admin(&self) -> Client {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates an account directly (invitations are a later issue) and signs it in.
    pub async fn create_user(&self, email: &str) -> Client {
        formwork::auth::create_account(
            self.services.db().conn(),
            self.services.clock(),
            email,
            email.split('@').next().unwrap_or("user"),
            "user-password-123",
            false,
        )
        .await
        .expect("create account");
        self.login(email, "user-password-123").await
    }

    /// Moves this app's clock.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    /// Runs due background jobs until none is due.
    pub async fn run_jobs_until_idle(&self) -> usize {
        self.services
            .worker()
            .run_until_idle()
            .await
            .expect("run jobs")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.inbound_stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Saves `document` as the draft of entity `key` in the demo workspace (with the revision last
/// read, if it exists) and publishes it; returns the publish answer (or the draft's refusal).
pub async fn publish_entity(
    client: &Client,
    key: &str,
    document: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    publish_definition(client, "entity", key, document).await
}

/// An HTTP client with a cookie jar and the session's CSRF token or a bearer token.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

impl Client {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        Self {
            base,
            http,
            csrf: None,
            bearer: None,
        }
    }

    /// A client using only an API token.
    pub fn with_token(base: String, token: &str) -> Self {
        let mut client = Self::new(base);
        client.bearer = Some(token.to_owned());
        client
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(csrf) = &self.csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// A GET whose answer is read as bytes (downloads, exports).
    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }
}

/// Asserts a problem+json response with `status` and returns its `errors` pointers.
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) -> Vec<String> {
    assert_eq!(status, expected, "unexpected status; body: {body}");
    assert_eq!(
        body["status"],
        json!(expected.as_u16()),
        "not problem+json: {body}"
    );
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.contains("/problems/")),
        "{body}"
    );
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["pointer"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `formwork` binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_formwork"))
}

/// A `formwork serve` child process (debug build, test mode on); killed when dropped.
pub struct Process {
    pub child: Child,
    pub address: String,
}

impl Process {
    /// Starts the binary on `database_url` listening on a free port, and waits until it answers.
    pub async fn spawn(database_url: &str, extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .env("FORMWORK_DATABASE_URL", database_url)
            .env("FORMWORK_LISTEN", format!("127.0.0.1:{port}"))
            .env("FORMWORK_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("FORMWORK_TEST_MODE", "true")
            .env("FORMWORK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn formwork");
        let process = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(response) = client.get(format!("{}/readyz", self.address)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("formwork did not become ready at {}", self.address);
    }

    /// SIGKILL: no graceful shutdown, leases stay as they were.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Connects to a test database from the test itself (on SQLite this takes the file's lock).
pub async fn connect(database_url: &str) -> Db {
    let mut config = ServeConfig::with_database(database_url).database;
    config.pool_size = 4;
    Db::connect(&config).await.expect("connect")
}

/// Sends the message `raw` (lines ending in `\n`) from `from` to `to` through the app's inbound
/// SMTP server with a real SMTP client, as a sender's mail server would.
pub async fn deliver_inbound(app: &TestApp, from: &str, to: &str, raw: &str) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};
    let at = app.inbound.expect("inbound mail is on");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(at.ip().to_string())
        .port(at.port())
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    let envelope = Envelope::new(
        Some(from.parse().expect("from")),
        vec![to.parse().expect("to")],
    )
    .expect("envelope");
    transport
        .send_raw(&envelope, raw.replace('\n', "\r\n").as_bytes())
        .await
        .expect("the inbound server takes the message");
}

/// A real SMTP listener on a free local port that keeps every message it is sent (what
/// Formwork's mailer talks to in tests).
#[derive(Clone, Default)]
pub struct SmtpSink {
    pub port: u16,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Recipients refused for good (`550` at RCPT), as a real server refuses unknown users.
    refused: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    /// Starts listening.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp");
        let sink = Self {
            port: listener.local_addr().expect("addr").port(),
            ..Self::default()
        };
        let (messages, refused) = (sink.messages.clone(), sink.refused.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (messages, refused) = (messages.clone(), refused.clone());
                tokio::spawn(async move {
                    let _ = Self::session(stream, messages, refused).await;
                });
            }
        });
        sink
    }

    /// Refuses mail for `address` from now on (`550 5.1.1`).
    pub fn refuse(&self, address: &str) {
        self.refused.lock().expect("lock").push(address.to_owned());
    }

    async fn session(
        stream: tokio::net::TcpStream,
        messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        refused: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await?;
        while let Some(line) = lines.next_line().await? {
            let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" | "HELO" => write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?,
                "RCPT"
                    if refused
                        .lock()
                        .expect("lock")
                        .iter()
                        .any(|a| line.contains(&format!("<{a}>"))) =>
                {
                    write.write_all(b"550 5.1.1 no such user here\r\n").await?;
                }
                "DATA" => {
                    write.write_all(b"354 go ahead\r\n").await?;
                    let mut message = String::new();
                    while let Some(line) = lines.next_line().await? {
                        if line == "." {
                            break;
                        }
                        message.push_str(line.strip_prefix('.').unwrap_or(&line));
                        message.push('\n');
                    }
                    messages.lock().expect("lock").push(message);
                    write.write_all(b"250 queued\r\n").await?;
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => write.write_all(b"250 OK\r\n").await?,
            }
        }
        Ok(())
    }

    /// The messages received so far, bodies decoded (base64 or quoted-printable; each part of
    /// a multipart message in turn).
    pub fn messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .expect("lock")
            .iter()
            .map(|raw| decode_mime(raw))
            .collect()
    }
}

/// A MIME entity with its body decoded: the head, then the decoded body (or, for multipart,
/// every part decoded the same way).
fn decode_mime(raw: &str) -> String {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let lower = head.to_ascii_lowercase();
    if lower.contains("content-type: multipart/") {
        let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
        let boundary = unfolded
            .split("boundary=")
            .nth(1)
            .map(|b| b.trim_start_matches('"'))
            .and_then(|b| b.split(['"', ';', '\n']).next())
            .unwrap_or_default()
            .to_owned();
        if !boundary.is_empty() {
            let parts: Vec<String> = body
                .split(&format!("--{boundary}"))
                .map(|part| part.trim_start_matches('\n'))
                .filter(|part| !part.trim().is_empty() && !part.starts_with("--"))
                .map(decode_mime)
                .collect();
            return format!("{head}\n\n{}", parts.join("\n"));
        }
    }
    let decoded = if lower.contains("content-transfer-encoding: base64") {
        use base64::Engine;
        let joined: String = body.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(joined)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default()
    } else if lower.contains("content-transfer-encoding: quoted-printable") {
        let soft = body.replace("=\n", "");
        let mut bytes = Vec::new();
        let raw = soft.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'='
                && let Some(hex) = soft.get(i + 1..i + 3)
                && let Ok(byte) = u8::from_str_radix(hex, 16)
            {
                bytes.push(byte);
                i += 3;
                continue;
            }
            bytes.push(raw[i]);
            i += 1;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    };
    format!("{head}\n\n{decoded}")
}

/// Saves `document` as the draft of `kind`/`key` in the demo workspace (with the revision last
/// read, if it exists) and publishes it; returns the publish answer (or the draft's refusal).
pub async fn publish_definition(
    client: &Client,
    kind: &str,
    key: &str,
    document: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let path = format!("/api/v1/w/demo/definitions/{kind}/{key}");
    let (status, current) = client.get(&path).await;
    let mut draft = serde_json::json!({"document": document});
    if status == StatusCode::OK {
        draft["revision"] = current["revision"].clone();
    }
    let (status, body) = client.put(&format!("{path}/draft"), draft).await;
    if status != StatusCode::OK {
        return (status, body);
    }
    client
        .post(
            &format!("{path}/versions"),
            serde_json::json!({"revision": body["revision"]}),
        )
        .await
}

/// Creates an account, adds it to the demo workspace with `role`, and signs it in; returns the
/// client and the account id.
pub async fn join_member(
    app: &TestApp,
    admin: &Client,
    email: &str,
    role: &str,
) -> (Client, String) {
    join_member_in(app, admin, "demo", email, role).await
}

/// As [`join_member`], into workspace `ws`.
pub async fn join_member_in(
    app: &TestApp,
    admin: &Client,
    ws: &str,
    email: &str,
    role: &str,
) -> (Client, String) {
    let client = app.create_user(email).await;
    let (status, body) = admin
        .post(
            &format!("/api/v1/w/{ws}/members"),
            serde_json::json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (client, body["account_id"].as_str().expect("id").to_owned())
}

/// A real HTTP server receiving webhooks: answers each request with the next status of a script
/// (then 200), and keeps every request's `Idempotency-Key` and body.
#[derive(Clone)]
pub struct WebhookSink {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    signed: SignedLog,
}

/// Signed requests a [`WebhookSink`] received: signature header and raw body.
type SignedLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

impl WebhookSink {
    /// Starts listening; the first requests get `statuses`, in order.
    pub async fn start(statuses: Vec<u16>) -> Self {
        use axum::routing::post;
        let received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> =
            std::sync::Arc::default();
        let signed: SignedLog = std::sync::Arc::default();
        let script = std::sync::Arc::new(std::sync::Mutex::new(statuses.into_iter()));
        let kept = received.clone();
        let kept_signed = signed.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let kept = kept.clone();
                    let kept_signed = kept_signed.clone();
                    let script = script.clone();
                    async move {
                        if let Some(signature) = headers
                            .get("formwork-signature")
                            .and_then(|v| v.to_str().ok())
                        {
                            kept_signed
                                .lock()
                                .expect("lock")
                                .push((signature.to_owned(), body.to_vec()));
                        }
                        let key = headers
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        kept.lock().expect("lock").push((key, body));
                        let status = script.lock().expect("lock").next().unwrap_or(200);
                        axum::http::StatusCode::from_u16(status)
                            .unwrap_or(axum::http::StatusCode::OK)
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook sink");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received,
            signed,
        }
    }

    /// Every signed request so far: its `Formwork-Signature` header and raw body.
    pub fn signed(&self) -> Vec<(String, Vec<u8>)> {
        self.signed.lock().expect("lock").clone()
    }

    /// Every request so far: its idempotency key and JSON body.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.received.lock().expect("lock").clone()
    }
}

/// A client signed in as the bootstrap admin of a spawned process.
pub async fn process_admin(address: &str) -> Client {
    let mut client = Client::new(address.to_owned());
    let response = client
        .http
        .post(format!("{address}/api/v1/account/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    let body: Value = response.json().await.expect("json");
    client.csrf = body["csrf_token"].as_str().map(str::to_owned);
    client
}

/// A browser-like client for the HTML pages: a cookie jar, no automatic redirects, a chosen
/// `Accept-Language`, and the session's CSRF token read from the pages.
pub struct PageClient {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

/// The value of the first `name="…" value="…"` input in `html`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(marker.as_str())
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|v| {
            v.replace("&quot;", "\"")
                .replace("&#x2f;", "/")
                .replace("&#x27;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
}

impl PageClient {
    /// Signs in through the sign-in form as `email` with `password`, reading pages in `lang`.
    pub async fn sign_in(app: &TestApp, email: &str, password: &str, lang: &str) -> PageClient {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT_LANGUAGE,
            reqwest::header::HeaderValue::from_str(lang).expect("language header"),
        );
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("client");
        let login = http
            .get(format!("{}/login", app.address))
            .send()
            .await
            .expect("login page")
            .text()
            .await
            .expect("html");
        let token = input_value(&login, "csrf_token").expect("sign-in form token");
        let response = http
            .post(format!("{}/login", app.address))
            .form(&[
                ("email", email),
                ("password", password),
                ("next", "/"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
        let mut client = PageClient {
            http,
            base: app.address.clone(),
            csrf: String::new(),
        };
        let (_, home) = client.get("/workspaces").await;
        client.csrf = input_value(&home, "csrf_token").expect("session CSRF token");
        client
    }

    /// GETs a page: status and HTML.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get page");
        let status = response.status();
        (status, response.text().await.expect("html"))
    }

    /// POSTs JSON as a page's script does (the session's CSRF token in `X-CSRF-Token`).
    pub async fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", self.csrf.as_str())
            .json(&body)
            .send()
            .await
            .expect("post json");
        let status = response.status();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// POSTs a form (the session's CSRF token added): status, `Location` and body.
    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> (StatusCode, String, String) {
        self.post_with(path, pairs, &[]).await
    }

    /// POSTs a form with extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", self.csrf.as_str())];
        form.extend_from_slice(pairs);
        let mut request = self.http.post(format!("{}{path}", self.base)).form(&form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("post form");
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, location, response.text().await.expect("body"))
    }
}

/// `text` percent-encoded for a URL's query string (every byte but ASCII letters and digits).
pub fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A local stand-in for the WeCom, DingTalk and Feishu group robot endpoints that checks each
/// request the way the service does (the address's token, the message format, the signature
/// with the robot's secret, computed here independently) and answers as the service answers:
/// HTTP 200 with `errcode`/`code` 0, or the service's error code. Accepted messages are kept.
#[derive(Clone)]
pub struct RobotServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    refused: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    busy: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// The tokens and secrets the [`RobotServer`]'s robots expect.
pub const WECOM_KEY: &str = "wecom-key-0001";
pub const DINGTALK_TOKEN: &str = "ding-token-0002";
pub const DINGTALK_SECRET: &str = "SECding0002";
pub const FEISHU_HOOK: &str = "feishu-hook-0003";
pub const FEISHU_SECRET: &str = "feishu-secret-0003";

fn robot_hmac(key: &[u8], message: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("hmac key");
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl RobotServer {
    /// Starts listening.
    pub async fn start() -> Self {
        use axum::extract::{Path, Query, State};
        use axum::routing::post;
        let server = Self {
            base: String::new(),
            accepted: std::sync::Arc::default(),
            refused: std::sync::Arc::default(),
            busy: std::sync::Arc::default(),
        };
        type Q = Query<std::collections::HashMap<String, String>>;
        async fn wecom(
            State(s): State<RobotServer>,
            Query(q): Q,
            body: axum::body::Bytes,
        ) -> axum::Json<Value> {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(busy) = s.take_busy() {
                return busy;
            }
            if q.get("key").map(String::as_str) != Some(WECOM_KEY) {
                return s.refuse("wecom", 93000, "invalid webhook url");
            }
            let ok = match body["msgtype"].as_str() {
                Some("markdown") => body["markdown"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty() && c.len() <= 4096),
                Some("text") => body["text"]["content"].is_string(),
                _ => false,
            };
            if !ok {
                return s.refuse("wecom", 40008, "invalid message type");
            }
            s.accept("wecom", body)
        }
        async fn dingtalk(
            State(s): State<RobotServer>,
            Query(q): Q,
            body: axum::body::Bytes,
        ) -> axum::Json<Value> {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(busy) = s.take_busy() {
                return busy;
            }
            if q.get("access_token").map(String::as_str) != Some(DINGTALK_TOKEN) {
                return s.refuse("dingtalk", 300001, "token is not exist");
            }
            let (Some(timestamp), Some(sign)) = (q.get("timestamp"), q.get("sign")) else {
                return s.refuse("dingtalk", 310000, "sign not match");
            };
            let expected = robot_hmac(
                DINGTALK_SECRET.as_bytes(),
                format!("{timestamp}\n{DINGTALK_SECRET}").as_bytes(),
            );
            if *sign != expected {
                return s.refuse("dingtalk", 310000, "sign not match");
            }
            let ok = body["msgtype"] == "markdown"
                && body["markdown"]["title"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
                && body["markdown"]["text"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty());
            if !ok {
                return s.refuse("dingtalk", 40035, "缺少参数 markdown");
            }
            s.accept("dingtalk", body)
        }
        async fn feishu(
            State(s): State<RobotServer>,
            Path(hook): Path<String>,
            body: axum::body::Bytes,
        ) -> axum::Json<Value> {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(busy) = s.take_busy() {
                return busy;
            }
            if hook != FEISHU_HOOK {
                return s.refuse_feishu(
                    19001,
                    "param invalid: incoming webhook access token invalid",
                );
            }
            let timestamp = body["timestamp"].as_str().unwrap_or_default();
            let expected = robot_hmac(format!("{timestamp}\n{FEISHU_SECRET}").as_bytes(), b"");
            if body["sign"].as_str() != Some(expected.as_str()) {
                return s.refuse_feishu(
                    19021,
                    "sign match fail or timestamp is not within one hour from current time",
                );
            }
            let post = &body["content"]["post"]["zh_cn"];
            let ok = body["msg_type"] == "post"
                && post["title"].is_string()
                && post["content"].as_array().is_some_and(|lines| {
                    lines.iter().all(|line| {
                        line.as_array().is_some_and(|tags| {
                            tags.iter().all(|t| {
                                matches!(t["tag"].as_str(), Some("text" | "a" | "at" | "img"))
                            })
                        })
                    })
                });
            if !ok {
                return s.refuse_feishu(9499, "Bad Request");
            }
            s.accept("feishu", body)
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind robot server");
        let server = Self {
            base: format!("http://{}", listener.local_addr().expect("addr")),
            ..server
        };
        let app = axum::Router::new()
            .route("/cgi-bin/webhook/send", post(wecom))
            .route("/robot/send", post(dingtalk))
            .route("/open-apis/bot/v2/hook/{hook}", post(feishu))
            .with_state(server.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        server
    }

    fn take_busy(&self) -> Option<axum::Json<Value>> {
        use std::sync::atomic::Ordering;
        self.busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| axum::Json(serde_json::json!({"errcode": -1, "errmsg": "系统繁忙"})))
    }

    fn accept(&self, service: &str, body: Value) -> axum::Json<Value> {
        self.accepted
            .lock()
            .expect("lock")
            .push((service.to_owned(), body));
        match service {
            "feishu" => axum::Json(serde_json::json!({"code": 0, "msg": "success", "data": {}})),
            _ => axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok"})),
        }
    }

    fn refuse(&self, service: &str, code: i64, message: &str) -> axum::Json<Value> {
        self.refused
            .lock()
            .expect("lock")
            .push((service.to_owned(), message.to_owned()));
        axum::Json(serde_json::json!({"errcode": code, "errmsg": message}))
    }

    fn refuse_feishu(&self, code: i64, message: &str) -> axum::Json<Value> {
        self.refused
            .lock()
            .expect("lock")
            .push(("feishu".to_owned(), message.to_owned()));
        axum::Json(serde_json::json!({"code": code, "msg": message, "data": {}}))
    }

    /// The next `n` requests are answered "busy" (errcode -1), as the services do under load.
    pub fn busy_for(&self, n: usize) {
        self.busy.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Messages accepted so far: the service and the body.
    pub fn accepted(&self) -> Vec<(String, Value)> {
        self.accepted.lock().expect("lock").clone()
    }

    /// Requests refused so far: the service and why.
    pub fn refused(&self) -> Vec<(String, String)> {
        self.refused.lock().expect("lock").clone()
    }

    /// The address of each robot, as its group's settings show it.
    pub fn wecom_url(&self) -> String {
        format!("{}/cgi-bin/webhook/send?key={WECOM_KEY}", self.base)
    }

    /// DingTalk's robot address.
    pub fn dingtalk_url(&self) -> String {
        format!("{}/robot/send?access_token={DINGTALK_TOKEN}", self.base)
    }

    /// Feishu's robot address.
    pub fn feishu_url(&self) -> String {
        format!("{}/open-apis/bot/v2/hook/{FEISHU_HOOK}", self.base)
    }
}

/// The directory holding the test tools' `python` (with `icalendar`), `schemathesis` and
/// `openapi-python-client`, installed by `.ci/test` from `.ci/requirements-tests.txt`.
pub fn python_bin() -> std::path::PathBuf {
    let dir = std::env::var("FORMWORK_TEST_PYTHON_BIN").map_or_else(
        |_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin"),
        std::path::PathBuf::from,
    );
    assert!(
        dir.join("schemathesis").exists() && dir.join("openapi-python-client").exists(),
        "the Python test tools are missing in {}: run `bash .ci/test` (it installs .ci/requirements-tests.txt)",
        dir.display()
    );
    dir
}
