//! Running workflows: the `workflow.advance` job takes a run from where it stands, one step at
//! a time. Each step's effects and the run's new position (log row, variables, cursor) commit
//! in one transaction fenced on the run's revision: a step is never half applied, and a second
//! executor of the same run (a retried job, another process) changes nothing. Steps that write
//! records pass their progress to the write path ([`super::StepOrigin`]), which commits it with
//! the record.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::definition::{Action, END, Step, Strategy, Workflow};
use super::duration::Span;
use super::notify::{self, Audience, Message};
use super::triggers::{advance_job, describe};
use super::{ADVANCE_JOB, StepOrigin};
use crate::clock::SharedClock;
use crate::definitions::{EntityModel, FieldKind, Registry, Scope, Snapshot};
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, JobContext, JobFailure, NewJob};
use crate::records::{Channel, Context, NewRecord, Records, codec};
use crate::render::sandbox;
use crate::script::{Env, values};
use crate::store::jobs::JobRow;
use crate::store::workflows::{self as rows, Advance, RunRow, StepRow, status};
use crate::store::write::Sharing;
use crate::store::{self, Db};

/// Steps one job runs before it hands the run to a fresh job (fairness between runs).
const STEPS_PER_JOB: usize = 50;
/// The pseudo step a run failed at when its condition failed.
pub const CONDITION: &str = "condition";

/// Steps one run may run in all: a loop through branches ends here, clearly.
pub const MAX_STEPS_PER_RUN: i32 = 1_000;

/// The records context of the system acting as a workflow in a workspace, and its snapshot
/// (`None`: the workspace is gone).
///
/// # Errors
/// `Error::Db`.
pub async fn system_context(
    db: &Db,
    registry: &Registry,
    workspace_id: Uuid,
    origin: Option<Arc<StepOrigin>>,
) -> Result<Option<(Context, Arc<Snapshot>)>> {
    let Some(workspace) = store::workspaces::find(db.conn(), workspace_id).await? else {
        return Ok(None);
    };
    let scope = Scope {
        workspace_id,
        generation: workspace.definitions_generation,
    };
    let snapshot = registry
        .snapshot(db, workspace_id, scope.generation)
        .await?;
    Ok(Some((
        Context {
            scope,
            actor: Actor::System,
            channel: Channel::Workflow,
            time_zone: crate::workspaces::zone_of(&workspace),
            policy: None,
            calendar: crate::workspaces::calendar_of(&workspace),
            origin,
        },
        snapshot,
    )))
}

/// Compiled workflow versions by (definition, version).
type Versions = HashMap<(Uuid, i32), Arc<Workflow>>;

/// The workflow version a run started with: the published one when it still is, else read
/// from the version store (compiled once per process).
async fn version_of(db: &Db, snapshot: &Snapshot, run: &RunRow) -> Result<Arc<Workflow>> {
    if let Some(current) = snapshot
        .workflow(&run.workflow_key)
        .filter(|w| w.definition_id == run.definition_id && w.version == run.version)
    {
        return Ok(current);
    }
    static VERSIONS: Mutex<Option<Versions>> = Mutex::new(None);
    if let Some(found) = VERSIONS
        .lock()
        .ok()
        .and_then(|v| v.as_ref()?.get(&(run.definition_id, run.version)).cloned())
    {
        return Ok(found);
    }
    let row = store::definitions::find_version(db.conn(), run.definition_id, run.version)
        .await?
        .ok_or_else(|| {
            Error::not_found(format!(
                "version {} of workflow {:?}",
                run.version, run.workflow_key
            ))
        })?;
    let compiled = Workflow::compile(
        &crate::script::shared(),
        &run.workflow_key,
        run.definition_id,
        run.version,
        Arc::new(row.document),
        "",
    )
    .map_err(|problems| Error::invalid_all("the workflow version does not compile", problems))?;
    let compiled = Arc::new(compiled);
    if let Ok(mut versions) = VERSIONS.lock() {
        let map = versions.get_or_insert_with(HashMap::new);
        if map.len() > 1_000 {
            map.clear();
        }
        map.insert((run.definition_id, run.version), compiled.clone());
    }
    Ok(compiled)
}

/// `workflow.advance`: runs a run's steps until it waits, ends, fails, or has run its share.
#[derive(Debug)]
pub struct Runtime {
    /// The definitions.
    pub registry: Arc<Registry>,
    /// Whether email can be sent.
    pub email_enabled: bool,
    /// The process's access cache (the workspace's org tree, shared with requests).
    pub access: Arc<crate::workspaces::AccessCache>,
    /// Where people reach Formwork (links in emailed reports).
    pub public_url: String,
}

/// Why a step did not complete.
enum StepError {
    /// Another executor advanced the run: read it again.
    Moved,
    /// Try the job again later (the database gave up on a transaction, a timeout).
    Transient(String),
    /// The step failed for good: the run fails at it, retryable by a person.
    Failed(String),
}

impl From<Error> for StepError {
    fn from(error: Error) -> Self {
        match &error {
            Error::Conflict { errors, .. } if errors.iter().any(|e| e.code == "run_moved") => {
                Self::Moved
            }
            Error::Db(e) if store::is_transient(e) => Self::Transient(error.to_string()),
            Error::Db(_) | Error::Unavailable(_) => Self::Transient(error.to_string()),
            _ => Self::Failed(describe(&error)),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct AdvancePayload {
    run: Uuid,
}

#[async_trait::async_trait]
impl Handler for Runtime {
    fn kind(&self) -> &'static str {
        ADVANCE_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: AdvancePayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed payload: {e}")))?;
        let mut session = Session {
            job: Some(ctx.clone()),
            ..Session::default()
        };
        for _ in 0..STEPS_PER_JOB {
            match self
                .step(&ctx.db, &ctx.clock, payload.run, &mut session)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(StepError::Moved) => session.run = None,
                Err(StepError::Transient(why)) if job.attempts >= job.max_attempts => {
                    // Out of attempts: the run fails where it stands, visible and retryable,
                    // instead of staying "running" with no job to advance it.
                    self.give_up(&ctx.db, &ctx.clock, payload.run, &why).await?;
                    return Ok(());
                }
                Err(StepError::Transient(why)) => return Err(JobFailure::Retry(why)),
                Err(StepError::Failed(why)) => return Err(JobFailure::Fatal(why)),
            }
        }
        // Its share is spent: a fresh job goes on with it after the others due now.
        let run = rows::find_run(ctx.db.conn(), payload.run).await?;
        if let Some(run) = run {
            let job = advance_job(
                run.workspace_id,
                run.id,
                None,
                &format!("continue:{}", run.revision),
            );
            jobs::enqueue(ctx.db.conn(), &ctx.clock, job).await?;
        }
        Ok(())
    }
}

/// What one job keeps between the steps it runs: the workspace's context, its people, and the
/// run as the last step left it (so consecutive steps do not read them again).
#[derive(Default)]
struct Session {
    /// The job running the run, to complete in the transaction of the step that ends its work.
    job: Option<JobContext>,
    context: Option<(Context, Arc<Snapshot>)>,
    people: Option<Arc<People>>,
    run: Option<RunRow>,
}

/// The workspace's org tree and active members' roles.
struct People {
    directory: Arc<crate::access::Directory>,
    roles_of: HashMap<Uuid, String>,
}

/// The run after `advance` applied to it.
fn advanced(run: RunRow, advance: &Advance) -> RunRow {
    let finished = matches!(
        advance.status,
        status::COMPLETED | status::FAILED | status::CANCELLED
    );
    RunRow {
        status: advance.status.to_owned(),
        cursor: advance.cursor.clone(),
        vars: advance.vars.clone(),
        wake_at: advance.wake_at,
        error: advance.error.clone(),
        failed_step: advance.failed_step.clone(),
        steps_run: advance.steps_run,
        revision: run.revision + 1,
        updated_at: advance.now,
        finished_at: finished.then_some(advance.now),
        ..run
    }
}

/// One step being run: where it runs, what it sees, and its place in the log.
struct Turn<'a> {
    job: Option<JobContext>,
    db: &'a Db,
    clock: &'a SharedClock,
    scene: &'a Scene,
    step: &'a Step,
    seq: i32,
    started: Instant,
}

