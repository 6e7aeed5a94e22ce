//! The workflow designer's edits: pure functions from what a person picked on the designer page
//! (a trigger, a condition, the settings of a step) to the workflow document the API and files
//! use, and back, so the page can show any workflow however it was written. What the designer
//! does not edit (an approval's allowed actions, a rule-based assignment's script) is kept.

use serde_json::{Map, Value, json};

use crate::definitions::designer::label_value;
use crate::definitions::form_designer::{Rule, parse_rule, rule_script};
use crate::error::FieldError;

/// The triggers, in the order the designer offers them.
pub const TRIGGERS: [&str; 7] = [
    "record_created",
    "record_updated",
    "field_changed",
    "date",
    "schedule",
    "manual",
    "record_deleted",
];

/// The step types with their own editor; the others are edited as JSON.
pub const DESIGNED_STEPS: [&str; 6] = [
    "approval",
    "notify",
    "set_fields",
    "wait",
    "branch",
    "assign_owner",
];

/// Every step type.
pub const STEP_TYPES: [&str; 11] = [
    "approval",
    "notify",
    "set_fields",
    "wait",
    "branch",
    "assign_owner",
    "create_record",
    "update_record",
    "send_report",
    "webhook",
    "script",
];

/// Approvers picked by relation to the record (roles and user fields are added per workspace).
pub const APPROVERS: [&str; 5] = [
    "owner_manager",
    "department_head",
    "owner",
    "submitter",
    "submitter_manager",
];

/// Recipients picked by relation to the record (roles and user fields are added per workspace).
pub const RECIPIENTS: [&str; 3] = ["owner", "owner_manager", "triggered_by"];

/// How the approvers of a level decide.
pub const MODES: [&str; 3] = ["any", "all", "sequential"];

/// What happens when a level's deadline passes.
pub const ON_DEADLINE: [&str; 5] = ["none", "escalate", "approve", "return", "reject"];

/// Units of a wait or of a date trigger's offset.
pub const UNITS: [&str; 3] = ["days", "hours", "minutes"];

/// Level slots the approval editor shows at least (every existing level has its own).
pub const LEVEL_SLOTS: usize = 4;

/// Case slots the branch editor shows at least (every existing case has its own).
pub const CASE_SLOTS: usize = 4;

/// Most levels of an approval (the meta-schema's limit).
const MAX_LEVELS: usize = 10;

/// Most cases of a branch (the meta-schema's limit).
const MAX_CASES: usize = 20;

/// A change the designer makes to a workflow document.
#[derive(Debug, Clone)]
pub enum WorkflowEdit {
    /// Label, description and entity.
    Settings {
        /// English label.
        label_en: String,
        /// Chinese label.
        label_zh: String,
        /// Description.
        description: String,
        /// The entity its runs carry.
        entity: String,
    },
    /// A new trigger.
    Trigger(Value),
    /// A new condition (none: every triggering event starts a run).
    Condition(Option<String>),
    /// A step written at `index` (replacing the step there), or inserted at `at` when `index`
    /// is `None`. A step whose id changes takes the references to it along.
    PutStep {
        /// The step replaced.
        index: Option<usize>,
        /// Where a new step goes.
        at: usize,
        /// The step.
        step: Value,
    },
    /// Moves a step one place up or down.
    MoveStep {
        /// The step.
        index: usize,
        /// Up (earlier) rather than down.
        up: bool,
    },
    /// Removes a step no other step leads to.
    RemoveStep {
        /// The step.
        index: usize,
    },
    /// Turns the workflow on or off.
    Enabled(bool),
}

/// A new workflow on `entity`, started when a record is created, telling its owner.
pub fn new_workflow(label_en: &str, label_zh: &str, entity: &str, title_field: &str) -> Value {
    json!({
        "label": label_value(label_en, label_zh).unwrap_or_else(|| json!({"en": entity})),
        "entity": entity,
        "enabled": true,
        "trigger": {"type": "record_created"},
        "steps": [{
            "id": "tell_owner",
            "type": "notify",
            "to": ["owner"],
            "title": format!("{{{{ record.{title_field} }}}}"),
        }],
    })
}

fn steps_mut(doc: &mut Value) -> Option<&mut Vec<Value>> {
    doc.get_mut("steps").and_then(Value::as_array_mut)
}

