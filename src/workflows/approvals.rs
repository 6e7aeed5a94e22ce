//! Approvals as Jiandaoyun users know them: levels of approvers (by user, role, field or the org
//! hierarchy), each deciding as any-of, all-of or in sequence; approve, reject, return to the
//! submitter or an earlier level (回退), add an approver before or after oneself (加签),
//! transfer (转交), withdraw and resubmit; a deadline per level in working days with a reminder
//! and escalation, auto-approval or auto-return; the record locked while pending.
//!
//! An approval changes in one transaction with its tasks, the record's history (who, when,
//! what, comment), the notifications it sends and — when it is decided — the run's next step.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::definition::{Allow, Level, Mode, OnDeadline};
use super::notify::{self, Audience, Channel, Message};
use super::triggers::advance_job;
use crate::access::Directory;
use crate::clock::SharedClock;
use crate::definitions::Registry;
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, JobContext, JobFailure, NewJob};
use crate::store::approvals::{self as rows, ApprovalRow, TaskRow, status, task};
use crate::store::jobs::JobRow;
use crate::store::workflows::{self as runs, Advance, StepRow};
use crate::store::write::{Outcome, Sharing, Write};
use crate::store::{self, Db};

/// The job kind of a level's deadline.
pub const DEADLINE_JOB: &str = "workflow.approval_deadline";

/// What an approval keeps of its step: levels, which apply, allowed actions, where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// The levels.
    pub levels: Vec<Level>,
    /// Which levels apply (their `when` held at the start).
    pub applies: Vec<bool>,
    /// Allowed actions.
    pub allow: Allow,
    /// Where the run goes when approved (none: it ends).
    pub on_approve: Option<String>,
    /// When rejected.
    pub on_reject: Option<String>,
    /// When withdrawn.
    pub on_withdraw: Option<String>,
    /// The record's user fields (for `field:` approvers named later in the approval).
    #[serde(default)]
    pub user_fields: Vec<String>,
}

/// What starting an approval needs to know.
#[derive(Debug, Clone)]
pub struct Request {
    /// The workspace.
    pub workspace_id: Uuid,
    /// The run asking.
    pub run_id: Uuid,
    /// Its step.
    pub step_id: String,
    /// The record.
    pub entity: String,
    /// Its id.
    pub record_id: Uuid,
    /// Its table (locked while the approval starts, so a concurrent write either lands first
    /// or sees the lock).
    pub table: String,
    /// Its owner.
    pub owner: Option<Uuid>,
    /// Its user fields (stored values), for `field:` approvers.
    pub user_fields: HashMap<String, Value>,
    /// Who submits (whoever triggered the run; the owner for system triggers).
    pub submitter: Option<Uuid>,
    /// What approvers see.
    pub title: String,
    /// The step's settings.
    pub spec: Spec,
    /// Lock the record while pending.
    pub lock_record: bool,
}

/// The people and calendar an approval decides with.
struct World {
    directory: Directory,
    roles_of: HashMap<Uuid, String>,
    zone: chrono_tz::Tz,
    calendar: Arc<crate::calendar::BusinessCalendar>,
}

impl World {
    async fn load(conn: &impl store::Conn, workspace_id: Uuid) -> Result<Self> {
        let workspace = store::workspaces::find(conn, workspace_id)
            .await?
            .ok_or_else(|| Error::not_found("workspace"))?;
        Ok(Self {
            directory: crate::workspaces::load_directory(conn, workspace_id).await?,
            roles_of: store::people::memberships(conn, workspace_id)
                .await?
                .into_iter()
                .filter(|m| m.deactivated_at.is_none())
                .map(|m| (m.account_id, m.role))
                .collect(),
            zone: crate::workspaces::zone_of(&workspace),
            calendar: crate::workspaces::calendar_of(&workspace),
        })
    }

    fn active(&self, id: Uuid) -> bool {
        self.roles_of.contains_key(&id)
    }

    /// The topmost manager inside the owner's department: up the manager chain while the
    /// manager is still in it.
    fn department_head(&self, owner: Uuid) -> Option<Uuid> {
        let department: HashSet<Uuid> = self
            .directory
            .org
            .department_of(owner)
            .into_iter()
            .collect();
        let mut current = owner;
        let mut head = None;
        for _ in 0..64 {
            match self.directory.org.manager_of(current) {
                Some(manager) if department.contains(&manager) && manager != current => {
                    head = Some(manager);
                    current = manager;
                }
                _ => break,
            }
        }
        head
    }

    /// The active people a list of approver specs names, in order, each once; when none is
    /// found, the workspace's owners and admins (so an approval never waits on nobody).
    fn approvers(
        &self,
        specs: &[String],
        audience: &Audience,
        submitter: Option<Uuid>,
    ) -> (Vec<Uuid>, bool) {
        let mut found: Vec<Uuid> = Vec::new();
        let push = |id: Option<Uuid>, found: &mut Vec<Uuid>| {
            if let Some(id) = id.filter(|id| self.active(*id))
                && !found.contains(&id)
            {
                found.push(id);
            }
        };
        for spec in specs {
            match spec.as_str() {
                "submitter" => push(submitter, &mut found),
                "submitter_manager" => push(
                    submitter.and_then(|s| self.directory.org.manager_of(s)),
                    &mut found,
                ),
                "department_head" => push(
                    audience.owner.and_then(|o| self.department_head(o)),
                    &mut found,
                ),
                other => {
                    let (people, _) = notify::resolve(
                        &[other.to_owned()],
                        audience,
                        &self.directory,
                        &self.roles_of,
                    );
                    for person in people {
                        push(Some(person), &mut found);
                    }
                }
            }
        }
        if found.is_empty() {
            let mut admins: Vec<Uuid> = self
                .roles_of
                .iter()
                .filter(|(_, role)| crate::access::is_admin_role(role))
                .map(|(id, _)| *id)
                .collect();
            admins.sort();
            return (admins, true);
        }
        (found, false)
    }
}

