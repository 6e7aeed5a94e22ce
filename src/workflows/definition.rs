//! Workflow definitions: the typed form of a document (trigger, condition, steps), compiled once
//! per published version (scripts, templates and step links checked), and the checks that refuse a
//! bad definition at save with a JSON pointer.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::duration::Span;
use crate::error::FieldError;
use crate::render::sandbox;
use crate::script::{Script, ScriptEngine};

/// A message text: one template for everyone, or one per language (`{"en": …, "zh-CN": …}`),
/// each recipient getting their own language's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Text {
    /// One template.
    One(String),
    /// A template per language tag.
    ByLanguage(std::collections::BTreeMap<String, String>),
}

impl Text {
    /// The template for language `tag` (its own, else English, else the first given), with
    /// the pointer suffix it sits at (`""`, `"/zh-CN"`).
    pub fn for_language(&self, tag: &str) -> (&str, String) {
        match self {
            Self::One(text) => (text, String::new()),
            Self::ByLanguage(texts) => texts
                .get_key_value(tag)
                .or_else(|| texts.get_key_value("en"))
                .or_else(|| texts.iter().next())
                .map_or(("", String::new()), |(key, text)| {
                    (text.as_str(), format!("/{}", escape(key)))
                }),
        }
    }

    /// Whether the text differs by language.
    pub fn is_localized(&self) -> bool {
        matches!(self, Self::ByLanguage(_))
    }

    /// Each template with the pointer suffix it sits at (`""`, `"/zh-CN"`).
    pub fn templates(&self) -> Vec<(String, &str)> {
        match self {
            Self::One(text) => vec![(String::new(), text.as_str())],
            Self::ByLanguage(texts) => texts
                .iter()
                .map(|(tag, text)| (format!("/{}", escape(tag)), text.as_str()))
                .collect(),
        }
    }
}

/// What starts a run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// A record was created.
    RecordCreated,
    /// A record was changed (optionally: one of these fields).
    RecordUpdated {
        /// Only when one of these changed (empty: any).
        #[serde(default)]
        fields: Vec<String>,
    },
    /// A record was deleted.
    RecordDeleted,
    /// A field changed, optionally from and to given values.
    FieldChanged {
        /// The field.
        field: String,
        /// The old value is one of these.
        from: Option<Vec<Value>>,
        /// The new value is one of these.
        to: Option<Vec<Value>>,
        /// A create setting the field counts (default true).
        on_create: Option<bool>,
    },
    /// A cron schedule in the workspace time zone.
    Schedule {
        /// Five-field cron expression.
        cron: String,
    },
    /// A date relative to a record's date or date-time field.
    Date {
        /// The field.
        field: String,
        /// So long before the field's instant.
        before: Option<String>,
        /// So long after it.
        after: Option<String>,
        /// Count days as working days.
        #[serde(default)]
        working_days: bool,
        /// Time of day for a date field (`HH:MM`, default 09:00).
        at: Option<String>,
        /// Every year on the date's anniversary (birthdays, contract anniversaries).
        #[serde(default)]
        yearly: bool,
    },
    /// Started by a person (a button or an API call).
    Manual {
        /// The button's label.
        button: Option<Value>,
        /// Roles allowed to start it (empty: whoever may read the record).
        #[serde(default)]
        roles: Vec<String>,
    },
}

impl Trigger {
    /// Its type name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RecordCreated => "record_created",
            Self::RecordUpdated { .. } => "record_updated",
            Self::RecordDeleted => "record_deleted",
            Self::FieldChanged { .. } => "field_changed",
            Self::Schedule { .. } => "schedule",
            Self::Date { .. } => "date",
            Self::Manual { .. } => "manual",
        }
    }

    /// Whether record writes start it (so the write path asks about it).
    pub fn watches_writes(&self) -> bool {
        matches!(
            self,
            Self::RecordCreated
                | Self::RecordUpdated { .. }
                | Self::RecordDeleted
                | Self::FieldChanged { .. }
                | Self::Date { .. }
        )
    }
}

/// How `assign_owner` picks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each candidate in turn (the position is kept in the database).
    RoundRobin,
    /// The candidate owning the fewest live records of the entity.
    LeastLoaded,
    /// A script names the owner.
    Rule,
}

/// A branch case.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// rhai condition.
    pub when: String,
    /// The step to go to.
    pub goto: String,
}

