//! Scripts in the record write path (formulas computed into the stored document, rules checked,
//! related records looked up) and trying a script against a record without writing anything:
//! what an admin does while writing a formula or a rule.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Context, Lens, Records, codec};
use crate::access::Right;
use crate::definitions::{EntityModel, Snapshot};
use crate::error::{Error, FieldError, Result};
use crate::script::formulas::{self, Pending};
use crate::script::{Env, ScriptEngine, values};

impl Records<'_> {
    /// Evaluates `source` with `record` bound to a stored record (`record_id`, read as the
    /// caller may read it) or to the given `fields` (API form), off the request threads; returns
    /// `{result, type}`. Needs the right to manage definitions.
    ///
    /// # Errors
    /// `Error::Forbidden`; `Error::NotFound` (entity or record); `Error::Invalid` at `/script`
    /// with line and column (syntax, run time, limits).
    pub async fn test_script(
        &self,
        ctx: &Context,
        engine: Arc<ScriptEngine>,
        entity: &str,
        source: &str,
        record_id: Option<&str>,
        fields: Option<Map<String, Value>>,
    ) -> Result<Value> {
        if ctx
            .policy
            .as_ref()
            .is_some_and(|p| !p.may(Right::Definitions))
        {
            return Err(Error::forbidden(
                "trying scripts needs the right to manage definitions",
            ));
        }
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let script = engine.compile(source, "/script")?;
        let record = match (record_id, fields) {
            (Some(id), _) => {
                let view = self.get(ctx, entity, id, false).await?;
                values::record_from_api(&model, &view.fields)
            }
            (None, Some(fields)) => values::record_from_api(&model, &fields),
            (None, None) => values::record_from_api(&model, &Map::new()),
        };
        let world = ScriptWorld::of(ctx, self.clock.now());
        let mut loaded = HashMap::new();
        loop {
            let (engine, script, record, user) =
                (engine.clone(), script.clone(), record.clone(), world.user());
            let (now, zone, calendar) = (world.now, world.time_zone, world.calendar.clone());
            let lookups = loaded.clone();
            // Off the request threads: a runaway script holds a blocking thread, not a worker.
            let (result, wanted) = tokio::task::spawn_blocking(move || {
                let env = Rc::new(Env::new(now, zone, calendar));
                *env.lookups.borrow_mut() = lookups;
                let result = engine.eval_in(
                    &env,
                    &script,
                    vec![
                        ("record", record),
                        ("user", user),
                        ("old", rhai::Dynamic::UNIT),
                    ],
                    "/script",
                );
                let volatile = env.used_clock.get();
                (
                    result.map(|value| {
                        serde_json::json!({
                            "result": values::to_json(&value),
                            "type": values::type_name(&value),
                            "uses_clock": volatile,
                        })
                    }),
                    env.take_wanted(),
                )
            })
            .await
            .map_err(Error::internal)?;
            if wanted.is_empty() {
                return result;
            }
            if loaded.len() + wanted.len() > MAX_LOOKUPS {
                return Err(Error::invalid(
                    "/script",
                    "script_limit",
                    format!("the script looks up more than {MAX_LOOKUPS} records"),
                ));
            }
            for (entity, id) in wanted {
                let found = self
                    .lookup(self.db.conn(), &snapshot, Some(ctx), &entity, &id)
                    .await?;
                loaded.insert((entity, id), found);
            }
        }
    }
}

/// Most related records one evaluation may look up.
const MAX_LOOKUPS: usize = 50;

/// The script world of a write: clock, zone, calendar, and who writes.
#[derive(Clone)]
pub(crate) struct ScriptWorld {
    now: chrono::DateTime<chrono::Utc>,
    time_zone: chrono_tz::Tz,
    calendar: Arc<crate::calendar::BusinessCalendar>,
    /// Who writes (the `user` of rules; built only when a rule runs).
    actor: Option<uuid::Uuid>,
    policy: Option<Arc<crate::access::Policy>>,
    /// Whether validation rules are checked and failing formulas refuse the write; off when
    /// values are only derived again (recomputes, parents of a changed child): then a failing
    /// formula leaves its field empty.
    rules: bool,
    /// The workspace written in.
    pub(crate) workspace_id: uuid::Uuid,
}