fn trail_entry(at: DateTime<Utc>, by: Option<Uuid>, action: &str, detail: Value) -> Value {
    let mut entry = json!({"at": at, "by": by, "action": action});
    if let (Some(map), Value::Object(extra)) = (entry.as_object_mut(), detail) {
        map.extend(extra);
    }
    entry
}

fn push_trail(approval: &mut ApprovalRow, entry: Value) {
    if let Some(list) = approval.trail.as_array_mut() {
        list.push(entry);
    } else {
        approval.trail = json!([entry]);
    }
}

fn spec_of(approval: &ApprovalRow) -> Result<Spec> {
    serde_json::from_value(approval.spec.clone())
        .map_err(|e| Error::internal(format!("approval {} has a bad spec: {e}", approval.id)))
}

/// The next level at or after `from` that applies.
fn next_level(spec: &Spec, from: usize) -> Option<usize> {
    (from..spec.levels.len()).find(|i| spec.applies.get(*i).copied().unwrap_or(true))
}

/// Everything an approval change writes, collected and applied in one transaction.
struct Change {
    approval: ApprovalRow,
    revision: i64,
    tasks: Vec<TaskRow>,
    new_tasks: Vec<TaskRow>,
    notify: Vec<(Vec<Uuid>, String)>,
    history: Vec<Value>,
    decided: Option<(&'static str, Option<Uuid>, Option<String>)>,
    deadline: Option<DateTime<Utc>>,
}

impl Change {
    /// A change starting from an approval as read, with its tasks.
    fn of(approval: ApprovalRow, tasks: Vec<TaskRow>) -> Self {
        Self {
            revision: approval.revision,
            approval,
            tasks,
            new_tasks: Vec::new(),
            notify: Vec::new(),
            history: Vec::new(),
            decided: None,
            deadline: None,
        }
    }

    fn open(&self) -> impl Iterator<Item = &TaskRow> {
        self.tasks.iter().chain(&self.new_tasks).filter(|t| {
            t.round == self.approval.round
                && [task::PENDING, task::QUEUED, task::HELD].contains(&t.status.as_str())
        })
    }

    fn set(&mut self, id: Uuid, status: &str, by_comment: Option<(Option<String>, DateTime<Utc>)>) {
        if let Some(t) = self
            .tasks
            .iter_mut()
            .chain(self.new_tasks.iter_mut())
            .find(|t| t.id == id)
        {
            t.status = status.to_owned();
            if let Some((comment, at)) = by_comment {
                t.comment = comment;
                t.acted_at = Some(at);
            }
        }
    }

