//! The sandboxed rhai engine every admin-written script runs in (formulas, rules, scores, and
//! later workflows): no `eval`, no modules, no output, and limits on operations, call depth,
//! expression depth, string/array/map sizes and wall time per evaluation. A script that breaks a
//! limit stops with an error naming the limit, never a hang or a crash; compile and run-time
//! errors carry the line and column. Scripts are compiled once and evaluated many times.

pub mod analysis;
pub mod formulas;
pub mod library;
pub mod values;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rhai::{Dynamic, Engine, EvalAltResult, ParseError, Position, Scope};

use crate::calendar::BusinessCalendar;
use crate::error::{Error, FieldError};

/// What one evaluation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations (roughly: expression nodes and loop iterations).
    pub operations: u64,
    /// Nested function calls.
    pub call_depth: usize,
    /// Nesting of expressions (at top level; functions get the same).
    pub expression_depth: usize,
    /// Bytes in one string.
    pub string_size: usize,
    /// Items in one array.
    pub array_size: usize,
    /// Properties in one map.
    pub map_size: usize,
    /// Wall time of one evaluation.
    pub wall_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            operations: 100_000,
            call_depth: 16,
            expression_depth: 64,
            string_size: 10_000,
            array_size: 10_000,
            map_size: 1_000,
            wall_time: Duration::from_millis(100),
        }
    }
}

thread_local! {
    /// When the evaluation running on this thread must stop (evaluations are synchronous, so
    /// one per thread at a time).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The world the evaluation running on this thread sees (clock, calendar, lookups).
    static ENV: RefCell<Option<Rc<Env>>> = const { RefCell::new(None) };
    /// A scope kept between evaluations on this thread, so its storage is not allocated anew
    /// for every record.
    static SCOPE: RefCell<Scope<'static>> = RefCell::new(Scope::new());
}

/// What an evaluation sees beyond its variables: the clock in the workspace's time zone, the
/// business calendar, and related records loaded for `lookup`.
#[derive(Debug)]
pub struct Env {
    /// The instant `now()` answers.
    pub now: DateTime<Utc>,
    /// The workspace time zone (`today()` is the date there).
    pub time_zone: chrono_tz::Tz,
    /// The workspace's business calendar (working-day functions).
    pub calendar: Arc<BusinessCalendar>,
    /// Related records already loaded, by (entity, id): a record map, or `()` when there is no
    /// such record (or the evaluator may not read it).
    pub lookups: RefCell<HashMap<(String, String), Dynamic>>,
    /// Lookups the script asked for that were not loaded: the caller loads them and runs the
    /// script again (scripts are pure, so a second run gives the same answer).
    pub wanted: RefCell<Vec<(String, String)>>,
    /// Whether the script called `now()` or `today()` (its result depends on the day).
    pub used_clock: Cell<bool>,
    /// The entities the running script may look up (`None`: any). Formulas may look up only
    /// what their text declares, so that what they read is known.
    pub allowed_lookups: RefCell<Option<Vec<String>>>,
}

impl Env {
    /// An environment at `now` in `time_zone` with `calendar` and nothing loaded.
    pub fn new(
        now: DateTime<Utc>,
        time_zone: chrono_tz::Tz,
        calendar: Arc<BusinessCalendar>,
    ) -> Self {
        Self {
            now,
            time_zone,
            calendar,
            lookups: RefCell::new(HashMap::new()),
            wanted: RefCell::new(Vec::new()),
            used_clock: Cell::new(false),
            allowed_lookups: RefCell::new(None),
        }
    }

    /// The date in the workspace time zone.
    pub fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.time_zone).date_naive()
    }

    /// Takes the lookups asked for and not loaded (each once).
    pub fn take_wanted(&self) -> Vec<(String, String)> {
        let mut wanted = std::mem::take(&mut *self.wanted.borrow_mut());
        wanted.sort();
        wanted.dedup();
        wanted
    }
}

impl Default for Env {
    fn default() -> Self {
        static CALENDAR: OnceLock<Arc<BusinessCalendar>> = OnceLock::new();
        Self::new(
            Utc::now(),
            chrono_tz::Asia::Shanghai,
            CALENDAR.get_or_init(Arc::default).clone(),
        )
    }
}

/// Runs `f` with the environment of the evaluation on this thread (`None` outside one).
pub(crate) fn with_env<T>(f: impl FnOnce(Option<&Env>) -> T) -> T {
    ENV.with(|env| {
        let current = env.borrow().clone();
        f(current.as_deref())
    })
}

