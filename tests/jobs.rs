//! The job queue: retries with backoff, dead letters visible through the API, progress, the
//! outbox with idempotency keys, takeover after a killed worker, and exactly-once runs across
//! two processes sharing PostgreSQL.

mod common;

use std::time::Duration as StdDuration;

use chrono::Duration;
use common::{Backend, Process, TestApp, assert_problem};
use formwork::jobs::{self, NewJob};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn demo_id(app: &TestApp) -> uuid::Uuid {
    formwork::store::workspaces::find_by_slug(app.services.db().conn(), "demo")
        .await
        .expect("query")
        .expect("demo")
        .id
}

async fn enqueue(app: &TestApp, kind: &str, payload: Value, max_attempts: i32) -> uuid::Uuid {
    let mut job = NewJob::new(kind, payload);
    job.workspace_id = Some(demo_id(app).await);
    job.max_attempts = max_attempts;
    jobs::enqueue(app.services.db().conn(), app.services.clock(), job)
        .await
        .expect("enqueue")
        .expect("inserted")
}

/// A server whose start-up jobs (the bundle's date-timer planning) have run, so counts of jobs
/// run are the test's own.
async fn settled(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    app.run_jobs_until_idle().await;
    app
}

async fn failing_jobs_back_off_then_die_and_can_be_retried(backend: Backend) {
    let app = settled(backend).await;
    let admin = app.admin().await;
    let id = enqueue(&app, "test.fail", json!({"times": 3}), 3).await;
    assert_eq!(app.run_jobs_until_idle().await, 1);
    let (_, job) = admin.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "queued", "{job}");
    assert_eq!(job["attempts"], 1);
    // Not due again until the backoff (10 s) has passed.
    assert_eq!(app.run_jobs_until_idle().await, 0);
    app.advance(Duration::seconds(11));
    assert_eq!(app.run_jobs_until_idle().await, 1);
    app.advance(Duration::seconds(21));
    assert_eq!(app.run_jobs_until_idle().await, 1);
    let (_, dead) = admin.get("/api/v1/w/demo/jobs?status=dead").await;
    assert_eq!(dead.as_array().map(Vec::len), Some(1), "{dead}");
    let (_, job) = admin.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "dead");
    assert_eq!(job["last_error"], "planned failure 3");
    let outcomes: Vec<_> = job["attempt_log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|a| a["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("failed"), json!("failed"), json!("dead")]);
    // An admin sends it back; the fourth attempt succeeds.
    let (status, body) = admin
        .post(&format!("/api/v1/w/demo/jobs/{id}/retries"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.run_jobs_until_idle().await, 1);
    let (_, job) = admin.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded");
    let (status, body) = admin
        .post(&format!("/api/v1/w/demo/jobs/{id}/retries"), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = admin.get("/api/v1/w/demo/jobs?status=exploded").await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/status"]
    );
    let (status, _) = admin.get("/api/v1/w/demo/jobs/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_panicking_handler_fails_its_attempt_and_is_retried(backend: Backend) {
    let app = settled(backend).await;
    let admin = app.admin().await;
    let id = enqueue(&app, "test.fail", json!({"times": 1, "panic": true}), 3).await;
    assert_eq!(app.run_jobs_until_idle().await, 1);
    let (_, job) = admin.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "queued", "{job}");
    assert_eq!(job["last_error"], "the job handler panicked");
    app.advance(Duration::seconds(11));
    assert_eq!(app.run_jobs_until_idle().await, 1);
    let (_, job) = admin.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

async fn housekeeping_purges_sessions_and_completes_in_the_same_transaction(backend: Backend) {
    use sea_orm::{ConnectionTrait, Statement};
    let app = settled(backend).await;
    let _signed_in = app.admin().await;
    let sessions = || async {
        let conn = app.services.db().conn();
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT COUNT(*) FROM sessions",
            ))
            .await
            .expect("query")
            .expect("row");
        row.try_get_by_index::<i64>(0).expect("count")
    };
    assert_eq!(sessions().await, 1);
    app.advance(Duration::hours(13));
    let id = jobs::enqueue(
        app.services.db().conn(),
        app.services.clock(),
        NewJob::new("sessions.purge", json!({})),
    )
    .await
    .expect("enqueue")
    .expect("id");
    assert_eq!(app.run_jobs_until_idle().await, 1);
    assert_eq!(sessions().await, 0);
    let job = formwork::store::jobs::find(app.services.db().conn(), id)
        .await
        .expect("find")
        .expect("job");
    assert_eq!(job.status, "succeeded");
    let attempts = formwork::store::jobs::attempts(app.services.db().conn(), id)
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("succeeded"));
}

async fn progress_is_recorded(backend: Backend) {
    let app = settled(backend).await;
    let admin = app.admin().await;
    let id = enqueue(&app, "test.sleep", json!({"ms": 40}), 3).await;
    app.run_jobs_until_idle().await;
    let (_, job) = admin.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["progress_done"], 4);
    assert_eq!(job["progress_total"], 4);
}

