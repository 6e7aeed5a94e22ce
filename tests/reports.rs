//! Reports and dashboards through HTTP, on SQLite and PostgreSQL: every measure compared with
//! an independent computation over the same records (exact money, empty groups, empty
//! values, per-measure filters and formulas, date buckets and periods, the previous period),
//! drill-down filters that list exactly the records behind a number, exports, the viewer's
//! scope and field rules, team filters and `$me`, dashboards shared by role, and bad
//! definitions refused with their pointers.

mod common;

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use common::{
    Backend, Client, TestApp, assert_problem, join_member, publish_definition, publish_entity,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const DEALS: &str = "/api/v1/w/demo/entities/deal/records";
const STAGES: [&str; 4] = ["new", "won", "lost", "dormant"];

both_databases!(
    measures_match_an_independent_computation,
    reports_respect_scope_field_rules_and_teams,
    bad_reports_are_refused_and_nothing_leaks,
    the_sales_crm_dashboard_runs_on_demo_data,
    the_funnel_follows_each_record_through_its_history,
    targets_split_down_the_org_and_roll_up_by_period,
    a_schedule_emails_each_person_their_own_report,
    report_pages_draw_templates_charts_and_their_limits,
);

/// One deal as the test made it.
#[derive(Debug, Clone)]
struct Deal {
    id: String,
    stage: Option<&'static str>,
    /// Fen.
    amount: Option<i64>,
    size: Option<i64>,
    closed_on: Option<NaiveDate>,
    owner: String,
}

fn deal_entity() -> Value {
    let options: Vec<Value> = STAGES
        .iter()
        .map(
            |s| json!({"value": s, "label": {"en": s.to_uppercase(), "zh-CN": format!("阶段{s}")}}),
        )
        .collect();
    json!({
        "type": "object", "x-label": {"en": "Deal"}, "x-title-field": "name",
        // Compound indexes let aggregates read from the index alone: the measures are checked
        // through that path as well as through the documents.
        "x-indexes": [["stage", "amount"], ["stage", "closed_on", "amount", "size"], ["owner", "stage", "amount"]],
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "stage": {"type": "string", "enum": STAGES, "x-kind": "single_select",
                      "x-label": {"en": "Stage", "zh-CN": "阶段"}, "x-options": options},
            "amount": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Amount"}},
            "size": {"type": "integer", "x-kind": "integer", "x-label": {"en": "Size"}},
            "closed_on": {"type": "string", "format": "date", "x-kind": "date", "x-label": {"en": "Closed on"}},
            "secret": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Margin"}}
        }
    })
}

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// Creates `n` random deals owned round-robin by `owners`, in batches through the API.
async fn make_deals(admin: &Client, n: usize, owners: &[String], seed: u64) -> Vec<Deal> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut deals = Vec::new();
    let mut batch = Vec::new();
    for i in 0..n {
        let stage = (!rng.gen_bool(0.1)).then(|| STAGES[rng.gen_range(0..3)]);
        let amount = (!rng.gen_bool(0.15)).then(|| rng.gen_range(0..10_000_000i64));
        let size = (!rng.gen_bool(0.2)).then(|| rng.gen_range(1..50i64));
        let closed_on = (!rng.gen_bool(0.1)).then(|| {
            NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
                + chrono::Duration::days(rng.gen_range(0..365))
        });
        let owner = owners[i % owners.len()].clone();
        let mut fields = json!({"name": format!("deal {i}")});
        if let Some(stage) = stage {
            fields["stage"] = json!(stage);
        }
        if let Some(amount) = amount {
            fields["amount"] = json!(yuan(amount));
            fields["secret"] = json!(yuan(amount / 10));
        }
        if let Some(size) = size {
            fields["size"] = json!(size);
        }
        if let Some(date) = closed_on {
            fields["closed_on"] = json!(date.to_string());
        }
        batch.push(json!({"fields": fields, "owner": owner}));
        deals.push(Deal {
            id: String::new(),
            stage,
            amount,
            size,
            closed_on,
            owner,
        });
    }
    let mut at = 0;
    for chunk in batch.chunks(100) {
        let (status, body) = admin
            .post(&format!("{DEALS}/batch"), json!({"records": chunk}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for record in body["records"].as_array().expect("records") {
            deals[at].id = record["id"].as_str().expect("id").to_owned();
            at += 1;
        }
    }
    deals
}

async fn publish_report(admin: &Client, key: &str, document: Value) {
    let (status, body) = publish_definition(admin, "report", key, document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn run(client: &Client, key: &str, query: &str) -> Value {
    let (status, body) = client.get(&format!("{W}/reports/{key}/run{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The expected measures of a set of deals: count, sum (fen), avg (fen, rounded), min, max,
/// sum of sizes, count of won.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    count: i64,
    sum: i64,
    amounts: Vec<i64>,
    sizes: i64,
    won: i64,
}

impl Expected {
    fn add(&mut self, deal: &Deal) {
        self.count += 1;
        if let Some(a) = deal.amount {
            self.sum += a;
            self.amounts.push(a);
        }
        self.sizes += deal.size.unwrap_or(0);
        if deal.stage == Some("won") {
            self.won += 1;
        }
    }

    fn avg(&self) -> Option<i64> {
        (!self.amounts.is_empty())
            .then(|| (self.sum as f64 / self.amounts.len() as f64).round() as i64)
    }
}

/// The measures of a result row by key.
fn values(outcome: &Value, row: &Value) -> BTreeMap<String, Value> {
    outcome["measures"]
        .as_array()
        .expect("measures")
        .iter()
        .zip(row["values"].as_array().expect("values"))
        .map(|(m, v)| (m["key"].as_str().expect("key").to_owned(), v.clone()))
        .collect()
}

fn decimal(value: &Value) -> Option<rust_decimal::Decimal> {
    value.as_str().map(|s| s.parse().expect("a decimal"))
}

fn fen(value: &Value) -> Option<i64> {
    decimal(value).map(|d| {
        let scaled = d * rust_decimal::Decimal::ONE_HUNDRED;
        assert_eq!(
            scaled.fract(),
            rust_decimal::Decimal::ZERO,
            "{value} has no sub-fen"
        );
        i64::try_from(scaled.trunc().mantissa() / 10i128.pow(scaled.trunc().scale())).expect("fits")
    })
}

fn check_row(outcome: &Value, row: &Value, expected: &Expected, context: &str) {
    let got = values(outcome, row);
    assert_eq!(
        fen(&got["n"]).map(|f| f / 100),
        Some(expected.count),
        "{context} count"
    );
    assert_eq!(fen(&got["total"]), Some(expected.sum), "{context} sum");
    assert_eq!(fen(&got["mean"]), expected.avg(), "{context} avg");
    assert_eq!(
        fen(&got["low"]),
        expected.amounts.iter().min().copied(),
        "{context} min"
    );
    assert_eq!(
        fen(&got["high"]),
        expected.amounts.iter().max().copied(),
        "{context} max"
    );
    assert_eq!(
        fen(&got["sizes"]).map(|f| f / 100),
        Some(expected.sizes),
        "{context} sizes"
    );
    assert_eq!(
        fen(&got["won_n"]).map(|f| f / 100),
        Some(expected.won),
        "{context} won"
    );
    // The formula divides exactly: total / n.
    let per = match (decimal(&got["total"]), decimal(&got["n"])) {
        (Some(t), Some(n)) if !n.is_zero() => Some(t / n),
        _ => None,
    };
    assert_eq!(decimal(&got["per_deal"]), per, "{context} formula");
}

async fn measures_match_an_independent_computation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(&admin, "deal", deal_entity()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, ann) = join_member(&app, &admin, "ann@formwork.local", "member").await;
    let (_, bob) = join_member(&app, &admin, "bob@formwork.local", "member").await;
    let deals = make_deals(&admin, 240, &[ann.clone(), bob.clone()], 7).await;

    let measures = json!([
        {"key": "n", "op": "count"},
        {"key": "total", "op": "sum", "field": "amount"},
        {"key": "mean", "op": "avg", "field": "amount"},
        {"key": "low", "op": "min", "field": "amount"},
        {"key": "high", "op": "max", "field": "amount"},
        {"key": "sizes", "op": "sum", "field": "size"},
        {"key": "won_n", "op": "count", "filter": {"field": "stage", "op": "eq", "value": "won"}},
        {"key": "per_deal", "formula": "total / n"}
    ]);
    publish_report(
        &admin,
        "by_stage",
        json!({
            "label": {"en": "By stage"}, "entity": "deal", "group_by": ["stage"],
            "measures": measures, "chart": {"type": "bar", "measure": "total"}
        }),
    )
    .await;
    let outcome = run(&admin, "by_stage", "").await;
    let mut expected: BTreeMap<Option<&str>, Expected> = BTreeMap::new();
    for deal in &deals {
        expected.entry(deal.stage).or_default().add(deal);
    }
    let rows = outcome["rows"].as_array().expect("rows");
    // Every option (the unused one too) and the empty stage, options in their order, empty last.
    let order: Vec<Value> = rows.iter().map(|r| r["keys"][0]["value"].clone()).collect();
    assert_eq!(
        order,
        [
            json!("new"),
            json!("won"),
            json!("lost"),
            json!("dormant"),
            Value::Null
        ]
    );
    for row in rows {
        let stage = row["keys"][0]["value"].as_str();
        let want = expected.get(&stage).cloned().unwrap_or_default();
        check_row(&outcome, row, &want, &format!("stage {stage:?}"));
    }
    assert_eq!(
        rows[0]["keys"][0]["label"],
        json!({"en": "NEW", "zh-CN": "阶段new"})
    );
    assert_eq!(rows[4]["keys"][0]["label"]["en"], "(empty)");
    // Totals over everything.
    let mut all = Expected::default();
    for deal in &deals {
        all.add(deal);
    }
    let totals = json!({"values": outcome["totals"]});
    check_row(&outcome, &totals, &all, "totals");

    // Drill-down: each row's filter lists exactly its records.
    for row in rows {
        let (status, page) = admin
            .post(
                &format!("{DEALS}/query"),
                json!({"filter": row["filter"], "total": "exact", "limit": 1000}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let stage = row["keys"][0]["value"].as_str();
        let mut want: Vec<&str> = deals
            .iter()
            .filter(|d| d.stage == stage)
            .map(|d| d.id.as_str())
            .collect();
        let mut got: Vec<&str> = page["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["id"].as_str().expect("id"))
            .collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "drill-down of {stage:?}");
    }

    // Months of 2026 by close date: twelve rows (empty months filled), undated deals left out.
    publish_report(
        &admin,
        "by_month",
        json!({
            "label": {"en": "By month"}, "entity": "deal",
            "date_field": "closed_on", "period": {"from": "2026-01-01", "to": "2026-12-31"},
            "group_by": [{"field": "closed_on", "bucket": "month"}],
            "measures": measures, "chart": {"type": "line", "measure": "total"}
        }),
    )
    .await;
    let outcome = run(&admin, "by_month", "").await;
    let rows = outcome["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 12, "{outcome}");
    for (m, row) in rows.iter().enumerate() {
        let label = format!("2026-{:02}", m + 1);
        assert_eq!(row["keys"][0]["value"], json!(label));
        let mut want = Expected::default();
        for deal in deals
            .iter()
            .filter(|d| d.closed_on.is_some_and(|c| c.month0() as usize == m))
        {
            want.add(deal);
        }
        check_row(&outcome, row, &want, &label);
        let (_, page) = admin
            .post(
                &format!("{DEALS}/query"),
                json!({"filter": row["filter"], "total": "exact", "limit": 1}),
            )
            .await;
        assert_eq!(page["total"], json!(want.count), "drill-down of {label}");
    }
    // A period from a dashboard or the URL narrows it: the first quarter only.
    let quarter = run(&admin, "by_month", "?period=2026-01-01..2026-03-31").await;
    assert_eq!(quarter["rows"].as_array().map(Vec::len), Some(3));
    assert_eq!(quarter["period"]["to"], "2026-03-31");

    // Two keys: stage × quarter, as a pivot.
    publish_report(
        &admin,
        "pivot",
        json!({
            "label": {"en": "Pivot"}, "entity": "deal",
            "group_by": ["stage", {"field": "closed_on", "bucket": "quarter"}],
            "measures": measures, "chart": {"type": "pivot", "measure": "total"}
        }),
    )
    .await;
    let outcome = run(&admin, "pivot", "").await;
    let mut cells: BTreeMap<(Option<String>, Option<String>), Expected> = BTreeMap::new();
    for deal in &deals {
        let quarter = deal
            .closed_on
            .map(|c| format!("{}-Q{}", c.year(), c.month0() / 3 + 1));
        cells
            .entry((deal.stage.map(str::to_owned), quarter))
            .or_default()
            .add(deal);
    }
    let rows = outcome["rows"].as_array().expect("rows");
    assert_eq!(
        rows.len(),
        cells.len(),
        "one row per combination that has records"
    );
    for row in rows {
        let key = (
            row["keys"][0]["value"].as_str().map(str::to_owned),
            row["keys"][1]["value"].as_str().map(str::to_owned),
        );
        check_row(&outcome, row, &cells[&key], &format!("{key:?}"));
    }

    // A single number against the previous period: this month and last month, by close date.
    publish_report(
        &admin,
        "this_month",
        json!({
            "label": {"en": "This month"}, "entity": "deal", "date_field": "closed_on",
            "period": "this_month", "measures": measures,
            "chart": {"type": "number", "measure": "total", "compare": true}
        }),
    )
    .await;
    let outcome = run(&admin, "this_month", "").await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let month_of = |d: NaiveDate| (d.year(), d.month());
    let previous_month = {
        let first = today.with_day(1).expect("first");
        month_of(first - chrono::Duration::days(1))
    };
    let mut now = Expected::default();
    let mut before = Expected::default();
    for deal in &deals {
        match deal.closed_on.map(month_of) {
            Some(m) if m == month_of(today) => now.add(deal),
            Some(m) if m == previous_month => before.add(deal),
            _ => {}
        }
    }
    check_row(
        &outcome,
        &json!({"values": outcome["totals"]}),
        &now,
        "this month",
    );
    check_row(
        &outcome,
        &json!({"values": outcome["previous"]}),
        &before,
        "last month",
    );

    // Exports: CSV (exact decimals, a total line) and XLSX (numbers).
    let response = admin
        .get_raw(&format!("{W}/reports/by_stage/export.csv?lang=zh-CN"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    let text = text.trim_start_matches('\u{feff}');
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 5 + 1, "{text}");
    assert!(lines[0].starts_with("阶段,"), "{text}");
    assert!(lines[1].starts_with("阶段new,"), "{text}");
    let total_line: Vec<&str> = lines[6].split(',').collect();
    assert_eq!(total_line[0], "合计");
    assert_eq!(total_line[2], yuan(all.sum), "{text}");
    let response = admin
        .get_raw(&format!("{W}/reports/by_stage/export.xlsx"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("bytes");
    use calamine::Reader;
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("xlsx");
    let sheet = workbook
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    assert_eq!(
        sheet.get_value((0, 0)).map(ToString::to_string).as_deref(),
        Some("Stage")
    );
    assert_eq!(
        sheet.get_value((1, 0)).map(ToString::to_string).as_deref(),
        Some("NEW")
    );
    let new_total = expected.get(&Some("new")).map_or(0, |e| e.sum) as f64 / 100.0;
    match sheet.get_value((1, 2)) {
        Some(calamine::Data::Float(v)) => {
            assert!((v - new_total).abs() < 0.001, "{v} vs {new_total}")
        }
        other => panic!("a number, not {other:?}"),
    }
}

async fn set_role(admin: &Client, key: &str, rights: Value) {
    let (status, body) = admin
        .put(
            &format!("{W}/roles/{key}"),
            json!({"name": key, "rights": rights}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn reports_respect_scope_field_rules_and_teams(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(&admin, "deal", deal_entity()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Reps see their own deals and not the margin; scouts see everything.
    set_role(&admin, "rep", json!({"entities": {"*": {"create": "own", "read": "own", "update": "own", "delete": "none"},
        "deal": {"fields": {"secret": "hidden"}}}}))
    .await;
    set_role(&admin, "scout", json!({"entities": {"*": {"read": "all"}}})).await;
    let (ann_client, ann) = join_member(&app, &admin, "ann@formwork.local", "rep").await;
    let (_, bob) = join_member(&app, &admin, "bob@formwork.local", "rep").await;
    let (cat_client, cat) = join_member(&app, &admin, "cat@formwork.local", "scout").await;
    // Org: ann and cat in team East, bob in team West.
    let units = east_and_west(
        &admin,
        "Acme",
        &[(&ann, "East"), (&cat, "East"), (&bob, "West")],
    )
    .await;
    let deals = make_deals(&admin, 90, &[ann.clone(), bob.clone(), cat.clone()], 11).await;
    let count_of =
        |owners: &[&String]| deals.iter().filter(|d| owners.contains(&&d.owner)).count() as i64;
    let sum_of = |owners: &[&String]| -> i64 {
        deals
            .iter()
            .filter(|d| owners.contains(&&d.owner))
            .filter_map(|d| d.amount)
            .sum()
    };
    publish_report(&admin, "counts", json!({
        "label": {"en": "Counts"}, "entity": "deal", "group_by": ["owner"],
        "measures": [{"key": "n", "op": "count"}, {"key": "total", "op": "sum", "field": "amount"}],
        "chart": {"type": "table"}
    }))
    .await;
    publish_report(&admin, "margins", json!({
        "label": {"en": "Margins"}, "entity": "deal",
        "measures": [{"key": "n", "op": "count"}, {"key": "margin", "op": "sum", "field": "secret"}],
        "chart": {"type": "number", "measure": "margin"}
    }))
    .await;
    publish_report(
        &admin,
        "mine",
        json!({
            "label": {"en": "Mine"}, "entity": "deal",
            "filter": {"field": "owner", "op": "eq", "value": "$me"},
            "measures": [{"key": "n", "op": "count"}], "chart": {"type": "number"}
        }),
    )
    .await;
    publish_report(
        &admin,
        "my_team",
        json!({
            "label": {"en": "My team"}, "entity": "deal",
            "filter": {"field": "owner", "op": "in", "value": ["$my_team"]},
            "measures": [{"key": "n", "op": "count"}], "chart": {"type": "number"}
        }),
    )
    .await;

    // A rep's numbers are their own deals only.
    let outcome = run(&ann_client, "counts", "").await;
    let rows = outcome["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{outcome}");
    assert_eq!(rows[0]["keys"][0]["value"], json!(ann));
    assert_eq!(rows[0]["keys"][0]["label"], "ann", "people show by name");
    assert_eq!(
        decimal(&rows[0]["values"][0]).map(|d| d.to_string()),
        Some(count_of(&[&ann]).to_string())
    );
    assert_eq!(fen(&rows[0]["values"][1]), Some(sum_of(&[&ann])));
    // The admin sees everyone; the team filter narrows to East (ann and cat).
    let outcome = run(&admin, "counts", &format!("?team={}", units["East"])).await;
    let owners: Vec<&str> = outcome["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["keys"][0]["value"].as_str().expect("owner"))
        .collect();
    assert_eq!(owners.len(), 2, "{outcome}");
    assert!(owners.contains(&ann.as_str()) && owners.contains(&cat.as_str()));
    assert_eq!(fen(&outcome["totals"][1]), Some(sum_of(&[&ann, &cat])));
    let outcome = run(&admin, "counts", &format!("?owner={bob}")).await;
    assert_eq!(fen(&outcome["totals"][1]), Some(sum_of(&[&bob])));
    // A field the viewer's role hides cannot be measured: a clear 422 at the measure.
    let (status, body) = ann_client.get(&format!("{W}/reports/margins/run")).await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers, ["/measures/1/field"], "{body}");
    assert!(
        !body.to_string().contains(&yuan(sum_of(&[&ann]) / 10)),
        "no margin leaks"
    );
    let outcome = run(&cat_client, "margins", "").await;
    assert_eq!(
        decimal(&outcome["totals"][0]).map(|d| d.to_string()),
        Some("90".to_owned())
    );
    // $me and $my_team follow the viewer: cat sees all deals, counts her own and her team's.
    let outcome = run(&cat_client, "mine", "").await;
    assert_eq!(
        decimal(&outcome["totals"][0]).map(|d| d.to_string()),
        Some(count_of(&[&cat]).to_string())
    );
    let outcome = run(&cat_client, "my_team", "").await;
    assert_eq!(
        decimal(&outcome["totals"][0]).map(|d| d.to_string()),
        Some(count_of(&[&ann, &cat]).to_string())
    );

    // Dashboards: shared by role, filters for all their reports, a failing tile shows its error.
    let (status, body) = publish_definition(
        &admin,
        "dashboard",
        "desk",
        json!({
            "label": {"en": "Desk"}, "filters": ["period", "team", "owner"],
            "items": [{"report": "counts", "width": 8}, {"report": "margins"}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = publish_definition(
        &admin,
        "dashboard",
        "scouts_only",
        json!({
            "label": {"en": "Scouts"}, "roles": ["scout"], "items": [{"report": "counts"}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, board) = ann_client
        .get(&format!("{W}/dashboards/desk?owner={ann}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["tiles"][0]["width"], 8);
    assert_eq!(
        fen(&board["tiles"][0]["outcome"]["totals"][1]),
        Some(sum_of(&[&ann]))
    );
    assert_eq!(
        board["tiles"][1]["error"]["errors"][0]["pointer"],
        "/measures/1/field"
    );
    let (status, _) = ann_client.get(&format!("{W}/dashboards/scouts_only")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cat_client.get(&format!("{W}/dashboards/scouts_only")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, catalog) = ann_client.get(&format!("{W}/reports")).await;
    assert_eq!(status, StatusCode::OK);
    let boards: Vec<&str> = catalog["dashboards"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d["key"].as_str().expect("key"))
        .collect();
    assert!(
        boards.contains(&"desk") && !boards.contains(&"scouts_only"),
        "{catalog}"
    );
    // Bad filters are refused by name.
    for query in [
        "?team=nope",
        "?period=someday",
        "?colour=red",
        "?period=2026-05-01..2026-01-01",
    ] {
        let (status, body) = admin.get(&format!("{W}/reports/counts/run{query}")).await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = admin
        .get(&format!(
            "{W}/reports/counts/run?team={}",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn bad_reports_are_refused_and_nothing_leaks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(&admin, "deal", deal_entity()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let base =
        json!({"label": {"en": "R"}, "entity": "deal", "measures": [{"key": "n", "op": "count"}]});
    let with = |patch: Value| {
        let mut doc = base.clone();
        for (k, v) in patch.as_object().expect("object") {
            doc[k] = v.clone();
        }
        doc
    };
    let cases = [
        (with(json!({"entity": "ghost"})), "/document/entity"),
        (with(json!({"group_by": ["nope"]})), "/document/group_by/0"),
        (
            with(json!({"group_by": [{"field": "name", "bucket": "month"}]})),
            "/document/group_by/0/bucket",
        ),
        (
            with(json!({"measures": [{"key": "s", "op": "sum", "field": "name"}]})),
            "/document/measures/0/field",
        ),
        (
            with(
                json!({"measures": [{"key": "n", "op": "count"}, {"key": "r", "formula": "n / ghost"}]}),
            ),
            "/document/measures/1/formula",
        ),
        (
            with(
                json!({"measures": [{"key": "n", "op": "count"}, {"key": "r", "formula": "n +"}]}),
            ),
            "/document/measures/1/formula",
        ),
        (
            with(json!({"chart": {"type": "pie"}})),
            "/document/chart/type",
        ),
        (
            with(json!({"period": "this_month"})),
            "/document/date_field",
        ),
        (
            with(json!({"filter": {"field": "ghost", "op": "eq", "value": 1}})),
            "/document/filter/field",
        ),
        (
            with(json!({"template": "{% for x in %}"})),
            "/document/template",
        ),
        (
            with(json!({"chart": {"type": "sparkline"}})),
            "/document/chart/type",
        ),
    ];
    for (doc, pointer) in cases {
        let (status, body) = publish_definition(&admin, "report", "bad", doc.clone()).await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            pointers.iter().any(|p| p == pointer),
            "{doc}: {pointers:?} lacks {pointer}: {body}"
        );
        if pointer.ends_with("formula") {
            let error = body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .find(|e| e["pointer"] == pointer)
                .expect("the formula error");
            assert!(
                error["line"].is_number() && error["column"].is_number(),
                "{error}"
            );
        }
    }
    // A workflow emailing a missing report, or with a period that is not one, is refused.
    for (step, pointer) in [
        (
            json!({"id": "s", "type": "send_report", "report": "ghost", "to": ["owner"]}),
            "/document/steps/0/report",
        ),
        (
            json!({"id": "s", "type": "send_report", "report": "ghost", "to": ["owner"], "period": "someday"}),
            "/document/steps/0/period",
        ),
    ] {
        let (status, body) = publish_definition(&admin, "workflow", "mailer", json!({
            "label": {"en": "Mailer"}, "trigger": {"type": "schedule", "cron": "0 8 * * 1"}, "steps": [step]
        }))
        .await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            pointers.iter().any(|p| p == pointer),
            "{pointers:?} lacks {pointer}"
        );
    }
    // Aggregates cap their groups with `limit` (1–10,000), in group order.
    for n in 0..5 {
        let (status, body) = admin
            .post(
                DEALS,
                json!({"fields": {"name": format!("d{n}"), "size": n}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = admin
        .post(
            &format!("{DEALS}/aggregate"),
            json!({"group_by": ["size"], "limit": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(2), "{body}");
    for limit in [json!(0), json!(10_001), json!("2")] {
        let (status, body) = admin
            .post(
                &format!("{DEALS}/aggregate"),
                json!({"group_by": ["size"], "limit": limit}),
            )
            .await;
        assert_eq!(
            assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
            ["/limit"]
        );
    }
    // A fiscal year starts in a month from 1 to 12.
    let (status, body) = admin
        .patch(
            &format!("{W}/settings"),
            json!({"calendar": {"fiscal_year_start": 13}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/calendar/fiscal_year_start"]
    );
    // Nothing was published.
    let (status, _) = admin.get(&format!("{W}/reports/bad/run")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A dashboard naming a missing report is refused.
    let (status, body) = publish_definition(
        &admin,
        "dashboard",
        "d",
        json!({
            "label": {"en": "D"}, "items": [{"report": "ghost"}]
        }),
    )
    .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/items/0/report"]
    );
    // Removing a field a report measures is refused while the report uses it.
    publish_report(
        &admin,
        "sizes",
        with(json!({"measures": [{"key": "s", "op": "sum", "field": "size"}]})),
    )
    .await;
    let mut entity = deal_entity();
    entity["properties"]
        .as_object_mut()
        .expect("object")
        .remove("size");
    entity["x-indexes"] = json!([["stage", "amount"]]);
    let (status, body) = publish_entity(&admin, "deal", entity).await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers
            .iter()
            .any(|p| p.starts_with("/dependents/report/sizes")),
        "{body}"
    );
    // A report template that loops forever or floods stops at its limits in a preview.
    for template in [
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}",
        "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}",
    ] {
        let (status, body) = admin
            .post(
                &format!("{W}/reports/preview"),
                with(json!({"template": template})),
            )
            .await;
        // The preview runs the numbers; the template runs where it is shown (the page), and
        // is refused there with its limit. Here: the definition is valid.
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = admin
        .post(
            &format!("{W}/reports/preview"),
            with(json!({"group_by": ["ghost"]})),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/group_by/0"]
    );
}

async fn the_sales_crm_dashboard_runs_on_demo_data(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let (status, board) = admin.get(&format!("{W}/dashboards/sales_overview")).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let tiles = board["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 16);
    for tile in tiles {
        assert!(tile["error"].is_null(), "{tile}");
        assert!(tile["outcome"]["rows"].is_array(), "{tile}");
    }
    // The funnel's stages are the pipeline's, in order, lost left out; every deal is counted
    // once: those lost plus those in a stage now.
    let funnel = &tiles[1]["outcome"]["funnel"];
    let stages: Vec<&str> = funnel["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["value"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        stages,
        [
            "lead",
            "first_contact",
            "needs_confirmed",
            "proposal",
            "contract_signed",
            "delivery"
        ]
    );
    let (_, page) = admin
        .post(
            "/api/v1/w/demo/entities/opportunity/records/query",
            json!({"total": "exact", "limit": 1}),
        )
        .await;
    let all = page["total"].as_u64().expect("total");
    assert!(all > 20, "{page}");
    assert_eq!(funnel["records"].as_u64(), Some(all));
    let now: u64 = funnel["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["current"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(now + funnel["lost"].as_u64().unwrap_or(0), all, "{funnel}");
    // Reaching a stage includes every later one: the counts never grow down the funnel, and
    // the demo's history moves deals through several stages.
    let reached: Vec<u64> = funnel["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["reached"].as_u64().unwrap_or(0))
        .collect();
    assert!(reached.windows(2).all(|w| w[0] >= w[1]), "{reached:?}");
    assert!(reached[0] > reached[5], "{reached:?}");
    let lost_here: u64 = funnel["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["lost_here"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        lost_here + funnel["lost_before_first"].as_u64().unwrap_or(0),
        funnel["lost"].as_u64().unwrap_or(0)
    );
    let reasons: u64 = funnel["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(reasons, funnel["lost"].as_u64().unwrap_or(0));
    // Won by month covers the last twelve months.
    assert_eq!(
        tiles[2]["outcome"]["rows"].as_array().map(Vec::len),
        Some(12)
    );
}

/// A hand-made pipeline: deals created and moved through stages on known days (the test moves
/// the server's clock), some lost with a reason; the funnel's reached counts, conversions,
/// losses per stage, reasons and days in each stage are checked against the story.
async fn the_funnel_follows_each_record_through_its_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin().await;
    let option = |v: &str| json!({"value": v, "label": {"en": v}});
    let stage_options: Vec<Value> = ["s1", "s2", "s3", "s4", "lost"].map(option).to_vec();
    let why_options: Vec<Value> = ["price", "rival"].map(option).to_vec();
    let entity = json!({
        "type": "object", "x-label": {"en": "Pipe"},
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "stage": {"type": "string", "x-kind": "single_select", "x-label": {"en": "Stage"},
                      "enum": ["s1", "s2", "s3", "s4", "lost"],
                      "x-options": stage_options},
            "why": {"type": "string", "x-kind": "single_select", "x-label": {"en": "Why"},
                    "enum": ["price", "rival"], "x-options": why_options}
        }
    });
    let (status, body) = publish_entity(&admin, "pipe", entity).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    publish_report(
        &admin,
        "pipe_funnel",
        json!({
            "label": {"en": "Pipe funnel"}, "entity": "pipe", "group_by": ["stage"],
            "measures": [{"key": "n", "op": "count"}],
            "chart": {"type": "funnel"}, "funnel": {"lost": ["lost"], "lost_reason": "why"}
        }),
    )
    .await;
    let pipes = "/api/v1/w/demo/entities/pipe/records";
    // Day 0: a, b, c, d created in s1; e created lost straight away.
    let mut ids = BTreeMap::new();
    for name in ["a", "b", "c", "d", "e"] {
        let stage = if name == "e" { "lost" } else { "s1" };
        let (status, body) = admin
            .post(pipes, json!({"fields": {"name": name, "stage": stage}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.insert(
            name,
            (
                body["id"].as_str().expect("id").to_owned(),
                body["version"].clone(),
            ),
        );
    }
    let day = chrono::Duration::days(1);
    // Day 2: a, b, c → s2. Day 5: a, b → s3; c lost (price). Day 6: a → s4; b lost (rival).
    app.advance(day * 2);
    // Sessions expire when days pass without a request: sign in again.
    admin = app.admin().await;
    for name in ["a", "b", "c"] {
        set(&admin, &mut ids, name, json!({"stage": "s2"})).await;
    }
    app.advance(day * 3);
    // Sessions expire when days pass without a request: sign in again.
    admin = app.admin().await;
    set(&admin, &mut ids, "a", json!({"stage": "s3"})).await;
    set(&admin, &mut ids, "b", json!({"stage": "s3"})).await;
    set(
        &admin,
        &mut ids,
        "c",
        json!({"stage": "lost", "why": "price"}),
    )
    .await;
    app.advance(day);
    // Sessions expire when days pass without a request: sign in again.
    admin = app.admin().await;
    set(&admin, &mut ids, "a", json!({"stage": "s4"})).await;
    set(
        &admin,
        &mut ids,
        "b",
        json!({"stage": "lost", "why": "rival"}),
    )
    .await;
    // Day 10: look.
    app.advance(day * 4);
    // Sessions expire when days pass without a request: sign in again.
    admin = app.admin().await;
    let outcome = run(&admin, "pipe_funnel", "").await;
    let funnel = &outcome["funnel"];
    let column = |key: &str| -> Vec<Value> {
        funnel["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| s[key].clone())
            .collect()
    };
    assert_eq!(
        column("value"),
        [json!("s1"), json!("s2"), json!("s3"), json!("s4")]
    );
    assert_eq!(column("current"), [json!(1), json!(0), json!(0), json!(1)]);
    assert_eq!(column("reached"), [json!(4), json!(3), json!(2), json!(1)]);
    assert_eq!(
        column("lost_here"),
        [json!(0), json!(1), json!(1), json!(0)]
    );
    assert_eq!(funnel["lost"], 3);
    assert_eq!(funnel["lost_before_first"], 1);
    let conversions: Vec<Option<String>> = column("conversion")
        .iter()
        .map(|v| {
            v.as_str().map(|s| {
                s.parse::<rust_decimal::Decimal>()
                    .expect("decimal")
                    .round_dp(4)
                    .normalize()
                    .to_string()
            })
        })
        .collect();
    assert_eq!(
        conversions,
        [
            None,
            Some("0.75".into()),
            Some("0.6667".into()),
            Some("0.5".into())
        ]
    );
    // Days in s1: a, b, c 2 each; d still there, 10 → 4.0. In s2: a, b 3; c 3 → 3.0.
    // In s3: a 1, b 1 → 1.0. In s4: a since day 6 → 4.0.
    assert_eq!(
        column("avg_days"),
        [json!("4.0"), json!("3.0"), json!("1.0"), json!("4.0")]
    );
    let reasons: Vec<(Value, Value)> = funnel["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| (r["value"].clone(), r["count"].clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            (json!("price"), json!(1)),
            (json!("rival"), json!(1)),
            (Value::Null, json!(1))
        ]
    );
    // Each stage's filter lists the records in it now; each reason's, the deals it lost.
    let (_, page) = admin
        .post(
            &format!("{pipes}/query"),
            json!({"filter": funnel["stages"][3]["filter"], "total": "exact"}),
        )
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["records"][0]["id"], json!(ids["a"].0));
    let (_, page) = admin
        .post(
            &format!("{pipes}/query"),
            json!({"filter": funnel["reasons"][0]["filter"], "total": "exact"}),
        )
        .await;
    assert_eq!(page["records"][0]["id"], json!(ids["c"].0));
}

/// Changes a pipe record's fields, keeping its version current in `ids`.
async fn set(
    admin: &Client,
    ids: &mut BTreeMap<&'static str, (String, Value)>,
    name: &'static str,
    fields: Value,
) {
    let (id, version) = ids[name].clone();
    let (status, body) = admin
        .patch(
            &format!("/api/v1/w/demo/entities/pipe/records/{id}"),
            json!({"fields": fields, "version": version}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ids.insert(name, (id, body["version"].clone()));
}

/// The Sales CRM's targets on a hand-made org (Sales → East: ann, bob; West: cat) with a
/// fiscal year from April: a total split down the tree with weights and uneven months, deals
/// won on known dates, then progress per node and period checked against sums by hand; a rep
/// sees only their own numbers; bad splits are refused by pointer.
async fn targets_split_down_the_org_and_roll_up_by_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = admin
        .patch(
            &format!("{W}/settings"),
            json!({"calendar": {"fiscal_year_start": 4}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    set_role(&admin, "rep", json!({"entities": {"*": {"create": "own", "read": "own", "update": "own", "delete": "none"}}})).await;
    let (ann_client, ann) = join_member(&app, &admin, "ann@formwork.local", "rep").await;
    let (_, bob) = join_member(&app, &admin, "bob@formwork.local", "rep").await;
    let (_, cat) = join_member(&app, &admin, "cat@formwork.local", "rep").await;
    let units = east_and_west(
        &admin,
        "Sales",
        &[(&ann, "East"), (&bob, "East"), (&cat, "West")],
    )
    .await;
    // 1,200,000 for fiscal 2026: East twice West; East's share to ann and bob 3:1; the last
    // fiscal quarter (Jan–Mar 2027) weighs double.
    let months = [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2];
    let (status, body) = admin
        .post(&format!("{W}/targets/split"), json!({
            "fiscal_year": 2026, "measure": "target_won_amount", "total": "1200000",
            "months": months,
            "split": [
                {"unit": units["East"], "weight": 2, "split": [{"person": ann, "weight": 3}, {"person": bob, "weight": 1}]},
                {"unit": units["West"], "weight": 1}
            ]
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(3));
    // Splitting again changes the same records (no duplicates), with history.
    let (status, body) = admin
        .post(&format!("{W}/targets/split"), json!({
            "fiscal_year": 2026, "measure": "target_won_amount", "total": "1200000", "months": months,
            "split": [
                {"unit": units["East"], "weight": 2, "split": [{"person": ann, "weight": 3}, {"person": bob, "weight": 1}]},
                {"unit": units["West"], "weight": 1}
            ]
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = admin
        .post(
            &format!("{W}/entities/sales_target/records/query"),
            json!({"total": "exact"}),
        )
        .await;
    assert_eq!(listed["total"], 3);
    let annual: BTreeMap<String, String> = listed["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["fields"]["assignee"].as_str().expect("who").to_owned(),
                r["fields"]["amount"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        annual[&ann].trim_matches('"').parse::<f64>().ok(),
        Some(600000.0)
    );
    assert_eq!(
        annual[&bob].trim_matches('"').parse::<f64>().ok(),
        Some(200000.0)
    );
    assert_eq!(
        annual[&cat].trim_matches('"').parse::<f64>().ok(),
        Some(400000.0)
    );

    // Deals won (and one lost, one outside the year) on known dates.
    let (status, customer) = admin
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "Acme", "lifecycle_stage": "intent"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let deals = [
        (&ann, "contract_signed", "100000", "2026-04-10"),
        (&ann, "delivery", "50000", "2026-06-30"),
        (&bob, "contract_signed", "30000", "2026-05-05"),
        (&cat, "contract_signed", "80000", "2026-07-01"),
        (&cat, "lost", "999999", "2026-04-20"),
        (&bob, "contract_signed", "70000", "2027-04-01"),
    ];
    for (owner, stage, amount, date) in deals {
        let (status, body) = admin
            .post(
                &format!("{W}/entities/opportunity/records"),
                json!({"owner": owner, "fields": {
                "name": format!("{stage} {amount}"), "customer": customer["id"], "stage": stage,
                "amount": amount, "expected_close_date": date,
                "lost_reason": if stage == "lost" { json!("price") } else { Value::Null }}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let node = |body: &Value, name: &str| -> (f64, f64) {
        let n = body["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {body}"));
        let f = |v: &Value| v.as_str().expect("decimal").parse::<f64>().expect("number");
        (f(&n["target"]), f(&n["actual"]))
    };
    // Fiscal Q1 = Apr–Jun 2026: three of the 15 month-weights.
    let q1 = progress(
        &admin,
        "fiscal_year=2026&measure=target_won_amount&period=Q1".to_owned(),
    )
    .await;
    assert_eq!(q1["from"], "2026-04-01");
    assert_eq!(q1["to"], "2026-06-30");
    assert_eq!(node(&q1, "ann"), (120000.0, 150000.0));
    assert_eq!(node(&q1, "bob"), (40000.0, 30000.0));
    assert_eq!(node(&q1, "cat"), (80000.0, 0.0));
    assert_eq!(node(&q1, "East"), (160000.0, 180000.0));
    assert_eq!(node(&q1, "Sales"), (240000.0, 180000.0));
    let east = q1["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "East")
        .expect("east");
    assert_eq!(east["progress"], "1.125");
    // The leaderboard: ann 125%, bob 75%, cat 0%.
    let order: Vec<&str> = q1["leaderboard"]
        .as_array()
        .expect("board")
        .iter()
        .map(|n| n["name"].as_str().expect("name"))
        .collect();
    assert_eq!(order, ["ann", "bob", "cat"]);
    // Fiscal Q4 (Jan–Mar 2027) weighs double; April 2027 is the next fiscal year.
    let q4 = progress(
        &admin,
        "fiscal_year=2026&measure=target_won_amount&period=Q4".to_owned(),
    )
    .await;
    assert_eq!(node(&q4, "bob"), (80000.0, 0.0));
    // A week: ISO week 15 of 2026 (Apr 6–12) is 7/30 of April's share.
    let week = progress(
        &admin,
        "fiscal_year=2026&measure=target_won_amount&period=2026-W15".to_owned(),
    )
    .await;
    let (target, actual) = node(&week, "ann");
    assert!(
        (target - 600000.0 / 15.0 * 7.0 / 30.0).abs() < 0.01,
        "{target}"
    );
    assert_eq!(actual, 100000.0);
    // One team only.
    let west = progress(
        &admin,
        format!(
            "fiscal_year=2026&measure=target_won_amount&period=M4&unit={}",
            units["West"]
        ),
    )
    .await;
    assert_eq!(west["nodes"][0]["name"], "West");
    assert_eq!(
        node(&west, "cat"),
        (26666.67, 80000.0),
        "targets show to the cent"
    );
    // A rep sees their own target and deals only.
    let mine = progress(
        &ann_client,
        "fiscal_year=2026&measure=target_won_amount&period=Q1".to_owned(),
    )
    .await;
    assert_eq!(node(&mine, "Sales"), (120000.0, 150000.0));
    // Bad requests are refused by name.
    for (body, pointer) in [
        (
            json!({"fiscal_year": 2026, "measure": "target_won_amount", "total": "100", "split": [{"unit": uuid::Uuid::new_v4(), "weight": 1}]}),
            "/split/0/unit",
        ),
        (
            json!({"fiscal_year": 2026, "measure": "target_won_amount", "total": "100", "split": [{"person": ann, "weight": 0}]}),
            "/split",
        ),
        (
            json!({"fiscal_year": 2026, "measure": "nope", "total": "100"}),
            "/measure",
        ),
        (
            json!({"fiscal_year": 2026, "measure": "target_won_amount", "total": "100", "months": [1, 2]}),
            "/months",
        ),
    ] {
        let (status, problem) = admin.post(&format!("{W}/targets/split"), body).await;
        let pointers = assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            pointers.iter().any(|p| p == pointer),
            "{pointers:?} lacks {pointer}"
        );
    }
    let (_, listed) = admin
        .post(
            &format!("{W}/entities/sales_target/records/query"),
            json!({"total": "exact"}),
        )
        .await;
    assert_eq!(listed["total"], 3, "nothing written by a refused split");
    for query in [
        "measure=target_won_amount",
        "fiscal_year=2026&measure=target_won_amount&period=Q9",
        "fiscal_year=2026&measure=ghost",
    ] {
        let (status, _) = admin.get(&format!("{W}/targets/progress?{query}")).await;
        assert!(status.is_client_error(), "{query}: {status}");
    }
}

async fn progress(client: &Client, query: String) -> Value {
    let (status, body) = client.get(&format!("{W}/targets/progress?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A daily schedule emails a report to the reps and the admin: each gets it computed with
/// their own access (a rep's numbers are their deals only), as HTML and text, in their
/// language; a person the report cannot run for is skipped in the run log, not failed.
async fn a_schedule_emails_each_person_their_own_report(backend: Backend) {
    let smtp = common::SmtpSink::start().await;
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            ..Default::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(&admin, "deal", deal_entity()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    set_role(&admin, "rep", json!({"entities": {"*": {"create": "own", "read": "own", "update": "own", "delete": "none"}}})).await;
    let (ann_client, ann) = join_member(&app, &admin, "ann@formwork.local", "rep").await;
    let (_, bob) = join_member(&app, &admin, "bob@formwork.local", "rep").await;
    // Ann reads Formwork in Chinese (as the language switch stores it).
    formwork::store::accounts::set_locale(
        app.services.db().conn(),
        uuid::Uuid::parse_str(&ann).expect("id"),
        Some("zh-CN".to_owned()),
        chrono::Utc::now(),
    )
    .await
    .expect("locale");
    let _ = &ann_client;
    let deals = make_deals(&admin, 30, &[ann.clone(), bob.clone()], 3).await;
    publish_report(&admin, "by_stage", json!({
        "label": {"en": "Deals by stage", "zh-CN": "各阶段交易"}, "entity": "deal", "group_by": ["stage"],
        "measures": [{"key": "n", "op": "count", "label": {"en": "Deals", "zh-CN": "交易数"}},
                     {"key": "total", "op": "sum", "field": "amount"}],
        "chart": {"type": "bar"}
    }))
    .await;
    let (status, body) = publish_definition(
        &admin,
        "workflow",
        "morning_report",
        json!({
            "label": {"en": "Morning report"},
            "trigger": {"type": "schedule", "cron": "0 8 * * *"},
            "steps": [{"id": "send", "type": "send_report", "report": "by_stage",
                       "to": ["role:rep", "role:owner"], "subject": "Deals {{ today }}"}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs_until_idle().await;
    app.advance(chrono::Duration::hours(25));
    app.run_jobs_until_idle().await;
    let admin = app.admin().await;
    let (status, runs) = admin
        .get(&format!("{W}/workflow-runs?workflow=morning_report"))
        .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert_eq!(runs[0]["status"], "completed", "{runs}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3, "ann, bob and the admin: {messages:?}");
    let to = |who: &str| {
        messages
            .iter()
            .find(|m| m.contains(&format!("To: {who}")))
            .unwrap_or_else(|| panic!("a message to {who}: {messages:?}"))
            .clone()
    };
    let count = |owner: &str| deals.iter().filter(|d| d.owner == owner).count();
    let ann_mail = to("ann@formwork.local");
    assert!(ann_mail.contains("multipart/alternative"), "{ann_mail}");
    assert!(
        ann_mail.contains("text/html") && ann_mail.contains("<table"),
        "{ann_mail}"
    );
    assert!(ann_mail.contains("交易数"), "ann reads Chinese: {ann_mail}");
    // Ann's total row counts her deals only; the admin's counts everyone's.
    let total_of = |mail: &str| -> String {
        let foot = mail.split("<tfoot>").nth(1).unwrap_or("");
        foot.split(['<', '>'])
            .map(str::trim)
            .find(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(total_of(&ann_mail), count(&ann).to_string(), "{ann_mail}");
    let admin_mail = to(common::ADMIN_EMAIL);
    assert_eq!(total_of(&admin_mail), "30", "{admin_mail}");
    assert!(admin_mail.contains("Subject: Deals 20"), "{admin_mail}");
    assert!(
        admin_mail.contains("/w/demo/reports/by_stage"),
        "a link back: {admin_mail}"
    );
    assert!(!admin_mail.contains("<script"));
}

/// The report pages: a custom template renders with values escaped; one that loops forever or
/// floods shows its limit in its place (the page still answers); charts come as SVG; a
/// dashboard draws every tile; the list page refuses a drill-down filter that is not one.
async fn report_pages_draw_templates_charts_and_their_limits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(&admin, "deal", deal_entity()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .post(DEALS, json!({"fields": {"name": "<script>alert(1)</script>", "stage": "won", "amount": "10"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let base = json!({"label": {"en": "Names"}, "entity": "deal", "group_by": ["name"],
                      "measures": [{"key": "n", "op": "count"}], "chart": {"type": "bar"}});
    let with_template = |template: &str| {
        let mut doc = base.clone();
        doc["template"] = json!(template);
        doc
    };
    publish_report(&admin, "briefing", with_template(
        "<ul>{% for r in rows %}<li class=brief>{{ r['keys'][0].text }}: {{ r['values'][0] }}</li>{% endfor %}</ul>",
    ))
    .await;
    publish_report(
        &admin,
        "forever",
        with_template(
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}",
        ),
    )
    .await;
    publish_report(
        &admin,
        "flood",
        with_template("{% for i in range(3000) %}{{ 'x' * 1000 }}{% endfor %}"),
    )
    .await;
    publish_report(&admin, "chart", base.clone()).await;
    let pages =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (status, html) = pages.get("/w/demo/reports/briefing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<li class=\"brief\">&lt;script&gt;alert(1)&lt;/script&gt;: 1</li>"),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"), "no markup from data");
    for key in ["forever", "flood"] {
        let started = std::time::Instant::now();
        let (status, html) = pages.get(&format!("/w/demo/reports/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        assert!(
            html.contains("data-testid=\"template-error\""),
            "{key}: {html}"
        );
        assert!(html.len() < 200_000, "{key}: the page stays small");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{key} stopped in time"
        );
    }
    let (status, html) = pages.get("/w/demo/reports/chart").await;
    assert_eq!(status, StatusCode::OK);
    let svg_start = html.find("<svg").expect("an SVG chart");
    let svg_end = html[svg_start..].find("</svg>").expect("its end") + svg_start + 6;
    roxmltree::Document::parse(&html[svg_start..svg_end]).expect("well-formed SVG");
    assert!(
        html[svg_start..svg_end].contains("&lt;script&gt;"),
        "labels escaped in the SVG"
    );
    // The list behind a number; a filter that is not one is refused, not a server error.
    let (status, html) = pages
        .get("/w/demo/e/deal?filter=%7B%22field%22%3A%22stage%22%2C%22op%22%3A%22eq%22%2C%22value%22%3A%22won%22%7D")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-testid=\"drill-notice\""), "{html}");
    let (status, _) = pages.get("/w/demo/e/deal?filter=not-json").await;
    assert!(status.is_client_error(), "{status}");
    let (status, _) = pages.get("/w/demo/e/deal?filter=%7B%22field%22%3A%22ghost%22%2C%22op%22%3A%22eq%22%2C%22value%22%3A1%7D").await;
    assert!(status.is_client_error(), "{status}");
    // Unknown reports and dashboards are 404 pages.
    let (status, _) = pages.get("/w/demo/reports/ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = pages.get("/w/demo/dashboards/ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A department `top` with teams East and West below it, and people placed in them; the
/// units' ids by name.
async fn east_and_west(
    admin: &Client,
    top: &'static str,
    people: &[(&String, &str)],
) -> BTreeMap<&'static str, String> {
    let mut units: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, kind, parent) in [
        (top, "department", None),
        ("East", "team", Some(top)),
        ("West", "team", Some(top)),
    ] {
        let parent_id = parent.map(|p: &str| units[p].clone());
        let (status, body) = admin
            .post(
                &format!("{W}/org/units"),
                json!({"name": name, "kind": kind, "parent_id": parent_id}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        units.insert(name, body["id"].as_str().expect("id").to_owned());
    }
    for (id, unit) in people {
        let (status, body) = admin
            .patch(
                &format!("{W}/members/{id}"),
                json!({"unit_id": units[unit]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    units
}
