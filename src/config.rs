//! Command line and environment configuration, parsed once at start; bad values fail fast naming
//! the variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `formwork`: a low-code CRM platform.
#[derive(Debug, Parser)]
#[command(name = "formwork", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server options, used when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the background workers (the default).
    Serve(Box<ServeConfig>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseConfig),
    /// Validate definition files and bundles; prints every problem, exits 1 on any.
    Check(CheckArgs),
    /// Write a backup of the database to a new file (SQLite: online, while the server runs;
    /// PostgreSQL: pg_dump).
    Backup(BackupArgs),
    /// Replace the database with a backup (SQLite: with the server stopped; PostgreSQL:
    /// pg_restore).
    Restore(RestoreArgs),
}

/// Arguments of `formwork backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The backup file to write (must not exist).
    pub file: PathBuf,
}

/// Arguments of `formwork restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The database to replace.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The backup file to restore.
    pub file: PathBuf,
}

/// Arguments of `formwork check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Definition files, bundle directories, or directories to search for them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// How SQLite commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    /// Survives a killed process, not a power loss (WAL + synchronous=NORMAL).
    Normal,
    /// Survives power loss too, at some cost per commit (synchronous=FULL).
    Full,
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created on first start) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "FORMWORK_DATABASE_URL",
        value_name = "FORMWORK_DATABASE_URL",
        default_value = "sqlite://data/formwork.db"
    )]
    pub database_url: String,
    /// SQLite durability: `normal` or `full`.
    #[arg(
        long,
        env = "FORMWORK_SQLITE_SYNC",
        value_name = "FORMWORK_SQLITE_SYNC",
        default_value = "normal"
    )]
    pub sqlite_sync: SqliteSync,
    /// Largest connection pool size.
    #[arg(
        long,
        env = "FORMWORK_DB_POOL_SIZE",
        value_name = "FORMWORK_DB_POOL_SIZE",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=512)
    )]
    pub pool_size: u32,
}

/// Everything `formwork serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// The database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Address and port to listen on.
    #[arg(
        long,
        env = "FORMWORK_LISTEN",
        value_name = "FORMWORK_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Jobs run at once by this process's workers; 0 runs no background work.
    #[arg(
        long,
        env = "FORMWORK_WORKERS",
        value_name = "FORMWORK_WORKERS",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(0..=256)
    )]
    pub workers: u32,
    /// How long a claimed job is leased before another worker may take it over.
    #[arg(
        long,
        env = "FORMWORK_JOB_LEASE_SECS",
        value_name = "FORMWORK_JOB_LEASE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub job_lease_secs: u64,
    /// How often idle workers look for due jobs, in milliseconds.
    #[arg(
        long,
        env = "FORMWORK_JOB_POLL_MS",
        value_name = "FORMWORK_JOB_POLL_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(10..=60_000)
    )]
    pub job_poll_ms: u64,
    /// On shutdown, how long jobs in hand may run on before they are released to the queue.
    #[arg(
        long,
        env = "FORMWORK_SHUTDOWN_GRACE_SECS",
        value_name = "FORMWORK_SHUTDOWN_GRACE_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(0..=3_600)
    )]
    pub shutdown_grace_secs: u64,
    /// A session ends after this many minutes without a request.
    #[arg(
        long,
        env = "FORMWORK_SESSION_IDLE_MINUTES",
        value_name = "FORMWORK_SESSION_IDLE_MINUTES",
        default_value_t = 720,
        value_parser = clap::value_parser!(u64).range(1..=525_600)
    )]
    pub session_idle_minutes: u64,
    /// A session ends this many hours after login, however active.
    #[arg(
        long,
        env = "FORMWORK_SESSION_MAX_HOURS",
        value_name = "FORMWORK_SESSION_MAX_HOURS",
        default_value_t = 336,
        value_parser = clap::value_parser!(u64).range(1..=87_600)
    )]
    pub session_max_hours: u64,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    #[arg(
        long,
        env = "FORMWORK_SECURE_COOKIES",
        value_name = "FORMWORK_SECURE_COOKIES",
        default_value_t = false
    )]
    pub secure_cookies: bool,
    /// Largest accepted request body in bytes.
    #[arg(
        long,
        env = "FORMWORK_BODY_LIMIT",
        value_name = "FORMWORK_BODY_LIMIT",
        default_value_t = 2 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824)
    )]
    pub body_limit: u64,
    /// On an empty database, create the demo workspace with the Sales CRM and an admin account.
    #[arg(
        long,
        env = "FORMWORK_DEMO",
        value_name = "FORMWORK_DEMO",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub demo: bool,
    /// With the demo workspace, also import a year of demo records (leads, customers, contacts,
    /// opportunities, follow-ups with past-dated history).
    #[arg(
        long,
        env = "FORMWORK_DEMO_DATA",
        value_name = "FORMWORK_DEMO_DATA",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub demo_data: bool,
    /// Email of the admin account created on first start.
    #[arg(
        long,
        env = "FORMWORK_ADMIN_EMAIL",
        value_name = "FORMWORK_ADMIN_EMAIL",
        default_value = "admin@formwork.local"
    )]
    pub admin_email: String,
    /// Password of that admin account; when unset a random one is generated and printed once.
    #[arg(
        long,
        env = "FORMWORK_ADMIN_PASSWORD",
        value_name = "FORMWORK_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Outgoing mail server: `smtp://host:port` (plain, for a local relay), `smtp+starttls://…`
    /// or `smtps://…`, with `user:password@` when it needs a login. Unset: no email is sent
    /// (password-reset requests are then only logged).
    #[arg(
        long,
        env = "FORMWORK_SMTP_URL",
        value_name = "FORMWORK_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// The sender of Formwork's emails.
    #[arg(
        long,
        env = "FORMWORK_MAIL_FROM",
        value_name = "FORMWORK_MAIL_FROM",
        default_value = "Formwork <formwork@localhost>"
    )]
    pub mail_from: String,
    /// The address people reach Formwork at, for links in emails.
    #[arg(
        long,
        env = "FORMWORK_PUBLIC_URL",
        value_name = "FORMWORK_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    /// Where to take inbound mail over SMTP (the workspaces' inbound addresses), such as
    /// `0.0.0.0:2525` behind the inbound domain's MX. Unset: no mail is received.
    #[arg(
        long,
        env = "FORMWORK_INBOUND_SMTP_LISTEN",
        value_name = "FORMWORK_INBOUND_SMTP_LISTEN"
    )]
    pub inbound_smtp_listen: Option<SocketAddr>,
    /// The domain of the workspaces' inbound addresses (`<workspace>+<token>@<domain>`); its MX
    /// points at this server. Unset: the host of `FORMWORK_PUBLIC_URL`.
    #[arg(
        long,
        env = "FORMWORK_INBOUND_DOMAIN",
        value_name = "FORMWORK_INBOUND_DOMAIN"
    )]
    pub inbound_domain: Option<String>,
    /// The largest inbound message taken, in bytes.
    #[arg(
        long,
        env = "FORMWORK_INBOUND_MAX_BYTES",
        value_name = "FORMWORK_INBOUND_MAX_BYTES",
        default_value_t = 10 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1024..=104_857_600)
    )]
    pub inbound_max_bytes: u64,
    /// Let webhooks reach loopback, private and link-local addresses (off: a workflow's URL,
    /// which templates may fill from record data, cannot probe the server's own network).
    #[arg(
        long,
        env = "FORMWORK_WEBHOOK_ALLOW_PRIVATE",
        value_name = "FORMWORK_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false
    )]
    pub webhook_allow_private: bool,
    /// A secret that `GET /metrics` requires as a bearer token (unset: /metrics answers anyone
    /// who reaches it; keep it off the public network then).
    #[arg(
        long,
        env = "FORMWORK_METRICS_TOKEN",
        value_name = "FORMWORK_METRICS_TOKEN"
    )]
    pub metrics_token: Option<String>,
    /// Requests per minute one API token may make to this process (a burst of a minute's
    /// allowance, refilled continuously); more are answered 429 with `Retry-After`. 0: no limit.
    #[arg(
        long,
        env = "FORMWORK_TOKEN_RATE_LIMIT",
        value_name = "FORMWORK_TOKEN_RATE_LIMIT",
        default_value_t = 1200
    )]
    pub token_rate_limit: u32,
    /// Test support (debug builds only; release builds ignore it): enables test job kinds.
    #[arg(
        long,
        env = "FORMWORK_TEST_MODE",
        value_name = "FORMWORK_TEST_MODE",
        default_value_t = false,
        hide = true
    )]
    pub test_mode: bool,
    /// Test support (debug builds only): a file holding a clock offset in seconds.
    #[arg(
        long,
        env = "FORMWORK_TEST_CLOCK_FILE",
        value_name = "FORMWORK_TEST_CLOCK_FILE",
        hide = true
    )]
    pub test_clock_file: Option<PathBuf>,
}

