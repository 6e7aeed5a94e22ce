//! Formulas and validation rules of an entity: compiled once per published version, checked when
//! saved (syntax, unknown fields, cycles, the forms a formula may take), ordered so that a
//! formula reading another runs after it, and evaluated on every write.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use rhai::{Dynamic, Map as RhaiMap};
use serde_json::Value;

use super::analysis::{self, At};
use super::library::LOOKUP_PENDING;
use super::{Env, Script, ScriptEngine, values};
use crate::definitions::EntityModel;
use crate::error::{Error, FieldError, RuleRef};

/// A formula field, compiled.
#[derive(Debug, Clone)]
pub struct FormulaPlan {
    /// The field it computes.
    pub key: String,
    /// The compiled formula.
    pub script: Script,
    /// The fields of the record it reads.
    pub reads: Vec<String>,
    /// Whether it reads the clock (`now()`, `today()`): recomputed daily.
    pub volatile: bool,
    /// The related records it looks up: (entity, the reference field holding the id).
    pub lookups: Vec<(String, String)>,
}

/// When a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOn {
    /// On creates only.
    Create,
    /// On updates only.
    Update,
    /// On every write.
    Both,
}

/// A validation rule, compiled.
#[derive(Debug, Clone)]
pub struct RulePlan {
    /// The rule's key.
    pub key: String,
    /// The compiled condition (true: the record is valid).
    pub script: Script,
    /// The message in every language given (`en` always).
    pub messages: Value,
    /// The fields it concerns (where its error is shown).
    pub fields: Vec<String>,
    /// When it applies.
    pub on: RuleOn,
}

/// An entity's formulas in dependency order and its rules.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Formulas, each after the formulas it reads.
    pub formulas: Vec<FormulaPlan>,
    /// Validation rules, in definition order.
    pub rules: Vec<RulePlan>,
    /// The fields formulas read, each once (a record map for formulas alone needs only these).
    pub inputs: Vec<String>,
}

impl Plan {
    /// Whether the entity has nothing to compute or check.
    pub fn is_empty(&self) -> bool {
        self.formulas.is_empty() && self.rules.is_empty()
    }