async fn the_outbox_delivers_webhooks_at_least_once_with_an_idempotency_key(backend: Backend) {
    let app = settled(backend).await;
    let sink = common::WebhookSink::start(vec![500]).await;
    let url = sink.url.clone();
    let workspace = demo_id(&app).await;
    let make = || {
        let mut job = NewJob::new(
            "outbox.webhook",
            json!({"url": url, "body": {"event": "lead.created"}}),
        );
        job.workspace_id = Some(workspace);
        job.dedupe_key = Some("lead.created:42".to_owned());
        job
    };
    // Enqueued in a transaction that also rolls back: nothing is sent.
    let tx = app.services.db().begin().await.expect("tx");
    jobs::enqueue(&tx, app.services.clock(), make())
        .await
        .expect("enqueue");
    tx.rollback().await.expect("rollback");
    assert_eq!(app.run_jobs_until_idle().await, 0);
    // Enqueued twice with the same key: one job.
    let first = jobs::enqueue(app.services.db().conn(), app.services.clock(), make())
        .await
        .expect("enqueue");
    let second = jobs::enqueue(app.services.db().conn(), app.services.clock(), make())
        .await
        .expect("enqueue");
    assert!(first.is_some() && second.is_none());
    app.run_jobs_until_idle().await;
    app.advance(Duration::seconds(11));
    app.run_jobs_until_idle().await;
    let calls = sink.received();
    assert_eq!(calls.len(), 2, "one failure, one success: {calls:?}");
    for (key, body) in &calls {
        assert_eq!(key, &format!("{workspace}:lead.created:42"));
        assert_eq!(body["event"], "lead.created");
    }
    let admin = app.admin().await;
    let (_, job) = admin
        .get(&format!("/api/v1/w/demo/jobs/{}", first.expect("id")))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

async fn bootstrap_for_process(
    database_url: &str,
    job: Option<(&str, Value)>,
) -> Option<uuid::Uuid> {
    let mut config = formwork::config::ServeConfig::with_database(database_url);
    config.admin_password = Some(common::ADMIN_PASSWORD.to_owned());
    let db = common::connect(database_url).await;
    db.migrate().await.expect("migrate");
    let services = formwork::app::Services::new(db, formwork::clock::SharedClock::system(), config);
    formwork::app::bootstrap(&services)
        .await
        .expect("bootstrap");
    let workspace = formwork::store::workspaces::find_by_slug(services.db().conn(), "demo")
        .await
        .expect("query")
        .expect("demo");
    let mut id = None;
    if let Some((kind, payload)) = job {
        let mut new = NewJob::new(kind, payload);
        new.workspace_id = Some(workspace.id);
        id = jobs::enqueue(services.db().conn(), services.clock(), new)
            .await
            .expect("enqueue");
    }
    services.db().clone().close().await;
    drop(services);
    id
}

async fn wait_for_status(client: &common::Client, id: uuid::Uuid, status: &str) -> Value {
    for _ in 0..400 {
        let (code, job) = client.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
        if code == StatusCode::OK && job["status"] == status {
            return job;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("job {id} never reached {status}");
}

async fn a_job_whose_worker_is_killed_is_taken_over_and_completes_once(backend: Backend) {
    let (database_url, _dir) = common::fresh_database(backend).await;
    let id = bootstrap_for_process(&database_url, Some(("test.sleep", json!({"ms": 4000}))))
        .await
        .expect("job");
    let clock_dir = tempfile::tempdir().expect("tempdir");
    let clock_file = clock_dir.path().join("offset");
    std::fs::write(&clock_file, "0").expect("clock");
    let clock = clock_file.to_string_lossy().into_owned();
    let env = [
        ("FORMWORK_TEST_CLOCK_FILE", clock.as_str()),
        ("FORMWORK_JOB_LEASE_SECS", "30"),
        ("FORMWORK_JOB_POLL_MS", "50"),
    ];
    let mut first = Process::spawn(&database_url, &env).await;
    let mut client = common::Client::new(first.address.clone());
    let login = |client: &mut common::Client| {
        let client_http = client.http.clone();
        let base = client.base.clone();
        async move {
            let response = client_http
                .post(format!("{base}/api/v1/account/login"))
                .json(&json!({"email": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD}))
                .send()
                .await
                .expect("login");
            let body: Value = response.json().await.expect("json");
            body["csrf_token"].as_str().map(str::to_owned)
        }
    };
    client.csrf = login(&mut client).await;
    wait_for_status(&client, id, "running").await;
    first.kill_hard();

    // The lease (30 s) still holds: a new process must not take the job before it expires.
    std::fs::write(&clock_file, "5").expect("clock");
    let second = Process::spawn(&database_url, &env).await;
    let mut client = common::Client::new(second.address.clone());
    client.csrf = login(&mut client).await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let (_, job) = client.get(&format!("/api/v1/w/demo/jobs/{id}")).await;
    assert_eq!(job["status"], "running");
    assert_eq!(job["attempts"], 1, "{job}");
    // Past the lease, the live worker takes it over and completes it.
    std::fs::write(&clock_file, "40").expect("clock");
    let job = wait_for_status(&client, id, "succeeded").await;
    assert_eq!(job["attempts"], 2, "{job}");
    let log = job["attempt_log"].as_array().expect("log");
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[0]["outcome"],
        Value::Null,
        "the killed attempt never finished: {job}"
    );
    assert_eq!(log[1]["outcome"], "succeeded");
    assert_ne!(log[0]["worker"], log[1]["worker"]);
    assert_eq!(job["progress_done"], 4);
}

async fn shutdown_releases_jobs_in_hand(backend: Backend) {
    let (database_url, _dir) = common::fresh_database(backend).await;
    let id = bootstrap_for_process(&database_url, Some(("test.sleep", json!({"ms": 60000}))))
        .await
        .expect("job");
    let env = [
        ("FORMWORK_SHUTDOWN_GRACE_SECS", "1"),
        ("FORMWORK_JOB_POLL_MS", "50"),
    ];
    let mut process = Process::spawn(&database_url, &env).await;
    let mut client = common::Client::new(process.address.clone());
    let (_, session) = client
        .post(
            "/api/v1/account/login",
            json!({"email": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD}),
        )
        .await;
    client.csrf = session["csrf_token"].as_str().map(str::to_owned);
    wait_for_status(&client, id, "running").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = process.child.wait().expect("wait");
        (exit, process)
    })
    .await
    .expect("join")
    .0;
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    // The process is gone (and with it the SQLite lock): read the job directly.
    let db = common::connect(&database_url).await;
    let (job, attempts) = formwork::jobs::get(&db, job_workspace(&db).await, id)
        .await
        .expect("job");
    assert_eq!(job.status, "queued", "released, not lost");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("released"));
    assert_eq!(
        job.max_attempts,
        formwork::jobs::DEFAULT_MAX_ATTEMPTS + 1,
        "a release costs no retry"
    );
}