impl ServeConfig {
    /// Whether inbound mail is taken (an SMTP listener is configured).
    pub fn inbound_enabled(&self) -> bool {
        self.inbound_smtp_listen.is_some()
    }

    /// The domain of the inbound addresses: `FORMWORK_INBOUND_DOMAIN`, else the public URL's host.
    pub fn inbound_domain(&self) -> String {
        self.inbound_domain
            .clone()
            .filter(|d| !d.trim().is_empty())
            .or_else(|| {
                reqwest::Url::parse(&self.public_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "localhost".to_owned())
            .to_ascii_lowercase()
    }

    /// Whether test-only behaviour is on: asked for, and this is a debug build.
    pub fn test_mode_enabled(&self) -> bool {
        cfg!(debug_assertions) && self.test_mode
    }

    /// The test clock file, honoured only in debug builds.
    pub fn effective_test_clock_file(&self) -> Option<&PathBuf> {
        if cfg!(debug_assertions) {
            self.test_clock_file.as_ref()
        } else {
            None
        }
    }

    /// Defaults for a server on `database_url`, as if no flags or variables were given.
    pub fn with_database(database_url: &str) -> Self {
        Self {
            database: DatabaseConfig {
                database_url: database_url.to_owned(),
                sqlite_sync: SqliteSync::Normal,
                pool_size: 16,
            },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 4,
            job_lease_secs: 30,
            job_poll_ms: 500,
            shutdown_grace_secs: 10,
            session_idle_minutes: 720,
            session_max_hours: 336,
            secure_cookies: false,
            body_limit: 2 * 1024 * 1024,
            demo: true,
            demo_data: true,
            admin_email: "admin@formwork.local".to_owned(),
            admin_password: None,
            smtp_url: None,
            mail_from: "Formwork <formwork@localhost>".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            inbound_smtp_listen: None,
            inbound_domain: None,
            inbound_max_bytes: 10 * 1024 * 1024,
            test_mode: false,
            webhook_allow_private: false,
            metrics_token: None,
            token_rate_limit: 1200,
            test_clock_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_listen_names_the_variable() {
        let err = Cli::try_parse_from(["formwork", "serve", "--listen", "nonsense"])
            .expect_err("must fail");
        assert!(err.to_string().contains("FORMWORK_LISTEN"), "{err}");
    }

    #[test]
    fn defaults_parse() {
        let cli = Cli::try_parse_from(["formwork"]).expect("defaults");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.database.database_url, "sqlite://data/formwork.db");
    }
}