/// The process's sandboxed engine with the default limits: the engine is configuration only
/// (no state between evaluations), so every definition compiles and runs in the same one.
pub fn shared() -> Arc<ScriptEngine> {
    static SHARED: OnceLock<Arc<ScriptEngine>> = OnceLock::new();
    SHARED
        .get_or_init(|| Arc::new(ScriptEngine::default()))
        .clone()
}

/// A compiled script.
#[derive(Debug, Clone)]
pub struct Script {
    ast: Arc<rhai::AST>,
}

/// The engine with its sandbox.
pub struct ScriptEngine {
    engine: Engine,
    limits: Limits,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("limits", &self.limits)
            .finish()
    }
}

impl ScriptEngine {
    /// An engine with these limits.
    pub fn new(limits: Limits) -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.operations)
            .set_max_call_levels(limits.call_depth)
            .set_max_expr_depths(limits.expression_depth, limits.expression_depth)
            .set_max_string_size(limits.string_size)
            .set_max_array_size(limits.array_size)
            .set_max_map_size(limits.map_size)
            .set_max_modules(0)
            .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new())
            .on_print(|_| {})
            .on_debug(|_, _, _| {})
            .on_progress(|operations| {
                // Reading the clock costs more than an operation: look every 1,024 of them
                // (microseconds apart), which still stops a runaway within its budget.
                if operations % 1024 != 0 {
                    return None;
                }
                DEADLINE.with(|deadline| {
                    deadline
                        .get()
                        .filter(|at| Instant::now() >= *at)
                        .map(|_| Dynamic::from("time budget"))
                })
            });
        engine.disable_symbol("eval");
        // Constant arguments of pure library functions fold at compile time.
        engine.set_optimization_level(rhai::OptimizationLevel::Full);
        library::register(&mut engine);
        Self { engine, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles a script; errors carry the line and column, under `pointer`.
    ///
    /// # Errors
    /// `Error::Invalid` with code `script_syntax`.
    pub fn compile(&self, source: &str, pointer: &str) -> Result<Script, Error> {
        if source.len() > self.limits.string_size * 10 {
            return Err(Error::invalid(
                pointer,
                "script_size",
                format!("a script is at most {} bytes", self.limits.string_size * 10),
            ));
        }
        self.engine
            .compile(source)
            .map(|ast| Script { ast: Arc::new(ast) })
            .map_err(|e| syntax_error(&e, pointer))
    }

    /// Evaluates a compiled script with these variables; errors carry the line and column of the
    /// failing expression, under `pointer`.
    ///
    /// # Errors
    /// `Error::Invalid` with code `script_limit` (naming the limit) or `script_error`.
    pub fn eval(
        &self,
        script: &Script,
        variables: Vec<(&str, Dynamic)>,
        pointer: &str,
    ) -> Result<Dynamic, Error> {
        self.eval_in(&Rc::new(Env::default()), script, variables, pointer)
    }

    /// Evaluates a compiled script in `env` (clock, calendar, loaded lookups). When the script
    /// asked for a lookup that is not loaded, the result is an error and `env.wanted` lists it:
    /// load it and evaluate again.
    ///
    /// # Errors
    /// As [`ScriptEngine::eval`].
    pub fn eval_in(
        &self,
        env: &Rc<Env>,
        script: &Script,
        variables: Vec<(&str, Dynamic)>,
        pointer: &str,
    ) -> Result<Dynamic, Error> {
        DEADLINE.with(|deadline| deadline.set(Some(Instant::now() + self.limits.wall_time)));
        ENV.with(|slot| *slot.borrow_mut() = Some(env.clone()));
        let run = |scope: &mut Scope<'static>| {
            for (name, value) in variables {
                scope.push_constant_dynamic(name, value);
            }
            let result = self
                .engine
                .eval_ast_with_scope::<Dynamic>(scope, &script.ast);
            scope.clear();
            result
        };
        let result = SCOPE.with(|kept| match kept.try_borrow_mut() {
            Ok(mut scope) => run(&mut scope),
            // Only if an evaluation ever ran inside another on this thread.
            Err(_) => run(&mut Scope::new()),
        });
        ENV.with(|slot| *slot.borrow_mut() = None);
        DEADLINE.with(|deadline| deadline.set(None));
        result.map_err(|e| self.run_error(&e, pointer))
    }

    fn run_error(&self, error: &EvalAltResult, pointer: &str) -> Error {
        let limit = match error {
            EvalAltResult::ErrorTooManyOperations(_) => Some(format!(
                "the script ran more than {} operations",
                self.limits.operations
            )),
            EvalAltResult::ErrorStackOverflow(_) => Some(format!(
                "the script nests calls deeper than {}",
                self.limits.call_depth
            )),
            EvalAltResult::ErrorDataTooLarge(what, _) => Some(format!(
                "{what} is larger than allowed (strings {} bytes, arrays {} items, maps {} properties)",
                self.limits.string_size, self.limits.array_size, self.limits.map_size
            )),
            EvalAltResult::ErrorTerminated(..) => Some(format!(
                "the script ran longer than {} ms",
                self.limits.wall_time.as_millis()
            )),
            EvalAltResult::ErrorTooManyModules(_) => {
                Some("scripts cannot import modules".to_owned())
            }
            _ => None,
        };
        let (code, message) = match limit {
            Some(message) => ("script_limit", message),
            None => ("script_error", error.to_string()),
        };
        located(pointer, code, message, error.position())
    }
}