impl ScriptWorld {
    /// The instant the write happens at.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
    }

    /// The world of `ctx` at `now`.
    pub(crate) fn of(ctx: &Context, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            now,
            time_zone: ctx.time_zone,
            calendar: ctx.calendar.clone(),
            actor: ctx.actor.account_id(),
            policy: ctx.policy.clone(),
            rules: true,
            workspace_id: ctx.scope.workspace_id,
        }
    }

    /// Formwork's own world (imports, recomputes) in a workspace.
    pub(crate) fn system(
        workspace_id: uuid::Uuid,
        now: chrono::DateTime<chrono::Utc>,
        time_zone: chrono_tz::Tz,
        calendar: Arc<crate::calendar::BusinessCalendar>,
    ) -> Self {
        Self {
            now,
            time_zone,
            calendar,
            actor: None,
            policy: None,
            rules: true,
            workspace_id,
        }
    }

    /// This world, deriving values only: no rules, and a failing formula leaves its field
    /// empty instead of refusing (recomputes, parents of a changed child).
    pub(crate) fn without_rules(mut self) -> Self {
        self.rules = false;
        self
    }

    /// The `user` scripts see.
    fn user(&self) -> rhai::Dynamic {
        formulas::user_value(self.actor, self.policy.as_ref().map(|p| p.role.as_str()))
    }

    fn env(&self, loaded: &HashMap<(String, String), rhai::Dynamic>) -> Rc<Env> {
        let env = Env::new(self.now, self.time_zone, self.calendar.clone());
        env.lookups.borrow_mut().clone_from(loaded);
        Rc::new(env)
    }
}

/// One pass of formulas then rules: the formula values (API form) with the problems found when
/// deriving only (otherwise problems refuse), or the lookups to load.
type Pass = std::result::Result<(Vec<(String, Value)>, Vec<FieldError>), Vec<(String, String)>>;