    fn new_task(
        &self,
        approver: Uuid,
        position: i32,
        status: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> TaskRow {
        TaskRow {
            id: new_id(),
            approval_id: self.approval.id,
            workspace_id: self.approval.workspace_id,
            level: self.approval.level,
            round: self.approval.round,
            position,
            approver,
            status: status.to_owned(),
            kind: kind.to_owned(),
            held_for: None,
            added_by: None,
            comment: None,
            acted_at: None,
            created_at: now,
        }
    }

    /// Starts level `index` (a new round of tasks) and its deadline.
    fn start_level(
        &mut self,
        world: &World,
        spec: &Spec,
        index: usize,
        audience: &Audience,
        now: DateTime<Utc>,
    ) {
        let Some(level) = spec.levels.get(index) else {
            return;
        };
        for id in self.open().map(|t| t.id).collect::<Vec<_>>() {
            self.set(id, task::CANCELLED, None);
        }
        self.approval.level = i32::try_from(index).unwrap_or(0);
        self.approval.round += 1;
        let (people, fallback) =
            world.approvers(&level.approvers, audience, self.approval.submitter);
        for (i, person) in people.iter().enumerate() {
            let status = if level.mode == Mode::Sequential && i > 0 {
                task::QUEUED
            } else {
                task::PENDING
            };
            let row = self.new_task(
                *person,
                i32::try_from(i).unwrap_or(0),
                status,
                "approver",
                now,
            );
            self.new_tasks.push(row);
        }
        let first: Vec<Uuid> = match level.mode {
            Mode::Sequential => people.first().copied().into_iter().collect(),
            _ => people.clone(),
        };
        self.notify
            .push((first, format!("Approval needed: {}", self.approval.title)));
        self.deadline = level.deadline.as_ref().and_then(|d| {
            let local = now.with_timezone(&world.zone);
            let date = world
                .calendar
                .add_working_days(local.date_naive(), d.working_days)?;
            date.and_time(local.time())
                .and_local_timezone(world.zone)
                .earliest()
                .map(|at| at.with_timezone(&Utc))
        });
        self.approval.due_at = self.deadline;
        push_trail(
            &mut self.approval,
            trail_entry(
                now,
                None,
                "level_started",
                json!({"level": index, "approvers": people, "fallback_to_admins": fallback}),
            ),
        );
    }

    /// After a task at the current level was approved: the level goes on, or is done.
    fn after_approval(
        &mut self,
        world: &World,
        spec: &Spec,
        audience: &Audience,
        approved: &TaskRow,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) {
        let level = spec
            .levels
            .get(usize::try_from(self.approval.level).unwrap_or(0))
            .cloned();
        let mode = level.as_ref().map_or(Mode::Any, |l| l.mode);
        // An approver added before someone: that person may act now.
        if let Some(held) = approved.held_for {
            self.set(held, task::PENDING, None);
            let person = self
                .tasks
                .iter()
                .chain(&self.new_tasks)
                .find(|t| t.id == held)
                .map(|t| t.approver);
            self.notify.push((
                person.into_iter().collect(),
                format!("Approval needed: {}", self.approval.title),
            ));
            return;
        }
        if mode == Mode::Any && approved.kind != "added_after" {
            // The level is decided: the other approvers need not act (people added after
            // someone still must).
            let others: Vec<Uuid> = self
                .open()
                .filter(|t| t.kind != "added_after")
                .map(|t| t.id)
                .collect();
            for id in others {
                self.set(id, task::CANCELLED, None);
            }
        }
        if mode == Mode::Sequential
            && !self
                .open()
                .any(|t| t.status == task::PENDING || t.status == task::HELD)
        {
            let next = self
                .open()
                .filter(|t| t.status == task::QUEUED)
                .min_by_key(|t| t.position)
                .map(|t| (t.id, t.approver));
            if let Some((id, person)) = next {
                self.set(id, task::PENDING, None);
                self.notify.push((
                    vec![person],
                    format!("Approval needed: {}", self.approval.title),
                ));
            }
        }
        if self.open().next().is_none() {
            match next_level(spec, usize::try_from(self.approval.level).unwrap_or(0) + 1) {
                Some(index) => self.start_level(world, spec, index, audience, now),
                None => self.decide(status::APPROVED, Some(approved.approver), comment, now),
            }
        }
    }

    fn decide(
        &mut self,
        outcome: &'static str,
        by: Option<Uuid>,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) {
        for id in self.open().map(|t| t.id).collect::<Vec<_>>() {
            self.set(id, task::CANCELLED, None);
        }
        self.approval.status = outcome.to_owned();
        self.approval.finished_at = Some(now);
        self.approval.due_at = None;
        self.deadline = None;
        self.decided = Some((outcome, by, comment));
        if let Some(submitter) = self.approval.submitter {
            self.notify.push((
                vec![submitter],
                format!("{}: {}", outcome, self.approval.title),
            ));
        }
    }
}

/// Starts an approval in the step's transaction; returns its id and who was asked.
///
/// # Errors
/// `Error::Db`.
pub async fn start(tx: &Write, clock: &SharedClock, request: Request) -> Result<(Uuid, Value)> {
    let now = clock.now();
    let live = store::records::find_for_update(tx, &request.table, request.record_id)
        .await?
        .is_some_and(|row| row.deleted_at.is_none());
    if !live {
        return Err(Error::invalid(
            "/record",
            "record_gone",
            "the run's record was deleted",
        ));
    }
    let world = World::load(tx, request.workspace_id).await?;
    let approval = ApprovalRow {
        id: new_id(),
        workspace_id: request.workspace_id,
        run_id: request.run_id,
        step_id: request.step_id.clone(),
        entity: request.entity.clone(),
        record_id: request.record_id,
        title: request.title.clone(),
        submitter: request.submitter,
        status: status::PENDING.to_owned(),
        level: 0,
        round: 0,
        spec: serde_json::to_value(&request.spec).map_err(Error::internal)?,
        lock_record: request.lock_record,
        trail: json!([trail_entry(now, request.submitter, "submitted", json!({}))]),
        revision: 0,
        due_at: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    rows::insert(tx, approval.clone()).await?;
    let audience = Audience {
        owner: request.owner,
        triggered_by: request.submitter,
        user_fields: request.user_fields,
    };
    let mut change = Change {
        approval,
        revision: 0,
        tasks: Vec::new(),
        new_tasks: Vec::new(),
        notify: Vec::new(),
        history: vec![json!({"action": "submitted", "title": request.title})],
        decided: None,
        deadline: None,
    };
    match next_level(&request.spec, 0) {
        Some(index) => change.start_level(&world, &request.spec, index, &audience, now),
        None => change.decide(
            status::APPROVED,
            None,
            Some("no level applied".to_owned()),
            now,
        ),
    }
    let id = change.approval.id;
    let asked = json!(
        change
            .new_tasks
            .iter()
            .map(|t| t.approver)
            .collect::<Vec<_>>()
    );
    apply(tx, clock, change, request.submitter, now).await?;
    Ok((id, asked))
}

/// Writes a change: the approval (fenced), tasks, history, notifications, the deadline timer,
/// and — once decided — the run's progress.
async fn apply(
    tx: &Write,
    clock: &SharedClock,
    change: Change,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut approval = change.approval.clone();
    approval.updated_at = now;
    if !rows::update(tx, &approval, change.revision).await? {
        return Err(Error::conflict(
            "/approval",
            "approval_changed",
            "the approval changed meanwhile; reload it and act again",
        ));
    }
    for t in &change.tasks {
        rows::set_task(tx, t.id, &t.status, t.comment.clone(), t.acted_at).await?;
    }
    rows::insert_tasks(tx, change.new_tasks.clone()).await?;
    // The record's history: every action, with who, when and comment.
    if let Some(model_id) =
        store::definitions::find(tx, approval.workspace_id, "entity", &approval.entity)
            .await?
            .map(|d| d.id)
    {
        let history: Vec<store::records::HistoryRow> = change
            .history
            .iter()
            .map(|entry| store::records::HistoryRow {
                id: new_id(),
                workspace_id: approval.workspace_id,
                entity_id: model_id,
                record_id: approval.record_id,
                at: now,
                actor_id: actor,
                actor_kind: if actor.is_some() { "account" } else { "system" }.to_owned(),
                channel: "workflow".to_owned(),
                operation: "approval".to_owned(),
                changes: json!({"approval": {"id": approval.id, "title": approval.title, "level": approval.level, "status": approval.status}, "action": entry}),
            })
            .collect();
        store::records::insert_history(tx, &history).await?;
    }
    for (people, title) in &change.notify {
        let people: Vec<Uuid> = people
            .iter()
            .copied()
            .filter(|p| {
                Some(*p) != actor || title.starts_with("approved") || title.starts_with("rejected")
            })
            .collect();
        if people.is_empty() {
            continue;
        }
        let message = Message {
            workspace_id: approval.workspace_id,
            to: people,
            title: title.clone(),
            body: String::new(),
            record: Some((approval.entity.clone(), approval.record_id)),
            run_id: approval.run_id,
            key: format!("approval:{}:{}:{}", approval.id, change.revision, new_id()),
            at: now,
        };
        notify::InApp.deliver(tx, clock, &message).await?;
    }
    if let Some(due) = change.deadline {
        let mut job = NewJob::new(
            DEADLINE_JOB,
            json!({"approval": approval.id, "round": approval.round}),
        );
        job.workspace_id = Some(approval.workspace_id);
        job.run_at = Some(due);
        job.dedupe_key = Some(format!("{DEADLINE_JOB}:{}:{}", approval.id, approval.round));
        jobs::enqueue(tx, clock, job).await?;
    }
    if let Some((outcome, by, comment)) = change.decided {
        resume_run(tx, clock, &approval, outcome, by, comment, now).await?;
    }
    Ok(())
}

/// Moves the run past its approval step (fenced on the run's revision).
async fn resume_run(
    tx: &Write,
    clock: &SharedClock,
    approval: &ApprovalRow,
    outcome: &str,
    by: Option<Uuid>,
    comment: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let run = runs::find_run(tx, approval.run_id).await?.filter(|run| {
        run.status == runs::status::WAITING
            && run.cursor.as_deref() == Some(approval.step_id.as_str())
    });
    let Some(run) = run else {
        // The run was cancelled (its approvals with it) or moved on: nothing may be decided.
        return Err(Error::conflict(
            "/status",
            "approval_state",
            "the workflow run behind this approval is no longer waiting for it",
        ));
    };
    let spec = spec_of(approval)?;
    let target = match outcome {
        status::APPROVED => spec.on_approve.clone(),
        status::REJECTED => spec.on_reject.clone(),
        _ => spec.on_withdraw.clone(),
    }
    .filter(|t| t != super::definition::END);
    let output = json!({"approval": approval.id, "outcome": outcome, "by": by, "comment": comment});
    let mut vars = run.vars.clone();
    if let Some(map) = vars.as_object_mut() {
        map.insert(approval.step_id.clone(), output.clone());
    }
    let seq = super::runtime::log_seq(run.revision);
    let moved = runs::advance(
        tx,
        Advance {
            run_id: run.id,
            revision: run.revision,
            status: if target.is_some() {
                runs::status::RUNNING
            } else {
                runs::status::COMPLETED
            },
            cursor: target.clone(),
            vars,
            wake_at: None,
            error: None,
            failed_step: None,
            steps_run: run.steps_run,
            now,
            log: Some(StepRow {
                run_id: run.id,
                seq,
                step_id: approval.step_id.clone(),
                step_type: "approval".to_owned(),
                status: "succeeded".to_owned(),
                input: None,
                output: Some(output),
                error: None,
                started_at: approval.created_at,
                finished_at: now,
                duration_us: (now - approval.created_at)
                    .num_microseconds()
                    .unwrap_or(i64::MAX),
            }),
        },
    )
    .await?;
    if !moved {
        return Err(Error::conflict(
            "/run",
            "run_moved",
            "the workflow run moved on meanwhile",
        ));
    }
    if target.is_some() {
        jobs::enqueue(
            tx,
            clock,
            advance_job(
                run.workspace_id,
                run.id,
                None,
                &format!("approval:{}", approval.id),
            ),
        )
        .await?;
    }
    Ok(())
}

/// What a person does with an approval.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Act {
    /// Approve one's task.
    Approve {
        /// Why.
        comment: Option<String>,
    },
    /// Reject the approval.
    Reject {
        /// Why.
        comment: Option<String>,
    },
    /// Send it back: to the submitter (default) or to an earlier level.
    Return {
        /// The level to go back to (none: the submitter).
        to_level: Option<i32>,
        /// Why.
        comment: Option<String>,
    },
    /// Hand one's task to someone else.
    Transfer {
        /// To whom.
        to: Uuid,
        /// Why.
        comment: Option<String>,
    },
    /// Ask someone to approve before (or after) oneself.
    AddApprover {
        /// Whom.
        approver: Uuid,
        /// `before` or `after`.
        position: String,
        /// Why.
        comment: Option<String>,
    },
    /// The submitter takes it back.
    Withdraw {
        /// Why.
        comment: Option<String>,
    },
    /// The submitter sends a returned approval again.
    Resubmit {
        /// What changed.
        comment: Option<String>,
    },
}

impl Act {
    fn name(&self) -> &'static str {
        match self {
            Self::Approve { .. } => "approve",
            Self::Reject { .. } => "reject",
            Self::Return { .. } => "return",
            Self::Transfer { .. } => "transfer",
            Self::AddApprover { .. } => "add_approver",
            Self::Withdraw { .. } => "withdraw",
            Self::Resubmit { .. } => "resubmit",
        }
    }