impl Default for ScriptEngine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

fn located(pointer: &str, code: &str, message: String, position: Position) -> Error {
    let mut problem = FieldError::new(pointer, code, message);
    problem.line = position.line().and_then(|l| u32::try_from(l).ok());
    problem.column = position.position().and_then(|c| u32::try_from(c).ok());
    Error::invalid_all(problem.message.clone(), vec![problem])
}

fn syntax_error(error: &ParseError, pointer: &str) -> Error {
    located(
        pointer,
        "script_syntax",
        error.err_type().to_string(),
        error.position(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(result: Result<Dynamic, Error>) -> FieldError {
        match result {
            Err(Error::Invalid { mut errors, .. }) => errors.remove(0),
            other => panic!("expected a script error, got {other:?}"),
        }
    }

    fn run(engine: &ScriptEngine, source: &str) -> Result<Dynamic, Error> {
        let script = engine.compile(source, "/script")?;
        engine.eval(&script, vec![("x", Dynamic::from(2_i64))], "/script")
    }

    #[test]
    fn evaluates_with_variables() {
        let engine = ScriptEngine::default();
        let value = run(&engine, "x * 21").expect("runs");
        assert_eq!(value.as_int(), Ok(42));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let engine = ScriptEngine::default();
        let Err(Error::Invalid { errors, .. }) = engine.compile("let a = 1;\nlet b = ;", "/f")
        else {
            panic!("a syntax error");
        };
        assert_eq!(errors[0].code, "script_syntax");
        assert_eq!(errors[0].pointer, "/f");
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[0].column.is_some());
    }

    #[test]
    fn every_limit_stops_the_script_with_its_name() {
        let engine = ScriptEngine::new(Limits {
            wall_time: Duration::from_secs(5),
            ..Limits::default()
        });
        let loop_forever = problem(run(&engine, "loop { }"));
        assert_eq!(loop_forever.code, "script_limit");
        assert!(
            loop_forever.message.contains("operations"),
            "{loop_forever:?}"
        );
        let deep = problem(run(&engine, "fn f(n) { f(n + 1) } f(0)"));
        assert_eq!(deep.code, "script_limit");
        assert!(deep.message.contains("deeper"), "{deep:?}");
        let huge = problem(run(&engine, r#"let s = "ab"; loop { s += s; }"#));
        assert_eq!(huge.code, "script_limit");
        assert!(huge.message.contains("larger"), "{huge:?}");
        let array = problem(run(&engine, "let a = []; loop { a.push(1); }"));
        assert_eq!(array.code, "script_limit");
        let runtime = problem(run(&engine, "let a = 1;\nlet b = a / 0;\nb"));
        assert_eq!(runtime.code, "script_error");
        assert_eq!(runtime.line, Some(2));
    }

    #[test]
    fn the_wall_clock_stops_a_slow_script() {
        let engine = ScriptEngine::new(Limits {
            operations: 0,
            wall_time: Duration::from_millis(20),
            ..Limits::default()
        });
        let started = Instant::now();
        let slow = problem(run(&engine, "let i = 0; while true { i += 1; }"));
        assert_eq!(slow.code, "script_limit");
        assert!(slow.message.contains("longer than 20 ms"), "{slow:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn nothing_reaches_outside() {
        let engine = ScriptEngine::default();
        assert!(engine.compile(r#"eval("1 + 1")"#, "/s").is_err());
        let import = run(&engine, r#"import "std" as s; 1"#);
        assert!(import.is_err(), "{import:?}");
        assert!(
            run(&engine, r#"print("hi"); 1"#).is_ok(),
            "print is a no-op"
        );
    }
}