impl Turn<'_> {
    /// The run's progress after the step did `done`.
    fn progress(&self, done: Done, now: DateTime<Utc>) -> Advance {
        let (scene, step) = (self.scene, self.step);
        let mut vars = scene.run.vars.clone();
        if let Some(map) = vars.as_object_mut() {
            map.insert(step.id.clone(), done.output.clone());
        }
        // An approval holds the run at its step until it is decided (no wake time).
        let held = matches!(step.action, Action::Approval { .. })
            && done.next.as_deref() == Some(step.id.as_str());
        let waiting = held || done.wake_at.is_some_and(|at| at > now);
        let status = match (&done.next, waiting) {
            (_, true) => status::WAITING,
            (None, false) => status::COMPLETED,
            (Some(_), false) => status::RUNNING,
        };
        Advance {
            run_id: scene.run.id,
            revision: scene.run.revision,
            status,
            cursor: done.next.clone(),
            vars,
            wake_at: done.wake_at.filter(|_| waiting),
            error: None,
            failed_step: None,
            steps_run: scene.run.steps_run + 1,
            now,
            log: Some(StepRow {
                run_id: scene.run.id,
                seq: self.seq,
                step_id: step.id.clone(),
                step_type: step.action.name().to_owned(),
                status: if waiting { "waiting" } else { "succeeded" }.to_owned(),
                input: done.input,
                output: Some(done.output),
                error: None,
                started_at: now,
                finished_at: now,
                duration_us: elapsed_us(self.started),
            }),
        }
    }

    /// Commits the step's progress in `tx`, after the effects the caller wrote there.
    async fn commit(
        &self,
        tx: store::write::Write,
        done: Done,
        now: DateTime<Utc>,
    ) -> Result<Option<Advance>, StepError> {
        let advance = self.progress(done, now);
        // A step that leaves the run waiting or finished ends its job's work: the job completes
        // in the same transaction (one write fewer than completing it afterwards).
        if advance.status != status::RUNNING
            && let Some(job) = &self.job
        {
            job.complete_in(&tx)
                .await
                .map_err(|failure| match failure {
                    JobFailure::Retry(why) | JobFailure::Fatal(why) => StepError::Transient(why),
                })?;
        }
        commit_progress(tx, advance).await
    }

    /// Commits a step with no effect of its own.
    async fn plain(&self, done: Done) -> Result<Option<Advance>, StepError> {
        let now = self.clock.now();
        let tx = self.db.write(Sharing::Alone).await?;
        self.commit(tx, done, now).await
    }

    /// Runs a record write with the step's progress riding along; a write that changed nothing
    /// (so committed nothing) has its progress committed on its own. The write says whether it
    /// wrote (`None`: it cannot tell, and the run's revision is read to know).
    async fn write<F, Fut>(
        &self,
        done: Done,
        rotation: Option<(String, i64)>,
        write: F,
    ) -> Result<Option<Advance>, StepError>
    where
        F: FnOnce(Context) -> Fut,
        Fut: std::future::Future<Output = Result<Option<bool>>>,
    {
        let (db, scene) = (self.db, self.scene);
        let now = self.clock.now();
        let advance = self.progress(done, now);
        let origin = Arc::new(StepOrigin {
            run_id: scene.run.id,
            workflow_key: scene.run.workflow_key.clone(),
            step_id: self.step.id.clone(),
            depth: scene.run.depth,
            advance: Mutex::new(Some(advance.clone())),
            rotation,
        });
        let ctx = Context {
            origin: Some(origin.clone()),
            ..scene.ctx.clone()
        };
        // A write that wrote committed the progress with the record (or failed whole).
        match write(ctx).await? {
            Some(true) => return Ok(Some(advance)),
            Some(false) => {}
            None => {
                let moved = rows::find_run(db.conn(), scene.run.id)
                    .await?
                    .is_some_and(|run| run.revision > scene.run.revision);
                if moved {
                    return Ok(None);
                }
            }
        }
        let tx = db.write(Sharing::Alone).await?;
        if let Some((key, expected)) = &origin.rotation {
            rows::move_rotation(&tx, scene.run.workspace_id, key, *expected, now).await?;
        }
        commit_progress(tx, advance).await
    }
}

/// What a step did: its output, and where the run goes.
struct Done {
    input: Option<Value>,
    output: Value,
    next: Option<String>,
    wake_at: Option<DateTime<Utc>>,
}

/// What a step sees: the run's record (read at the step), its event and variables.
struct Scene {
    ctx: Context,
    workflow: Arc<Workflow>,
    run: RunRow,
    model: Option<Arc<EntityModel>>,
    row: Option<store::records::RecordRow>,
    now: DateTime<Utc>,
}

impl Scene {
    /// The template context.
    fn context(&self) -> Value {
        let record = match (&self.model, &self.row) {
            (Some(model), Some(row)) => {
                let mut fields: Map<String, Value> = codec::decode_doc(model, &row.doc)
                    .into_iter()
                    .map(|(key, value)| (key, whole_numbers(value)))
                    .collect();
                fields.insert("id".to_owned(), json!(row.id));
                fields.insert("owner".to_owned(), json!(row.owner));
                fields.insert("created_at".to_owned(), json!(row.created_at));
                fields.insert("updated_at".to_owned(), json!(row.updated_at));
                Value::Object(fields)
            }
            _ => Value::Null,
        };
        json!({
            "record": record,
            "old": self.run.event.get("old").cloned().unwrap_or(Value::Null),
            "trigger": self.run.event,
            "steps": self.run.vars,
            "run": {"id": self.run.id, "workflow": self.run.workflow_key, "version": self.run.version},
            "workflow": {"key": self.workflow.key, "label": self.workflow.label()},
            "now": self.now,
            "today": self.now.with_timezone(&self.ctx.time_zone).date_naive(),
        })
    }

