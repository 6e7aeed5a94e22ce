//! Checks of definition documents: each against its meta-schema and its own rules, and against
//! the other definitions it refers to.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Kind, meta};
use crate::error::FieldError;

/// Kinds of field that can group a kanban.
const GROUPABLE_KINDS: [&str; 2] = ["single_select", "user"];
/// Kinds of field a calendar can be laid out on.
const DATE_KINDS: [&str; 2] = ["date", "datetime"];

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A rollup's child entity, reference, aggregated field and result kind fit together.
fn check_rollup(
    parent_key: &str,
    field: &Value,
    rollup: &Value,
    child: &Value,
    pointer: &str,
    problems: &mut Vec<FieldError>,
) {
    let text = |key: &str| rollup.get(key).and_then(Value::as_str).unwrap_or_default();
    let child_field = |key: &str| child.pointer(&format!("/properties/{}", escape(key)));
    let via = child_field(text("via"));
    let via_target = via
        .and_then(|v| v.pointer("/x-reference/entity"))
        .and_then(Value::as_str);
    if via_target != Some(parent_key) {
        problems.push(FieldError::new(
            format!("{pointer}/x-rollup/via"),
            "unknown_field",
            format!(
                "{:?} is not a reference from {:?} to {parent_key:?}",
                text("via"),
                text("entity")
            ),
        ));
    }
    let op = text("op");
    let result = field.get("x-result").and_then(Value::as_str);
    if op == "count" {
        if !matches!(result, None | Some("integer" | "number")) {
            problems.push(FieldError::new(
                format!("{pointer}/x-result"),
                "field_kind",
                "a count is an integer or a number",
            ));
        }
        return;
    }
    let Some(aggregated) = rollup.get("field").and_then(Value::as_str) else {
        problems.push(FieldError::new(
            format!("{pointer}/x-rollup"),
            "required",
            format!("a {op} names the field it aggregates"),
        ));
        return;
    };
    let Some(source) = child_field(aggregated) else {
        problems.push(FieldError::new(
            format!("{pointer}/x-rollup/field"),
            "unknown_field",
            format!("{:?} has no field {aggregated:?}", text("entity")),
        ));
        return;
    };
    let source_kind = source
        .get("x-kind")
        .and_then(Value::as_str)
        .unwrap_or("text");
    let source_kind = if matches!(source_kind, "formula" | "rollup") {
        source
            .get("x-result")
            .and_then(Value::as_str)
            .unwrap_or("number")
    } else {
        source_kind
    };
    let numeric = ["integer", "number", "money", "percent"].contains(&source_kind);
    let fits_source = match op {
        "sum" | "avg" => numeric,
        _ => numeric || DATE_KINDS.contains(&source_kind),
    };
    if !fits_source {
        problems.push(FieldError::new(
            format!("{pointer}/x-rollup/field"),
            "field_kind",
            format!("a {op} cannot aggregate {source_kind} values"),
        ));
        return;
    }
    // The result keeps the values' kind: money stays money in its currency, dates stay dates.
    let expected: &[&str] = match (op, source_kind) {
        (_, "money") => &["money"],
        ("min" | "max", "date") => &["date"],
        ("min" | "max", "datetime") => &["datetime"],
        ("avg", _) => &["number"],
        (_, "integer") => &["integer", "number"],
        _ => &["number"],
    };
    let result = result.unwrap_or("number");
    let same_currency =
        source_kind != "money" || source.get("x-currency") == field.get("x-currency");
    if !expected.contains(&result) || !same_currency {
        problems.push(FieldError::new(
            format!("{pointer}/x-result"),
            "field_kind",
            format!(
                "a {op} of {source_kind} values is {}{}",
                expected.join(" or "),
                if source_kind == "money" {
                    " in the same currency (x-currency)"
                } else {
                    ""
                }
            ),
        ));
    }
}

/// The rollups of other entities over `key` still fit its new version (the fields they
/// aggregate and reference exist, with kinds they can aggregate).
fn check_rollups_over(
    set: &DefinitionSet,
    key: &str,
    document: &Value,
    prefix: &str,
    problems: &mut Vec<FieldError>,
) {
    for (parent_key, parent) in set.entities().filter(|(k, _)| *k != key) {
        let properties = parent.get("properties").and_then(Value::as_object);
        for (name, field) in properties.into_iter().flatten() {
            let Some(rollup) = field.get("x-rollup") else {
                continue;
            };
            if rollup.get("entity").and_then(Value::as_str) != Some(key) {
                continue;
            }
            let mut found = Vec::new();
            check_rollup(parent_key, field, rollup, document, "", &mut found);
            for problem in found {
                problems.push(FieldError::new(
                    prefix,
                    "rollup_broken",
                    format!(
                        "{parent_key}.{name} rolls this entity up and would break: {}",
                        problem.message
                    ),
                ));
            }
        }
    }
}