/// How the approvers of a level decide.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The first approval decides the level.
    #[default]
    Any,
    /// Everyone approves.
    All,
    /// One after another, in order.
    Sequential,
}

/// What happens when a level's deadline passes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDeadline {
    /// Only the reminder.
    #[default]
    None,
    /// More approvers join the level.
    Escalate,
    /// The level is approved.
    Approve,
    /// Returned to the submitter.
    Return,
    /// Rejected.
    Reject,
}

/// A level's deadline.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Deadline {
    /// Working days from the level's start.
    pub working_days: i64,
    /// Remind the pending approvers (default true).
    pub remind: Option<bool>,
    /// Then.
    #[serde(default)]
    pub then: OnDeadline,
    /// Who joins on escalation.
    #[serde(default)]
    pub escalate_to: Vec<String>,
}

/// One level of an approval.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Level {
    /// Its label.
    pub label: Option<Value>,
    /// Who approves.
    pub approvers: Vec<String>,
    /// How they decide.
    #[serde(default)]
    pub mode: Mode,
    /// It applies only when this holds.
    pub when: Option<String>,
    /// Its deadline.
    pub deadline: Option<Deadline>,
}

/// Which actions approvers and the submitter may take (each allowed unless turned off).
#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
pub struct Allow {
    /// Return to the submitter or an earlier level.
    #[serde(rename = "return")]
    pub send_back: Option<bool>,
    /// Add an approver before or after oneself.
    pub add_approver: Option<bool>,
    /// Hand one's task to someone else.
    pub transfer: Option<bool>,
    /// The submitter withdraws.
    pub withdraw: Option<bool>,
}

/// What a step does.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Set fields of the run's record.
    SetFields {
        /// Values by field.
        fields: Map<String, Value>,
    },
    /// Create a record.
    CreateRecord {
        /// Its entity.
        entity: String,
        /// Values by field.
        fields: Map<String, Value>,
        /// Its owner (default: the run record's owner).
        owner: Option<Value>,
    },
    /// Change a record.
    UpdateRecord {
        /// Its entity.
        entity: String,
        /// Its id.
        record: Value,
        /// Values by field.
        fields: Map<String, Value>,
    },
    /// Give the run's record a new owner.
    AssignOwner {
        /// How to pick.
        strategy: Strategy,
        /// Candidates by role.
        role: Option<String>,
        /// Candidates by org unit.
        unit: Option<Uuid>,
        /// Candidates by the name of a team or department, a template (`{{ record.region }}组`):
        /// the members of that unit and below; with `role` too, those holding the role.
        team: Option<String>,
        /// Candidates by id.
        members: Option<Vec<Uuid>>,
        /// The rule (strategy `rule`).
        script: Option<String>,
    },
    /// Tell people, in the app and by email.
    Notify {
        /// Recipients.
        to: Vec<String>,
        /// Channels (default in-app).
        channels: Option<Vec<String>>,
        /// Title (template, or one per language).
        title: Text,
        /// Body (template, or one per language).
        body: Option<Text>,
    },
    /// Email a report to people, each computed with their own access.
    SendReport {
        /// The report's key.
        report: String,
        /// Recipients.
        to: Vec<String>,
        /// The period (default the report's own).
        period: Option<String>,
        /// Subject (template; default the report's label).
        subject: Option<String>,
    },
    /// POST JSON to a URL (through the outbox).
    Webhook {
        /// Where.
        url: String,
        /// What (strings are templates).
        body: Option<Value>,
    },
    /// Pause the run.
    Wait {
        /// For so long.
        duration: Option<String>,
        /// Count days as working days.
        #[serde(default)]
        working_days: bool,
        /// Until this date or instant.
        until: Option<Value>,
    },
    /// Jump to the first case whose condition holds.
    Branch {
        /// Cases in order.
        cases: Vec<Case>,
        /// Where to go when none holds (default: the next step).
        otherwise: Option<String>,
    },
    /// Run a script; its result is the step's output.
    Script {
        /// rhai.
        script: String,
    },
    /// Ask people to approve; the run waits for the decision.
    Approval {
        /// What approvers see.
        title: Option<String>,
        /// The levels, in order.
        levels: Vec<Level>,
        /// Lock the record while pending (default true).
        lock_record: Option<bool>,
        /// Allowed actions.
        #[serde(default)]
        allow: Allow,
        /// Where a rejection goes (default: the end).
        on_reject: Option<String>,
        /// Where a withdrawal goes (default: the end).
        on_withdraw: Option<String>,
    },
}