    /// Evaluates the compiled script at `pointer`.
    fn eval(&self, pointer: &str) -> Result<rhai::Dynamic> {
        let script = self
            .workflow
            .script(pointer)
            .ok_or_else(|| Error::internal(format!("no compiled script at {pointer}")))?;
        let record = match (&self.model, &self.row) {
            (Some(model), Some(row)) => values::record(model, &row.doc),
            _ => rhai::Dynamic::UNIT,
        };
        let old = match (
            &self.model,
            self.run.event.get("old").and_then(Value::as_object),
        ) {
            (Some(model), Some(old)) => values::record_from_api(model, old),
            _ => rhai::Dynamic::UNIT,
        };
        let dynamic = |v: &Value| rhai::serde::to_dynamic(v).unwrap_or(rhai::Dynamic::UNIT);
        let env = Rc::new(Env::new(
            self.now,
            self.ctx.time_zone,
            self.ctx.calendar.clone(),
        ));
        *env.allowed_lookups.borrow_mut() = Some(Vec::new());
        let owner = self
            .row
            .as_ref()
            .and_then(|r| r.owner)
            .map_or(rhai::Dynamic::UNIT, |o| o.to_string().into());
        let record_id = self
            .row
            .as_ref()
            .map_or(rhai::Dynamic::UNIT, |r| r.id.to_string().into());
        crate::script::shared().eval_in(
            &env,
            script,
            vec![
                ("record", record),
                ("old", old),
                ("trigger", dynamic(&self.run.event)),
                ("steps", dynamic(&self.run.vars)),
                ("record_id", record_id),
                ("owner", owner),
            ],
            pointer,
        )
    }

    /// A value as a step gives it: a template's text, a script's result, or the value itself.
    fn resolve(&self, value: &Value, pointer: &str) -> Result<Value> {
        match value {
            Value::String(text) => Ok(Value::String(sandbox::render(
                text,
                &self.context(),
                pointer,
            )?)),
            Value::Object(map) if map.contains_key("script") => {
                Ok(values::to_json(&self.eval(&format!("{pointer}/script"))?))
            }
            other => Ok(other.clone()),
        }
    }