/// Rollups pass changes up from child to parent, and formulas that look a record up are
/// recomputed when it changes: through the entity being saved, neither may loop back to it (a
/// value would feed itself, and recomputes would never end), and rollup chains through it may
/// not be longer than the levels a change travels. Problems elsewhere in the workspace are not
/// this save's to report.
fn check_rollup_chains(
    set: &DefinitionSet,
    key: &str,
    document: &Value,
    prefix: &str,
    problems: &mut Vec<FieldError>,
) {
    use std::collections::{BTreeSet, HashMap};
    let fields = |doc: &Value| -> Vec<Value> {
        doc.get("properties")
            .and_then(Value::as_object)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    };
    let rolled_up = |doc: &Value| -> BTreeSet<String> {
        fields(doc)
            .iter()
            .filter_map(|f| f.pointer("/x-rollup/entity").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    };
    // The entities a field's value reads through lookups, following the formulas it reads.
    let lookups_behind = |doc: &Value, field: &str| -> BTreeSet<String> {
        let properties = doc.get("properties").and_then(Value::as_object);
        let mut found = BTreeSet::new();
        let mut todo = vec![field.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(source) = properties
                .and_then(|p| p.get(&name))
                .and_then(|f| f.get("x-formula"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let uses = crate::script::analysis::analyse(source);
            found.extend(uses.lookups.into_iter().filter_map(|l| l.entity));
            todo.extend(uses.fields.into_iter().map(|(f, _)| f));
        }
        found
    };
    let mut docs: HashMap<String, &Value> = set
        .entities()
        .filter(|(k, _)| *k != key)
        .map(|(k, doc)| (k.to_owned(), doc))
        .collect();
    docs.insert(key.to_owned(), document);
    let rollups: HashMap<String, BTreeSet<String>> = docs
        .iter()
        .map(|(k, doc)| (k.clone(), rolled_up(doc)))
        .collect();
    // What each entity's stored values depend on: the entities it rolls up, and the entities
    // looked up by the formulas those rollups aggregate (a lookup nobody rolls up feeds nothing
    // back, however common: an opportunity showing its customer's name).
    let mut depends: HashMap<String, BTreeSet<String>> = rollups.clone();
    for doc in docs.values() {
        for field in fields(doc) {
            let (Some(child), Some(aggregated)) = (
                field.pointer("/x-rollup/entity").and_then(Value::as_str),
                field.pointer("/x-rollup/field").and_then(Value::as_str),
            ) else {
                continue;
            };
            if let Some(child_doc) = docs.get(child) {
                depends
                    .entry(child.to_owned())
                    .or_default()
                    .extend(lookups_behind(child_doc, aggregated));
            }
        }
    }
    // A way from the saved entity back to itself.
    fn way_back(
        node: &str,
        target: &str,
        graph: &HashMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flatten() {
            if next == target {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if way_back(next, target, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![key.to_owned()];
    if way_back(key, key, &depends, &mut path, &mut BTreeSet::new()) {
        problems.push(FieldError::new(
            prefix,
            "rollup_cycle",
            format!(
                "stored values would feed themselves: {} (each depends on the next through a rollup or a lookup)",
                path.join(" → ")
            ),
        ));
        return;
    }
    // The longest rollup chain through the saved entity: levels below it and above it.
    fn longest(
        node: &str,
        graph: &HashMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<String>,
    ) -> usize {
        let mut best = 0;
        for next in graph.get(node).into_iter().flatten() {
            if seen.insert(next.clone()) {
                best = best.max(1 + longest(next, graph, seen));
                seen.remove(next);
            }
        }
        best
    }
    let mut reversed: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (parent, children) in &rollups {
        for child in children {
            reversed
                .entry(child.clone())
                .or_default()
                .insert(parent.clone());
        }
    }
    let mut seen = BTreeSet::from([key.to_owned()]);
    let levels = longest(key, &rollups, &mut seen) + longest(key, &reversed, &mut seen);
    if levels > crate::records::rollups::MAX_DEPTH {
        problems.push(FieldError::new(
            prefix,
            "rollup_chain",
            format!(
                "rollups through this entity would chain over {levels} levels; at most {} are kept current",
                crate::records::rollups::MAX_DEPTH
            ),
        ));
    }
}

/// Every problem with one document on its own: its meta-schema, then kind-specific rules.
pub fn check_document(kind: Kind, document: &Value, prefix: &str) -> Vec<FieldError> {
    let validator = match kind {
        Kind::Entity => meta::entity(),
        Kind::Form => meta::form(),
        Kind::View => meta::view(),
        Kind::Workflow => meta::workflow(),
        Kind::Report => meta::report(),
        Kind::Dashboard => meta::dashboard(),
        Kind::PrintTemplate => meta::print_template(),
        Kind::EmailTemplate => meta::email_template(),
    };
    let mut problems = meta::problems(validator, document, prefix);
    if !problems.is_empty() {
        return problems;
    }
    if kind == Kind::Entity {
        check_entity_rules(document, prefix, &mut problems);
        let (_, script_problems) =
            crate::script::formulas::plan(&crate::script::shared(), document, prefix);
        problems.extend(script_problems);
    }
    if kind == Kind::Form {
        check_form_rules(document, prefix, &mut problems);
    }
    if kind == Kind::Report {
        problems.extend(crate::reports::definition::check_document(document, prefix));
    }
    if kind == Kind::PrintTemplate
        && let Some(source) = document.get("template").and_then(Value::as_str)
        && let Err(problem) = crate::printing::check_template(source, &format!("{prefix}/template"))
    {
        problems.push(problem);
    }
    if kind == Kind::EmailTemplate {
        for part in ["subject", "body"] {
            if let Some(source) = document.get(part).and_then(Value::as_str)
                && let Err(problem) =
                    crate::render::sandbox::check(source, &format!("{prefix}/{part}"))
            {
                problems.push(problem);
            }
        }
    }
    if kind == Kind::Workflow
        && let Err(workflow_problems) = crate::workflows::Workflow::compile(
            &crate::script::shared(),
            "",
            uuid::Uuid::nil(),
            0,
            std::sync::Arc::new(document.clone()),
            prefix,
        )
    {
        problems.extend(workflow_problems);
    }
    problems
}

/// A form's `visible_when` and `readonly_when` rules must compile (line and column on error).
fn check_form_rules(document: &Value, prefix: &str, problems: &mut Vec<FieldError>) {
    let engine = crate::script::shared();
    let sections = document.get("sections").and_then(Value::as_array);
    for (s, section) in sections.into_iter().flatten().enumerate() {
        let fields = section.get("fields").and_then(Value::as_array);
        for (f, item) in fields.into_iter().flatten().enumerate() {
            for key in ["visible_when", "readonly_when"] {
                if let Some(source) = item.get(key).and_then(Value::as_str) {
                    let pointer = format!("{prefix}/sections/{s}/fields/{f}/{key}");
                    if let Err(crate::error::Error::Invalid { errors, .. }) =
                        engine.compile(source, &pointer)
                    {
                        problems.extend(errors);
                    }
                }
            }
        }
    }
}

/// Field kinds a duplicate rule may compare.
const DUPLICATE_KINDS: [&str; 7] = [
    "text",
    "email",
    "phone",
    "url",
    "date",
    "single_select",
    "reference",
];

fn check_entity_rules(document: &Value, prefix: &str, problems: &mut Vec<FieldError>) {
    let properties = document.get("properties").and_then(Value::as_object);
    let has_field = |name: &str| properties.is_some_and(|p| p.contains_key(name));
    if let Some(required) = document.get("required").and_then(Value::as_array) {
        for (i, name) in required.iter().enumerate() {
            if let Some(name) = name.as_str()
                && !has_field(name)
            {
                problems.push(FieldError::new(
                    format!("{prefix}/required/{i}"),
                    "unknown_field",
                    format!("required field {name:?} is not among the properties"),
                ));
            }
        }
    }
    if let Some(title) = document.get("x-title-field").and_then(Value::as_str)
        && !has_field(title)
    {
        problems.push(FieldError::new(
            format!("{prefix}/x-title-field"),
            "unknown_field",
            format!("title field {title:?} is not among the properties"),
        ));
    }
    for (key, field) in properties.into_iter().flatten() {
        let kind = field.get("x-kind").and_then(Value::as_str);
        if field.get("x-search") == Some(&Value::Bool(true))
            && !matches!(kind, Some("text" | "long_text" | "email" | "phone" | "url"))
        {
            problems.push(FieldError::new(
                format!("{prefix}/properties/{}/x-search", escape(key)),
                "field_kind",
                "only text, long text, email, phone and URL fields can be searched",
            ));
        }
    }
    if let Some(activity) = document
        .pointer("/x-pool/activity_field")
        .and_then(Value::as_str)
    {
        let kind = properties
            .and_then(|p| p.get(activity))
            .and_then(|f| f.get("x-kind"))
            .and_then(Value::as_str);
        if !matches!(kind, Some("date" | "datetime")) {
            problems.push(FieldError::new(
                format!("{prefix}/x-pool/activity_field"),
                "field_kind",
                format!("the activity field {activity:?} must be a date or datetime field"),
            ));
        }
    }
    if let Some(target) = document.get("x-target").and_then(Value::as_object) {
        let kind_of = |name: &str| {
            properties
                .and_then(|p| p.get(name))
                .and_then(|f| f.get("x-kind"))
                .and_then(Value::as_str)
        };
        for (role, kinds) in [
            ("fiscal_year", &["integer"][..]),
            ("measure", &["single_select", "text"][..]),
            ("assignee", &["user"][..]),
            ("amount", &["number", "money", "integer"][..]),
            ("months", &["sub_table"][..]),
        ] {
            let Some(name) = target.get(role).and_then(Value::as_str) else {
                continue;
            };
            let pointer = format!("{prefix}/x-target/{role}");
            match kind_of(name) {
                None => problems.push(FieldError::new(
                    pointer,
                    "unknown_field",
                    format!("the {role} field {name:?} is not among the properties"),
                )),
                Some(kind) if !kinds.contains(&kind) => problems.push(FieldError::new(
                    pointer,
                    "field_kind",
                    format!("the {role} field is a {}, not a {kind}", kinds.join(" or ")),
                )),
                Some(_) => {}
            }
        }
        if let Some(months) = target.get("months").and_then(Value::as_str) {
            let columns = properties
                .and_then(|p| p.get(months))
                .and_then(|f| f.pointer("/items/properties"))
                .and_then(Value::as_object);
            for column in ["month", "weight"] {
                if columns.is_some_and(|c| !c.contains_key(column)) {
                    problems.push(FieldError::new(
                        format!("{prefix}/x-target/months"),
                        "unknown_field",
                        format!("the months sub-table needs a {column:?} column"),
                    ));
                }
            }
        }
    }
    // Conditional requirements (`allOf` of if/then, as the designer writes them) name fields
    // of the entity.
    if let Some(rules) = document.get("allOf").and_then(Value::as_array) {
        for (i, rule) in rules.iter().enumerate() {
            let named = [
                (
                    "if/properties",
                    rule.pointer("/if/properties")
                        .and_then(Value::as_object)
                        .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                ),
                (
                    "if/required",
                    rule.pointer("/if/required")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        }),
                ),
                (
                    "then/required",
                    rule.pointer("/then/required")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(str::to_owned))
                                .collect()
                        }),
                ),
            ];
            for (at, keys) in named {
                for key in keys.into_iter().flatten() {
                    if properties.is_none_or(|p| p.get(&key).is_none()) {
                        problems.push(FieldError::new(
                            format!("{prefix}/allOf/{i}/{at}"),
                            "unknown_field",
                            format!("the rule names {key:?}, which is not among the properties"),
                        ));
                    }
                }
            }
        }
    }
    if let Some(rules) = document.get("x-duplicates").and_then(Value::as_array) {
        for (i, rule) in rules.iter().enumerate() {
            for (j, key) in rule.as_array().into_iter().flatten().enumerate() {
                let Some(key) = key.as_str() else { continue };
                let kind = properties
                    .and_then(|p| p.get(key))
                    .map(|f| f.get("x-kind").and_then(Value::as_str).unwrap_or(""));
                let pointer = format!("{prefix}/x-duplicates/{i}/{j}");
                match kind {
                    None => problems.push(FieldError::new(
                        pointer,
                        "unknown_field",
                        format!("duplicate rule field {key:?} is not among the properties"),
                    )),
                    Some(kind) if !DUPLICATE_KINDS.contains(&kind) => {
                        problems.push(FieldError::new(
                            pointer,
                            "field_kind",
                            format!(
                                "a {kind} field ({key:?}) cannot tell duplicates; use {}",
                                DUPLICATE_KINDS.join(", ")
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    if let Some(indexes) = document.get("x-indexes").and_then(Value::as_array) {
        for (i, keys) in indexes.iter().enumerate() {
            for (j, key) in keys.as_array().into_iter().flatten().enumerate() {
                let Some(key) = key.as_str() else { continue };
                let pointer = format!("{prefix}/x-indexes/{i}/{j}");
                let field = properties.and_then(|p| p.get(key));
                if field.is_none() && key == "owner" {
                    // The owner column (dashboards grouping by owner read it in order).
                    continue;
                }
                let Some(field) = field else {
                    problems.push(FieldError::new(
                        pointer,
                        "unknown_field",
                        format!("indexed field {key:?} is not among the properties"),
                    ));
                    continue;
                };
                let kind = field.get("x-kind").and_then(Value::as_str).unwrap_or("");
                if ["multi_select", "sub_table", "attachment"].contains(&kind) {
                    problems.push(FieldError::new(
                        pointer,
                        "field_kind",
                        format!("a {kind} field ({key:?}) cannot be indexed"),
                    ));
                }
            }
        }
    }
    if let Some(properties) = properties {
        for (name, field) in properties {
            if let Some(totals) = field.get("x-totals").and_then(Value::as_object) {
                let columns = field
                    .pointer("/items/properties")
                    .and_then(Value::as_object);
                for (column, op) in totals {
                    let pointer = format!(
                        "{prefix}/properties/{}/x-totals/{}",
                        escape(name),
                        escape(column)
                    );
                    let kind = columns
                        .and_then(|c| c.get(column))
                        .and_then(|c| c.get("x-kind"))
                        .and_then(Value::as_str);
                    let Some(kind) = kind else {
                        problems.push(FieldError::new(
                            pointer,
                            "unknown_field",
                            format!("the sub-table has no column {column:?}"),
                        ));
                        continue;
                    };
                    let numeric = ["integer", "number", "money", "percent"].contains(&kind);
                    let ordered = numeric || DATE_KINDS.contains(&kind);
                    let fits = match op.as_str().unwrap_or_default() {
                        "sum" | "avg" => numeric,
                        "min" | "max" => ordered,
                        _ => true,
                    };
                    if !fits {
                        problems.push(FieldError::new(
                            pointer,
                            "field_kind",
                            format!("{op} does not apply to the {kind} column {column:?}"),
                        ));
                    }
                }
            }
            if let Some(options) = field.get("x-options").and_then(Value::as_array) {
                let mut seen = std::collections::HashSet::new();
                for (i, option) in options.iter().enumerate() {
                    let value = option
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !seen.insert(value) {
                        problems.push(FieldError::new(
                            format!("{prefix}/properties/{}/x-options/{i}/value", escape(name)),
                            "duplicate",
                            format!("option value {value:?} appears twice"),
                        ));
                    }
                }
            }
        }
    }
    find_external_refs(document, prefix, problems);
    if problems.is_empty()
        && let Err(error) = meta::compile(document, prefix)
    {
        problems.push(error);
    }
}

/// `$ref` may only point inside the document: no remote or file fetches, ever.
fn find_external_refs(value: &Value, pointer: &str, problems: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_pointer = format!("{pointer}/{}", escape(key));
                if (key == "$ref" || key == "$dynamicRef")
                    && child.as_str().is_some_and(|r| !r.starts_with('#'))
                {
                    problems.push(FieldError::new(
                        child_pointer.clone(),
                        "external_ref",
                        "a $ref may only point inside the document (start with '#')",
                    ));
                }
                find_external_refs(child, &child_pointer, problems);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_external_refs(child, &format!("{pointer}/{i}"), problems);
            }
        }
        _ => {}
    }
}

/// A set of definitions to resolve references against: a workspace's published ones, overlaid
/// with the ones being published or installed.
#[derive(Debug, Default, Clone)]
pub struct DefinitionSet {
    entries: BTreeMap<(Kind, String), Value>,
}

impl DefinitionSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every published definition of a workspace, read through `conn` (inside the caller's
    /// transaction, so validation and the write see the same state).
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn load(
        conn: &impl crate::store::Conn,
        workspace_id: uuid::Uuid,
    ) -> crate::error::Result<Self> {
        let mut set = Self::new();
        for row in crate::store::definitions::published(conn, workspace_id).await? {
            if let Ok(kind) = Kind::parse(&row.kind) {
                set.insert(kind, &row.key, row.document);
            }
        }
        Ok(set)
    }

    /// The forms, views and workflows built on `entity`, as (kind, key, document).
    pub fn dependents_of(&self, entity: &str) -> Vec<(Kind, &str, &Value)> {
        self.entries
            .iter()
            .filter(|((kind, _), doc)| match kind {
                Kind::Entity => false,
                Kind::Workflow => crate::workflows::definition::entities_used(doc)
                    .iter()
                    .any(|e| e == entity),
                _ => doc.get("entity").and_then(Value::as_str) == Some(entity),
            })
            .map(|((kind, key), doc)| (*kind, key.as_str(), doc))
            .collect()
    }

    /// Every entity document, by key.
    pub fn entities(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries
            .iter()
            .filter(|((kind, _), _)| *kind == Kind::Entity)
            .map(|((_, key), doc)| (key.as_str(), doc))
    }

    /// Adds or replaces a definition.
    pub fn insert(&mut self, kind: Kind, key: &str, document: Value) {
        self.entries.insert((kind, key.to_owned()), document);
    }

    /// The definition of `kind` and `key`.
    pub fn get(&self, kind: Kind, key: &str) -> Option<&Value> {
        self.entries.get(&(kind, key.to_owned()))
    }
}

fn field_kind<'a>(entity: &'a Value, field: &str) -> Option<&'a str> {
    entity
        .get("properties")?
        .get(field)?
        .get("x-kind")?
        .as_str()
}

/// Every broken reference that publishing `document` as `kind`/`key` into `set` would leave:
/// its own references, and (for an entity) those of the forms and views built on it.
pub fn check_publish(
    set: &DefinitionSet,
    kind: Kind,
    key: &str,
    document: &Value,
) -> Vec<FieldError> {
    let mut with_change = set.clone();
    with_change.insert(kind, key, document.clone());
    let mut problems = check_references(&with_change, kind, key, document, "/document");
    if kind == Kind::Entity {
        for (dependent_kind, dependent_key, dependent) in with_change.dependents_of(key) {
            for mut problem in
                check_references(&with_change, dependent_kind, dependent_key, dependent, "")
            {
                problem.message = format!(
                    "{} {dependent_key:?} would break: {}",
                    dependent_kind.as_str(),
                    problem.message
                );
                problem.pointer = format!(
                    "/dependents/{}/{dependent_key}{}",
                    dependent_kind.as_str(),
                    problem.pointer
                );
                problem.code = "breaks_dependent".to_owned();
                problems.push(problem);
            }
        }
    }
    problems
}

/// Every reference from `document` to something missing in `set` (entities, fields).
pub fn check_references(
    set: &DefinitionSet,
    kind: Kind,
    key: &str,
    document: &Value,
    prefix: &str,
) -> Vec<FieldError> {
    let mut problems = Vec::new();
    match kind {
        Kind::Entity => {
            let Some(properties) = document.get("properties").and_then(Value::as_object) else {
                return problems;
            };
            for (name, field) in properties {
                if let Some(rollup) = field.get("x-rollup") {
                    let pointer = format!("{prefix}/properties/{}", escape(name));
                    // The entity being saved may roll itself up (a tree of records).
                    let child = rollup
                        .get("entity")
                        .and_then(Value::as_str)
                        .and_then(|target| {
                            if target == key {
                                Some(document)
                            } else {
                                set.get(Kind::Entity, target)
                            }
                        });
                    if let Some(child) = child {
                        check_rollup(key, field, rollup, child, &pointer, &mut problems);
                    }
                }
                for (keyword, target) in [
                    ("x-reference", field.pointer("/x-reference/entity")),
                    ("x-rollup", field.pointer("/x-rollup/entity")),
                ] {
                    if keyword == "x-rollup" && target.and_then(Value::as_str) == Some(key) {
                        continue;
                    }
                    if let Some(target) = target.and_then(Value::as_str)
                        && set.get(Kind::Entity, target).is_none()
                    {
                        problems.push(FieldError::new(
                            format!("{prefix}/properties/{}/{keyword}/entity", escape(name)),
                            "unknown_entity",
                            format!("entity {target:?} does not exist"),
                        ));
                    }
                }
            }
            check_rollups_over(set, key, document, prefix, &mut problems);
            check_rollup_chains(set, key, document, prefix, &mut problems);
        }
        Kind::Workflow => {
            let lookup = |key: &str| set.get(Kind::Entity, key).cloned();
            problems.extend(crate::workflows::definition::check_references(
                &lookup, document, prefix,
            ));
            let steps = document.get("steps").and_then(Value::as_array);
            for (i, step) in steps.into_iter().flatten().enumerate() {
                if let Some(report) = step.get("report").and_then(Value::as_str)
                    && step.get("type").and_then(Value::as_str) == Some("send_report")
                    && set.get(Kind::Report, report).is_none()
                {
                    problems.push(FieldError::new(
                        format!("{prefix}/steps/{i}/report"),
                        "unknown_report",
                        format!("report {report:?} does not exist"),
                    ));
                }
            }
        }
        Kind::Report => {
            let lookup = |key: &str| set.get(Kind::Entity, key).cloned();
            problems.extend(crate::reports::definition::check_references(
                &lookup, document, prefix,
            ));
        }
        Kind::PrintTemplate | Kind::EmailTemplate => {
            if let Some(entity) = document.get("entity").and_then(Value::as_str)
                && set.get(Kind::Entity, entity).is_none()
            {
                problems.push(FieldError::new(
                    format!("{prefix}/entity"),
                    "unknown_entity",
                    format!("entity {entity:?} does not exist"),
                ));
            }
        }
        Kind::Dashboard => {
            let items = document.get("items").and_then(Value::as_array);
            for (i, item) in items.into_iter().flatten().enumerate() {
                if let Some(report) = item.get("report").and_then(Value::as_str)
                    && set.get(Kind::Report, report).is_none()
                {
                    problems.push(FieldError::new(
                        format!("{prefix}/items/{i}/report"),
                        "unknown_report",
                        format!("report {report:?} does not exist"),
                    ));
                }
            }
        }
        Kind::Form | Kind::View => {
            let Some(entity_key) = document.get("entity").and_then(Value::as_str) else {
                return problems;
            };
            let Some(entity) = set.get(Kind::Entity, entity_key) else {
                problems.push(FieldError::new(
                    format!("{prefix}/entity"),
                    "unknown_entity",
                    format!("entity {entity_key:?} does not exist"),
                ));
                return problems;
            };
            let mut check =
                |pointer: String, field: &str, allowed: Option<&[&str]>| match field_kind(
                    entity, field,
                ) {
                    None => problems.push(FieldError::new(
                        pointer,
                        "unknown_field",
                        format!("entity {entity_key:?} has no field {field:?}"),
                    )),
                    Some(found) if allowed.is_some_and(|kinds| !kinds.contains(&found)) => {
                        problems.push(FieldError::new(
                            pointer,
                            "field_kind",
                            format!(
                                "field {field:?} is a {found}; this needs one of {}",
                                allowed.unwrap_or_default().join(", ")
                            ),
                        ));
                    }
                    Some(_) => {}
                };
            let mut rule_problems = Vec::new();
            if kind == Kind::Form {
                let sections = document.get("sections").and_then(Value::as_array);
                for (s, section) in sections.into_iter().flatten().enumerate() {
                    let fields = section.get("fields").and_then(Value::as_array);
                    for (f, item) in fields.into_iter().flatten().enumerate() {
                        if let Some(field) = item.get("field").and_then(Value::as_str) {
                            check(
                                format!("{prefix}/sections/{s}/fields/{f}/field"),
                                field,
                                None,
                            );
                            if let (Some(widget), Some(kind)) = (
                                item.get("widget").and_then(Value::as_str),
                                field_kind(entity, field),
                            ) {
                                let allowed = crate::render::forms::widgets_for(kind);
                                if !allowed.contains(&widget) {
                                    rule_problems.push(FieldError::new(
                                        format!("{prefix}/sections/{s}/fields/{f}/widget"),
                                        "widget",
                                        format!(
                                            "a {kind} field shows as {}, not {widget:?}",
                                            if allowed.is_empty() {
                                                "its own widget".to_owned()
                                            } else {
                                                allowed.join(" or ")
                                            }
                                        ),
                                    ));
                                }
                            }
                        }
                        for rule in ["visible_when", "readonly_when"] {
                            let Some(source) = item.get(rule).and_then(Value::as_str) else {
                                continue;
                            };
                            for (field, at) in crate::script::analysis::analyse(source).fields {
                                if field_kind(entity, &field).is_none() {
                                    let mut problem = FieldError::new(
                                        format!("{prefix}/sections/{s}/fields/{f}/{rule}"),
                                        "unknown_field",
                                        format!("entity {entity_key:?} has no field {field:?}"),
                                    );
                                    problem.line = Some(at.line);
                                    problem.column = Some(at.column);
                                    rule_problems.push(problem);
                                }
                            }
                        }
                    }
                }
            } else {
                let columns = document.get("columns").and_then(Value::as_array);
                for (i, column) in columns.into_iter().flatten().enumerate() {
                    if let Some(field) = column.as_str() {
                        check(format!("{prefix}/columns/{i}"), field, None);
                    }
                }
                let sorts = document.get("sort").and_then(Value::as_array);
                for (i, sort) in sorts.into_iter().flatten().enumerate() {
                    if let Some(field) = sort.get("field").and_then(Value::as_str) {
                        check(format!("{prefix}/sort/{i}/field"), field, None);
                    }
                }
                if let Some(field) = document.get("group_by").and_then(Value::as_str) {
                    check(format!("{prefix}/group_by"), field, Some(&GROUPABLE_KINDS));
                }
                if let Some(field) = document.get("date_field").and_then(Value::as_str) {
                    check(format!("{prefix}/date_field"), field, Some(&DATE_KINDS));
                }
            }
            problems.extend(rule_problems);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lead() -> Value {
        json!({
            "type": "object",
            "x-label": {"en": "Lead", "zh-CN": "线索"},
            "x-title-field": "name",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Name"}},
                "stage": {"type": "string", "x-kind": "single_select", "x-label": {"en": "Stage"},
                          "x-options": [{"value": "new", "label": {"en": "New"}}]},
                "budget": {"type": "number", "minimum": 0, "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Budget"}}
            }
        })
    }

    #[test]
    fn a_valid_entity_passes() {
        assert_eq!(check_document(Kind::Entity, &lead(), ""), vec![]);
    }

    #[test]
    fn entity_problems_are_located() {
        let mut doc = lead();
        doc["required"] = json!(["name", "ghost"]);
        doc["properties"]["budget"]
            .as_object_mut()
            .expect("object")
            .remove("x-currency");
        let problems = check_document(Kind::Entity, &doc, "/document");
        assert!(
            problems
                .iter()
                .any(|p| p.pointer == "/document/properties/budget/x-currency"),
            "{problems:?}"
        );
        doc["properties"]["budget"]["x-currency"] = json!("CNY");
        let problems = check_document(Kind::Entity, &doc, "/document");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].pointer, "/document/required/1");
    }

    #[test]
    fn compound_indexes_name_known_indexable_fields() {
        let mut doc = lead();
        doc["x-indexes"] = json!([["stage", "budget"]]);
        assert_eq!(check_document(Kind::Entity, &doc, ""), vec![]);
        doc["properties"]["tags"] = json!({"type": "array", "x-kind": "multi_select",
            "x-label": {"en": "Tags"}, "x-options": [{"value": "a", "label": {"en": "A"}}]});
        doc["x-indexes"] = json!([["stage", "ghost"], ["tags", "name"]]);
        let problems = check_document(Kind::Entity, &doc, "");
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), p.code.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("/x-indexes/0/1", "unknown_field"),
                ("/x-indexes/1/0", "field_kind")
            ],
            "{problems:?}"
        );
        doc["x-indexes"] = json!([["stage"]]);
        assert!(!check_document(Kind::Entity, &doc, "").is_empty());
    }

    #[test]
    fn external_refs_are_refused() {
        let mut doc = lead();
        doc["properties"]["name"]["$ref"] = json!("https://example.com/x.json");
        let problems = check_document(Kind::Entity, &doc, "");
        assert_eq!(problems[0].code, "external_ref");
        assert_eq!(problems[0].pointer, "/properties/name/$ref");
    }

    #[test]
    fn invalid_regex_is_reported() {
        let mut doc = lead();
        doc["properties"]["name"]["pattern"] = json!("([unclosed");
        let problems = check_document(Kind::Entity, &doc, "");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].code, "schema");
    }

    #[test]
    fn views_check_fields_and_kinds() {
        let mut set = DefinitionSet::new();
        set.insert(Kind::Entity, "lead", lead());
        let view = json!({
            "entity": "lead", "label": {"en": "Pipeline"}, "layout": "kanban",
            "group_by": "budget", "columns": ["name", "nope"]
        });
        assert!(check_document(Kind::View, &view, "").is_empty());
        let problems = check_references(&set, Kind::View, "pipeline", &view, "");
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/columns/1", "/group_by"]);
        let orphan = json!({"entity": "ghost", "label": {"en": "X"}, "sections": [{"fields": [{"field": "a"}]}]});
        let problems = check_references(&set, Kind::Form, "x", &orphan, "");
        assert_eq!(problems[0].code, "unknown_entity");
    }
}