impl Action {
    /// Its type name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SetFields { .. } => "set_fields",
            Self::CreateRecord { .. } => "create_record",
            Self::UpdateRecord { .. } => "update_record",
            Self::AssignOwner { .. } => "assign_owner",
            Self::Notify { .. } => "notify",
            Self::SendReport { .. } => "send_report",
            Self::Webhook { .. } => "webhook",
            Self::Wait { .. } => "wait",
            Self::Branch { .. } => "branch",
            Self::Script { .. } => "script",
            Self::Approval { .. } => "approval",
        }
    }
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// Its id (unique in the workflow).
    pub id: String,
    /// Its label.
    pub label: Option<Value>,
    /// The step after it (`end` ends the run; default the next in the list).
    pub next: Option<String>,
    /// What it does.
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, Deserialize)]
struct Document {
    entity: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    trigger: Trigger,
    condition: Option<String>,
    steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

/// The pseudo step id that ends a run.
pub const END: &str = "end";

/// A workflow version, compiled.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Its key.
    pub key: String,
    /// Its definition id.
    pub definition_id: Uuid,
    /// Its version.
    pub version: i32,
    /// The document.
    pub document: Arc<Value>,
    /// The entity its runs carry records of.
    pub entity: Option<String>,
    /// Whether it starts runs.
    pub enabled: bool,
    /// What starts it.
    pub trigger: Trigger,
    /// The steps in order.
    pub steps: Vec<Step>,
    index: HashMap<String, usize>,
    /// Compiled scripts by the JSON pointer of their text.
    scripts: HashMap<String, Script>,
}

