//! Wiring: the services every request and worker shares, first-start bootstrap, and `serve`.

use std::sync::Arc;

use chrono::Duration;
use tokio::sync::watch;

use crate::apps;
use crate::auth::{self, LoginLimiter, SessionPolicy};
use crate::clock::{FileOffsetClock, SharedClock};
use crate::config::ServeConfig;
use crate::definitions::{self, Registry};
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, Worker, WorkerSettings};
use crate::records;
use crate::store::{self, Db};
use crate::workspaces;

/// Everything shared by handlers and workers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    clock: SharedClock,
    registry: Arc<Registry>,
    mail_enabled: bool,
    /// The domain of inbound addresses, when inbound mail is taken.
    inbound_domain: Option<String>,
    scripts: Arc<crate::script::ScriptEngine>,
    limiter: LoginLimiter,
    token_limiter: auth::TokenLimiter,
    form_limiter: crate::forms::SubmissionLimiter,
    form_key: tokio::sync::OnceCell<String>,
    credentials: auth::CredentialCache,
    metrics: crate::metrics::Metrics,
    access: Arc<workspaces::AccessCache>,
    config: ServeConfig,
    session_policy: SessionPolicy,
    worker: Worker,
}

impl Services {
    /// Builds the services over a connected, migrated database.
    pub fn new(db: Db, clock: SharedClock, config: ServeConfig) -> Self {
        let session_policy = SessionPolicy {
            idle: Duration::minutes(config.session_idle_minutes as i64),
            absolute: Duration::hours(config.session_max_hours as i64),
        };
        let registry = Arc::new(Registry::new());
        let access = Arc::new(workspaces::AccessCache::default());
        let mut handlers: Vec<Arc<dyn Handler>> = vec![
            Arc::new(jobs::SessionsPurge {
                policy: session_policy,
            }),
            Arc::new(jobs::WebhookDelivery::new(
                config.webhook_allow_private || config.test_mode_enabled(),
            )),
            Arc::new(crate::robots::RobotDelivery {
                http: jobs::WebhookDelivery::new(
                    config.webhook_allow_private || config.test_mode_enabled(),
                ),
            }),
            Arc::new(records::schema::BuildIndex),
            Arc::new(records::sharing::PoolReclaim {
                registry: registry.clone(),
            }),
            Arc::new(records::search::Reindex {
                registry: registry.clone(),
            }),
            Arc::new(records::recompute::Recompute {
                registry: registry.clone(),
            }),
            Arc::new(records::recompute::VolatileSweep {
                registry: registry.clone(),
            }),
        ];
        let mailer = config
            .smtp_url
            .as_deref()
            .and_then(|url| crate::mail::Mailer::new(url, &config.mail_from).ok());
        if let Some(mailer) = &mailer {
            handlers.push(Arc::new(crate::mail::SendEmail {
                mailer: mailer.clone(),
            }));
            handlers.push(Arc::new(auth::SendPasswordReset));
            handlers.push(Arc::new(crate::notifications::digest::SendDigests {
                public_url: config.public_url.clone(),
            }));
        }
        handlers.push(Arc::new(crate::workflows::runtime::Runtime {
            registry: registry.clone(),
            email_enabled: mailer.is_some(),
            access: access.clone(),
            public_url: config.public_url.clone(),
        }));
        handlers.push(Arc::new(crate::imports::PurgeFiles));
        handlers.push(Arc::new(crate::imports::ImportJob {
            registry: registry.clone(),
            access: access.clone(),
        }));
        handlers.push(Arc::new(crate::workflows::timers::DateTimer {
            registry: registry.clone(),
        }));
        handlers.push(Arc::new(crate::workflows::timers::CronTimer {
            registry: registry.clone(),
        }));
        handlers.push(Arc::new(crate::workflows::timers::PlanDates {
            registry: registry.clone(),
        }));
        handlers.push(Arc::new(crate::workflows::approvals::DeadlineTimer {
            registry: registry.clone(),
        }));
        if config.test_mode_enabled() {
            handlers.push(Arc::new(jobs::TestSleep));
            handlers.push(Arc::new(jobs::TestFail));
        }
        let worker = Worker::new(
            db.clone(),
            clock.clone(),
            WorkerSettings {
                id: format!(
                    "{}-{}-{}",
                    std::env::var("HOSTNAME").unwrap_or_else(|_| "formwork".to_owned()),
                    std::process::id(),
                    &auth::random_secret()[..8]
                ),
                concurrency: config.workers.max(1),
                lease: Duration::seconds(config.job_lease_secs as i64),
                poll: std::time::Duration::from_millis(config.job_poll_ms),
                shutdown_grace: std::time::Duration::from_secs(config.shutdown_grace_secs),
            },
            handlers,
        );
        Self {
            inner: Arc::new(Inner {
                db,
                clock,
                registry,
                limiter: LoginLimiter::new(),
                token_limiter: auth::TokenLimiter::new(config.token_rate_limit),
                form_limiter: crate::forms::SubmissionLimiter::default(),
                form_key: tokio::sync::OnceCell::new(),
                credentials: auth::CredentialCache::default(),
                metrics: crate::metrics::Metrics::default(),
                access,
                mail_enabled: mailer.is_some(),
                inbound_domain: config.inbound_enabled().then(|| config.inbound_domain()),
                scripts: Arc::new(crate::script::ScriptEngine::default()),
                config,
                session_policy,
                worker,
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The live definition registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The login rate limiter.
    pub fn limiter(&self) -> &LoginLimiter {
        &self.inner.limiter
    }

    /// The per-token request limiter.
    pub fn token_limiter(&self) -> &auth::TokenLimiter {
        &self.inner.token_limiter
    }

    /// The installation's key for signing form tokens: made once, kept in the database, so
    /// every process signs and checks alike and no client can sign one.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn form_key(&self) -> Result<&str> {
        const FACT: &str = "form_token_key";
        let key = self
            .inner
            .form_key
            .get_or_try_init(|| async {
                let db = self.db();
                store::facts::insert_if_absent(
                    db.conn(),
                    FACT,
                    serde_json::json!(auth::random_secret()),
                    self.clock().now(),
                )
                .await?;
                let stored = store::facts::get(db.conn(), FACT).await?;
                stored
                    .as_ref()
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| Error::internal("the form token key is missing"))
            })
            .await?;
        Ok(key)
    }

    /// The limiter of public form submissions.
    pub fn form_limiter(&self) -> &crate::forms::SubmissionLimiter {
        &self.inner.form_limiter
    }

    /// Recently resolved credentials.
    pub fn credentials(&self) -> &auth::CredentialCache {
        &self.inner.credentials
    }

    /// Recently resolved workspace access.
    pub fn access_cache(&self) -> &workspaces::AccessCache {
        &self.inner.access
    }

    /// The sandboxed script engine.
    pub fn scripts(&self) -> Arc<crate::script::ScriptEngine> {
        self.inner.scripts.clone()
    }

    /// Whether an SMTP server is configured (emails are queued and sent).
    pub fn mail_enabled(&self) -> bool {
        self.inner.mail_enabled
    }

    /// The configuration.
    /// The process's request metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    /// Session lifetimes.
    pub fn session_policy(&self) -> SessionPolicy {
        self.inner.session_policy
    }

    /// The job worker (tests drive it with `run_until_idle`).
    pub fn worker(&self) -> &Worker {
        &self.inner.worker
    }

    /// Reports and dashboards bound to these services.
    pub fn reports(&self) -> crate::reports::Reports<'_> {
        crate::reports::Reports {
            db: &self.inner.db,
            clock: &self.inner.clock,
            registry: &self.inner.registry,
        }
    }

    /// The records service bound to these services.
    pub fn records(&self) -> records::Records<'_> {
        records::Records {
            db: &self.inner.db,
            clock: &self.inner.clock,
            registry: &self.inner.registry,
        }
    }