async fn job_workspace(db: &formwork::store::Db) -> uuid::Uuid {
    formwork::store::workspaces::find_by_slug(db.conn(), "demo")
        .await
        .expect("query")
        .expect("demo")
        .id
}

async fn a_second_server_on_the_same_sqlite_file_fails_fast() {
    let (database_url, _dir) = common::fresh_database(Backend::Sqlite).await;
    let _first = Process::spawn(&database_url, &[]).await;
    let output = std::process::Command::new(common::binary())
        .arg("serve")
        .env("FORMWORK_DATABASE_URL", &database_url)
        .env(
            "FORMWORK_LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another formwork process"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_owned_by_one_process() {
    a_second_server_on_the_same_sqlite_file_fails_fast().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_run_a_thousand_jobs_exactly_once() {
    let (database_url, _) = common::fresh_database(Backend::Postgres).await;
    bootstrap_for_process(&database_url, None).await;
    let db = common::connect(&database_url).await;
    let clock = formwork::clock::SharedClock::system();
    let tx = db.begin().await.expect("tx");
    for _ in 0..1000 {
        jobs::enqueue(&tx, &clock, NewJob::new("test.sleep", json!({"ms": 4})))
            .await
            .expect("enqueue");
    }
    tx.commit().await.expect("commit");
    let env = [("FORMWORK_JOB_POLL_MS", "20"), ("FORMWORK_WORKERS", "8")];
    let first = Process::spawn(&database_url, &env).await;
    let second = Process::spawn(&database_url, &env).await;
    use sea_orm::{ConnectionTrait, Statement};
    let count = |sql: &'static str| {
        let conn = db.conn().clone();
        async move {
            let row = conn
                .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
                .await
                .expect("query")
                .expect("row");
            row.try_get_by_index::<i64>(0).expect("count")
        }
    };
    let mut done = 0;
    for _ in 0..1200 {
        done =
            count("SELECT COUNT(*) FROM jobs WHERE kind = 'test.sleep' AND status = 'succeeded'")
                .await;
        if done == 1000 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert_eq!(done, 1000);
    let runs = count("SELECT COUNT(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'test.sleep'").await;
    assert_eq!(runs, 1000, "every job ran exactly once");
    let successes = count("SELECT COUNT(*) FROM job_attempts WHERE outcome = 'succeeded' AND job_id IN (SELECT id FROM jobs WHERE kind = 'test.sleep')").await;
    assert_eq!(successes, 1000);
    let workers = count("SELECT COUNT(DISTINCT worker) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'test.sleep'").await;
    assert_eq!(workers, 2, "both processes took part");
    drop((first, second));
}

both_databases!(
    failing_jobs_back_off_then_die_and_can_be_retried,
    progress_is_recorded,
    housekeeping_purges_sessions_and_completes_in_the_same_transaction,
    a_panicking_handler_fails_its_attempt_and_is_retried,
    the_outbox_delivers_webhooks_at_least_once_with_an_idempotency_key,
    a_job_whose_worker_is_killed_is_taken_over_and_completes_once,
    shutdown_releases_jobs_in_hand,
);
