//! `cargo bench --bench script`: evaluations per second of a 10-term lead-score formula in the
//! sandboxed engine (`src/script/`), one core, a fresh scope per record built from a stored
//! record (money as exact decimals). Figures go to docs/benchmarks.md.

use std::time::{Duration, Instant};

use formwork::script::{Limits, ScriptEngine};
use rhai::Dynamic;
use rust_decimal::Decimal;

/// The formula: ten weighted terms over budget, size, source, stage and engagement.
const SCORE: &str = r#"
let s = 0;
if budget > 500000 { s += 30 } else if budget > 100000 { s += 20 } else if budget > 0 { s += 5 }
if employees >= 1000 { s += 15 } else if employees >= 100 { s += 10 }
if source == "referral" { s += 15 }
if source == "event" { s += 10 }
if stage == "qualified" { s += 10 }
if stage == "proposal" { s += 15 }
if score > 50.0 { s += 5 }
if region == "华东" { s += 3 }
if email != () { s += 2 }
if phone != () { s += 2 }
s
"#;

fn main() {
    let engine = ScriptEngine::new(Limits::default());
    let script = engine.compile(SCORE, "/score").expect("the score compiles");
    let sources = ["web_form", "referral", "event", "ads", "cold_call", "other"];
    let stages = ["new", "contacted", "qualified", "proposal", "won", "lost"];
    let seconds = std::env::var("FORMWORK_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // A fixed count instead of a duration, for instruction counts under callgrind.
    let count: Option<u64> = std::env::var("FORMWORK_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok());
    let started = Instant::now();
    let mut evaluations: u64 = 0;
    let mut total: i64 = 0;
    while count.map_or(started.elapsed() < Duration::from_secs(seconds), |n| {
        evaluations < n
    }) {
        for i in 0..1000_i64 {
            let variables = vec![
                (
                    "budget",
                    Dynamic::from_decimal(Decimal::new(i * 123_457 % 100_000_000, 2)),
                ),
                ("employees", Dynamic::from_int(i * 37 % 5000)),
                ("source", Dynamic::from(sources[(i % 6) as usize])),
                ("stage", Dynamic::from(stages[(i % 6) as usize])),
                ("score", Dynamic::from_float((i % 100) as f64)),
                (
                    "region",
                    Dynamic::from(if i % 3 == 0 { "华东" } else { "华南" }),
                ),
                (
                    "email",
                    if i % 2 == 0 {
                        Dynamic::from("a@b.cn")
                    } else {
                        Dynamic::UNIT
                    },
                ),
                ("phone", Dynamic::from("13800000000")),
            ];
            let value = engine
                .eval(&script, variables, "/score")
                .expect("the score runs");
            total += value.as_int().unwrap_or_default();
            evaluations += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "score formula (10 terms, 8 variables, fresh scope): {:.0} evaluations/s on one core ({evaluations} in {elapsed:.1} s; checksum {total})",
        evaluations as f64 / elapsed
    );
    lead_score_over_stored_records(seconds, count);
}

/// The product's own path: the Sales CRM lead score (its `x-formula`, 10 terms) computed by
/// `formulas::compute` over record maps built from stored documents, as every lead write does.
fn lead_score_over_stored_records(seconds: u64, count: Option<u64>) {
    use std::rc::Rc;
    use std::sync::Arc;

    use formwork::definitions::EntityModel;
    use formwork::script::{Env, formulas, shared};
    use serde_json::{Map, Value, json};

    let document: Value = serde_json::from_str(include_str!(
        "../../schemas/templates/sales-crm/entities/lead.json"
    ))
    .expect("lead.json");
    let model = EntityModel::build("lead", uuid::Uuid::nil(), 1, Arc::new(document))
        .expect("the lead compiles");
    let sources = ["web_form", "referral", "event", "ads", "cold_call", "other"];
    let statuses = ["new", "contacted", "qualified", "unqualified"];
    let sizes = ["enterprise", "smb", "individual"];
    let docs: Vec<Map<String, Value>> = (0..1000_i64)
        .map(|i| {
            let mut doc = json!({
                "name": format!("线索{i}"), "company": "华东科技有限公司",
                "source": sources[(i % 6) as usize], "status": statuses[(i % 4) as usize],
                "company_size": sizes[(i % 3) as usize], "region": "华东",
                "budget": i * 123_457 % 100_000_000,
            });
            if i % 2 == 0 {
                doc["email"] = json!("a@b.cn");
            }
            if i % 3 == 0 {
                doc["phone"] = json!("13800000000");
            }
            doc.as_object().cloned().unwrap_or_default()
        })
        .collect();
    let engine = shared();
    let env = Rc::new(Env::default());
    let started = Instant::now();
    let mut evaluations: u64 = 0;
    let mut total: i64 = 0;
    while count.map_or(started.elapsed() < Duration::from_secs(seconds), |n| {
        evaluations < n
    }) {
        for doc in &docs {
            let mut record = formulas::formula_inputs(&model, doc);
            let (results, problems) =
                formulas::compute(&engine, &model, &mut record, &env, "").expect("no lookups");
            assert!(problems.is_empty(), "the score runs: {problems:?}");
            total += results
                .first()
                .and_then(|(_, v)| v.as_i64())
                .unwrap_or_default();
            evaluations += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "Sales CRM lead score over stored records (formula inputs + formula): {:.0} evaluations/s on one core ({evaluations} in {elapsed:.1} s; checksum {total})",
        evaluations as f64 / elapsed
    );
}