    /// Comments on records bound to these services.
    pub fn comments(&self) -> crate::comments::Comments<'_> {
        crate::comments::Comments {
            records: self.records(),
            access: &self.inner.access,
            mail_enabled: self.inner.mail_enabled,
            public_url: &self.inner.config.public_url,
        }
    }

    /// Email from records bound to these services.
    pub fn emails(&self) -> crate::emails::Emails<'_> {
        crate::emails::Emails {
            records: self.records(),
            mail_enabled: self.inner.mail_enabled,
            inbound_domain: self.inner.inbound_domain.as_deref(),
        }
    }

    /// Calendars of records and feeds bound to these services.
    pub fn schedule(&self) -> crate::schedule::Schedule<'_> {
        crate::schedule::Schedule {
            records: self.records(),
            access: &self.inner.access,
            public_url: &self.inner.config.public_url,
        }
    }

    /// Spreadsheet imports bound to these services.
    pub fn imports(&self) -> crate::imports::Imports<'_> {
        crate::imports::Imports {
            db: &self.inner.db,
            clock: &self.inner.clock,
            registry: &self.inner.registry,
        }
    }

    /// The definition store bound to these services.
    pub fn definitions(&self) -> definitions::Store<'_> {
        definitions::Store {
            db: &self.inner.db,
            clock: &self.inner.clock,
            registry: &self.inner.registry,
        }
    }
}