impl Workflow {
    /// Compiles a document that passed its meta-schema; every problem located under `prefix`.
    ///
    /// # Errors
    /// Every problem found (bad scripts and templates with line and column, dangling step
    /// references, duplicate ids, bad durations and cron expressions).
    pub fn compile(
        engine: &ScriptEngine,
        key: &str,
        definition_id: Uuid,
        version: i32,
        document: Arc<Value>,
        prefix: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let parsed: Document = serde_json::from_value((*document).clone()).map_err(|e| {
            vec![FieldError::new(
                prefix,
                "workflow",
                format!("not a workflow: {e}"),
            )]
        })?;
        let mut problems = Vec::new();
        let mut scripts = HashMap::new();
        let mut compile =
            |pointer: String, source: &str, problems: &mut Vec<FieldError>| match engine
                .compile(source, &format!("{prefix}{pointer}"))
            {
                Ok(script) => {
                    scripts.insert(pointer, script);
                }
                Err(crate::error::Error::Invalid { errors, .. }) => problems.extend(errors),
                Err(other) => problems.push(FieldError::new(
                    format!("{prefix}{pointer}"),
                    "script_syntax",
                    other.to_string(),
                )),
            };
        if parsed.trigger.name() != "schedule" && parsed.entity.is_none() {
            problems.push(FieldError::new(
                format!("{prefix}/entity"),
                "required",
                format!(
                    "a {} trigger needs the entity whose records it watches",
                    parsed.trigger.name()
                ),
            ));
        }
        match &parsed.trigger {
            Trigger::Schedule { cron } => {
                if let Err(e) = parse_cron(cron) {
                    problems.push(FieldError::new(
                        format!("{prefix}/trigger/cron"),
                        "cron",
                        format!("not a cron expression (minute hour day month weekday): {e}"),
                    ));
                }
            }
            Trigger::Date {
                before,
                after,
                working_days,
                ..
            } => {
                let (name, text) = match (before, after) {
                    (Some(b), _) => ("before", Some(b)),
                    (None, Some(a)) => ("after", Some(a)),
                    _ => ("before", None),
                };
                if let Some(text) = text {
                    check_span(
                        text,
                        *working_days,
                        &format!("{prefix}/trigger/{name}"),
                        &mut problems,
                    );
                }
            }
            _ => {}
        }
        if let Some(condition) = &parsed.condition {
            compile("/condition".to_owned(), condition, &mut problems);
        }
        let mut index = HashMap::new();
        for (i, step) in parsed.steps.iter().enumerate() {
            if step.id == END || step.id == super::runtime::CONDITION {
                problems.push(FieldError::new(
                    format!("{prefix}/steps/{i}/id"),
                    "reserved",
                    format!(
                        "`{}` is reserved (`end` ends a run, `condition` is where a failed condition stops one); choose another step id",
                        step.id
                    ),
                ));
            }
            if index.insert(step.id.clone(), i).is_some() {
                problems.push(FieldError::new(
                    format!("{prefix}/steps/{i}/id"),
                    "duplicate",
                    format!("another step is already called {:?}", step.id),
                ));
            }
        }
        let targets_known = |target: &str| target == END || index.contains_key(target);
        for (i, step) in parsed.steps.iter().enumerate() {
            let at = format!("/steps/{i}");
            if let Some(next) = &step.next
                && !targets_known(next)
            {
                problems.push(dangling(prefix, &format!("{at}/next"), next));
            }
            match &step.action {
                Action::SetFields { fields } | Action::CreateRecord { fields, .. } => {
                    check_values(
                        fields,
                        &format!("{at}/fields"),
                        prefix,
                        &mut compile,
                        &mut problems,
                    );
                    if let Action::CreateRecord {
                        owner: Some(owner), ..
                    } = &step.action
                    {
                        check_value(
                            owner,
                            &format!("{at}/owner"),
                            prefix,
                            &mut compile,
                            &mut problems,
                        );
                    }
                }
                Action::UpdateRecord { record, fields, .. } => {
                    check_value(
                        record,
                        &format!("{at}/record"),
                        prefix,
                        &mut compile,
                        &mut problems,
                    );
                    check_values(
                        fields,
                        &format!("{at}/fields"),
                        prefix,
                        &mut compile,
                        &mut problems,
                    );
                }
                Action::AssignOwner {
                    strategy,
                    role,
                    unit,
                    team,
                    members,
                    script,
                } => {
                    if team.is_some() && (unit.is_some() || members.is_some()) {
                        problems.push(FieldError::new(
                            format!("{prefix}{at}/team"),
                            "candidates",
                            "a team goes alone or with a role, not with unit or members",
                        ));
                    }
                    let pools = [
                        role.is_some() || team.is_some(),
                        unit.is_some(),
                        members.is_some(),
                    ]
                    .into_iter()
                    .filter(|x| *x)
                    .count();
                    match (strategy, script) {
                        (Strategy::Rule, Some(script)) => {
                            compile(format!("{at}/script"), script, &mut problems);
                        }
                        (Strategy::Rule, None) => problems.push(FieldError::new(
                            format!("{prefix}{at}/script"),
                            "required",
                            "the rule strategy needs a script naming the owner",
                        )),
                        (_, Some(_)) => problems.push(FieldError::new(
                            format!("{prefix}{at}/script"),
                            "unexpected",
                            "only the rule strategy takes a script",
                        )),
                        (_, None) if pools != 1 => problems.push(FieldError::new(
                            format!("{prefix}{at}"),
                            "candidates",
                            "name the candidates with exactly one of role, unit or members",
                        )),
                        _ => {}
                    }
                }
                Action::Notify { title, body, .. } => {
                    for (name, text) in
                        std::iter::once(("title", title)).chain(body.iter().map(|b| ("body", b)))
                    {
                        for (suffix, template) in text.templates() {
                            check_template(
                                template,
                                &format!("{at}/{name}{suffix}"),
                                prefix,
                                &mut problems,
                            );
                        }
                    }
                }
                Action::SendReport {
                    subject, period, ..
                } => {
                    if let Some(subject) = subject {
                        check_template(subject, &format!("{at}/subject"), prefix, &mut problems);
                    }
                    if let Some(period) = period
                        && let Err(crate::error::Error::Invalid { errors, .. }) =
                            crate::reports::Period::parse(period, &format!("{prefix}{at}/period"))
                    {
                        problems.extend(errors);
                    }
                }
                Action::Webhook { url, body } => {
                    check_template(url, &format!("{at}/url"), prefix, &mut problems);
                    if let Some(body) = body {
                        check_json_templates(body, &format!("{at}/body"), prefix, &mut problems);
                    }
                }
                Action::Wait {
                    duration,
                    working_days,
                    until,
                } => {
                    if let Some(text) = duration {
                        check_span(
                            text,
                            *working_days,
                            &format!("{prefix}{at}/duration"),
                            &mut problems,
                        );
                    }
                    if let Some(until) = until {
                        check_value(
                            until,
                            &format!("{at}/until"),
                            prefix,
                            &mut compile,
                            &mut problems,
                        );
                    }
                }
                Action::Branch { cases, otherwise } => {
                    for (c, case) in cases.iter().enumerate() {
                        compile(format!("{at}/cases/{c}/when"), &case.when, &mut problems);
                        if !targets_known(&case.goto) {
                            problems.push(dangling(
                                prefix,
                                &format!("{at}/cases/{c}/goto"),
                                &case.goto,
                            ));
                        }
                    }
                    if let Some(target) = otherwise
                        && !targets_known(target)
                    {
                        problems.push(dangling(prefix, &format!("{at}/otherwise"), target));
                    }
                }
                Action::Script { script } => compile(format!("{at}/script"), script, &mut problems),
                Action::Approval {
                    title,
                    levels,
                    on_reject,
                    on_withdraw,
                    ..
                } => {
                    if let Some(title) = title {
                        check_template(title, &format!("{at}/title"), prefix, &mut problems);
                    }
                    for (l, level) in levels.iter().enumerate() {
                        if let Some(when) = &level.when {
                            compile(format!("{at}/levels/{l}/when"), when, &mut problems);
                        }
                        if let Some(deadline) = &level.deadline
                            && deadline.then == OnDeadline::Escalate
                            && deadline.escalate_to.is_empty()
                        {
                            problems.push(FieldError::new(
                                format!("{prefix}{at}/levels/{l}/deadline/escalate_to"),
                                "required",
                                "escalation needs the approvers to escalate to",
                            ));
                        }
                    }
                    for (name, target) in [("on_reject", on_reject), ("on_withdraw", on_withdraw)] {
                        if let Some(target) = target
                            && !targets_known(target)
                        {
                            problems.push(dangling(prefix, &format!("{at}/{name}"), target));
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            key: key.to_owned(),
            definition_id,
            version,
            document,
            entity: parsed.entity,
            enabled: parsed.enabled,
            trigger: parsed.trigger,
            steps: parsed.steps,
            index,
            scripts,
        })
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<(usize, &Step)> {
        let i = *self.index.get(id)?;
        Some((i, self.steps.get(i)?))
    }

    /// The step after the one at `position` when it does not say (`None`: the end).
    pub fn after(&self, position: usize) -> Option<&str> {
        if let Some(step) = self.steps.get(position)
            && let Some(next) = &step.next
        {
            return (next != END).then_some(next.as_str());
        }
        self.steps.get(position + 1).map(|s| s.id.as_str())
    }

    /// The first step's id.
    pub fn first(&self) -> Option<&str> {
        self.steps.first().map(|s| s.id.as_str())
    }

    /// The compiled script whose text is at `pointer` (`/condition`, `/steps/2/script`).
    pub fn script(&self, pointer: &str) -> Option<&Script> {
        self.scripts.get(pointer)
    }

    /// The label in English, for messages.
    pub fn label(&self) -> String {
        self.document
            .pointer("/label/en")
            .and_then(Value::as_str)
            .unwrap_or(&self.key)
            .to_owned()
    }
}

fn dangling(prefix: &str, pointer: &str, target: &str) -> FieldError {
    FieldError::new(
        format!("{prefix}{pointer}"),
        "unknown_step",
        format!("no step is called {target:?} (name a step id, or `end`)"),
    )
}

fn check_span(text: &str, working_days: bool, pointer: &str, problems: &mut Vec<FieldError>) {
    match Span::parse(text) {
        None => problems.push(FieldError::new(
            pointer,
            "duration",
            format!("{text:?} is not an ISO 8601 duration such as P3D, PT2H or P1DT12H"),
        )),
        Some(span) if working_days && (span.seconds != 0 || span.days == 0) => {
            problems.push(FieldError::new(
                pointer,
                "duration",
                "working days count whole days: write P1D, P3D, P2W",
            ));
        }
        Some(_) => {}
    }
}

fn check_template(source: &str, pointer: &str, prefix: &str, problems: &mut Vec<FieldError>) {
    if let Err(e) = sandbox::check(source, &format!("{prefix}{pointer}")) {
        problems.push(e);
    }
}

fn check_json_templates(
    value: &Value,
    pointer: &str,
    prefix: &str,
    problems: &mut Vec<FieldError>,
) {
    match value {
        Value::String(text) => check_template(text, pointer, prefix, problems),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_json_templates(item, &format!("{pointer}/{i}"), prefix, problems);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                check_json_templates(item, &format!("{pointer}/{}", escape(k)), prefix, problems);
            }
        }
        _ => {}
    }
}

fn check_value(
    value: &Value,
    pointer: &str,
    prefix: &str,
    compile: &mut impl FnMut(String, &str, &mut Vec<FieldError>),
    problems: &mut Vec<FieldError>,
) {
    match value {
        Value::String(text) => check_template(text, pointer, prefix, problems),
        Value::Object(map) if map.contains_key("script") => {
            if let Some(source) = map.get("script").and_then(Value::as_str) {
                compile(format!("{pointer}/script"), source, problems);
            }
        }
        _ => {}
    }
}

fn check_values(
    fields: &Map<String, Value>,
    pointer: &str,
    prefix: &str,
    compile: &mut impl FnMut(String, &str, &mut Vec<FieldError>),
    problems: &mut Vec<FieldError>,
) {
    for (key, value) in fields {
        check_value(
            value,
            &format!("{pointer}/{}", escape(key)),
            prefix,
            compile,
            problems,
        );
    }
}

/// Escapes a JSON pointer token.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Parses a five-field cron expression.
///
/// # Errors
/// The parser's message.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    if text.split_whitespace().count() != 5 {
        return Err("five fields are needed".to_owned());
    }
    croner::Cron::new(text).parse().map_err(|e| e.to_string())
}