    /// Whether any formula reads the clock.
    pub fn is_volatile(&self) -> bool {
        self.formulas.iter().any(|f| f.volatile)
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn at(pointer: &str, code: &str, message: String, at: At) -> FieldError {
    let mut problem = FieldError::new(pointer, code, message);
    problem.line = Some(at.line);
    problem.column = Some(at.column);
    problem
}

fn compile(
    engine: &ScriptEngine,
    source: &str,
    pointer: &str,
    problems: &mut Vec<FieldError>,
) -> Option<Script> {
    match engine.compile(source, pointer) {
        Ok(script) => Some(script),
        Err(Error::Invalid { errors, .. }) => {
            problems.extend(errors);
            None
        }
        Err(other) => {
            problems.push(FieldError::new(pointer, "script_syntax", other.to_string()));
            None
        }
    }
}

/// Compiles and checks the formulas and rules of an entity document (`prefix` is the document's
/// pointer): every problem is returned, located at the script with line and column.
pub fn plan(engine: &ScriptEngine, document: &Value, prefix: &str) -> (Plan, Vec<FieldError>) {
    let mut problems = Vec::new();
    let properties = document.get("properties").and_then(Value::as_object);
    let kind_of = |name: &str| -> Option<String> {
        properties
            .and_then(|p| p.get(name))
            .and_then(|f| f.get("x-kind"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut formulas: BTreeMap<String, FormulaPlan> = BTreeMap::new();
    let mut order_of_definition = Vec::new();
    for (name, field) in properties.into_iter().flatten() {
        if field.get("x-kind").and_then(Value::as_str) != Some("formula") {
            continue;
        }
        let pointer = format!("{prefix}/properties/{}/x-formula", escape(name));
        let source = field
            .get("x-formula")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(script) = compile(engine, source, &pointer, &mut problems) else {
            continue;
        };
        let uses = analysis::analyse(source);
        if let Some(place) = uses.whole_record {
            problems.push(at(
                &pointer,
                "formula_form",
                "a formula names each field it reads (record.budget or record[\"budget\"]), so that it can be recomputed when they change".to_owned(),
                place,
            ));
        }
        if let Some((_, place)) = uses.old_fields.first() {
            problems.push(at(
                &pointer,
                "formula_form",
                "formulas see the record as it is; `old` is for rules and workflows".to_owned(),
                *place,
            ));
        }
        for (read, place) in &uses.fields {
            if kind_of(read).is_none() {
                problems.push(at(
                    &pointer,
                    "unknown_field",
                    format!("the formula reads {read:?}, which is not a field of this entity"),
                    *place,
                ));
            }
        }
        let mut lookups = Vec::new();
        for lookup in &uses.lookups {
            let target = lookup.via.as_deref().and_then(|via| {
                properties?
                    .get(via)?
                    .pointer("/x-reference/entity")?
                    .as_str()
            });
            match (&lookup.entity, &lookup.via, target) {
                (Some(entity), Some(via), Some(target)) if entity == target => {
                    lookups.push((entity.clone(), via.clone()));
                }
                _ => problems.push(at(
                    &pointer,
                    "formula_form",
                    "a formula looks records up as lookup(\"entity\", record.reference_field), with a reference field to that entity, so that it is recomputed when that record changes".to_owned(),
                    lookup.at,
                )),
            }
        }
        order_of_definition.push(name.clone());
        formulas.insert(
            name.clone(),
            FormulaPlan {
                key: name.clone(),
                script,
                reads: uses.fields.into_iter().map(|(f, _)| f).collect(),
                volatile: uses.clock,
                lookups,
            },
        );
    }
    let ordered = order(&formulas, &order_of_definition, prefix, &mut problems);
    let rules = plan_rules(engine, document, prefix, &kind_of, &mut problems);
    let mut inputs: Vec<String> = ordered.iter().flat_map(|f| f.reads.clone()).collect();
    inputs.sort();
    inputs.dedup();
    (
        Plan {
            formulas: ordered,
            rules,
            inputs,
        },
        problems,
    )
}

/// The formulas in dependency order; a cycle is a problem naming it.
fn order(
    formulas: &BTreeMap<String, FormulaPlan>,
    definition_order: &[String],
    prefix: &str,
    problems: &mut Vec<FieldError>,
) -> Vec<FormulaPlan> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        key: &str,
        formulas: &BTreeMap<String, FormulaPlan>,
        marks: &mut HashMap<String, Mark>,
        path: &mut Vec<String>,
        out: &mut Vec<FormulaPlan>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        match marks.get(key) {
            Some(Mark::Done) => return,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|k| k == key).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(key.to_owned());
                cycles.push(cycle);
                return;
            }
            None => {}
        }
        let Some(formula) = formulas.get(key) else {
            return;
        };
        marks.insert(key.to_owned(), Mark::Visiting);
        path.push(key.to_owned());
        for read in &formula.reads {
            if formulas.contains_key(read) {
                visit(read, formulas, marks, path, out, cycles);
            }
        }
        path.pop();
        marks.insert(key.to_owned(), Mark::Done);
        out.push(formula.clone());
    }
    let mut marks = HashMap::new();
    let mut out = Vec::new();
    let mut cycles = Vec::new();
    for key in definition_order {
        visit(
            key,
            formulas,
            &mut marks,
            &mut Vec::new(),
            &mut out,
            &mut cycles,
        );
    }
    for cycle in cycles {
        problems.push(FieldError::new(
            format!("{prefix}/properties/{}/x-formula", escape(&cycle[0])),
            "formula_cycle",
            format!("formulas read each other in a cycle: {}", cycle.join(" → ")),
        ));
    }
    out
}

fn plan_rules(
    engine: &ScriptEngine,
    document: &Value,
    prefix: &str,
    kind_of: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<FieldError>,
) -> Vec<RulePlan> {
    let mut rules = Vec::new();
    for (i, rule) in document
        .get("x-rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = |key: &str| rule.get(key).and_then(Value::as_str).unwrap_or_default();
        let pointer = format!("{prefix}/x-rules/{i}/script");
        let source = text("script");
        let fields: Vec<String> = rule
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        for (j, field) in fields.iter().enumerate() {
            if kind_of(field).is_none() {
                problems.push(FieldError::new(
                    format!("{prefix}/x-rules/{i}/fields/{j}"),
                    "unknown_field",
                    format!("{field:?} is not a field of this entity"),
                ));
            }
        }
        if rules.iter().any(|r: &RulePlan| r.key == text("key")) {
            problems.push(FieldError::new(
                format!("{prefix}/x-rules/{i}/key"),
                "duplicate",
                format!("two rules are called {:?}", text("key")),
            ));
        }
        let Some(script) = compile(engine, source, &pointer, problems) else {
            continue;
        };
        let uses = analysis::analyse(source);
        for (read, place) in uses.fields.iter().chain(&uses.old_fields) {
            if kind_of(read).is_none() {
                problems.push(at(
                    &pointer,
                    "unknown_field",
                    format!("the rule reads {read:?}, which is not a field of this entity"),
                    *place,
                ));
            }
        }
        rules.push(RulePlan {
            key: text("key").to_owned(),
            script,
            messages: rule.get("message").cloned().unwrap_or(Value::Null),
            fields,
            on: match text("on") {
                "create" => RuleOn::Create,
                "update" => RuleOn::Update,
                _ => RuleOn::Both,
            },
        });
    }
    rules
}

/// Formula values in API form (empty for a formula that failed), with the problems found.
pub type Derived = (Vec<(String, Value)>, Vec<FieldError>);

/// What an evaluation needs before it can finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Nothing: the results are final.
    Nothing,
    /// These related records (entity, id) must be loaded into the environment first.
    Lookups(Vec<(String, String)>),
}

