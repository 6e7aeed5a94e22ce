//! The sandboxed minijinja environment for admin-written text (workflow field values, titles,
//! messages, webhook bodies): no file loader, no includes, a fuel budget per render, a recursion
//! limit, and a cap on the output, so a template can fail but never hang or flood the server.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::error::{Error, FieldError};

/// Instructions one render may run.
pub const FUEL: u64 = 50_000;
/// Largest text one render may produce (bytes).
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Largest template accepted (bytes).
pub const MAX_SOURCE: usize = 20_000;

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(32);
        // An empty field renders as nothing, as a person filling a form expects.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Values are plain text (stored in fields, sent in JSON), not HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env
    })
}

/// A template error as a problem at `pointer`, with the line and column it happened at.
fn located(error: &minijinja::Error, source: &str, pointer: &str, code: &str) -> FieldError {
    let mut problem = FieldError::new(
        pointer,
        code,
        format!(
            "{}{}",
            error.kind(),
            error.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
    );
    problem.line = error.line().and_then(|l| u32::try_from(l).ok());
    problem.column = error.range().and_then(|range| {
        let before = source.get(..range.start)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        u32::try_from(before[line_start..].chars().count() + 1).ok()
    });
    problem
}

/// Checks that `source` compiles, locating a problem under `pointer` with line and column.
///
/// # Errors
/// One `FieldError` (code `template_syntax` or `template_size`).
pub fn check(source: &str, pointer: &str) -> Result<(), FieldError> {
    check_in(environment(), MAX_SOURCE, source, pointer)
}

/// Checks that `source` compiles in `env` and is at most `max_source` bytes (line and column
/// on error), for the sandboxes built on this one's rules.
///
/// # Errors
/// One `FieldError` (code `template_syntax` or `template_size`).
pub fn check_in(
    env: &Environment<'_>,
    max_source: usize,
    source: &str,
    pointer: &str,
) -> Result<(), FieldError> {
    if source.len() > max_source {
        return Err(FieldError::new(
            pointer,
            "template_size",
            format!("a template is at most {max_source} bytes"),
        ));
    }
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| located(&e, source, pointer, "template_syntax"))
}

/// A render that failed, as the problem it is: `template_limit` when the fuel ran out, else
/// `template_error`, with the line and column.
pub fn failed(error: &minijinja::Error, source: &str, pointer: &str) -> Error {
    let code = if error.kind() == minijinja::ErrorKind::OutOfFuel {
        "template_limit"
    } else {
        "template_error"
    };
    Error::invalid_all(
        "the template failed",
        vec![located(error, source, pointer, code)],
    )
}

/// Output that refuses to grow past a cap (the render stops at the first write beyond it).
struct Capped {
    text: String,
    cap: usize,
    full: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > self.cap {
            self.full = true;
            return Err(std::io::Error::other("output cap"));
        }
        self.text.push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `source` (already checked to compile in `env`) with `context`, stopping at
/// `max_output` bytes: the document sandboxes (report and print templates) share this.
///
/// # Errors
/// `Error::Invalid` at `pointer`: `template_limit` when the fuel or the output cap ran out,
/// else `template_error`, with line and column.
pub fn render_capped(
    env: &Environment<'_>,
    source: &str,
    context: &Value,
    max_output: usize,
    pointer: &str,
) -> Result<String, Error> {
    let template = env
        .template_from_str(source)
        .map_err(|e| failed(&e, source, pointer))?;
    let mut out = Capped {
        text: String::new(),
        cap: max_output,
        full: false,
    };
    let result = template
        .render_captured_to(
            minijinja::Value::from(minijinja::value::Serde(context)),
            &mut out,
        )
        .map(|_| ());
    if out.full {
        return Err(Error::invalid(
            pointer,
            "template_limit",
            format!("the template produced more than {max_output} bytes"),
        ));
    }
    result.map_err(|e| failed(&e, source, pointer))?;
    Ok(out.text)
}

/// Whether `text` holds template syntax (plain text needs no rendering).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders `source` with `context`.
///
/// # Errors
/// `Error::Invalid` at `pointer` (code `template_error`, or `template_limit` when the fuel or the
/// output cap ran out).
pub fn render(source: &str, context: &Value, pointer: &str) -> Result<String, Error> {
    if !is_template(source) {
        return Ok(source.to_owned());
    }
    check(source, pointer).map_err(|e| Error::invalid_all("the template is invalid", vec![e]))?;
    let rendered = environment()
        .render_str(
            source,
            minijinja::Value::from(minijinja::value::Serde(context)),
        )
        .map_err(|e| failed(&e, source, pointer))?;
    if rendered.len() > MAX_OUTPUT {
        return Err(Error::invalid(
            pointer,
            "template_limit",
            format!("the template produced more than {MAX_OUTPUT} bytes"),
        ));
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_values_and_leaves_plain_text() {
        let ctx = json!({"record": {"name": "Acme", "amount": 12}});
        assert_eq!(
            render(
                "Call {{ record.name }} ({{ record.amount * 2 }})",
                &ctx,
                "/x"
            )
            .expect("must succeed"),
            "Call Acme (24)"
        );
        assert_eq!(render("plain", &ctx, "/x").expect("must succeed"), "plain");
        assert_eq!(
            render("{{ record.missing.deeper }}", &ctx, "/x").expect("must succeed"),
            ""
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let problem = check("line one\n{{ record.name ", "/steps/0/title").expect_err("must fail");
        assert_eq!(problem.code, "template_syntax");
        assert_eq!(problem.pointer, "/steps/0/title");
        assert_eq!(problem.line, Some(2));
    }

    #[test]
    fn runaway_templates_stop() {
        let looping =
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        let Err(Error::Invalid { errors, .. }) = render(looping, &json!({}), "/t") else {
            panic!("a runaway template must fail");
        };
        assert_eq!(errors[0].code, "template_limit");
        let wide = "{{ 'x' * 100000 }}";
        let Err(Error::Invalid { errors, .. }) = render(wide, &json!({}), "/t") else {
            panic!("an oversized output must fail");
        };
        assert_eq!(errors[0].code, "template_limit");
    }
}