    /// Every string of a JSON value rendered as a template.
    fn render_json(&self, value: &Value, pointer: &str) -> Result<Value> {
        Ok(match value {
            Value::String(text) => Value::String(sandbox::render(text, &self.context(), pointer)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.render_json(v, &format!("{pointer}/{i}")))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            self.render_json(
                                v,
                                &format!("{pointer}/{}", super::definition::escape(k)),
                            )?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Field values for a write, resolved; empty text clears a field.
    fn fields(&self, fields: &Map<String, Value>, pointer: &str) -> Result<Map<String, Value>> {
        fields
            .iter()
            .map(|(key, value)| {
                let resolved = self.resolve(
                    value,
                    &format!("{pointer}/{}", super::definition::escape(key)),
                )?;
                let resolved = match resolved {
                    Value::String(text) if text.is_empty() => Value::Null,
                    other => other,
                };
                Ok((key.clone(), resolved))
            })
            .collect()
    }

    /// The run's record, or a clear failure.
    fn record(&self) -> Result<(&Arc<EntityModel>, &store::records::RecordRow)> {
        match (&self.model, &self.row) {
            (Some(model), Some(row)) => Ok((model, row)),
            (None, _) => Err(Error::invalid(
                "/entity",
                "no_record",
                "this run has no record to act on",
            )),
            (Some(_), None) => Err(Error::invalid(
                "/record",
                "record_gone",
                "the run's record was deleted",
            )),
        }
    }
}

impl Runtime {
    /// Runs the run's next step; false when there is nothing to do now.
    async fn step(
        &self,
        db: &Db,
        clock: &SharedClock,
        run_id: Uuid,
        session: &mut Session,
    ) -> Result<bool, StepError> {
        let run = match session.run.take() {
            Some(run) => run,
            None => match rows::find_run(db.conn(), run_id).await? {
                Some(run) => run,
                None => return Ok(false),
            },
        };
        let now = clock.now();
        match run.status.as_str() {
            status::RUNNING => {}
            status::WAITING if run.wake_at.is_some_and(|at| at <= now) => {}
            _ => return Ok(false),
        }
        if session.context.is_none() {
            session.context = system_context(db, &self.registry, run.workspace_id, None).await?;
        }
        let Some((ctx, snapshot)) = session.context.clone() else {
            return Ok(false);
        };
        let workflow = match version_of(db, &snapshot, &run).await {
            Ok(w) => w,
            Err(e @ (Error::Db(_) | Error::Unavailable(_))) => return Err(e.into()),
            Err(e) => {
                let why = describe(&e);
                let at = run.cursor.clone();
                self.finish(db, &run, now, Some(why), at).await?;
                return Ok(false);
            }
        };
        let Some(cursor) = run.cursor.clone() else {
            self.finish(db, &run, now, None, None).await?;
            return Ok(false);
        };
        let Some((position, step)) = workflow.step(&cursor) else {
            let why = format!("the run stands at step {cursor:?}, which its version does not have");
            self.finish(db, &run, now, Some(why), Some(cursor)).await?;
            return Ok(false);
        };
        if run.steps_run >= MAX_STEPS_PER_RUN {
            let why = format!("the run has run {MAX_STEPS_PER_RUN} steps; a branch probably loops");
            self.finish(db, &run, now, Some(why), Some(cursor)).await?;
            return Ok(false);
        }
        let model = run.entity.as_deref().and_then(|e| snapshot.entity(e));
        let row = match (&model, run.record_id) {
            (Some(model), Some(id)) => store::records::find(db.conn(), &model.table(), id)
                .await?
                .filter(|r| r.deleted_at.is_none()),
            _ => None,
        };
        let scene = Scene {
            ctx,
            workflow: workflow.clone(),
            run,
            model,
            row,
            now,
        };
        // Every advance bumps the revision once and logs at most one step: a unique order.
        let seq = log_seq(scene.run.revision);
        let started = Instant::now();
        let pointer = format!("/steps/{position}");
        let outcome = self
            .execute(
                db, clock, &scene, session, position, step, seq, &pointer, started,
            )
            .await;
        match outcome {
            Ok(Some(advance)) => {
                session.run = Some(advanced(scene.run, &advance));
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(StepError::Failed(why)) => {
                let log = StepRow {
                    run_id,
                    seq,
                    step_id: step.id.clone(),
                    step_type: step.action.name().to_owned(),
                    status: "failed".to_owned(),
                    input: None,
                    output: None,
                    error: Some(why.clone()),
                    started_at: now,
                    finished_at: clock.now(),
                    duration_us: elapsed_us(started),
                };
                let advance = Advance {
                    run_id,
                    revision: scene.run.revision,
                    status: status::FAILED,
                    cursor: Some(step.id.clone()),
                    vars: scene.run.vars.clone(),
                    wake_at: None,
                    error: Some(why),
                    failed_step: Some(step.id.clone()),
                    steps_run: scene.run.steps_run + 1,
                    now: clock.now(),
                    log: Some(log),
                };
                rows::advance(db.conn(), advance).await?;
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// Fails a run at its cursor after its job ran out of attempts.
    async fn give_up(&self, db: &Db, clock: &SharedClock, run_id: Uuid, why: &str) -> Result<()> {
        let Some(run) = rows::find_run(db.conn(), run_id).await? else {
            return Ok(());
        };
        if run.status != status::RUNNING && run.status != status::WAITING {
            return Ok(());
        }
        let at = run.cursor.clone();
        self.finish(
            db,
            &run,
            clock.now(),
            Some(format!("gave up after repeated failures: {why}")),
            at,
        )
        .await?;
        // A run that failed while an approval held it: the approval ends with it (a retry
        // asks again).
        let tx = db.write(Sharing::Alone).await?;
        super::approvals::cancel_for_run(&tx, run_id, clock.now()).await?;
        held(tx.commit().await?)
    }

    /// Ends a run: completed, or failed with `error` (at `failed_step`).
    async fn finish(
        &self,
        db: &Db,
        run: &RunRow,
        now: DateTime<Utc>,
        error: Option<String>,
        failed_step: Option<String>,
    ) -> Result<()> {
        let failed = error.is_some();
        rows::advance(
            db.conn(),
            Advance {
                status: if failed {
                    status::FAILED
                } else {
                    status::COMPLETED
                },
                cursor: if failed { failed_step.clone() } else { None },
                error,
                failed_step,
                ..Advance::status_of(run, status::COMPLETED, now)
            },
        )
        .await?;
        Ok(())
    }

    /// The message a notify step posts to group chat robots: its texts in Chinese where it
    /// has them (else as written), and a link to the record.
    async fn robot_post(
        &self,
        db: &Db,
        scene: &Scene,
        context: &Value,
        pointer: &str,
        title: &super::definition::Text,
        body: Option<&super::definition::Text>,
    ) -> Result<crate::robots::Post, StepError> {
        let (template, at) = title.for_language("zh-CN");
        let title = sandbox::render(template, context, &format!("{pointer}/title{at}"))?;
        let body = match body {
            Some(body) => {
                let (template, at) = body.for_language("zh-CN");
                sandbox::render(template, context, &format!("{pointer}/body{at}"))?
            }
            None => String::new(),
        };
        let link = match (&scene.run.entity, scene.run.record_id) {
            (Some(entity), Some(id)) => store::workspaces::find(db.conn(), scene.run.workspace_id)
                .await?
                .map(|w| {
                    format!(
                        "{}/w/{}/e/{entity}/{id}",
                        self.public_url.trim_end_matches('/'),
                        w.slug
                    )
                }),
            _ => None,
        };
        Ok(crate::robots::Post { title, body, link })
    }

    /// The accounts `to` names for this run (and the names it could not resolve).
    async fn recipients(
        &self,
        db: &Db,
        session: &mut Session,
        scene: &Scene,
        to: &[String],
    ) -> Result<(Vec<Uuid>, Vec<String>), StepError> {
        let people = match &session.people {
            Some(people) => people.clone(),
            None => {
                // Roles are read only when a recipient names one.
                let by_role = to.iter().any(|r| r.starts_with("role:"));
                let loaded = Arc::new(People {
                    directory: crate::workspaces::directory(
                        db,
                        &self.access,
                        scene.run.workspace_id,
                    )
                    .await?,
                    roles_of: if by_role {
                        store::people::memberships(db.conn(), scene.run.workspace_id)
                            .await?
                            .into_iter()
                            .filter(|m| m.deactivated_at.is_none())
                            .map(|m| (m.account_id, m.role))
                            .collect()
                    } else {
                        HashMap::new()
                    },
                });
                if by_role {
                    session.people = Some(loaded.clone());
                }
                loaded
            }
        };
        let (directory, roles_of) = (&people.directory, &people.roles_of);
        let audience = Audience {
            owner: scene.row.as_ref().and_then(|r| r.owner),
            triggered_by: scene
                .run
                .event
                .get("by")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .or(scene.run.started_by),
            user_fields: match (&scene.model, &scene.row) {
                (Some(model), Some(row)) => model
                    .fields
                    .iter()
                    .filter(|f| matches!(f.kind, FieldKind::User))
                    .filter_map(|f| Some((f.key.clone(), row.doc.get(&f.key)?.clone())))
                    .collect(),
                _ => HashMap::new(),
            },
        };
        Ok(notify::resolve(to, &audience, directory, roles_of))
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        db: &Db,
        clock: &SharedClock,
        scene: &Scene,
        session: &mut Session,
        position: usize,
        step: &Step,
        seq: i32,
        pointer: &str,
        started: Instant,
    ) -> Result<Option<Advance>, StepError> {
        let turn = Turn {
            job: session.job.clone(),
            db,
            clock,
            scene,
            step,
            seq,
            started,
        };
        let next = scene.workflow.after(position).map(str::to_owned);
        let records = Records {
            db,
            clock,
            registry: &self.registry,
        };
        match &step.action {
            Action::SetFields { fields } => {
                let (model, row) = scene.record()?;
                let patch = scene.fields(fields, &format!("{pointer}/fields"))?;
                let done = Done {
                    input: Some(Value::Object(patch.clone())),
                    output: json!({"id": row.id}),
                    next,
                    wake_at: None,
                };
                turn.write(done, None, |ctx| async move {
                    records
                        .update(&ctx, &model.key, &row.id.to_string(), &patch, None, None)
                        .await
                        .map(|_| None)
                })
                .await
            }
            Action::CreateRecord {
                entity,
                fields,
                owner,
            } => {
                let fields = scene.fields(fields, &format!("{pointer}/fields"))?;
                let owner = match owner {
                    Some(value) => parse_account(
                        &scene.resolve(value, &format!("{pointer}/owner"))?,
                        &format!("{pointer}/owner"),
                    )?,
                    None => scene.row.as_ref().and_then(|r| r.owner),
                };
                // Chosen here so later steps can refer to it (`steps.<id>.id`): the record and
                // the progress naming it commit together, or neither does.
                let id = crate::domain::new_id();
                let done = Done {
                    input: Some(json!({"entity": entity, "fields": fields, "owner": owner})),
                    output: json!({"id": id}),
                    next,
                    wake_at: None,
                };
                let entity = entity.clone();
                turn.write(done, None, |ctx| async move {
                    records
                        .create(
                            &ctx,
                            &entity,
                            NewRecord {
                                fields,
                                owner,
                                id: Some(id),
                            },
                        )
                        .await
                        .map(|_| None)
                })
                .await
            }
            Action::UpdateRecord {
                entity,
                record,
                fields,
            } => {
                let id = scene.resolve(record, &format!("{pointer}/record"))?;
                let id = id.as_str().unwrap_or_default().trim().to_owned();
                let patch = scene.fields(fields, &format!("{pointer}/fields"))?;
                let done = Done {
                    input: Some(json!({"entity": entity, "record": id, "fields": patch})),
                    output: json!({"id": id}),
                    next,
                    wake_at: None,
                };
                let entity = entity.clone();
                turn.write(done, None, |ctx| async move {
                    records
                        .update(&ctx, &entity, &id, &patch, None, None)
                        .await
                        .map(|_| None)
                })
                .await
            }
            Action::AssignOwner { .. } => {
                let (model, row) = scene.record()?;
                let (owner, rotation, how) =
                    self.pick_owner(db, scene, step, model, pointer).await?;
                let done = Done {
                    input: Some(json!({"previous": row.owner})),
                    output: json!({"owner": owner, "how": how}),
                    next,
                    wake_at: None,
                };
                let Some(owner) = owner else {
                    return turn.plain(done).await;
                };
                turn.write(done, rotation, |ctx| async move {
                    records
                        .update(
                            &ctx,
                            &model.key,
                            &row.id.to_string(),
                            &Map::new(),
                            Some(owner),
                            None,
                        )
                        .await
                        .map(|_| None)
                })
                .await
            }
            Action::Notify {
                to,
                channels,
                title,
                body,
            } => {
                let context = scene.context();
                let (people, missing) = self.recipients(db, session, scene, to).await?;
                // Texts written per language go to each person in theirs (their account's
                // language, else English); one text goes to everyone as it is.
                let mut by_language: BTreeMap<&'static str, Vec<Uuid>> = BTreeMap::new();
                let localized =
                    title.is_localized() || body.as_ref().is_some_and(|b| b.is_localized());
                for person in &people {
                    let tag = if localized {
                        store::accounts::find(db.conn(), *person)
                            .await?
                            .map_or(crate::render::i18n::Locale::En, |a| {
                                store::accounts::language_of(&a)
                            })
                            .tag()
                    } else {
                        "en"
                    };
                    by_language.entry(tag).or_default().push(*person);
                }
                if by_language.is_empty() {
                    // Nobody to tell: the texts are still rendered, so a broken one fails the step.
                    by_language.insert("en", Vec::new());
                }
                let mut messages = Vec::new();
                let mut texts = Map::new();
                for (tag, group) in by_language {
                    let (template, at) = title.for_language(tag);
                    let title =
                        sandbox::render(template, &context, &format!("{pointer}/title{at}"))?;
                    let body = match body {
                        Some(body) => {
                            let (template, at) = body.for_language(tag);
                            sandbox::render(template, &context, &format!("{pointer}/body{at}"))?
                        }
                        None => String::new(),
                    };
                    texts.insert(tag.to_owned(), json!({"title": title, "body": body}));
                    messages.push(Message {
                        workspace_id: scene.run.workspace_id,
                        to: group,
                        title,
                        body,
                        record: scene.run.entity.clone().zip(scene.run.record_id),
                        run_id: scene.run.id,
                        key: format!("workflow:{}:{seq}", scene.run.id),
                        at: scene.now,
                    });
                }
                let channel_names = channels
                    .clone()
                    .unwrap_or_else(|| vec!["in_app".to_owned()]);
                // Group chats get one message, in Chinese where the step has it.
                let robot_post = if channel_names.iter().any(|c| c.starts_with("robot:")) {
                    Some(
                        self.robot_post(db, scene, &context, pointer, title, body.as_ref())
                            .await?,
                    )
                } else {
                    None
                };
                let now = clock.now();
                let tx = db.write(Sharing::Alone).await?;
                let mut delivered = Map::new();
                for name in &channel_names {
                    if let (Some(key), Some(post)) = (name.strip_prefix("robot:"), &robot_post) {
                        let queued = crate::robots::queue(
                            &tx,
                            clock,
                            scene.run.workspace_id,
                            key,
                            post,
                            format!("workflow:{}:{seq}:robot:{key}", scene.run.id),
                        )
                        .await?;
                        delivered.insert(
                            name.clone(),
                            match queued {
                                Some(job) => json!({"queued": job}),
                                None => json!({"skipped": format!(
                                    "no chat robot {key:?} is registered and switched on in this workspace"
                                )}),
                            },
                        );
                        continue;
                    }
                    let channel = notify::channel(name, self.email_enabled)?;
                    let mut results = Vec::new();
                    for message in &messages {
                        results.push(channel.deliver(&tx, clock, message).await?);
                    }
                    delivered.insert(channel.name().to_owned(), merge_results(results));
                }
                // The log keeps the single text as before; texts per language by tag.
                let (title, body) = match (localized, texts.values().next()) {
                    (false, Some(one)) => (one["title"].clone(), one["body"].clone()),
                    _ => (
                        Value::Object(
                            texts
                                .iter()
                                .map(|(t, v)| (t.clone(), v["title"].clone()))
                                .collect(),
                        ),
                        Value::Object(
                            texts
                                .iter()
                                .map(|(t, v)| (t.clone(), v["body"].clone()))
                                .collect(),
                        ),
                    ),
                };
                let done = Done {
                    input: Some(json!({"to": to, "title": title, "body": body})),
                    output: json!({"recipients": people, "not_found": missing, "channels": delivered}),
                    next,
                    wake_at: None,
                };
                turn.commit(tx, done, now).await
            }
            Action::SendReport {
                report,
                to,
                period,
                subject,
            } => {
                let (people, missing) = self.recipients(db, session, scene, to).await?;
                let mut sent = Vec::new();
                let mut skipped = Vec::new();
                if self.email_enabled {
                    let filters = crate::reports::Filters {
                        period: period
                            .as_deref()
                            .map(|p| crate::reports::Period::parse(p, &format!("{pointer}/period")))
                            .transpose()?,
                        ..crate::reports::Filters::default()
                    };
                    let reports = crate::reports::Reports {
                        db,
                        clock,
                        registry: &self.registry,
                    };
                    // The subject goes to every recipient: it sees the run and the date, never
                    // the run's record, which some recipients may not be allowed to read.
                    let full = scene.context();
                    let context = json!({
                        "report": report,
                        "today": full.get("today"),
                        "now": full.get("now"),
                        "run": full.get("run"),
                        "workflow": full.get("workflow"),
                    });
                    for person in &people {
                        let access = crate::workspaces::access_of(
                            db,
                            &self.access,
                            scene.run.workspace_id,
                            *person,
                        )
                        .await?;
                        let (Some(access), Some(account)) =
                            (access, store::accounts::find(db.conn(), *person).await?)
                        else {
                            skipped.push(json!({"to": person, "why": "not an active member"}));
                            continue;
                        };
                        let locale = store::accounts::language_of(&account);
                        // Each person's own view: their scope and field rules, never another's.
                        let ctx = Context::for_member(&access, Channel::Workflow);
                        let app_url = format!(
                            "{}/w/{}",
                            self.public_url.trim_end_matches('/'),
                            access.workspace.slug
                        );
                        match reports
                            .email(&ctx, report, &filters, locale, Some(&app_url))
                            .await
                        {
                            Ok((label, html, text)) => {
                                let subject = match subject {
                                    Some(template) => sandbox::render(
                                        template,
                                        &context,
                                        &format!("{pointer}/subject"),
                                    )?,
                                    None => label,
                                };
                                sent.push((*person, account.email, subject, html, text));
                            }
                            Err(Error::Db(e)) => return Err(Error::Db(e).into()),
                            Err(other) => {
                                skipped.push(json!({"to": person, "why": other.to_string()}));
                            }
                        }
                    }
                } else {
                    skipped
                        .push(json!({"why": "no SMTP server is configured (FORMWORK_SMTP_URL)"}));
                }
                let now = clock.now();
                let tx = db.write(Sharing::Alone).await?;
                let mut emailed = Vec::new();
                for (person, address, subject, html, text) in sent {
                    crate::mail::queue_once(
                        &tx,
                        clock,
                        &crate::mail::Email {
                            to: address.clone(),
                            subject,
                            text,
                            html: Some(html),
                            ..Default::default()
                        },
                        scene.run.workspace_id,
                        format!("workflow:{}:{seq}:{person}", scene.run.id),
                    )
                    .await?;
                    emailed.push(address);
                }
                let done = Done {
                    input: Some(json!({"report": report, "to": to, "period": period})),
                    output: json!({"emailed": emailed, "skipped": skipped, "not_found": missing}),
                    next,
                    wake_at: None,
                };
                turn.commit(tx, done, now).await
            }
            Action::Webhook { url, body } => {
                let context = scene.context();
                let url = sandbox::render(url, &context, &format!("{pointer}/url"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(StepError::Failed(format!(
                        "{pointer}/url: {url:?} is not an http(s) URL"
                    )));
                }
                let body = match body {
                    Some(body) => scene.render_json(body, &format!("{pointer}/body"))?,
                    None => json!({
                        "workflow": scene.workflow.key,
                        "run": scene.run.id,
                        "event": scene.run.event,
                        "record": context.get("record"),
                    }),
                };
                let key = format!("workflow:{}:{seq}", scene.run.id);
                let mut job = NewJob::new("outbox.webhook", json!({"url": url, "body": body}));
                job.workspace_id = Some(scene.run.workspace_id);
                job.max_attempts = 8;
                job.dedupe_key = Some(key.clone());
                let now = clock.now();
                let tx = db.write(Sharing::Alone).await?;
                let job_id = jobs::enqueue(&tx, clock, job).await?;
                let done = Done {
                    input: Some(json!({"url": url, "body": body})),
                    output: json!({
                        "delivery": job_id,
                        "idempotency_key": jobs::scoped_key(Some(scene.run.workspace_id), &key),
                    }),
                    next,
                    wake_at: None,
                };
                turn.commit(tx, done, now).await
            }
            Action::Wait {
                duration,
                working_days,
                until,
            } => {
                let now = clock.now();
                let wake_at = match (duration, until) {
                    (Some(text), _) => {
                        let span = Span::parse(text).ok_or_else(|| {
                            StepError::Failed(format!("{pointer}/duration: not a duration"))
                        })?;
                        span.apply(
                            now,
                            false,
                            working_days.then_some((&*scene.ctx.calendar, scene.ctx.time_zone)),
                        )
                    }
                    (None, Some(value)) => {
                        let value = scene.resolve(value, &format!("{pointer}/until"))?;
                        match value.as_str().filter(|s| !s.trim().is_empty()) {
                            None => Some(now),
                            Some(text) => Some(parse_instant(text, scene.ctx.time_zone).ok_or_else(
                                || {
                                    StepError::Failed(format!(
                                        "{pointer}/until: {text:?} is not a date (2026-12-31) or a date-time"
                                    ))
                                },
                            )?),
                        }
                    }
                    (None, None) => Some(now),
                };
                let wake_at = wake_at.ok_or_else(|| {
                    StepError::Failed(format!("{pointer}: the wait ends out of range"))
                })?;
                let tx = db.write(Sharing::Alone).await?;
                if wake_at > now {
                    let job = advance_job(
                        scene.run.workspace_id,
                        scene.run.id,
                        Some(wake_at),
                        &format!("wake:{seq}"),
                    );
                    jobs::enqueue(&tx, clock, job).await?;
                }
                let done = Done {
                    input: None,
                    output: json!({"until": wake_at}),
                    next,
                    wake_at: Some(wake_at),
                };
                turn.commit(tx, done, now).await
            }
            Action::Branch { cases, otherwise } => {
                let mut chosen = None;
                for (c, case) in cases.iter().enumerate() {
                    let verdict = scene.eval(&format!("{pointer}/cases/{c}/when"))?;
                    match verdict.as_bool() {
                        Ok(true) => {
                            chosen = Some((json!(c), case.goto.clone()));
                            break;
                        }
                        Ok(false) => {}
                        Err(kind) => {
                            return Err(StepError::Failed(format!(
                                "{pointer}/cases/{c}/when gave {kind}, not true or false"
                            )));
                        }
                    }
                }
                let (took, target) = match (chosen, otherwise) {
                    (Some(hit), _) => hit,
                    (None, Some(target)) => (json!("otherwise"), target.clone()),
                    (None, None) => (
                        json!("none"),
                        next.clone().unwrap_or_else(|| END.to_owned()),
                    ),
                };
                let next = (target != END).then_some(target.clone());
                let done = Done {
                    input: None,
                    output: json!({"case": took, "goto": target}),
                    next,
                    wake_at: None,
                };
                turn.plain(done).await
            }
            Action::Approval {
                title,
                levels,
                lock_record,
                allow,
                on_reject,
                on_withdraw,
            } => {
                let (model, row) = scene.record()?;
                let context = scene.context();
                let title = match title {
                    Some(title) => sandbox::render(title, &context, &format!("{pointer}/title"))?,
                    None => format!("{} — {}", scene.workflow.label(), model.key),
                };
                let mut applies = Vec::with_capacity(levels.len());
                for (l, level) in levels.iter().enumerate() {
                    applies.push(match &level.when {
                        None => true,
                        Some(_) => {
                            let verdict = scene.eval(&format!("{pointer}/levels/{l}/when"))?;
                            verdict.as_bool().map_err(|kind| {
                                StepError::Failed(format!(
                                    "{pointer}/levels/{l}/when gave {kind}, not true or false"
                                ))
                            })?
                        }
                    });
                }
                let submitter = scene
                    .run
                    .event
                    .get("by")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .or(scene.run.started_by)
                    .or(row.owner);
                let request = super::approvals::Request {
                    workspace_id: scene.run.workspace_id,
                    run_id: scene.run.id,
                    step_id: step.id.clone(),
                    entity: model.key.clone(),
                    record_id: row.id,
                    table: model.table(),
                    owner: row.owner,
                    user_fields: model
                        .fields
                        .iter()
                        .filter(|f| matches!(f.kind, FieldKind::User))
                        .filter_map(|f| Some((f.key.clone(), row.doc.get(&f.key)?.clone())))
                        .collect(),
                    submitter,
                    title: title.clone(),
                    spec: super::approvals::Spec {
                        levels: levels.clone(),
                        applies: applies.clone(),
                        allow: allow.clone(),
                        on_approve: next.clone(),
                        on_reject: on_reject.clone(),
                        on_withdraw: on_withdraw.clone(),
                        user_fields: model
                            .fields
                            .iter()
                            .filter(|f| matches!(f.kind, FieldKind::User))
                            .map(|f| f.key.clone())
                            .collect(),
                    },
                    lock_record: lock_record.unwrap_or(true),
                };
                let now = clock.now();
                let tx = db.write(Sharing::Alone).await?;
                // The run holds at this step first: a decision made at once (no level applies)
                // then moves it on in the same transaction.
                let done = Done {
                    input: Some(
                        json!({"title": title, "levels_applying": applies, "submitter": submitter}),
                    ),
                    output: Value::Null,
                    next: Some(step.id.clone()),
                    wake_at: None,
                };
                let advance = turn.progress(done, now);
                let (approval, asked) = {
                    if !rows::advance(&tx, advance.clone()).await? {
                        return Err(StepError::Moved);
                    }
                    super::approvals::start(&tx, clock, request).await?
                };
                // Record what was asked in the step's log row.
                rows::set_step_output(
                    &tx,
                    scene.run.id,
                    seq,
                    json!({"approval": approval, "asked": asked}),
                )
                .await?;
                match tx.commit().await? {
                    store::write::Outcome::Committed => Ok(None),
                    store::write::Outcome::RunAgain => Err(StepError::Transient(
                        "the step's transaction was rolled back".to_owned(),
                    )),
                }
            }
            Action::Script { .. } => {
                let result = scene.eval(&format!("{pointer}/script"))?;
                let done = Done {
                    input: None,
                    output: values::to_json(&result),
                    next,
                    wake_at: None,
                };
                turn.plain(done).await
            }
        }
    }

    /// The owner an `assign_owner` step picks, the rotation turn it takes, and how it chose.
    async fn pick_owner(
        &self,
        db: &Db,
        scene: &Scene,
        step: &Step,
        model: &EntityModel,
        pointer: &str,
    ) -> Result<(Option<Uuid>, Option<(String, i64)>, String), StepError> {
        let Action::AssignOwner {
            strategy,
            role,
            unit,
            team,
            members,
            ..
        } = &step.action
        else {
            return Err(StepError::Failed("not an assignment".to_owned()));
        };
        let memberships = store::people::memberships(db.conn(), scene.run.workspace_id).await?;
        let active: Vec<_> = memberships
            .iter()
            .filter(|m| m.deactivated_at.is_none())
            .collect();
        if *strategy == Strategy::Rule {
            let result = scene.eval(&format!("{pointer}/script"))?;
            if result.is_unit() {
                return Ok((None, None, "rule kept the owner".to_owned()));
            }
            let text = result.to_string();
            let id: Uuid = text.trim().parse().map_err(|_| {
                StepError::Failed(format!("{pointer}/script gave {text:?}, not an account id"))
            })?;
            if !active.iter().any(|m| m.account_id == id) {
                return Err(StepError::Failed(format!(
                    "{pointer}/script named {id}, who is not an active member"
                )));
            }
            return Ok((Some(id), None, "rule".to_owned()));
        }
        let mut team_note = String::new();
        let mut candidates: Vec<Uuid> = if let Some(template) = team {
            let name = sandbox::render(template, &scene.context(), &format!("{pointer}/team"))?;
            let name = name.trim();
            let directory =
                crate::workspaces::load_directory(db.conn(), scene.run.workspace_id).await?;
            let Some(found) = directory.org.units().find(|u| u.name == name).map(|u| u.id) else {
                return Err(StepError::Failed(format!(
                    "{pointer}/team: the workspace has no team or department named {name:?}"
                )));
            };
            team_note = format!(" in {name}");
            active
                .iter()
                .filter(|m| role.as_ref().is_none_or(|r| &m.role == r))
                .filter(|m| {
                    m.unit_id
                        .is_some_and(|u| directory.org.ancestors_and_self(u).contains(&found))
                })
                .map(|m| m.account_id)
                .collect()
        } else if let Some(role) = role {
            active
                .iter()
                .filter(|m| &m.role == role)
                .map(|m| m.account_id)
                .collect()
        } else if let Some(unit) = unit {
            let directory =
                crate::workspaces::load_directory(db.conn(), scene.run.workspace_id).await?;
            active
                .iter()
                .filter(|m| {
                    m.unit_id
                        .is_some_and(|u| directory.org.ancestors_and_self(u).contains(unit))
                })
                .map(|m| m.account_id)
                .collect()
        } else {
            members
                .iter()
                .flatten()
                .filter(|id| active.iter().any(|m| m.account_id == **id))
                .copied()
                .collect()
        };
        if members.is_none() {
            candidates.sort();
        }
        if candidates.is_empty() {
            return Err(StepError::Failed(format!(
                "{pointer}: no active member is a candidate"
            )));
        }
        match strategy {
            Strategy::RoundRobin => {
                let key = format!("{}:{}", scene.workflow.key, step.id);
                let position = rows::rotation(db.conn(), scene.run.workspace_id, &key).await?;
                let len = candidates.len() as i64;
                let pick = candidates[usize::try_from(position.rem_euclid(len)).unwrap_or(0)];
                Ok((
                    Some(pick),
                    Some((key, position)),
                    format!("round robin{team_note}, turn {}", position + 1),
                ))
            }
            _ => {
                let loads =
                    store::records::owner_loads(db.conn(), &model.table(), &candidates).await?;
                let pick = candidates
                    .iter()
                    .min_by_key(|id| loads.get(id).copied().unwrap_or(0))
                    .copied();
                let load = pick.and_then(|p| loads.get(&p).copied()).unwrap_or(0);
                Ok((
                    pick,
                    None,
                    format!("least loaded{team_note} ({load} records)"),
                ))
            }
        }
    }
}

async fn commit_progress(
    tx: store::write::Write,
    advance: Advance,
) -> Result<Option<Advance>, StepError> {
    if !rows::advance(&tx, advance.clone()).await? {
        return Err(StepError::Moved);
    }
    match tx.commit().await? {
        store::write::Outcome::Committed => Ok(Some(advance)),
        store::write::Outcome::RunAgain => Err(StepError::Transient(
            "the step's transaction was rolled back".to_owned(),
        )),
    }
}

/// A number with nothing after the point as an integer, so text shows `40%`, not `40.0%`.
pub(crate) fn whole_numbers(value: Value) -> Value {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            // Exact: integral and below 2^53 in magnitude.
            Value::from(f as i64)
        }
        _ => value,
    }
}

/// The log number of the step an advance from `revision` records.
pub(crate) fn log_seq(revision: i64) -> i32 {
    i32::try_from(revision + 1).unwrap_or(i32::MAX)
}

fn elapsed_us(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)
}

fn parse_account(value: &Value, pointer: &str) -> Result<Option<Uuid>> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::invalid(pointer, "owner", format!("{text:?} is not an account id"))
        }),
        other => Err(Error::invalid(
            pointer,
            "owner",
            format!("{other} is not an account id"),
        )),
    }
}

/// A date (its start in `zone`) or an RFC 3339 date-time.
fn parse_instant(text: &str, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    date.and_hms_opt(0, 0, 0)?
        .and_local_timezone(zone)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
}

/// Puts a failed run back to work from the step that failed.
///
/// # Errors
/// `Error::Conflict` when the run is not failed (or changed meanwhile); `Error::Db`.
pub async fn retry(db: &Db, clock: &SharedClock, run: &RunRow) -> Result<()> {
    if run.status != status::FAILED {
        return Err(Error::conflict(
            "/status",
            "not_failed",
            format!(
                "only a failed run can be retried; this one is {}",
                run.status
            ),
        ));
    }
    // Retrying would skip the condition, or loop into the same budget again.
    let refusal = if run.failed_step.as_deref() == Some(CONDITION) {
        Some("its condition failed, so it never started; fix the condition and start it again")
    } else if run.steps_run >= MAX_STEPS_PER_RUN {
        Some("it ran out of its step budget; a retry would loop into it again")
    } else if run.cursor.is_none() {
        Some("it failed before it reached a step")
    } else {
        None
    };
    if let Some(why) = refusal {
        return Err(Error::conflict(
            "/status",
            "not_retryable",
            format!("this run cannot be retried: {why}"),
        ));
    }
    let now = clock.now();
    let tx = db.write(Sharing::Alone).await?;
    let moved = rows::advance(&tx, Advance::status_of(run, status::RUNNING, now)).await?;
    if !moved {
        return Err(Error::conflict(
            "/status",
            "changed",
            "the run changed meanwhile; reload it",
        ));
    }
    jobs::enqueue(
        &tx,
        clock,
        advance_job(
            run.workspace_id,
            run.id,
            None,
            &format!("retry:{}", run.revision),
        ),
    )
    .await?;
    held(tx.commit().await?)
}

/// Stops a running or waiting run.
///
/// # Errors
/// `Error::Conflict` when it already ended (or changed meanwhile); `Error::Db`.
pub async fn cancel(db: &Db, clock: &SharedClock, run: &RunRow) -> Result<()> {
    if !matches!(
        run.status.as_str(),
        status::RUNNING | status::WAITING | status::FAILED
    ) {
        return Err(Error::conflict(
            "/status",
            "finished",
            format!("the run is {} already", run.status),
        ));
    }
    let tx = db.write(Sharing::Alone).await?;
    let moved = rows::advance(
        &tx,
        Advance {
            error: run.error.clone(),
            failed_step: run.failed_step.clone(),
            ..Advance::status_of(run, status::CANCELLED, clock.now())
        },
    )
    .await?;
    if !moved {
        return Err(Error::conflict(
            "/status",
            "changed",
            "the run changed meanwhile; reload it",
        ));
    }
    super::approvals::cancel_for_run(&tx, run.id, clock.now()).await?;
    held(tx.commit().await?)
}

fn held(outcome: store::write::Outcome) -> Result<()> {
    match outcome {
        store::write::Outcome::Committed => Ok(()),
        store::write::Outcome::RunAgain => Err(Error::Unavailable(
            "the change was rolled back with another one; send it again".to_owned(),
        )),
    }
}

/// The delivery results of one channel over several messages (one per language), as one:
/// counts added, lists joined.
fn merge_results(results: Vec<Value>) -> Value {
    let mut merged = Map::new();
    for result in results {
        let Value::Object(fields) = result else {
            continue;
        };
        for (key, value) in fields {
            match (merged.get_mut(&key), value) {
                (Some(Value::Number(a)), Value::Number(b)) => {
                    *a = (a.as_u64().unwrap_or(0) + b.as_u64().unwrap_or(0)).into();
                }
                (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
                (Some(_), _) => {}
                (None, value) => {
                    merged.insert(key, value);
                }
            }
        }
    }
    if merged.is_empty() {
        // Nobody to tell: what the channel would have said for no one.
        return json!({"notified": 0});
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_numbers_show_without_a_point() {
        assert_eq!(whole_numbers(json!(40.0)), json!(40));
        assert_eq!(whole_numbers(json!(12.5)), json!(12.5));
        assert_eq!(whole_numbers(json!(7)), json!(7));
        assert_eq!(whole_numbers(json!("40.00")), json!("40.00"));
        assert_eq!(whole_numbers(json!(1e300)), json!(1e300));
    }

    #[test]
    fn instants_are_dates_or_date_times() {
        let zone = chrono_tz::Asia::Shanghai;
        let midnight = parse_instant("2026-12-31", zone).expect("a date");
        assert_eq!(midnight.to_rfc3339(), "2026-12-30T16:00:00+00:00");
        assert!(parse_instant("2026-12-31T09:00:00+08:00", zone).is_some());
        assert!(parse_instant("next tuesday", zone).is_none());
    }
}
