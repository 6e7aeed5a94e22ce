//! Compiled meta-schemas of the definition kinds and the JSON Schema helpers built on them.

use std::sync::OnceLock;

use jsonschema::{PatternOptions, Validator};
use serde_json::Value;

use crate::error::FieldError;

/// Backtracking budget for admin-written `pattern` regexes: a catastrophic pattern fails
/// instead of hanging a request.
const REGEX_BACKTRACK_LIMIT: usize = 10_000;
/// Compiled-size budget for admin-written regexes (bytes).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// At most this many problems are reported for one document.
const MAX_REPORTED_ERRORS: usize = 100;

/// The JSON Schema options every Formwork validator is built with: draft 2020-12, `format`
/// asserted, bounded regexes, and no remote or file `$ref` (the crate is built without them).
pub fn schema_options() -> jsonschema::ValidationOptions<'static> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_pattern_options(
            PatternOptions::fancy_regex()
                .backtrack_limit(REGEX_BACKTRACK_LIMIT)
                .size_limit(REGEX_SIZE_LIMIT),
        )
}

/// Compiles an admin-written schema.
///
/// # Errors
/// One `FieldError` (code `schema`) locating the first problem found while compiling.
pub fn compile(schema: &Value, pointer_prefix: &str) -> Result<Validator, FieldError> {
    schema_options().build(schema).map_err(|e| {
        let at = e.schema_path().as_str().to_owned();
        FieldError::new(
            format!("{pointer_prefix}{}", if at == "/" { "" } else { &at }),
            "schema",
            format!("not a valid JSON Schema: {e}"),
        )
    })
}

/// Every problem `validator` finds in `instance`, each located under `pointer_prefix`.
pub fn problems(validator: &Validator, instance: &Value, pointer_prefix: &str) -> Vec<FieldError> {
    validator
        .iter_errors(instance)
        .take(MAX_REPORTED_ERRORS)
        .map(|e| {
            let keyword = e
                .schema_path()
                .as_str()
                .rsplit('/')
                .next()
                .filter(|k| !k.is_empty())
                .unwrap_or("schema")
                .to_owned();
            // A missing property is named in the pointer (`/fields/name`), so clients and the
            // UI can put the problem at the field rather than on the whole object.
            let missing = match e.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => property
                    .as_str()
                    .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            FieldError::new(
                format!("{pointer_prefix}{}{missing}", e.instance_path().as_str()),
                &keyword,
                e.to_string(),
            )
        })
        .collect()
}

fn compiled(cell: &'static OnceLock<Validator>, text: &str) -> &'static Validator {
    cell.get_or_init(|| {
        // The meta-schemas ship inside the binary and a unit test compiles each one, so a
        // failure here is a build defect, not user input.
        let schema: Value = serde_json::from_str(text).unwrap_or(Value::Bool(false));
        schema_options().build(&schema).unwrap_or_else(|_| {
            schema_options()
                .build(&Value::Bool(false))
                .expect("false schema")
        })
    })
}

/// The meta-schema validator for entity definitions.
pub fn entity() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, ENTITY_META)
}

/// The meta-schema validator for form definitions.
pub fn form() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, FORM_META)
}

/// The meta-schema validator for view definitions.
pub fn view() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, VIEW_META)
}

/// The meta-schema validator for workflow definitions.
pub fn workflow() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, WORKFLOW_META)
}

/// The meta-schema validator for report definitions.
pub fn report() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, REPORT_META)
}

/// The meta-schema validator for dashboard definitions.
pub fn dashboard() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, DASHBOARD_META)
}

/// `schemas/meta/print_template.schema.json`.
pub const PRINT_TEMPLATE_META: &str = include_str!("../../schemas/meta/print_template.schema.json");

/// The meta-schema validator for print templates.
pub fn print_template() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, PRINT_TEMPLATE_META)
}

/// `schemas/meta/email_template.schema.json`.
pub const EMAIL_TEMPLATE_META: &str = include_str!("../../schemas/meta/email_template.schema.json");

/// The meta-schema validator for email templates.
pub fn email_template() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, EMAIL_TEMPLATE_META)
}

/// The meta-schema validator for bundles as one document.
pub fn template() -> &'static Validator {
    static CELL: OnceLock<Validator> = OnceLock::new();
    compiled(&CELL, TEMPLATE_META)
}

/// `schemas/meta/entity.schema.json`.
pub const ENTITY_META: &str = include_str!("../../schemas/meta/entity.schema.json");
/// `schemas/meta/form.schema.json`.
pub const FORM_META: &str = include_str!("../../schemas/meta/form.schema.json");
/// `schemas/meta/view.schema.json`.
pub const VIEW_META: &str = include_str!("../../schemas/meta/view.schema.json");
/// `schemas/meta/workflow.schema.json`.
pub const WORKFLOW_META: &str = include_str!("../../schemas/meta/workflow.schema.json");
/// `schemas/meta/report.schema.json`.
pub const REPORT_META: &str = include_str!("../../schemas/meta/report.schema.json");
/// `schemas/meta/dashboard.schema.json`.
pub const DASHBOARD_META: &str = include_str!("../../schemas/meta/dashboard.schema.json");
/// `schemas/meta/template.schema.json`.
pub const TEMPLATE_META: &str = include_str!("../../schemas/meta/template.schema.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_meta_schema_compiles() {
        for text in [
            ENTITY_META,
            FORM_META,
            VIEW_META,
            WORKFLOW_META,
            REPORT_META,
            DASHBOARD_META,
            TEMPLATE_META,
        ] {
            let schema: Value = serde_json::from_str(text).expect("meta-schema is JSON");
            schema_options()
                .build(&schema)
                .expect("meta-schema compiles");
        }
    }

    #[test]
    fn catastrophic_regex_fails_instead_of_hanging() {
        let schema = serde_json::json!({"type": "string", "pattern": "^(a+)+$"});
        let validator = compile(&schema, "").expect("compiles");
        let evil = Value::String(format!("{}!", "a".repeat(5000)));
        // Either rejected or errored within the backtrack budget; never a hang.
        let _ = problems(&validator, &evil, "");
    }

    #[test]
    fn remote_refs_are_refused() {
        let schema = serde_json::json!({"$ref": "https://example.com/schema.json"});
        assert!(compile(&schema, "").is_err());
        let file = serde_json::json!({"$ref": "file:///etc/passwd"});
        assert!(compile(&file, "").is_err());
    }
}