    fn comment(&self) -> Option<String> {
        match self {
            Self::Approve { comment }
            | Self::Reject { comment }
            | Self::Return { comment, .. }
            | Self::Transfer { comment, .. }
            | Self::AddApprover { comment, .. }
            | Self::Withdraw { comment }
            | Self::Resubmit { comment } => comment.clone(),
        }
        .filter(|c| !c.trim().is_empty())
    }
}

/// Who acts on an approval.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    /// The person.
    pub id: Uuid,
    /// Whether they manage workflows (they may then hand the task of someone who left to an
    /// active member).
    pub manager: bool,
}

/// Longest comment kept.
const MAX_COMMENT: usize = 2_000;

/// Acts on an approval as `actor`; answers the approval as it now stands.
///
/// # Errors
/// `Error::NotFound` (approval); `Error::Forbidden` when the actor is not a current approver
/// (or, for withdraw and resubmit, the submitter), or the action is not allowed by the step;
/// `Error::Conflict` when the approval is not in a state for it; `Error::Invalid` for a bad
/// target person or level.
pub async fn act(
    db: &Db,
    clock: &SharedClock,
    workspace_id: Uuid,
    actor: Actor,
    id: Uuid,
    act: Act,
) -> Result<ApprovalView> {
    if act
        .comment()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT)
    {
        return Err(Error::invalid(
            "/comment",
            "max_length",
            format!("a comment is at most {MAX_COMMENT} characters"),
        ));
    }
    let mut tries = 0;
    loop {
        tries += 1;
        match act_once(db, clock, workspace_id, &actor, id, &act).await {
            Err(Error::Conflict { errors, .. })
                if tries < 4
                    && errors
                        .iter()
                        .any(|e| e.code == "approval_changed" || e.code == "run_moved") => {}
            Err(Error::Db(e)) if tries < 4 && store::is_transient(&e) => {}
            other => {
                other?;
                return view(db, workspace_id, id).await;
            }
        }
    }
}

