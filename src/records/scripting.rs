//! Trying a script against a record without writing anything: what an admin does while writing
//! a formula or a rule.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Context, Records};
use crate::access::Right;
use crate::error::{Error, Result};
use crate::script::{ScriptEngine, values};

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
        let (_, model) = self.model(ctx.scope, entity).await?;
        let script = engine.compile(source, "/script")?;
        let record = match (record_id, fields) {
            (Some(id), _) => {
                let view = self.get(ctx, entity, id, false).await?;
                values::record_from_api(&model, &view.fields)
            }
            (None, Some(fields)) => values::record_from_api(&model, &fields),
            (None, None) => values::record_from_api(&model, &Map::new()),
        };
        tokio::task::spawn_blocking(move || {
            engine
                .eval(&script, vec![("record", record)], "/script")
                .map(|value| {
                    serde_json::json!({
                        "result": values::to_json(&value),
                        "type": values::type_name(&value),
                    })
                })
        })
        .await
        .map_err(Error::internal)?
    }
}