/// Computes the formulas of `model` over `doc` and checks its rules (`old`: the stored document
/// on updates), with `loaded` lookups; never awaits, so its environment stays on this thread.
pub(crate) fn evaluate(
    model: &EntityModel,
    doc: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    world: &ScriptWorld,
    loaded: &HashMap<(String, String), rhai::Dynamic>,
    prefix: &str,
) -> std::result::Result<Pass, Vec<FieldError>> {
    let engine = crate::script::shared();
    let env = world.env(loaded);
    // Formulas see exactly the fields they name, whatever else runs.
    let mut inputs = formulas::formula_inputs(model, doc);
    let (results, problems) = match formulas::compute(&engine, model, &mut inputs, &env, prefix) {
        Ok(found) => found,
        Err(Pending::Lookups(wanted)) => return Ok(Err(wanted)),
        Err(Pending::Nothing) => (Vec::new(), Vec::new()),
    };
    if !world.rules {
        return Ok(Ok((results, problems)));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if !model.scripts.rules.is_empty() {
        // Rules may read any field (even by a computed key), formulas' new values included.
        let mut record = values::record_map(model, doc);
        for (key, value) in &results {
            if let Some(field) = model.field(key) {
                record.insert(key.as_str().into(), values::api_value(field, value));
            }
        }
        let old = old.map(|o| values::record_map(model, o));
        if let Pending::Lookups(wanted) = formulas::check_rules(
            &engine,
            model,
            &record,
            old.as_ref(),
            &world.user(),
            &env,
            prefix,
        )? {
            return Ok(Err(wanted));
        }
    }
    Ok(Ok((results, Vec::new())))
}

/// Stores formula values (API form) into `doc`.
pub(crate) fn store_results(
    model: &EntityModel,
    doc: &mut Map<String, Value>,
    results: Vec<(String, Value)>,
    prefix: &str,
    problems: &mut Vec<FieldError>,
) {
    for (key, value) in results {
        let Some(field) = model.field(&key) else {
            continue;
        };
        let pointer = format!("{prefix}/fields/{}", codec::escape(&key));
        match codec::encode_value(field, &value, &pointer) {
            Ok(Some(stored)) => {
                doc.insert(key, stored);
            }
            Ok(None) => {
                doc.remove(&key);
            }
            Err(mut problem) => {
                problem.code = "formula_type".to_owned();
                problem.message = format!("formula {key:?} gave {value}: {}", problem.message);
                problems.push(problem);
            }
        }
    }
}

/// Computes formulas and checks rules of a record without lookups (imports, where nothing
/// else is readable yet): a formula that looks a record up is a problem there.
pub(crate) fn derive_now(
    model: &EntityModel,
    doc: &mut Map<String, Value>,
    old: Option<&Map<String, Value>>,
    world: &ScriptWorld,
    prefix: &str,
    problems: &mut Vec<FieldError>,
) {
    if model.scripts.is_empty() {
        return;
    }
    match evaluate(model, doc, old, world, &HashMap::new(), prefix) {
        Err(found) => problems.extend(found),
        Ok(Ok((results, found))) => {
            store_results(model, doc, results, prefix, problems);
            problems.extend(found);
        }
        Ok(Err(_)) => problems.push(FieldError::new(
            prefix,
            "lookup_unavailable",
            "formulas that look records up cannot run during an import; they are computed by the recompute job",
        )),
    }
}

impl Records<'_> {
    /// Computes the formulas of a record being written into `doc` and checks the entity's
    /// rules, loading what `lookup` asks for (as Formwork: stored values must not depend on
    /// who writes). Problems are added to `problems`.
    ///
    /// # Errors
    /// `Error::Db` when a lookup cannot be read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn derive(
        &self,
        snapshot: &Snapshot,
        model: &EntityModel,
        doc: &mut Map<String, Value>,
        old: Option<&Map<String, Value>>,
        world: &ScriptWorld,
        prefix: &str,
        problems: &mut Vec<FieldError>,
    ) -> Result<()> {
        let conn = self.db.conn();
        self.derive_in(conn, snapshot, model, doc, old, world, prefix, problems)
            .await
    }

    /// [`Records::derive`] inside a transaction: lookups read through `conn`, so they see its
    /// changes and take no second connection.
    ///
    /// # Errors
    /// `Error::Db` when a lookup cannot be read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn derive_in(
        &self,
        conn: &impl crate::store::Conn,
        snapshot: &Snapshot,
        model: &EntityModel,
        doc: &mut Map<String, Value>,
        old: Option<&Map<String, Value>>,
        world: &ScriptWorld,
        prefix: &str,
        problems: &mut Vec<FieldError>,
    ) -> Result<()> {
        if model.scripts.is_empty() {
            return Ok(());
        }
        let mut loaded = HashMap::new();
        loop {
            match evaluate(model, doc, old, world, &loaded, prefix) {
                Err(found) => {
                    problems.extend(found);
                    return Ok(());
                }
                Ok(Ok((results, found))) => {
                    store_results(model, doc, results, prefix, problems);
                    problems.extend(found);
                    return Ok(());
                }
                Ok(Err(wanted)) => {
                    if loaded.len() + wanted.len() > MAX_LOOKUPS {
                        problems.push(FieldError::new(
                            prefix,
                            "script_limit",
                            format!(
                                "the scripts of {:?} look up more than {MAX_LOOKUPS} records",
                                model.key
                            ),
                        ));
                        return Ok(());
                    }
                    for (entity, id) in wanted {
                        let found = self.lookup(conn, snapshot, None, &entity, &id).await?;
                        loaded.insert((entity, id), found);
                    }
                }
            }
        }
    }

    /// A related record as scripts see it (its fields and `id`), or `()` when there is none,
    /// it is deleted, or the reader (none for Formwork) may not read it.
    ///
    /// # Errors
    /// `Error::Db`.
    pub(crate) async fn lookup(
        &self,
        conn: &impl crate::store::Conn,
        snapshot: &Snapshot,
        reader: Option<&Context>,
        entity: &str,
        id: &str,
    ) -> Result<rhai::Dynamic> {
        let Some(model) = snapshot.entity(entity) else {
            return Ok(rhai::Dynamic::UNIT);
        };
        let Ok(uuid) = uuid::Uuid::parse_str(id) else {
            return Ok(rhai::Dynamic::UNIT);
        };
        let Some(row) = crate::store::records::find(conn, &model.table(), uuid)
            .await?
            .filter(|row| row.deleted_at.is_none())
        else {
            return Ok(rhai::Dynamic::UNIT);
        };
        let mut map = match reader {
            Some(ctx) => {
                let lens = Lens::new(ctx, &model);
                if self
                    .check_record(ctx, &lens, &model, &row, super::Operation::Read)
                    .await
                    .is_err()
                {
                    return Ok(rhai::Dynamic::UNIT);
                }
                let view = lens.show(&model, super::view(&model, &row, lens.is_admin));
                values::record_from_api(&model, &view.fields)
                    .try_cast::<rhai::Map>()
                    .unwrap_or_default()
            }
            None => values::record_map(&model, &row.doc),
        };
        map.insert("id".into(), rhai::Dynamic::from(row.id.to_string()));
        Ok(rhai::Dynamic::from_map(map))
    }
}