async fn act_once(
    db: &Db,
    clock: &SharedClock,
    workspace_id: Uuid,
    who: &Actor,
    id: Uuid,
    act: &Act,
) -> Result<()> {
    let actor = who.id;
    let approval = rows::find(db.conn(), id)
        .await?
        .filter(|a| a.workspace_id == workspace_id)
        .ok_or_else(|| Error::not_found("approval"))?;
    let tasks = rows::tasks(db.conn(), id).await?;
    let spec = spec_of(&approval)?;
    let now = clock.now();
    let comment = act.comment();
    let allowed = |flag: Option<bool>, what: &str| {
        if flag == Some(false) {
            Err(Error::forbidden(format!(
                "this approval does not allow {what}"
            )))
        } else {
            Ok(())
        }
    };
    let mine = tasks
        .iter()
        .find(|t| t.approver == actor && t.round == approval.round && t.status == task::PENDING)
        .cloned();
    let tx = db.write(Sharing::Alone).await?;
    let world = World::load(&tx, workspace_id).await?;
    // A workflow manager may hand on the task of an approver who left (it would wait forever).
    let mine = match (mine, act) {
        (None, Act::Transfer { .. }) if who.manager => tasks
            .iter()
            .find(|t| {
                t.round == approval.round && t.status == task::PENDING && !world.active(t.approver)
            })
            .cloned(),
        (mine, _) => mine,
    };
    let record = audience_of(&tx, &approval).await?;
    let mut change = Change::of(approval, tasks);
    let detail = |extra: Value| {
        let mut entry = json!({"action": act.name(), "comment": comment});
        if let (Some(map), Value::Object(extra)) = (entry.as_object_mut(), extra) {
            map.extend(extra);
        }
        entry
    };
    match act {
        Act::Withdraw { .. } | Act::Resubmit { .. } => {
            if change.approval.submitter != Some(actor) {
                return Err(Error::forbidden(
                    "only the submitter may withdraw or resubmit",
                ));
            }
            match (act, change.approval.status.as_str()) {
                (Act::Withdraw { .. }, status::PENDING | status::RETURNED) => {
                    allowed(spec.allow.withdraw, "withdrawing")?;
                    change.decide(status::WITHDRAWN, Some(actor), comment.clone(), now);
                }
                (Act::Resubmit { .. }, status::RETURNED) => {
                    change.approval.status = status::PENDING.to_owned();
                    match next_level(&spec, 0) {
                        Some(index) => change.start_level(&world, &spec, index, &record, now),
                        None => change.decide(status::APPROVED, None, None, now),
                    }
                }
                (_, other) => {
                    return Err(Error::conflict(
                        "/status",
                        "approval_state",
                        format!("the approval is {other}"),
                    ));
                }
            }
        }
        _ => {
            if change.approval.status != status::PENDING {
                return Err(Error::conflict(
                    "/status",
                    "approval_state",
                    format!("the approval is {}", change.approval.status),
                ));
            }
            let Some(mine) = mine else {
                return Err(Error::forbidden(
                    "you are not a current approver of this approval",
                ));
            };
            match act {
                Act::Approve { .. } => {
                    change.set(mine.id, task::APPROVED, Some((comment.clone(), now)));
                    change.after_approval(&world, &spec, &record, &mine, comment.clone(), now);
                }
                Act::Reject { .. } => {
                    change.set(mine.id, task::REJECTED, Some((comment.clone(), now)));
                    change.decide(status::REJECTED, Some(actor), comment.clone(), now);
                }
                Act::Return { to_level, .. } => {
                    allowed(spec.allow.send_back, "returning")?;
                    change.set(mine.id, task::RETURNED, Some((comment.clone(), now)));
                    match to_level {
                        None => {
                            for id in change.open().map(|t| t.id).collect::<Vec<_>>() {
                                change.set(id, task::CANCELLED, None);
                            }
                            change.approval.status = status::RETURNED.to_owned();
                            change.approval.due_at = None;
                            if let Some(submitter) = change.approval.submitter {
                                change.notify.push((
                                    vec![submitter],
                                    format!("Returned to you: {}", change.approval.title),
                                ));
                            }
                        }
                        Some(level) => {
                            let index = usize::try_from(*level).ok().filter(|l| {
                                *l < usize::try_from(change.approval.level).unwrap_or(0)
                                    && spec.applies.get(*l).copied().unwrap_or(false)
                            });
                            let Some(index) = index else {
                                return Err(Error::invalid(
                                    "/to_level",
                                    "level",
                                    format!(
                                        "return to an earlier level that applied (below {})",
                                        change.approval.level
                                    ),
                                ));
                            };
                            change.start_level(&world, &spec, index, &record, now);
                        }
                    }
                }
                Act::Transfer { to, .. } => {
                    // Handing on the task of someone who left is always allowed.
                    if mine.approver == actor {
                        allowed(spec.allow.transfer, "transferring")?;
                    }
                    if !world.active(*to) || *to == mine.approver {
                        return Err(Error::invalid(
                            "/to",
                            "member",
                            "transfer to another active member",
                        ));
                    }
                    change.set(mine.id, task::TRANSFERRED, Some((comment.clone(), now)));
                    let mut row =
                        change.new_task(*to, mine.position, task::PENDING, &mine.kind, now);
                    row.held_for = mine.held_for;
                    row.added_by = Some(actor);
                    change.new_tasks.push(row);
                    change.notify.push((
                        vec![*to],
                        format!("Approval needed: {}", change.approval.title),
                    ));
                }
                Act::AddApprover {
                    approver, position, ..
                } => {
                    allowed(spec.allow.add_approver, "adding approvers")?;
                    if !world.active(*approver) || *approver == actor {
                        return Err(Error::invalid(
                            "/approver",
                            "member",
                            "add another active member",
                        ));
                    }
                    let before = match position.as_str() {
                        "before" => true,
                        "after" => false,
                        _ => {
                            return Err(Error::invalid(
                                "/position",
                                "enum",
                                "position is before or after",
                            ));
                        }
                    };
                    let mut row = change.new_task(
                        *approver,
                        mine.position,
                        task::PENDING,
                        if before {
                            "added_before"
                        } else {
                            "added_after"
                        },
                        now,
                    );
                    row.added_by = Some(actor);
                    if before {
                        row.held_for = Some(mine.id);
                        change.set(mine.id, task::HELD, None);
                        change.new_tasks.push(row);
                    } else {
                        change.new_tasks.push(row);
                        change.set(mine.id, task::APPROVED, Some((comment.clone(), now)));
                        change.after_approval(&world, &spec, &record, &mine, comment.clone(), now);
                    }
                    change.notify.push((
                        vec![*approver],
                        format!("Approval needed: {}", change.approval.title),
                    ));
                }
                Act::Withdraw { .. } | Act::Resubmit { .. } => {}
            }
        }
    }
    let extra = match act {
        Act::Transfer { to, .. } => json!({"to": to}),
        Act::AddApprover {
            approver, position, ..
        } => json!({"approver": approver, "position": position}),
        Act::Return { to_level, .. } => json!({"to_level": to_level}),
        _ => json!({}),
    };
    let entry = detail(extra);
    push_trail(
        &mut change.approval,
        trail_entry(now, Some(actor), act.name(), entry.clone()),
    );
    change.history.push(entry);
    apply(&tx, clock, change, Some(actor), now).await?;
    match tx.commit().await? {
        Outcome::Committed => Ok(()),
        Outcome::RunAgain => Err(Error::Unavailable(
            "the action was rolled back with another change; send it again".to_owned(),
        )),
    }
}