/// The entities a workflow document names (its own and those its steps create or change).
pub fn entities_used(document: &Value) -> Vec<String> {
    let mut found: Vec<String> = document
        .get("entity")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    for step in document
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(entity) = step.get("entity").and_then(Value::as_str)
            && !found.iter().any(|e| e == entity)
        {
            found.push(entity.to_owned());
        }
    }
    found
}

/// The items of the array at `key` of `value` (none when absent), numbered.
fn items<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn kind_of<'a>(entity: &'a Value, field: &str) -> Option<&'a str> {
    entity
        .get("properties")?
        .get(field)?
        .get("x-kind")?
        .as_str()
}

/// What templates see of a record besides its fields.
pub const SYSTEM_VALUES: [&str; 4] = ["id", "owner", "created_at", "updated_at"];

/// The `record.<field>` names a template reads.
fn template_fields(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("record.") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        rest = &rest[at + "record.".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !preceded && !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// Every reference of a workflow document to entities and fields that `entity_doc` (by key)
/// does not have. Scripts and templates are read for the `record.<field>` they use, so a
/// removed field a workflow reads is reported, not silently empty.
pub fn check_references(
    entity_doc: &dyn Fn(&str) -> Option<Value>,
    document: &Value,
    prefix: &str,
) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let own_key = document.get("entity").and_then(Value::as_str);
    let own = match own_key {
        Some(key) => match entity_doc(key) {
            Some(doc) => Some((key, doc)),
            None => {
                problems.push(FieldError::new(
                    format!("{prefix}/entity"),
                    "unknown_entity",
                    format!("entity {key:?} does not exist"),
                ));
                return problems;
            }
        },
        None => None,
    };
    let field_problem =
        |pointer: String, entity: &str, doc: &Value, field: &str, kinds: Option<&[&str]>| {
            match kind_of(doc, field) {
                None => Some(FieldError::new(
                    pointer,
                    "unknown_field",
                    format!("entity {entity:?} has no field {field:?}"),
                )),
                Some(kind) if kinds.is_some_and(|k| !k.contains(&kind)) => Some(FieldError::new(
                    pointer,
                    "field_kind",
                    format!(
                        "field {field:?} is a {kind}; this needs one of {}",
                        kinds.unwrap_or_default().join(", ")
                    ),
                )),
                Some(_) => None,
            }
        };
    // Fields the run's record is read for, in scripts and templates anywhere in the document.
    if let Some((key, doc)) = &own {
        let mut texts = Vec::new();
        collect_texts(document, "", &mut texts);
        for (pointer, text) in texts {
            if pointer.starts_with("/label") || pointer.starts_with("/description") {
                continue;
            }
            let is_script = pointer == "/condition"
                || pointer.ends_with("/script")
                || pointer.ends_with("/when");
            let names: Vec<String> = if is_script {
                let uses = crate::script::analysis::analyse(&text);
                uses.fields
                    .into_iter()
                    .chain(uses.old_fields)
                    .map(|(name, _)| name)
                    .collect()
            } else {
                // Templates also see the record's system values.
                template_fields(&text)
                    .into_iter()
                    .filter(|name| !SYSTEM_VALUES.contains(&name.as_str()))
                    .collect()
            };
            for name in names {
                if let Some(p) = field_problem(format!("{prefix}{pointer}"), key, doc, &name, None)
                {
                    problems.push(p);
                }
            }
        }
        if let Some(trigger) = document.get("trigger") {
            {
                let base = format!("{prefix}/trigger");
                if let Some(field) = trigger.get("field").and_then(Value::as_str) {
                    let kinds: Option<&[&str]> = (trigger.get("type").and_then(Value::as_str)
                        == Some("date"))
                    .then_some(&["date", "datetime"]);
                    problems.extend(field_problem(
                        format!("{base}/field"),
                        key,
                        doc,
                        field,
                        kinds,
                    ));
                }
                for (i, field) in items(trigger, "fields") {
                    if let Some(field) = field.as_str() {
                        problems.extend(field_problem(
                            format!("{base}/fields/{i}"),
                            key,
                            doc,
                            field,
                            None,
                        ));
                    }
                }
            }
        }
    }
    for (i, step) in items(document, "steps") {
        let at = format!("{prefix}/steps/{i}");
        let kind = step.get("type").and_then(Value::as_str).unwrap_or_default();
        let target = match kind {
            "create_record" | "update_record" => {
                let Some(entity) = step.get("entity").and_then(Value::as_str) else {
                    continue;
                };
                match entity_doc(entity) {
                    Some(doc) => Some((entity.to_owned(), doc)),
                    None => {
                        problems.push(FieldError::new(
                            format!("{at}/entity"),
                            "unknown_entity",
                            format!("entity {entity:?} does not exist"),
                        ));
                        continue;
                    }
                }
            }
            "set_fields" | "assign_owner" | "notify" | "approval" => {
                if own.is_none() {
                    problems.push(FieldError::new(
                        format!("{at}/type"),
                        "needs_record",
                        format!(
                            "a {kind} step needs the run's record; this workflow has no entity"
                        ),
                    ));
                    continue;
                }
                own.as_ref().map(|(k, d)| ((*k).to_owned(), d.clone()))
            }
            _ => None,
        };
        let Some((entity, doc)) = target else {
            continue;
        };
        for field in step
            .get("fields")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
        {
            let pointer = format!("{at}/fields/{}", escape(field));
            problems.extend(field_problem(pointer.clone(), &entity, &doc, field, None));
            if matches!(
                kind_of(&doc, field),
                Some("formula" | "rollup" | "auto_number")
            ) {
                problems.push(FieldError::new(
                    pointer,
                    "read_only",
                    format!("field {field:?} is computed; a workflow cannot set it"),
                ));
            }
        }
        if step.get("type").and_then(Value::as_str) == Some("notify")
            && items(step, "to").next().is_none()
            && !items(step, "channels")
                .any(|(_, c)| c.as_str().is_some_and(|c| c.starts_with("robot:")))
        {
            problems.push(FieldError::new(
                format!("{at}/to"),
                "required",
                "name at least one recipient, or post to a chat robot (channel robot:<key>)",
            ));
        }
        for (r, recipient) in items(step, "to") {
            if let Some(field) = recipient.as_str().and_then(|r| r.strip_prefix("field:")) {
                problems.extend(field_problem(
                    format!("{at}/to/{r}"),
                    &entity,
                    &doc,
                    field,
                    Some(&["user"]),
                ));
            }
        }
    }
    problems
}

fn collect_texts(value: &Value, pointer: &str, into: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => into.push((pointer.to_owned(), text.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_texts(item, &format!("{pointer}/{i}"), into);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_texts(item, &format!("{pointer}/{}", escape(k)), into);
            }
        }
        _ => {}
    }
}