fn pointer_of(prefix: &str, key: &str) -> String {
    format!("{prefix}/fields/{}", escape(key))
}

/// Runs `script` and tells whether it asked for lookups not loaded yet (then its error, if
/// any, is only that).
fn run(
    engine: &ScriptEngine,
    env: &Rc<Env>,
    script: &Script,
    variables: Vec<(&str, Dynamic)>,
    pointer: &str,
) -> Result<Result<Dynamic, Error>, Vec<(String, String)>> {
    let result = engine.eval_in(env, script, variables, pointer);
    let wanted = env.take_wanted();
    if wanted.is_empty() {
        Ok(result)
    } else {
        Err(wanted)
    }
}

fn script_problems(error: Error, code_prefix: Option<&str>) -> Vec<FieldError> {
    match error {
        Error::Invalid { errors, .. } => errors
            .into_iter()
            .map(|mut p| {
                if p.message.contains(LOOKUP_PENDING) {
                    p.message = "a lookup could not be loaded".to_owned();
                }
                if let Some(prefix) = code_prefix {
                    p.message = format!("{prefix}: {}", p.message);
                }
                p
            })
            .collect(),
        other => vec![FieldError::new("", "script_error", other.to_string())],
    }
}

/// Computes the formulas of `model` over `record` (the script map of the record being written,
/// updated in place with each result so later formulas see it). Returns each formula's value in
/// API form (empty for a formula that failed) with the problems (at `/fields/<formula>` under
/// `prefix`: failures, wrong types, limits), or what must be loaded first.
///
/// # Errors
/// `Pending::Lookups` when a lookup is not loaded yet.
pub fn compute(
    engine: &ScriptEngine,
    model: &EntityModel,
    record: &mut RhaiMap,
    env: &Rc<Env>,
    prefix: &str,
) -> Result<Derived, Pending> {
    let mut results = Vec::with_capacity(model.scripts.formulas.len());
    let mut problems = Vec::new();
    for formula in &model.scripts.formulas {
        *env.allowed_lookups.borrow_mut() = Some(
            formula
                .lookups
                .iter()
                .map(|(entity, _)| entity.clone())
                .collect(),
        );
        let Some(field) = model.field(&formula.key) else {
            continue;
        };
        let pointer = pointer_of(prefix, &formula.key);
        let value = match run(
            engine,
            env,
            &formula.script,
            vec![("record", Dynamic::from_map(record.clone()))],
            &pointer,
        ) {
            Err(wanted) => {
                *env.allowed_lookups.borrow_mut() = None;
                return Err(Pending::Lookups(wanted));
            }
            Ok(Err(error)) => {
                problems.extend(script_problems(
                    error,
                    Some(&format!("formula {:?}", formula.key)),
                ));
                record.insert(formula.key.as_str().into(), Dynamic::UNIT);
                results.push((formula.key.clone(), Value::Null));
                continue;
            }
            Ok(Ok(value)) => value,
        };
        match values::to_field(&field.kind, &value) {
            Some(api) => {
                record.insert(formula.key.as_str().into(), values::api_value(field, &api));
                results.push((formula.key.clone(), api));
            }
            None => {
                problems.push(FieldError::new(
                    pointer,
                    "formula_type",
                    format!(
                        "formula {:?} returned {}; its field holds {} values",
                        formula.key,
                        values::type_name(&value),
                        field.kind.name()
                    ),
                ));
                record.insert(formula.key.as_str().into(), Dynamic::UNIT);
                results.push((formula.key.clone(), Value::Null));
            }
        }
    }
    *env.allowed_lookups.borrow_mut() = None;
    Ok((results, problems))
}