/// The record's owner and user fields, for approvers named through it.
async fn audience_of(conn: &impl store::Conn, approval: &ApprovalRow) -> Result<Audience> {
    let model =
        store::definitions::find(conn, approval.workspace_id, "entity", &approval.entity).await?;
    let row = match model {
        Some(model) => {
            store::records::find(
                conn,
                &crate::definitions::entity::table_name(model.id),
                approval.record_id,
            )
            .await?
        }
        None => None,
    };
    Ok(Audience {
        owner: row.as_ref().and_then(|r| r.owner),
        triggered_by: approval.submitter,
        user_fields: match (row, spec_of(approval)) {
            (Some(row), Ok(spec)) => row
                .doc
                .into_iter()
                .filter(|(key, _)| spec.user_fields.contains(key))
                .collect(),
            _ => HashMap::new(),
        },
    })
}

/// `workflow.approval_deadline`: a level's deadline passed: remind the pending approvers, then
/// escalate, approve, return or reject as the level says. A level decided meanwhile (a newer
/// round) ignores it.
#[derive(Debug)]
pub struct DeadlineTimer {
    /// The definitions.
    pub registry: Arc<Registry>,
}

#[derive(Debug, Deserialize)]
struct DeadlinePayload {
    approval: Uuid,
    round: i32,
}