/// The people a step names (recipients, approvers, escalation), each with its pointer under
/// the step.
fn people_named(step: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut list = |pointer: String, value: Option<&Value>| {
        for (i, person) in value
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(person) = person.as_str() {
                found.push((format!("{pointer}/{i}"), person.to_owned()));
            }
        }
    };
    list("/to".to_owned(), step.get("to"));
    for (l, level) in items(step, "levels") {
        list(format!("/levels/{l}/approvers"), level.get("approvers"));
        list(
            format!("/levels/{l}/deadline/escalate_to"),
            level.pointer("/deadline/escalate_to"),
        );
    }
    found
}

/// The role keys a workflow document names (manual trigger roles, assignment and recipients),
/// each with its pointer, to check against the workspace's roles.
pub fn roles_named(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (i, role) in document
        .pointer("/trigger/roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(role) = role.as_str() {
            found.push((format!("/trigger/roles/{i}"), role.to_owned()));
        }
    }
    for (s, step) in items(document, "steps") {
        if let Some(role) = step.get("role").and_then(Value::as_str) {
            found.push((format!("/steps/{s}/role"), role.to_owned()));
        }
        for (pointer, person) in people_named(step) {
            if let Some(role) = person.strip_prefix("role:") {
                found.push((format!("/steps/{s}{pointer}"), role.to_owned()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compile(doc: Value) -> Result<Workflow, Vec<FieldError>> {
        Workflow::compile(
            &ScriptEngine::default(),
            "w",
            Uuid::nil(),
            1,
            Arc::new(doc),
            "",
        )
    }

    #[test]
    fn steps_link_in_order_unless_told() {
        let wf = compile(json!({
            "label": {"en": "x"}, "entity": "lead", "trigger": {"type": "record_created"},
            "steps": [
                {"id": "a", "type": "script", "script": "1"},
                {"id": "b", "type": "branch", "cases": [{"when": "true", "goto": "d"}]},
                {"id": "c", "type": "script", "script": "2", "next": "end"},
                {"id": "d", "type": "script", "script": "3"}
            ]
        }))
        .expect("must succeed");
        assert_eq!(wf.first(), Some("a"));
        assert_eq!(wf.after(0), Some("b"));
        assert_eq!(wf.after(2), None);
        assert_eq!(wf.after(3), None);
        assert!(wf.script("/steps/1/cases/0/when").is_some());
    }

    #[test]
    fn bad_parts_are_located() {
        let problems = compile(json!({
            "label": {"en": "x"}, "entity": "lead",
            "trigger": {"type": "date", "field": "due", "before": "P1DT2H", "working_days": true},
            "condition": "record.amount >",
            "steps": [
                {"id": "a", "type": "branch", "cases": [{"when": "true", "goto": "nowhere"}]},
                {"id": "a", "type": "notify", "to": ["owner"], "title": "{{ record.name "},
                {"id": "c", "type": "assign_owner", "strategy": "round_robin"}
            ]
        }))
        .expect_err("must fail");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        for expected in [
            "/trigger/before",
            "/condition",
            "/steps/1/id",
            "/steps/0/cases/0/goto",
            "/steps/1/title",
            "/steps/2",
        ] {
            assert!(pointers.contains(&expected), "{expected} in {pointers:?}");
        }
        assert!(
            problems
                .iter()
                .any(|p| p.line.is_some() && p.pointer == "/condition")
        );
        let cron = compile(json!({
            "label": {"en": "x"}, "trigger": {"type": "schedule", "cron": "0 25 * * *"},
            "steps": [{"id": "a", "type": "script", "script": "1"}]
        }))
        .expect_err("must fail");
        assert_eq!(cron[0].pointer, "/trigger/cron");
    }

    #[test]
    fn references_name_missing_fields_read_anywhere() {
        let lead = json!({"properties": {
            "name": {"x-kind": "text"}, "due": {"x-kind": "date"}, "owner2": {"x-kind": "user"}
        }});
        let entities = move |key: &str| (key == "lead").then(|| lead.clone());
        let doc = json!({
            "label": {"en": "x"}, "entity": "lead",
            "trigger": {"type": "date", "field": "name", "before": "P1D"},
            "condition": "record.gone > 1",
            "steps": [
                {"id": "a", "type": "notify", "to": ["field:name"], "title": "Hi {{ record.missing }}"},
                {"id": "b", "type": "create_record", "entity": "task", "fields": {}},
                {"id": "c", "type": "set_fields", "fields": {"nope": 1}}
            ]
        });
        let problems = check_references(&entities, &doc, "/document");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        for expected in [
            "/document/trigger/field",
            "/document/condition",
            "/document/steps/0/to/0",
            "/document/steps/0/title",
            "/document/steps/1/entity",
            "/document/steps/2/fields/nope",
        ] {
            assert!(pointers.contains(&expected), "{expected} in {pointers:?}");
        }
    }
}