/// The ids of the steps.
pub fn step_ids(doc: &Value) -> Vec<String> {
    doc.get("steps")
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every place in `step` that names another step: (pointer suffix, target).
fn links(step: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for key in ["next", "otherwise", "on_reject", "on_withdraw"] {
        if let Some(target) = step.get(key).and_then(Value::as_str) {
            found.push((format!("/{key}"), target.to_owned()));
        }
    }
    if let Some(cases) = step.get("cases").and_then(Value::as_array) {
        for (i, case) in cases.iter().enumerate() {
            if let Some(target) = case.get("goto").and_then(Value::as_str) {
                found.push((format!("/cases/{i}/goto"), target.to_owned()));
            }
        }
    }
    found
}

/// Renames the links to step `from` as `to` in every step.
fn rename_links(steps: &mut [Value], from: &str, to: &str) {
    for step in steps {
        for key in ["next", "otherwise", "on_reject", "on_withdraw"] {
            if step.get(key).and_then(Value::as_str) == Some(from) {
                step[key] = json!(to);
            }
        }
        if let Some(cases) = step.get_mut("cases").and_then(Value::as_array_mut) {
            for case in cases {
                if case.get("goto").and_then(Value::as_str) == Some(from) {
                    case["goto"] = json!(to);
                }
            }
        }
    }
}

/// An id for a new step of `kind` not used in `doc`.
pub fn fresh_id(doc: &Value, kind: &str) -> String {
    let taken = step_ids(doc);
    (1..)
        .map(|n| format!("{kind}_{n}"))
        .find(|id| !taken.contains(id))
        .unwrap_or_else(|| kind.to_owned())
}

/// Applies `edit` to the workflow document `doc`.
///
/// # Errors
/// Each problem, at its JSON pointer in the document; `doc` is unchanged then.
pub fn apply(doc: &mut Value, edit: WorkflowEdit) -> Result<(), Vec<FieldError>> {
    let problem = |pointer: String, code: &str, message: String| {
        Err(vec![FieldError::new(pointer, code, message)])
    };
    if !doc.is_object() {
        return problem(
            String::new(),
            "type",
            "the workflow is not a JSON object".to_owned(),
        );
    }
    match edit {
        WorkflowEdit::Settings {
            label_en,
            label_zh,
            description,
            entity,
        } => {
            let Some(label) = label_value(&label_en, &label_zh) else {
                return problem(
                    "/label".to_owned(),
                    "required",
                    "give the workflow a name".to_owned(),
                );
            };
            doc["label"] = label;
            set_or_remove(doc, "description", description.trim());
            set_or_remove(doc, "entity", entity.trim());
        }
        WorkflowEdit::Trigger(trigger) => doc["trigger"] = trigger,
        WorkflowEdit::Condition(condition) => match condition {
            Some(script) => doc["condition"] = json!(script),
            None => {
                if let Some(map) = doc.as_object_mut() {
                    map.shift_remove("condition");
                }
            }
        },
        WorkflowEdit::Enabled(on) => doc["enabled"] = json!(on),
        WorkflowEdit::PutStep { index, at, step } => {
            let new_id = step
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let ids = step_ids(doc);
            let Some(steps) = steps_mut(doc) else {
                doc["steps"] = json!([step]);
                return Ok(());
            };
            match index {
                Some(i) if i < steps.len() => {
                    let old_id = steps[i]
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if old_id != new_id && ids.contains(&new_id) {
                        return problem(
                            format!("/steps/{i}/id"),
                            "taken",
                            format!("another step is called {new_id:?}"),
                        );
                    }
                    // Templates and scripts name steps as `steps.<id>`; they would read nothing.
                    let used = format!("steps.{old_id}");
                    if old_id != new_id
                        && !old_id.is_empty()
                        && steps
                            .iter()
                            .chain(std::iter::once(&step))
                            .any(|s| s.to_string().contains(&used))
                    {
                        return problem(
                            format!("/steps/{i}/id"),
                            "in_use",
                            format!(
                                "templates or scripts read {used}: change them before renaming the step"
                            ),
                        );
                    }
                    steps[i] = step;
                    if old_id != new_id && !old_id.is_empty() {
                        rename_links(steps, &old_id, &new_id);
                    }
                }
                Some(i) => {
                    return problem(
                        format!("/steps/{i}"),
                        "not_found",
                        "that step is gone; reload the page".to_owned(),
                    );
                }
                None => {
                    if ids.contains(&new_id) {
                        return problem(
                            format!("/steps/{at}/id"),
                            "taken",
                            format!("another step is called {new_id:?}"),
                        );
                    }
                    steps.insert(at.min(steps.len()), step);
                }
            }
        }
        WorkflowEdit::MoveStep { index, up } => {
            let Some(steps) = steps_mut(doc) else {
                return Ok(());
            };
            let to = if up {
                index.checked_sub(1)
            } else {
                Some(index + 1)
            };
            if let Some(to) = to
                && index < steps.len()
                && to < steps.len()
            {
                steps.swap(index, to);
            }
        }
        WorkflowEdit::RemoveStep { index } => {
            let Some(steps) = steps_mut(doc) else {
                return Ok(());
            };
            let Some(removed) = steps.get(index) else {
                return problem(
                    format!("/steps/{index}"),
                    "not_found",
                    "that step is gone; reload the page".to_owned(),
                );
            };
            if steps.len() == 1 {
                return problem(
                    format!("/steps/{index}"),
                    "min_items",
                    "a workflow needs at least one step: add another before removing this one"
                        .to_owned(),
                );
            }
            let id = removed
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let leading: Vec<FieldError> = steps
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .flat_map(|(i, step)| {
                    let from = step
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    links(step)
                        .into_iter()
                        .filter(|(_, target)| *target == id)
                        .map(|(at, _)| {
                            FieldError::new(
                                format!("/steps/{i}{at}"),
                                "in_use",
                                format!("step {from:?} leads to {id:?}: point it elsewhere first"),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            if !leading.is_empty() {
                return Err(leading);
            }
            steps.remove(index);
        }
    }
    tidy(doc);
    Ok(())
}

/// Puts the document's keys in reading order (a condition added later still reads before the
/// steps in the JSON panel and in files).
fn tidy(doc: &mut Value) {
    const ORDER: [&str; 8] = [
        "$schema",
        "label",
        "description",
        "entity",
        "enabled",
        "trigger",
        "condition",
        "steps",
    ];
    if let Some(map) = doc.as_object_mut() {
        let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
        let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
        entries.sort_by_key(|(k, _)| rank(k));
        map.extend(entries);
    }
}

fn set_or_remove(doc: &mut Value, key: &str, value: &str) {
    if value.is_empty() {
        if let Some(map) = doc.as_object_mut() {
            map.shift_remove(key);
        }
    } else {
        doc[key] = json!(value);
    }
}

/// What a designer form posted, as ordered name/value pairs.
pub struct Posted<'a>(pub &'a [(String, String)]);

impl Posted<'_> {
    /// The first value posted as `name`, trimmed ("" when absent).
    pub fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value posted as `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Whether a checkbox `name` was ticked.
    pub fn ticked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The rule posted under `prefix` (`prefix_field`, `_op`, `_value`, `_script`).
    pub fn rule(&self, prefix: &str) -> Rule {
        Rule {
            field: self.text(&format!("{prefix}_field")).to_owned(),
            op: self.text(&format!("{prefix}_op")).to_owned(),
            value: self.text(&format!("{prefix}_value")).to_owned(),
            script: self.text(&format!("{prefix}_script")).to_owned(),
        }
    }
}

/// An ISO 8601 duration of `amount` `unit`s (`P3D`, `PT4H`, `PT30M`).
///
/// # Errors
/// The problem at `pointer` when the amount is not a whole number from 1 to 10,000.
pub fn duration_of(amount: &str, unit: &str, pointer: &str) -> Result<String, FieldError> {
    let n: u32 = amount
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            FieldError::new(
                pointer,
                "range",
                format!("{amount:?} is not a whole number from 1 to 10,000"),
            )
        })?;
    Ok(match unit {
        "hours" => format!("PT{n}H"),
        "minutes" => format!("PT{n}M"),
        _ => format!("P{n}D"),
    })
}

/// A duration the designer wrote, read back as (amount, unit); `None` for others (`P1W`).
pub fn parse_duration(text: &str) -> Option<(String, &'static str)> {
    let (digits, unit) = if let Some(rest) = text.strip_prefix("PT") {
        if let Some(n) = rest.strip_suffix('H') {
            (n, "hours")
        } else {
            (rest.strip_suffix('M')?, "minutes")
        }
    } else {
        (text.strip_prefix('P')?.strip_suffix('D')?, "days")
    };
    digits.parse::<u32>().ok().map(|n| (n.to_string(), unit))
}

/// A value typed in for a field of `kind` as the document holds it: numbers and yes/no typed,
/// text (and templates) as they are, nothing as null (the field is cleared).
fn typed_value(kind: &str, text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    // `{"script": "…"}` and lists (multi-select values) are JSON; a template (`{{ … }}`) is not.
    if (text.starts_with('{') || text.starts_with('['))
        && let Ok(value @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(text)
    {
        return value;
    }
    match kind {
        "integer" => text
            .parse::<i64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        "number" | "percent" => text
            .parse::<f64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        "boolean" => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(text),
        },
        _ => json!(text),
    }
}

/// A text the designer edits in two languages: one template when only one is given, one per
/// language otherwise.
fn text_of(en: &str, zh: &str) -> Option<Value> {
    match (en.is_empty(), zh.is_empty()) {
        (true, true) => None,
        (false, true) => Some(json!(en)),
        (true, false) => Some(json!(zh)),
        (false, false) => Some(json!({"en": en, "zh-CN": zh})),
    }
}

/// The trigger a designer form posted (`trigger_type` and its settings), over the entity's
/// `fields` (key, kind) and the trigger it replaces (`old`: what the editor does not show —
/// `on_create`, values it cannot write as text, an offset it cannot read — is kept).
///
/// # Errors
/// Each problem at its pointer under `/trigger`.
pub fn trigger_of(
    posted: &Posted<'_>,
    fields: &[(String, String)],
    old: Option<&Value>,
) -> Result<Value, Vec<FieldError>> {
    let kind = posted.text("trigger_type");
    let old = old.filter(|o| o.get("type").and_then(Value::as_str) == Some(kind));
    let old_view = old.map(trigger_view);
    let mut problems = Vec::new();
    let mut field_named = |name: &str, wanted: &[&str]| -> String {
        let field = posted.text(name).to_owned();
        match fields.iter().find(|(k, _)| *k == field) {
            Some((_, kind)) if wanted.is_empty() || wanted.contains(&kind.as_str()) => {}
            _ => problems.push(FieldError::new(
                "/trigger/field",
                "unknown_field",
                if wanted.is_empty() {
                    "pick a field".to_owned()
                } else {
                    "pick a date or date-time field".to_owned()
                },
            )),
        }
        field
    };
    let trigger = match kind {
        "record_created" | "record_deleted" => json!({"type": kind}),
        "record_updated" => {
            let watched = posted.all("trigger_fields");
            if watched.is_empty() {
                json!({"type": kind})
            } else {
                json!({"type": kind, "fields": watched})
            }
        }
        "field_changed" => {
            let field = field_named("trigger_field", &[]);
            let field_kind = fields
                .iter()
                .find(|(k, _)| *k == field)
                .map_or("text", |(_, kind)| kind.as_str());
            let mut trigger = json!({"type": kind, "field": field});
            if let Some(on_create) = old.and_then(|o| o.get("on_create")) {
                trigger["on_create"] = on_create.clone();
            }
            for (name, key) in [("trigger_from", "from"), ("trigger_to", "to")] {
                // Unchanged text keeps the values as they were (nulls, commas inside values).
                let unchanged = old_view
                    .as_ref()
                    .and_then(|v| v.get(format!("{key}_text")))
                    .and_then(Value::as_str)
                    == Some(posted.text(name));
                if unchanged && old.is_some_and(|o| o.get(key).is_some()) {
                    if let Some(values) = old.and_then(|o| o.get(key)) {
                        trigger[key] = values.clone();
                    }
                    continue;
                }
                let values: Vec<Value> = posted
                    .text(name)
                    .split([',', '，'])
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| typed_value(field_kind, v))
                    .collect();
                if !values.is_empty() {
                    trigger[key] = json!(values);
                }
            }
            trigger
        }
        "date" => {
            let field = field_named("trigger_field", &["date", "datetime"]);
            let mut trigger = json!({"type": kind, "field": field});
            let amount = posted.text("trigger_amount");
            let direction = if posted.text("trigger_direction") == "after" {
                "after"
            } else {
                "before"
            };
            if !amount.is_empty() && amount != "0" {
                match duration_of(
                    amount,
                    posted.text("trigger_unit"),
                    &format!("/trigger/{direction}"),
                ) {
                    Ok(span) => trigger[direction] = json!(span),
                    Err(problem) => problems.push(problem),
                }
            } else if let Some(view) = &old_view
                && view.get("offset_raw").is_some()
            {
                // An offset the editor cannot show (`P1W`) stays as written.
                for key in ["before", "after"] {
                    if let Some(span) = old.and_then(|o| o.get(key)) {
                        trigger[key] = span.clone();
                    }
                }
            }
            if posted.ticked("trigger_working_days") {
                trigger["working_days"] = json!(true);
            }
            if posted.ticked("trigger_yearly") {
                trigger["yearly"] = json!(true);
            }
            let at = posted.text("trigger_at");
            if !at.is_empty() {
                trigger["at"] = json!(at);
            }
            trigger
        }
        "schedule" => json!({"type": kind, "cron": posted.text("trigger_cron")}),
        "manual" => {
            let mut trigger = json!({"type": kind});
            if let Some(button) = label_value(
                posted.text("trigger_button_en"),
                posted.text("trigger_button_zh"),
            ) {
                trigger["button"] = button;
            }
            let roles = posted.all("trigger_roles");
            if !roles.is_empty() {
                trigger["roles"] = json!(roles);
            }
            trigger
        }
        other => {
            return Err(vec![FieldError::new(
                "/trigger/type",
                "enum",
                format!("{other:?} is not a trigger"),
            )]);
        }
    };
    if problems.is_empty() {
        Ok(trigger)
    } else {
        Err(problems)
    }
}

/// The trigger as the designer's form shows it: the document's trigger plus the offset of a
/// date trigger as `direction`, `amount`, `unit`.
pub fn trigger_view(trigger: &Value) -> Value {
    if !trigger.is_object() {
        return json!({});
    }
    let mut view = trigger.clone();
    for direction in ["before", "after"] {
        let Some(span) = trigger.get(direction) else {
            continue;
        };
        view["direction"] = json!(direction);
        match span.as_str().and_then(parse_duration) {
            Some((amount, unit)) => {
                view["amount"] = json!(amount);
                view["unit"] = json!(unit);
            }
            None => view["offset_raw"] = span.clone(),
        }
    }
    for key in ["from", "to"] {
        if let Some(values) = trigger.get(key).and_then(Value::as_array) {
            let text: Vec<String> = values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            view[format!("{key}_text")] = json!(text.join(", "));
        }
    }
    view
}

/// The condition a designer form posted under `prefix`, checked against the entity's fields.
///
/// # Errors
/// The problem at `pointer` (`…/field`, `…/value`).
pub fn condition_of(
    posted: &Posted<'_>,
    prefix: &str,
    fields: &[(String, String)],
    pointer: &str,
) -> Result<Option<String>, FieldError> {
    rule_script(&posted.rule(prefix), fields, pointer)
}

/// The step a designer form posted for a step of type `kind`, over the entity's `fields` and
/// the step it replaces (`old`, whose settings the editor does not show are kept). The step is
/// returned even with problems, so the page can show what was typed.
pub fn step_of(
    kind: &str,
    posted: &Posted<'_>,
    fields: &[(String, String)],
    old: Option<&Value>,
) -> (Value, Vec<FieldError>) {
    let mut problems = Vec::new();
    let mut step = Map::new();
    step.insert("id".to_owned(), json!(posted.text("step_id")));
    step.insert("type".to_owned(), json!(kind));
    if let Some(label) = label_value(posted.text("step_label_en"), posted.text("step_label_zh")) {
        step.insert("label".to_owned(), label);
    }
    match kind {
        "approval" => approval(posted, fields, &mut step, &mut problems),
        "notify" => notify(posted, &mut step, &mut problems),
        "set_fields" => {
            let names = posted.0.iter().filter(|(k, _)| k == "set_field");
            let values = posted.0.iter().filter(|(k, _)| k == "set_value");
            let mut set = Map::new();
            for ((_, name), (_, value)) in names.zip(values) {
                let name = name.trim();
                if name.is_empty() {
                    continue;
                }
                match fields.iter().find(|(k, _)| k == name) {
                    Some((_, kind)) => {
                        set.insert(name.to_owned(), typed_value(kind, value.trim()));
                    }
                    None => problems.push(FieldError::new(
                        format!("/fields/{}", crate::records::codec::escape(name)),
                        "unknown_field",
                        format!("the entity has no field {name:?}"),
                    )),
                }
            }
            if set.is_empty() && problems.is_empty() {
                problems.push(FieldError::new(
                    "/fields",
                    "required",
                    "pick at least one field to set",
                ));
            }
            step.insert("fields".to_owned(), Value::Object(set));
        }
        "wait" => {
            let old_until = old
                .and_then(|o| o.get("until"))
                .filter(|until| until_field(until).is_none());
            if posted.text("wait_mode") == "until"
                && posted.text("wait_until_field").is_empty()
                && let Some(until) = old_until
            {
                // A date the editor cannot show (a script, a fixed date) stays as written.
                step.insert("until".to_owned(), until.clone());
            } else if posted.text("wait_mode") == "until" {
                let field = posted.text("wait_until_field");
                if fields
                    .iter()
                    .any(|(k, kind)| k == field && matches!(kind.as_str(), "date" | "datetime"))
                {
                    step.insert(
                        "until".to_owned(),
                        json!(format!("{{{{ record.{field} }}}}")),
                    );
                } else {
                    problems.push(FieldError::new(
                        "/until",
                        "unknown_field",
                        "pick a date or date-time field to wait for",
                    ));
                }
            } else {
                match duration_of(
                    posted.text("wait_amount"),
                    posted.text("wait_unit"),
                    "/duration",
                ) {
                    Ok(span) => {
                        step.insert("duration".to_owned(), json!(span));
                    }
                    Err(problem) => problems.push(problem),
                }
                if posted.ticked("wait_working_days") {
                    step.insert("working_days".to_owned(), json!(true));
                }
            }
        }
        "branch" => {
            let mut cases = Vec::new();
            for n in 0..MAX_CASES {
                let prefix = format!("case{n}");
                let goto = posted.text(&format!("{prefix}_goto"));
                let pointer = format!("/cases/{}", cases.len());
                match rule_script(
                    &posted.rule(&format!("{prefix}_when")),
                    fields,
                    &format!("{pointer}/when"),
                ) {
                    Ok(Some(when)) if goto.is_empty() => {
                        cases.push(json!({"when": when, "goto": ""}));
                        problems.push(FieldError::new(
                            format!("{pointer}/goto"),
                            "required",
                            "pick the step this case goes to",
                        ));
                    }
                    Ok(Some(when)) => cases.push(json!({"when": when, "goto": goto})),
                    Ok(None) if !goto.is_empty() => {
                        cases.push(json!({"when": "", "goto": goto}));
                        problems.push(FieldError::new(
                            format!("{pointer}/when"),
                            "required",
                            "say when this case applies",
                        ));
                    }
                    Ok(None) => {}
                    Err(problem) => {
                        cases.push(json!({"when": "", "goto": goto}));
                        problems.push(problem);
                    }
                }
            }
            if cases.is_empty() && problems.is_empty() {
                problems.push(FieldError::new(
                    "/cases",
                    "required",
                    "a branch needs at least one case",
                ));
            }
            step.insert("cases".to_owned(), json!(cases));
            let otherwise = posted.text("otherwise");
            if !otherwise.is_empty() {
                step.insert("otherwise".to_owned(), json!(otherwise));
            }
        }
        "assign_owner" => {
            let strategy = match posted.text("strategy") {
                "least_loaded" => "least_loaded",
                "rule" => "rule",
                _ => "round_robin",
            };
            step.insert("strategy".to_owned(), json!(strategy));
            for key in ["role", "team"] {
                let value = posted.text(&format!("assign_{key}"));
                if !value.is_empty() {
                    step.insert(key.to_owned(), json!(value));
                }
            }
            if let Some(old) = old.and_then(Value::as_object) {
                for key in ["unit", "members", "script"] {
                    if let Some(value) = old.get(key) {
                        step.insert(key.to_owned(), value.clone());
                    }
                }
            }
        }
        other => problems.push(FieldError::new(
            "/type",
            "enum",
            format!("{other:?} steps are edited as JSON"),
        )),
    }
    if kind == "approval"
        && let Some(old) = old.and_then(Value::as_object)
    {
        for key in ["allow", "on_withdraw"] {
            if let Some(value) = old.get(key) {
                step.insert(key.to_owned(), value.clone());
            }
        }
    }
    let next = posted.text("step_next");
    if !next.is_empty() {
        step.insert("next".to_owned(), json!(next));
    }
    (Value::Object(step), problems)
}

fn approval(
    posted: &Posted<'_>,
    fields: &[(String, String)],
    step: &mut Map<String, Value>,
    problems: &mut Vec<FieldError>,
) {
    let title = posted.text("title");
    if !title.is_empty() {
        step.insert("title".to_owned(), json!(title));
    }
    let mut levels = Vec::new();
    for n in 0..MAX_LEVELS {
        let name = |part: &str| format!("level{n}_{part}");
        let approvers = posted.all(&name("approver"));
        let label = label_value(
            posted.text(&name("label_en")),
            posted.text(&name("label_zh")),
        );
        let days = posted.text(&name("deadline_days"));
        let when_rule = posted.rule(&name("when"));
        // An unused slot still posts its selects' first options and ticked defaults.
        let blank = approvers.is_empty()
            && label.is_none()
            && days.is_empty()
            && when_rule.field.is_empty()
            && when_rule.script.is_empty();
        if blank {
            continue;
        }
        let pointer = format!("/levels/{}", levels.len());
        let mut level = Map::new();
        if let Some(label) = label {
            level.insert("label".to_owned(), label);
        }
        if approvers.is_empty() {
            problems.push(FieldError::new(
                format!("{pointer}/approvers"),
                "required",
                "pick who approves at this level",
            ));
        }
        level.insert("approvers".to_owned(), json!(approvers));
        let mode = posted.text(&name("mode"));
        if MODES.contains(&mode) && mode != "any" {
            level.insert("mode".to_owned(), json!(mode));
        }
        match rule_script(&when_rule, fields, &format!("{pointer}/when")) {
            Ok(Some(when)) => {
                level.insert("when".to_owned(), json!(when));
            }
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
        if !days.is_empty() {
            match days.parse::<i64>().ok().filter(|d| (1..=365).contains(d)) {
                Some(days) => {
                    let mut deadline = Map::new();
                    deadline.insert("working_days".to_owned(), json!(days));
                    if !posted.ticked(&name("remind")) {
                        deadline.insert("remind".to_owned(), json!(false));
                    }
                    let then = posted.text(&name("then"));
                    if ON_DEADLINE.contains(&then) && then != "none" {
                        deadline.insert("then".to_owned(), json!(then));
                    }
                    let escalate = posted.all(&name("escalate"));
                    if then == "escalate" {
                        if escalate.is_empty() {
                            problems.push(FieldError::new(
                                format!("{pointer}/deadline/escalate_to"),
                                "required",
                                "pick who the approval goes to when the deadline passes",
                            ));
                        }
                        deadline.insert("escalate_to".to_owned(), json!(escalate));
                    }
                    level.insert("deadline".to_owned(), Value::Object(deadline));
                }
                None => problems.push(FieldError::new(
                    format!("{pointer}/deadline/working_days"),
                    "range",
                    format!("{days:?} is not a number of working days from 1 to 365"),
                )),
            }
        }
        levels.push(Value::Object(level));
    }
    if levels.is_empty() && problems.is_empty() {
        problems.push(FieldError::new(
            "/levels",
            "required",
            "an approval needs at least one level of approvers",
        ));
    }
    step.insert("levels".to_owned(), json!(levels));
    if !posted.ticked("lock_record") {
        step.insert("lock_record".to_owned(), json!(false));
    }
    let on_reject = posted.text("on_reject");
    if !on_reject.is_empty() {
        step.insert("on_reject".to_owned(), json!(on_reject));
    }
}

fn notify(posted: &Posted<'_>, step: &mut Map<String, Value>, problems: &mut Vec<FieldError>) {
    let to = posted.all("to");
    let channels = posted.all("channel");
    if to.is_empty() && !channels.iter().any(|c| c.starts_with("robot:")) {
        problems.push(FieldError::new("/to", "required", "pick who is told"));
    }
    step.insert("to".to_owned(), json!(to));
    if channels.is_empty() {
        problems.push(FieldError::new(
            "/channels",
            "required",
            "pick at least one way to tell them",
        ));
    }
    if channels != ["in_app"] {
        step.insert("channels".to_owned(), json!(channels));
    }
    match text_of(posted.text("title_en"), posted.text("title_zh")) {
        Some(title) => {
            step.insert("title".to_owned(), title);
        }
        None => {
            step.insert("title".to_owned(), json!(""));
            problems.push(FieldError::new(
                "/title",
                "required",
                "write the message's title",
            ));
        }
    }
    if let Some(body) = text_of(posted.text("body_en"), posted.text("body_zh")) {
        step.insert("body".to_owned(), body);
    }
}

/// A message text as the editor's two boxes show it: (English or the one template, Chinese).
fn text_boxes(text: Option<&Value>) -> (String, String) {
    match text {
        Some(Value::String(one)) => (one.clone(), String::new()),
        Some(Value::Object(by)) => {
            let get = |tag: &str| by.get(tag).and_then(Value::as_str).unwrap_or_default();
            (get("en").to_owned(), get("zh-CN").to_owned())
        }
        _ => (String::new(), String::new()),
    }
}

/// A step as the designer's card and editor show it: the step itself plus the rules read back
/// (`condition` of levels, `when` of cases), message texts per language and a wait's span.
pub fn step_view(step: &Value) -> Value {
    if !step.is_object() {
        // Not a step at all (typed in the JSON panel): shown as its JSON, to be corrected.
        return json!({
            "id": "", "type": "", "designed": false,
            "json": serde_json::to_string_pretty(step).unwrap_or_default(),
        });
    }
    let mut view = step.clone();
    let kind = step.get("type").and_then(Value::as_str).unwrap_or_default();
    view["designed"] = json!(DESIGNED_STEPS.contains(&kind));
    view["json"] = json!(serde_json::to_string_pretty(step).unwrap_or_default());
    if let Some(label) = step.get("label") {
        view["label_en"] = json!(label.get("en").and_then(Value::as_str).unwrap_or_default());
        view["label_zh"] = json!(
            label
                .get("zh-CN")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
    }
    match kind {
        "approval" => {
            let levels = step.get("levels").and_then(Value::as_array);
            let mut slots: Vec<Value> = levels
                .into_iter()
                .flatten()
                .map(|level| {
                    let mut slot = level.clone();
                    slot["rule"] = json!(parse_rule(level.get("when").and_then(Value::as_str)));
                    if let Some(label) = level.get("label") {
                        slot["label_en"] =
                            json!(label.get("en").and_then(Value::as_str).unwrap_or_default());
                        slot["label_zh"] = json!(
                            label
                                .get("zh-CN")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        );
                    }
                    slot
                })
                .collect();
            while slots.len() < LEVEL_SLOTS {
                slots.push(json!({"approvers": [], "rule": Rule::default(), "empty": true}));
            }
            view["slots"] = json!(slots);
        }
        "notify" => {
            let (title_en, title_zh) = text_boxes(step.get("title"));
            let (body_en, body_zh) = text_boxes(step.get("body"));
            view["title_en"] = json!(title_en);
            view["title_zh"] = json!(title_zh);
            view["body_en"] = json!(body_en);
            view["body_zh"] = json!(body_zh);
            let channels = step
                .get("channels")
                .cloned()
                .unwrap_or_else(|| json!(["in_app"]));
            view["channel_list"] = channels;
        }
        "set_fields" => {
            let mut rows: Vec<Value> = step
                .get("fields")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(field, value)| {
                    // Scripts and lists show as their JSON, which the editor reads back.
                    let text = match value {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    json!({"field": field, "value": text})
                })
                .collect();
            rows.extend((0..2).map(|_| json!({"field": "", "value": ""})));
            view["rows"] = json!(rows);
        }
        "wait" => {
            if let Some((amount, unit)) = step
                .get("duration")
                .and_then(Value::as_str)
                .and_then(parse_duration)
            {
                view["amount"] = json!(amount);
                view["unit"] = json!(unit);
            }
            if let Some(until) = step.get("until") {
                match until_field(until) {
                    Some(field) => view["until_field"] = json!(field),
                    None => view["until_raw"] = json!(until.to_string()),
                }
            }
        }
        "branch" => {
            let mut slots: Vec<Value> = step
                .get("cases")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|case| {
                    json!({
                        "rule": parse_rule(case.get("when").and_then(Value::as_str)),
                        "goto": case.get("goto").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect();
            while slots.len() < CASE_SLOTS {
                slots.push(json!({"rule": Rule::default(), "goto": ""}));
            }
            view["slots"] = json!(slots);
        }
        _ => {}
    }
    view
}

/// The field a wait's `until` names, when it is the designer's `{{ record.<field> }}`.
fn until_field(until: &Value) -> Option<&str> {
    until
        .as_str()?
        .trim()
        .strip_prefix("{{ record.")?
        .strip_suffix(" }}")
}

/// Where a step goes after it, for the flow drawing: its `next`, else the following step
/// (`None`: the run ends).
pub fn follows(doc: &Value, index: usize) -> Option<String> {
    let steps = doc.get("steps").and_then(Value::as_array)?;
    let step = steps.get(index)?;
    match step.get("next").and_then(Value::as_str) {
        Some(super::definition::END) => None,
        Some(next) => Some(next.to_owned()),
        None => steps
            .get(index + 1)
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// What a message preview renders with: the context a step sees, for `record` (its API form
/// with `id`, `owner`, `created_at`, `updated_at`), before any step has run.
pub fn preview_context(
    record: Value,
    key: &str,
    label: &str,
    now: chrono::DateTime<chrono::Utc>,
    today: chrono::NaiveDate,
) -> Value {
    // Numbers show as a run shows them (40%, not 40.0%).
    let record = match record {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, super::runtime::whole_numbers(v)))
                .collect(),
        ),
        other => other,
    };
    json!({
        "record": record,
        "old": Value::Null,
        "trigger": {"type": "preview"},
        "steps": {},
        "run": {"id": Value::Null, "workflow": key, "version": Value::Null},
        "workflow": {"key": key, "label": label},
        "now": now,
        "today": today,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fields() -> Vec<(String, String)> {
        [
            ("name", "text"),
            ("discount", "percent"),
            ("amount", "money"),
            ("status", "single_select"),
            ("valid_until", "date"),
            ("approval_note", "long_text"),
        ]
        .into_iter()
        .map(|(k, kind)| (k.to_owned(), kind.to_owned()))
        .collect()
    }

    fn workflow() -> Value {
        json!({"label": {"en": "Discount"}, "entity": "quote", "trigger": {"type": "record_created"},
        "steps": [
            {"id": "mark", "type": "set_fields", "fields": {"status": "pending"}},
            {"id": "approve", "type": "approval", "levels": [{"approvers": ["owner_manager"]}],
             "on_reject": "rejected", "allow": {"transfer": false}},
            {"id": "approved", "type": "set_fields", "fields": {"status": "approved"}, "next": "end"},
            {"id": "rejected", "type": "set_fields", "fields": {"status": "rejected"}}
        ]})
    }

    #[test]
    fn a_two_level_approval_is_written_from_the_form_and_read_back() {
        let posted = pairs(&[
            ("step_id", "approve"),
            ("title", "{{ record.name }}: {{ record.discount }}%"),
            ("level0_label_en", "Manager"),
            ("level0_label_zh", "直属上级"),
            ("level0_approver", "owner_manager"),
            ("level0_deadline_days", "2"),
            ("level0_remind", "on"),
            ("level0_then", "escalate"),
            ("level0_escalate", "role:sales_manager"),
            ("level1_label_en", "Director"),
            ("level1_approver", "role:director"),
            ("level1_mode", "all"),
            ("level1_when_field", "discount"),
            ("level1_when_op", "gt"),
            ("level1_when_value", "30"),
            ("lock_record", "on"),
            ("on_reject", "rejected"),
            // An unused slot, as a browser posts it.
            ("level2_mode", "any"),
            ("level2_when_op", "is"),
            ("level2_remind", "on"),
            ("level2_then", "none"),
        ]);
        let old = workflow()["steps"][1].clone();
        let (step, problems) = step_of("approval", &Posted(&posted), &fields(), Some(&old));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            step,
            json!({"id": "approve", "type": "approval",
                "title": "{{ record.name }}: {{ record.discount }}%",
                "levels": [
                    {"label": {"en": "Manager", "zh-CN": "直属上级"}, "approvers": ["owner_manager"],
                     "deadline": {"working_days": 2, "then": "escalate", "escalate_to": ["role:sales_manager"]}},
                    {"label": {"en": "Director"}, "approvers": ["role:director"], "mode": "all",
                     "when": "record.discount != () && record.discount > 30"}
                ],
                "on_reject": "rejected", "allow": {"transfer": false}})
        );
        let view = step_view(&step);
        assert_eq!(view["slots"][1]["rule"]["op"], "gt");
        assert_eq!(view["slots"][1]["rule"]["value"], "30");
        assert_eq!(view["slots"][0]["label_zh"], "直属上级");
        assert_eq!(view["slots"].as_array().map(Vec::len), Some(LEVEL_SLOTS));
    }

    #[test]
    fn a_half_built_step_is_refused_at_its_pointers_with_what_was_typed() {
        let posted = pairs(&[
            ("step_id", "approve"),
            ("level0_label_en", "Manager"),
            ("level0_deadline_days", "0"),
            ("level1_approver", "owner"),
            ("level1_when_field", "ghost"),
            ("level1_when_op", "is"),
            ("level1_when_value", "x"),
            ("lock_record", "on"),
        ]);
        let (step, problems) = step_of("approval", &Posted(&posted), &fields(), None);
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/levels/0/approvers",
                "/levels/0/deadline/working_days",
                "/levels/1/when/field"
            ]
        );
        assert_eq!(step["levels"][0]["label"]["en"], "Manager");
        let (_, problems) = step_of(
            "notify",
            &Posted(&pairs(&[("step_id", "tell")])),
            &fields(),
            None,
        );
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/to", "/channels", "/title"]);
    }

    #[test]
    fn notify_texts_are_one_template_or_one_per_language() {
        let posted = pairs(&[
            ("step_id", "tell"),
            ("to", "owner"),
            ("to", "role:sales_manager"),
            ("channel", "in_app"),
            ("channel", "email"),
            ("title_en", "Approved: {{ record.name }}"),
            ("title_zh", "已批准：{{ record.name }}"),
            ("body_en", "Go ahead."),
        ]);
        let (step, problems) = step_of("notify", &Posted(&posted), &fields(), None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            step["title"],
            json!({"en": "Approved: {{ record.name }}", "zh-CN": "已批准：{{ record.name }}"})
        );
        assert_eq!(step["body"], json!("Go ahead."));
        assert_eq!(step["channels"], json!(["in_app", "email"]));
        let view = step_view(&step);
        assert_eq!(view["title_zh"], "已批准：{{ record.name }}");
        assert_eq!(view["body_en"], "Go ahead.");
    }

    #[test]
    fn waits_and_date_triggers_round_trip_their_spans() {
        let (step, problems) = step_of(
            "wait",
            &Posted(&pairs(&[
                ("step_id", "pause"),
                ("wait_amount", "3"),
                ("wait_unit", "days"),
                ("wait_working_days", "on"),
            ])),
            &fields(),
            None,
        );
        assert!(problems.is_empty());
        assert_eq!(step["duration"], "P3D");
        assert_eq!(step_view(&step)["amount"], "3");
        let (step, _) = step_of(
            "wait",
            &Posted(&pairs(&[
                ("wait_mode", "until"),
                ("wait_until_field", "valid_until"),
            ])),
            &fields(),
            None,
        );
        assert_eq!(step["until"], "{{ record.valid_until }}");
        assert_eq!(step_view(&step)["until_field"], "valid_until");
        let trigger = trigger_of(
            &Posted(&pairs(&[
                ("trigger_type", "date"),
                ("trigger_field", "valid_until"),
                ("trigger_direction", "before"),
                ("trigger_amount", "4"),
                ("trigger_unit", "hours"),
            ])),
            &fields(),
            None,
        )
        .expect("a trigger");
        assert_eq!(
            trigger,
            json!({"type": "date", "field": "valid_until", "before": "PT4H"})
        );
        assert_eq!(trigger_view(&trigger)["amount"], "4");
        let refused = trigger_of(
            &Posted(&pairs(&[
                ("trigger_type", "date"),
                ("trigger_field", "name"),
            ])),
            &fields(),
            None,
        )
        .expect_err("not a date");
        assert_eq!(refused[0].pointer, "/trigger/field");
        assert_eq!(parse_duration("P1W"), None);
    }

    #[test]
    fn removing_a_step_others_lead_to_is_refused_and_renaming_moves_the_links() {
        let mut doc = workflow();
        let refused = apply(&mut doc, WorkflowEdit::RemoveStep { index: 3 }).expect_err("linked");
        assert_eq!(refused[0].pointer, "/steps/1/on_reject");
        let mut renamed = doc["steps"][3].clone();
        renamed["id"] = json!("mark_rejected");
        apply(
            &mut doc,
            WorkflowEdit::PutStep {
                index: Some(3),
                at: 0,
                step: renamed,
            },
        )
        .expect("renamed");
        assert_eq!(doc["steps"][1]["on_reject"], "mark_rejected");
        let clash = json!({"id": "mark", "type": "wait", "duration": "P1D"});
        let refused = apply(
            &mut doc,
            WorkflowEdit::PutStep {
                index: None,
                at: 1,
                step: clash,
            },
        )
        .expect_err("taken");
        assert_eq!(refused[0].pointer, "/steps/1/id");
        apply(
            &mut doc,
            WorkflowEdit::MoveStep {
                index: 0,
                up: false,
            },
        )
        .expect("moved");
        assert_eq!(
            step_ids(&doc)[..2],
            ["approve".to_owned(), "mark".to_owned()]
        );
        assert_eq!(follows(&doc, 2), None);
        assert_eq!(follows(&doc, 0).as_deref(), Some("mark"));
        assert_eq!(fresh_id(&doc, "notify"), "notify_1");
    }

    #[test]
    fn what_the_editor_cannot_show_survives_a_save() {
        // A fifth level is drawn and posted like the others.
        let mut posted = vec![("step_id", "approve"), ("lock_record", "on")];
        let names: Vec<String> = (0..5).map(|n| format!("level{n}_approver")).collect();
        for name in &names {
            posted.push((name.as_str(), "owner_manager"));
        }
        let (step, problems) = step_of("approval", &Posted(&pairs(&posted)), &fields(), None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(step["levels"].as_array().map(Vec::len), Some(5));
        // A script value reads back as a script, a list as a list.
        let old = json!({"id": "s", "type": "set_fields",
            "fields": {"discount": {"script": "record.discount * 2"}, "status": ["a", "b"]}});
        let view = step_view(&old);
        let rows = view["rows"].as_array().expect("rows");
        let posted: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r["field"] != "")
            .flat_map(|r| {
                [
                    (
                        "set_field".to_owned(),
                        r["field"].as_str().unwrap_or_default().to_owned(),
                    ),
                    (
                        "set_value".to_owned(),
                        r["value"].as_str().unwrap_or_default().to_owned(),
                    ),
                ]
            })
            .chain([("step_id".to_owned(), "s".to_owned())])
            .collect();
        let (step, _) = step_of("set_fields", &Posted(&posted), &fields(), Some(&old));
        assert_eq!(step["fields"], old["fields"]);
        // A trigger's on_create, null values and an offset the editor cannot read are kept.
        let old = json!({"type": "field_changed", "field": "status", "to": [null, "a, b"], "on_create": false});
        let view = trigger_view(&old);
        let posted = pairs(&[
            ("trigger_type", "field_changed"),
            ("trigger_field", "status"),
            ("trigger_to", view["to_text"].as_str().unwrap_or_default()),
        ]);
        assert_eq!(
            trigger_of(&Posted(&posted), &fields(), Some(&old)).expect("kept"),
            old
        );
        let old = json!({"type": "date", "field": "valid_until", "before": "P1W"});
        let posted = pairs(&[("trigger_type", "date"), ("trigger_field", "valid_until")]);
        assert_eq!(
            trigger_of(&Posted(&posted), &fields(), Some(&old)).expect("kept"),
            old
        );
        // A wait until a script's date.
        let old = json!({"id": "w", "type": "wait", "until": {"script": "today() + 3"}});
        let posted = pairs(&[("step_id", "w"), ("wait_mode", "until")]);
        let (step, problems) = step_of("wait", &Posted(&posted), &fields(), Some(&old));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(step["until"], old["until"]);
        // Something that is not a step is shown, not trusted.
        assert_eq!(step_view(&json!(5))["designed"], false);
        // A step that templates read by id keeps its id.
        let mut doc = workflow();
        doc["steps"][2]["fields"]["note"] = json!("{{ steps.approve.comment }}");
        let mut renamed = doc["steps"][1].clone();
        renamed["id"] = json!("approval");
        let refused = apply(
            &mut doc,
            WorkflowEdit::PutStep {
                index: Some(1),
                at: 0,
                step: renamed,
            },
        )
        .expect_err("in use");
        assert_eq!(refused[0].pointer, "/steps/1/id");
    }

    #[test]
    fn a_branch_needs_a_target_for_each_case() {
        let posted = pairs(&[
            ("step_id", "route"),
            ("case0_when_field", "amount"),
            ("case0_when_op", "ge"),
            ("case0_when_value", "100000.50"),
            ("case0_goto", "approve"),
            ("case1_when_field", "status"),
            ("case1_when_op", "is"),
            ("case1_when_value", "draft"),
            ("otherwise", "end"),
        ]);
        let (step, problems) = step_of("branch", &Posted(&posted), &fields(), None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pointer, "/cases/1/goto");
        assert_eq!(
            step["cases"][0]["when"],
            "record.amount != () && record.amount >= decimal(\"100000.50\")"
        );
        let view = step_view(&step);
        assert_eq!(view["slots"][0]["rule"]["value"], "100000.50");
        assert_eq!(view["slots"][0]["goto"], "approve");
    }
}