#[async_trait::async_trait]
impl Handler for DeadlineTimer {
    fn kind(&self) -> &'static str {
        DEADLINE_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: DeadlinePayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed deadline: {e}")))?;
        let now = ctx.clock.now();
        let tx = ctx.db.write(Sharing::Alone).await?;
        let approval = rows::find(&tx, payload.approval).await?;
        let Some(approval) =
            approval.filter(|a| a.status == status::PENDING && a.round == payload.round)
        else {
            ctx.complete_in(&tx).await?;
            return committed(tx).await;
        };
        let spec = spec_of(&approval)?;
        let level = spec
            .levels
            .get(usize::try_from(approval.level).unwrap_or(0))
            .cloned();
        let Some(deadline) = level.and_then(|l| l.deadline) else {
            ctx.complete_in(&tx).await?;
            return committed(tx).await;
        };
        let tasks = rows::tasks(&tx, approval.id).await?;
        let world = World::load(&tx, approval.workspace_id).await?;
        let record = audience_of(&tx, &approval).await?;
        let mut change = Change::of(approval, tasks);
        let pending: Vec<TaskRow> = change
            .open()
            .filter(|t| t.status == task::PENDING)
            .cloned()
            .collect();
        if deadline.remind != Some(false) {
            change.notify.push((
                pending.iter().map(|t| t.approver).collect(),
                format!("Overdue: {}", change.approval.title),
            ));
        }
        let mut entry = json!({"action": "deadline", "then": deadline.then});
        match deadline.then {
            OnDeadline::None => {}
            OnDeadline::Escalate => {
                let (people, _) =
                    world.approvers(&deadline.escalate_to, &record, change.approval.submitter);
                let position = change.tasks.iter().map(|t| t.position).max().unwrap_or(0) + 1;
                for person in &people {
                    if !pending.iter().any(|t| t.approver == *person) {
                        let row =
                            change.new_task(*person, position, task::PENDING, "escalated", now);
                        change.new_tasks.push(row);
                    }
                }
                change.notify.push((
                    people.clone(),
                    format!("Escalated to you: {}", change.approval.title),
                ));
                entry["escalated_to"] = json!(people);
            }
            OnDeadline::Approve => {
                for t in &pending {
                    change.set(
                        t.id,
                        task::APPROVED,
                        Some((Some("approved at the deadline".to_owned()), now)),
                    );
                }
                // Sequential and all-of levels are approved whole.
                for id in change.open().map(|t| t.id).collect::<Vec<_>>() {
                    change.set(
                        id,
                        task::APPROVED,
                        Some((Some("approved at the deadline".to_owned()), now)),
                    );
                }
                match next_level(
                    &spec,
                    usize::try_from(change.approval.level).unwrap_or(0) + 1,
                ) {
                    Some(index) => change.start_level(&world, &spec, index, &record, now),
                    None => change.decide(
                        status::APPROVED,
                        None,
                        Some("approved at the deadline".to_owned()),
                        now,
                    ),
                }
            }
            OnDeadline::Return => {
                for id in change.open().map(|t| t.id).collect::<Vec<_>>() {
                    change.set(id, task::CANCELLED, None);
                }
                change.approval.status = status::RETURNED.to_owned();
                change.approval.due_at = None;
                if let Some(submitter) = change.approval.submitter {
                    change.notify.push((
                        vec![submitter],
                        format!("Returned to you: {}", change.approval.title),
                    ));
                }
            }
            OnDeadline::Reject => change.decide(
                status::REJECTED,
                None,
                Some("rejected at the deadline".to_owned()),
                now,
            ),
        }
        push_trail(
            &mut change.approval,
            trail_entry(now, None, "deadline", entry.clone()),
        );
        change.history.push(entry);
        apply(&tx, &ctx.clock, change, None, now).await?;
        ctx.complete_in(&tx).await?;
        committed(tx).await
    }
}

async fn committed(tx: Write) -> Result<(), JobFailure> {
    match tx.commit().await? {
        Outcome::Committed => Ok(()),
        Outcome::RunAgain => Err(JobFailure::Retry(
            "rolled back with another change; runs again".to_owned(),
        )),
    }
}

/// An approval as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    /// Id.
    pub id: Uuid,
    /// What it is about.
    pub title: String,
    /// pending, returned, approved, rejected, withdrawn or cancelled.
    pub status: String,
    /// The record's entity.
    pub entity: String,
    /// The record.
    pub record_id: Uuid,
    /// Who submitted it.
    pub submitter: Option<Uuid>,
    /// The current level (from 0).
    pub level: i32,
    /// The levels.
    pub levels: Value,
    /// When the current level's deadline passes.
    pub due_at: Option<DateTime<Utc>>,
    /// The run waiting on it.
    pub run_id: Uuid,
    /// Every task, in order.
    pub tasks: Vec<TaskView>,
    /// Every action, in order.
    pub trail: Value,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Decided.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One approver's task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// Id.
    pub id: Uuid,
    /// The level.
    pub level: i32,
    /// The approver.
    pub approver: Uuid,
    /// pending, queued, held, approved, rejected, returned, transferred or cancelled.
    pub status: String,
    /// approver, added_before, added_after or escalated.
    pub kind: String,
    /// Who added or transferred it.
    pub added_by: Option<Uuid>,
    /// The approver's comment.
    pub comment: Option<String>,
    /// When they acted.
    pub acted_at: Option<DateTime<Utc>>,
}