/// The clock a server runs on: the wall clock, or (debug builds only) a test-controlled one.
pub fn clock_for(config: &ServeConfig) -> SharedClock {
    match config.effective_test_clock_file() {
        Some(path) => SharedClock::new(Arc::new(FileOffsetClock::new(path.clone()))),
        None => SharedClock::system(),
    }
}

/// What bootstrap did on an empty database.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The admin's email.
    pub admin_email: String,
    /// The generated password, when none was configured (print it once).
    pub generated_password: Option<String>,
    /// The demo workspace's slug, if one was created.
    pub demo_workspace: Option<String>,
    /// Whether the demo team was created (with the demo records).
    pub demo_team: bool,
}

const BOOTSTRAP_FACT: &str = "bootstrapped_at";

/// On a database that has never been bootstrapped and has no accounts: creates the admin and,
/// when configured, the demo workspace with the Sales CRM installed, all in one transaction.
///
/// # Errors
/// `Error::Invalid` for a bad configured admin email or password; `Error::Db`.
pub async fn bootstrap(services: &Services) -> Result<Option<Bootstrapped>> {
    let db = services.db();
    let clock = services.clock();
    if store::facts::get(db.conn(), BOOTSTRAP_FACT)
        .await?
        .is_some()
        || store::accounts::count(db.conn()).await? > 0
    {
        return Ok(None);
    }
    let config = services.config();
    let (password, generated) = match &config.admin_password {
        Some(password) => (password.clone(), None),
        None => {
            let password = auth::random_secret()[..20].to_owned();
            (password.clone(), Some(password))
        }
    };
    let tx = db.begin().await?;
    // Claiming the fact first makes bootstrap run once even when several processes start
    // together on an empty PostgreSQL database.
    if !store::facts::insert_if_absent(
        &tx,
        BOOTSTRAP_FACT,
        serde_json::json!(clock.now()),
        clock.now(),
    )
    .await?
    {
        return Ok(None);
    }
    let admin = auth::create_account(
        &tx,
        clock,
        &config.admin_email,
        "Administrator",
        &password,
        generated.is_some(),
    )
    .await
    .map_err(|e| {
        Error::Unavailable(format!(
            "FORMWORK_ADMIN_EMAIL / FORMWORK_ADMIN_PASSWORD: {e}"
        ))
    })?;
    let mut demo_workspace = None;
    if config.demo {
        let workspace =
            workspaces::create(&tx, clock, admin.id, "demo", "Demo · Sales CRM", None).await?;
        let bundle = apps::built_in(apps::SALES_CRM)?;
        apps::install_in(
            &tx,
            clock,
            workspace.id,
            &bundle,
            &apps::InstallOptions::default(),
            Actor::System,
        )
        .await?;
        // The demo's people sign in with the admin's password; only with the demo records
        // (tests that do not need them skip nine password hashes).
        let people = if config.demo_data {
            apps::team::seed(
                &tx,
                clock,
                workspace.id,
                &bundle.manifest.namespace(),
                &password,
                // A generated password is changed at first sign-in, by each of them too.
                generated.is_some(),
            )
            .await?
        } else {
            std::collections::HashMap::new()
        };
        let demo = apps::demo::sales_crm(clock.now(), 1)
            .into_iter()
            .filter(|_| config.demo_data)
            .map(|r| records::ImportedRecord {
                entity: r.entity.to_owned(),
                id: r.id,
                created_at: r.created_at,
                fields: r.fields,
                changes: r.changes.into_iter().map(|c| (c.at, c.fields)).collect(),
                owner: people.get(r.owner).copied(),
            })
            .collect();
        records::import_in(
            &tx,
            workspace.id,
            admin.id,
            demo,
            clock.now(),
            crate::workspaces::zone_of(&workspace),
            crate::workspaces::calendar_of(&workspace),
        )
        .await?;
        demo_workspace = Some(workspace.slug);
    }
    tx.commit().await?;
    Ok(Some(Bootstrapped {
        admin_email: admin.email,
        generated_password: generated,
        demo_team: demo_workspace.is_some() && config.demo_data,
        demo_workspace,
    }))
}