/// The `user` map scripts see: the acting person's id and role (`()` for Formwork itself).
pub fn user_value(id: Option<uuid::Uuid>, role: Option<&str>) -> Dynamic {
    let Some(id) = id else {
        return Dynamic::UNIT;
    };
    let mut map = RhaiMap::new();
    map.insert("id".into(), Dynamic::from(id.to_string()));
    map.insert(
        "role".into(),
        role.map_or(Dynamic::UNIT, |r| Dynamic::from(r.to_owned())),
    );
    Dynamic::from_map(map)
}

/// Checks the rules of `model` that apply (`creating` or not) against `record` (and `old` on
/// updates): the rules that do not hold, each located at the fields it names (or the record).
///
/// # Errors
/// Every failing rule, and every rule that could not be evaluated.
pub fn check_rules(
    engine: &ScriptEngine,
    model: &EntityModel,
    record: &RhaiMap,
    old: Option<&RhaiMap>,
    user: &Dynamic,
    env: &Rc<Env>,
    prefix: &str,
) -> Result<Pending, Vec<FieldError>> {
    let mut problems = Vec::new();
    let creating = old.is_none();
    for rule in &model.scripts.rules {
        let applies = match rule.on {
            RuleOn::Both => true,
            RuleOn::Create => creating,
            RuleOn::Update => !creating,
        };
        if !applies {
            continue;
        }
        let rule_pointer = format!("{prefix}/fields");
        let mut variables = vec![
            ("record", Dynamic::from_map(record.clone())),
            ("user", user.clone()),
        ];
        variables.push((
            "old",
            old.map_or(Dynamic::UNIT, |o| Dynamic::from_map(o.clone())),
        ));
        let holds = match run(engine, env, &rule.script, variables, &rule_pointer) {
            Err(wanted) => return Ok(Pending::Lookups(wanted)),
            Ok(Err(error)) => {
                problems.extend(
                    script_problems(error, Some(&format!("rule {:?} could not run", rule.key)))
                        .into_iter()
                        .map(|mut p| {
                            p.code = "rule_error".to_owned();
                            p.rule = Some(Box::new(RuleRef {
                                rule: rule.key.clone(),
                                messages: None,
                            }));
                            p
                        }),
                );
                continue;
            }
            Ok(Ok(value)) => match value.as_bool() {
                Ok(holds) => holds,
                Err(_) => {
                    let mut problem = FieldError::new(
                        rule_pointer,
                        "rule_error",
                        format!(
                            "rule {:?} returned {}; rules return true or false",
                            rule.key,
                            values::type_name(&value)
                        ),
                    );
                    problem.rule = Some(Box::new(RuleRef {
                        rule: rule.key.clone(),
                        messages: None,
                    }));
                    problems.push(problem);
                    continue;
                }
            },
        };
        if holds {
            continue;
        }
        let message = rule
            .messages
            .get("en")
            .and_then(Value::as_str)
            .unwrap_or(&rule.key)
            .to_owned();
        let pointers: Vec<String> = if rule.fields.is_empty() {
            vec![prefix.to_owned()]
        } else {
            rule.fields.iter().map(|f| pointer_of(prefix, f)).collect()
        };
        for pointer in pointers {
            let mut problem = FieldError::new(pointer, "rule", message.clone());
            problem.rule = Some(Box::new(RuleRef {
                rule: rule.key.clone(),
                messages: Some(rule.messages.clone()),
            }));
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(Pending::Nothing)
    } else {
        Err(problems)
    }
}

/// The script map of the fields formulas read (all they need when no rule runs after them).
pub fn formula_inputs(model: &EntityModel, doc: &serde_json::Map<String, Value>) -> RhaiMap {
    let mut map = RhaiMap::new();
    for key in &model.scripts.inputs {
        if let Some(field) = model.field(key) {
            map.insert(
                key.as_str().into(),
                doc.get(key)
                    .map_or(Dynamic::UNIT, |stored| values::field_value(field, stored)),
            );
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems_of(document: &Value) -> Vec<FieldError> {
        plan(&ScriptEngine::default(), document, "").1
    }

    #[test]
    fn formulas_are_ordered_and_checked() {
        let document = json!({"properties": {
            "total": {"x-kind": "formula", "x-formula": "record.net + record.tax"},
            "tax": {"x-kind": "formula", "x-formula": "record.net / 10"},
            "net": {"x-kind": "integer"}
        }});
        let (plan, problems) = plan(&ScriptEngine::default(), &document, "");
        assert!(problems.is_empty(), "{problems:?}");
        let keys: Vec<&str> = plan.formulas.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["tax", "total"]);
    }

    #[test]
    fn cycles_unknown_fields_and_syntax_are_located() {
        let cycle = problems_of(&json!({"properties": {
            "a": {"x-kind": "formula", "x-formula": "record.b + 1"},
            "b": {"x-kind": "formula", "x-formula": "record.c + 1"},
            "c": {"x-kind": "formula", "x-formula": "record.a + 1"}
        }}));
        assert_eq!(cycle.len(), 1, "{cycle:?}");
        assert_eq!(cycle[0].code, "formula_cycle");
        assert!(cycle[0].message.contains("a → b → c → a"), "{cycle:?}");
        let unknown = problems_of(&json!({"properties": {
            "a": {"x-kind": "formula", "x-formula": "1 +\n  record.nope"}
        }}));
        assert_eq!(unknown[0].code, "unknown_field");
        assert_eq!((unknown[0].line, unknown[0].column), (Some(2), Some(3)));
        assert_eq!(unknown[0].pointer, "/properties/a/x-formula");
        let syntax = problems_of(&json!({"properties": {
            "a": {"x-kind": "formula", "x-formula": "let x = ;"}
        }}));
        assert_eq!(syntax[0].code, "script_syntax");
        let rules = problems_of(&json!({"properties": {"a": {"x-kind": "integer"}},
            "x-rules": [{"key": "r", "script": "record.b > 1", "message": {"en": "m"}, "fields": ["c"]}]}));
        let codes: Vec<(&str, &str)> = rules
            .iter()
            .map(|p| (p.pointer.as_str(), p.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("/x-rules/0/fields/0", "unknown_field"),
                ("/x-rules/0/script", "unknown_field")
            ]
        );
    }
}