fn view_of(approval: ApprovalRow, tasks: Vec<TaskRow>) -> ApprovalView {
    ApprovalView {
        id: approval.id,
        title: approval.title,
        status: approval.status,
        entity: approval.entity,
        record_id: approval.record_id,
        submitter: approval.submitter,
        level: approval.level,
        levels: approval.spec.get("levels").cloned().unwrap_or(Value::Null),
        due_at: approval.due_at,
        run_id: approval.run_id,
        tasks: tasks
            .into_iter()
            .map(|t| TaskView {
                id: t.id,
                level: t.level,
                approver: t.approver,
                status: t.status,
                kind: t.kind,
                added_by: t.added_by,
                comment: t.comment,
                acted_at: t.acted_at,
            })
            .collect(),
        trail: approval.trail,
        created_at: approval.created_at,
        finished_at: approval.finished_at,
    }
}

/// One approval with its tasks.
///
/// # Errors
/// `Error::NotFound`.
pub async fn view(db: &Db, workspace_id: Uuid, id: Uuid) -> Result<ApprovalView> {
    let approval = rows::find(db.conn(), id)
        .await?
        .filter(|a| a.workspace_id == workspace_id)
        .ok_or_else(|| Error::not_found("approval"))?;
    let tasks = rows::tasks(db.conn(), id).await?;
    Ok(view_of(approval, tasks))
}

/// One approval, for someone involved (an approver, the submitter) or a workflow manager.
///
/// # Errors
/// `Error::NotFound` for anyone else (as for an unknown one).
pub async fn get(
    db: &Db,
    workspace_id: Uuid,
    reader: Uuid,
    manager: bool,
    id: Uuid,
) -> Result<ApprovalView> {
    let approval = view(db, workspace_id, id).await?;
    let involved =
        approval.submitter == Some(reader) || approval.tasks.iter().any(|t| t.approver == reader);
    if involved || manager {
        Ok(approval)
    } else {
        Err(Error::not_found("approval"))
    }
}

/// The latest approvals of a record that `reader` takes part in (all of them for workflow
/// managers).
///
/// # Errors
/// `Error::Db`.
pub async fn of_record(
    db: &Db,
    workspace_id: Uuid,
    reader: Uuid,
    manager: bool,
    entity: &str,
    record_id: Uuid,
) -> Result<Vec<ApprovalView>> {
    let mut views = Vec::new();
    for approval in rows::of_record(db.conn(), workspace_id, entity, record_id, 10).await? {
        let tasks = rows::tasks(db.conn(), approval.id).await?;
        let view = view_of(approval, tasks);
        let involved =
            view.submitter == Some(reader) || view.tasks.iter().any(|t| t.approver == reader);
        if involved || manager {
            views.push(view);
        }
    }
    Ok(views)
}

/// How many approvals wait on `reader`.
///
/// # Errors
/// `Error::Db`.
pub async fn pending_count(db: &Db, workspace_id: Uuid, reader: Uuid) -> Result<u64> {
    rows::pending_count(db.conn(), workspace_id, reader).await
}

/// The approvals inbox: `pending` (waiting on the reader), `done` (the reader acted),
/// `submitted` (by the reader), or `all` (workflow managers).
///
/// # Errors
/// `Error::Invalid` for an unknown box; `Error::Forbidden` for `all` without the right.
pub async fn inbox(
    db: &Db,
    workspace_id: Uuid,
    reader: Uuid,
    manager: bool,
    which: &str,
    limit: u64,
) -> Result<Vec<ApprovalView>> {
    let rows = match which {
        "pending" => {
            rows::assigned_to(db.conn(), workspace_id, reader, &[task::PENDING], limit).await?
        }
        "done" => {
            rows::assigned_to(
                db.conn(),
                workspace_id,
                reader,
                &[
                    task::APPROVED,
                    task::REJECTED,
                    task::RETURNED,
                    task::TRANSFERRED,
                ],
                limit,
            )
            .await?
        }
        "submitted" => rows::listed(db.conn(), workspace_id, Some(reader), None, limit).await?,
        "all" if manager => rows::listed(db.conn(), workspace_id, None, None, limit).await?,
        "all" => {
            return Err(Error::forbidden(
                "all approvals are for those who manage workflows",
            ));
        }
        _ => {
            return Err(Error::invalid(
                "/box",
                "enum",
                "box is pending, done, submitted or all",
            ));
        }
    };
    let mut views = Vec::with_capacity(rows.len());
    for approval in rows {
        let tasks = rows::tasks(db.conn(), approval.id).await?;
        views.push(view_of(approval, tasks));
    }
    Ok(views)
}

/// The pending approval locking a record, if any (writes by people are refused meanwhile).
///
/// # Errors
/// `Error::Db`.
pub async fn lock_on(
    conn: &impl store::Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
) -> Result<Option<(Uuid, String)>> {
    Ok(rows::lock_on(conn, workspace_id, entity, record_id)
        .await?
        .map(|a| (a.id, a.title)))
}

/// Cancels the open approvals of a run (it was cancelled).
///
/// # Errors
/// `Error::Db`.
pub async fn cancel_for_run(tx: &impl store::Conn, run_id: Uuid, now: DateTime<Utc>) -> Result<()> {
    for mut approval in rows::of_run(tx, run_id).await? {
        if approval.status != status::PENDING && approval.status != status::RETURNED {
            continue;
        }
        let revision = approval.revision;
        for t in rows::tasks(tx, approval.id).await? {
            if [task::PENDING, task::QUEUED, task::HELD].contains(&t.status.as_str()) {
                rows::set_task(tx, t.id, task::CANCELLED, None, None).await?;
            }
        }
        approval.status = status::CANCELLED.to_owned();
        approval.finished_at = Some(now);
        approval.updated_at = now;
        push_trail(
            &mut approval,
            trail_entry(now, None, "cancelled", json!({})),
        );
        rows::update(tx, &approval, revision).await?;
    }
    Ok(())
}