/// Connects, migrates, bootstraps, serves HTTP and runs workers until SIGINT/SIGTERM.
///
/// # Errors
/// `Error::Unavailable` for configuration, database or listen failures.
pub async fn serve(config: ServeConfig) -> Result<()> {
    let db = Db::connect(&config.database).await?;
    migrate_with_retry(&db).await?;
    if db.backend() == store::Backend::Sqlite
        && let Err(e) = db.analyze("").await
    {
        tracing::warn!(error = %e, "refreshing planner statistics at start failed");
    }
    let clock = clock_for(&config);
    let listen = config.listen;
    let inbound_listen = config.inbound_smtp_listen;
    let workers = config.workers;
    if let Some(url) = &config.smtp_url {
        // A wrong mail setting fails the start, naming the variable, not the first email.
        crate::mail::Mailer::new(url, &config.mail_from)?;
    }
    let services = Services::new(db, clock, config);
    if let Some(done) = bootstrap(&services).await? {
        println!("Formwork is set up. Sign in as {}", done.admin_email);
        if let Some(password) = &done.generated_password {
            println!(
                "One-time admin password (shown only now; change it after signing in): {password}"
            );
        }
        if let Some(slug) = &done.demo_workspace {
            println!("Demo workspace with the Sales CRM: /w/{slug}/");
            if done.demo_team {
                println!(
                    "Demo team (same password as the admin): {}",
                    apps::team::PEOPLE
                        .iter()
                        .map(|p| format!("{} {} ({})", p.name, p.email, p.role))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    // Entities published before search existed (or before the tokeniser changed) get their
    // terms rebuilt in the background.
    records::search::ensure_all(services.db(), services.clock(), services.registry()).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Error::Unavailable(format!("FORMWORK_LISTEN: cannot listen on {listen}: {e}"))
    })?;
    let address = listener.local_addr().map_err(Error::internal)?;
    tracing::info!(%address, "listening");
    println!("Formwork listening on http://{address}");
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_task =
        (workers > 0).then(|| tokio::spawn(services.worker().clone().run(stop_rx.clone())));
    if let Some(inbound) = inbound_listen {
        let listener = tokio::net::TcpListener::bind(inbound).await.map_err(|e| {
            Error::Unavailable(format!(
                "FORMWORK_INBOUND_SMTP_LISTEN: cannot listen on {inbound}: {e}"
            ))
        })?;
        println!(
            "Taking inbound mail for @{} on {inbound}",
            services.config().inbound_domain()
        );
        let mut inbound_stop = stop_rx.clone();
        tokio::spawn(crate::emails::inbound::serve(
            listener,
            services.clone(),
            async move {
                let _ = inbound_stop.wait_for(|stop| *stop).await;
            },
        ));
    }
    let mut server_stop = stop_rx.clone();
    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests and jobs in hand");
        let _ = stop_tx.send(true);
    });
    crate::http::serve(listener, services.clone(), async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    })
    .await?;
    signals.abort();
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    services.db().clone().close().await;
    Ok(())
}

/// Applies migrations; when several processes start together on one PostgreSQL database one of
/// them may lose a race on `CREATE TABLE`, so a failure is retried after the others finish.
async fn migrate_with_retry(db: &Db) -> Result<()> {
    let mut attempt = 0;
    loop {
        match db.migrate().await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "migration failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
