//! Rollup fields through HTTP, on SQLite and PostgreSQL: exact after a randomized sequence of
//! child creates, batches, updates, re-parents, deletes and restores (and a parent deleted and
//! restored), compared after every step with a recomputation from the children themselves;
//! formulas over rollups follow; bad rollups are refused at save.

mod common;

use std::collections::BTreeMap;

use common::{Backend, Client, TestApp, assert_problem, publish_entity as publish};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const ACCOUNTS: &str = "/api/v1/w/demo/entities/acct/records";
const PAYMENTS: &str = "/api/v1/w/demo/entities/payment/records";

fn money(op: &str, field: Option<&str>) -> Value {
    let mut rollup = json!({"entity": "payment", "via": "acct", "op": op});
    if let Some(field) = field {
        rollup["field"] = json!(field);
    }
    json!({"type": "number", "x-kind": "rollup", "x-result": "money", "x-currency": "CNY",
           "x-label": {"en": op}, "x-rollup": rollup})
}

async fn setup(admin: &Client) {
    let account = json!({
        "type": "object", "x-label": {"en": "Account"},
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}}
        }
    });
    let (status, body) = publish(admin, "acct", account).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let payment = json!({
        "type": "object", "x-label": {"en": "Payment"},
        "properties": {
            "acct": {"type": "string", "x-kind": "reference", "x-label": {"en": "Account"},
                     "x-reference": {"entity": "acct", "on_delete": "cascade"}},
            "amount": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Amount"}},
            "due": {"type": "string", "x-kind": "date", "x-label": {"en": "Due"}}
        }
    });
    let (status, body) = publish(admin, "payment", payment).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let account = json!({
        "type": "object", "x-label": {"en": "Account"},
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "n": {"type": "integer", "x-kind": "rollup", "x-label": {"en": "Payments"},
                  "x-rollup": {"entity": "payment", "via": "acct", "op": "count"}},
            "total": money("sum", Some("amount")),
            "average": money("avg", Some("amount")),
            "biggest": money("max", Some("amount")),
            "smallest": money("min", Some("amount")),
            "first_due": {"type": "string", "x-kind": "rollup", "x-result": "date", "x-label": {"en": "First due"},
                          "x-rollup": {"entity": "payment", "via": "acct", "op": "min", "field": "due"}},
            "band": {"type": "string", "x-kind": "formula", "x-result": "text", "x-label": {"en": "Band"},
                     "x-formula": "if coalesce(record.total, decimal(0)) >= decimal(\"1000\") { \"big\" } else { \"small\" }"}
        }
    });
    let (status, body) = publish(admin, "acct", account).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn cents(text: &Value) -> Option<i64> {
    let text = text.as_str()?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().ok()?;
    let fraction: i64 = format!("{fraction:0<2}")[..2].parse().ok()?;
    Some(sign * (whole * 100 + fraction))
}

fn money_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// Every account's rollups, recomputed from the live payments, against what is stored.
async fn check(admin: &Client, accounts: &[String], step: &str) {
    let (_, page) = admin
        .post(&format!("{PAYMENTS}/query"), json!({"limit": 1000}))
        .await;
    let mut children: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for payment in page["records"].as_array().expect("payments") {
        if let Some(acct) = payment["fields"]["acct"].as_str() {
            children.entry(acct.to_owned()).or_default().push(payment);
        }
    }
    for id in accounts {
        let (status, account) = admin.get(&format!("{ACCOUNTS}/{id}")).await;
        if status == StatusCode::NOT_FOUND {
            continue;
        }
        let mine = children.get(id).cloned().unwrap_or_default();
        let amounts: Vec<i64> = mine
            .iter()
            .filter_map(|p| cents(&p["fields"]["amount"]))
            .collect();
        let dues: Vec<&str> = mine
            .iter()
            .filter_map(|p| p["fields"]["due"].as_str())
            .collect();
        let total: i64 = amounts.iter().sum();
        let f = &account["fields"];
        assert_eq!(f["n"], mine.len(), "{step}: count of {id}: {account}");
        assert_eq!(f["total"], json!(money_text(total)), "{step}: sum of {id}");
        let average = if amounts.is_empty() {
            Value::Null
        } else {
            // Half away from zero, to the cent.
            let n = amounts.len() as i64;
            let rounded = (2 * total + n * total.signum()) / (2 * n);
            json!(money_text(rounded))
        };
        assert_eq!(f["average"], average, "{step}: avg of {id}");
        let max = amounts
            .iter()
            .max()
            .map_or(Value::Null, |c| json!(money_text(*c)));
        let min = amounts
            .iter()
            .min()
            .map_or(Value::Null, |c| json!(money_text(*c)));
        assert_eq!(f["biggest"], max, "{step}: max of {id}");
        assert_eq!(f["smallest"], min, "{step}: min of {id}");
        let first = dues.iter().min().map_or(Value::Null, |d| json!(d));
        assert_eq!(f["first_due"], first, "{step}: min due of {id}");
        let band = if total >= 100_000 { "big" } else { "small" };
        assert_eq!(f["band"], band, "{step}: formula over the rollup of {id}");
    }
}

fn random_fields(rng: &mut StdRng, accounts: &[String]) -> Value {
    let mut fields = json!({"acct": accounts[rng.gen_range(0..accounts.len())]});
    if rng.gen_bool(0.85) {
        fields["amount"] = json!(money_text(rng.gen_range(-5_000..80_000)));
    }
    if rng.gen_bool(0.7) {
        fields["due"] = json!(format!(
            "2026-{:02}-{:02}",
            rng.gen_range(1..13),
            rng.gen_range(1..29)
        ));
    }
    fields
}

async fn rollups_stay_exact_under_random_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    setup(&admin).await;
    let mut accounts = Vec::new();
    for name in ["A", "B", "C", "D"] {
        let (status, body) = admin
            .post(ACCOUNTS, json!({"fields": {"name": name}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["fields"]["n"], 0);
        assert_eq!(body["fields"]["total"], "0.00");
        assert_eq!(body["fields"]["average"], Value::Null);
        accounts.push(body["id"].as_str().expect("id").to_owned());
    }
    let mut rng = StdRng::seed_from_u64(20261205);
    let mut live: Vec<String> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    for step in 0..120 {
        let choice = rng.gen_range(0..100);
        let label;
        if live.is_empty() || choice < 25 {
            let (status, body) = admin
                .post(
                    PAYMENTS,
                    json!({"fields": random_fields(&mut rng, &accounts)}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            live.push(body["id"].as_str().expect("id").to_owned());
            label = "create";
        } else if choice < 35 {
            let records: Vec<Value> = (0..rng.gen_range(2..5))
                .map(|_| json!({"fields": random_fields(&mut rng, &accounts)}))
                .collect();
            let (status, body) = admin
                .post(&format!("{PAYMENTS}/batch"), json!({"records": records}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            for record in body["records"].as_array().expect("records") {
                live.push(record["id"].as_str().expect("id").to_owned());
            }
            label = "batch";
        } else if choice < 55 {
            let id = &live[rng.gen_range(0..live.len())];
            let amount = if rng.gen_bool(0.2) {
                Value::Null
            } else {
                json!(money_text(rng.gen_range(-5_000..80_000)))
            };
            let (status, body) = admin
                .patch(
                    &format!("{PAYMENTS}/{id}"),
                    json!({"fields": {"amount": amount}}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            label = "update";
        } else if choice < 70 {
            let id = &live[rng.gen_range(0..live.len())];
            let to = &accounts[rng.gen_range(0..accounts.len())];
            let (status, body) = admin
                .patch(
                    &format!("{PAYMENTS}/{id}"),
                    json!({"fields": {"acct": to, "due": "2026-01-15"}}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            label = "re-parent";
        } else if choice < 85 {
            let id = live.remove(rng.gen_range(0..live.len()));
            let (status, body) = admin.delete(&format!("{PAYMENTS}/{id}")).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            deleted.push(id);
            label = "delete";
        } else if !deleted.is_empty() {
            let id = deleted.remove(rng.gen_range(0..deleted.len()));
            let (status, body) = admin
                .post(&format!("{PAYMENTS}/{id}/restore"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            live.push(id);
            label = "restore";
        } else {
            continue;
        }
        check(&admin, &accounts, &format!("step {step} ({label})")).await;
    }
    // A parent deleted (its payments cascade) and restored (they come back) stays exact.
    let (status, _) = admin.delete(&format!("{ACCOUNTS}/{}", accounts[0])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    check(&admin, &accounts, "parent deleted").await;
    let (status, body) = admin
        .post(&format!("{ACCOUNTS}/{}/restore", accounts[0]), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(&admin, &accounts, "parent restored").await;
    // The recompute job (a changed formula) finds nothing different in the rollups.
    let (_, before) = admin.get(&format!("{ACCOUNTS}/{}", accounts[1])).await;
    let (_, current) = admin.get(&format!("{W}/definitions/entity/acct")).await;
    let mut document = current["published"].clone();
    document["properties"]["band"]["x-formula"] = json!(
        "if coalesce(record.total, decimal(0)) >= decimal(\"1000\") { \"big\" } else { \"small\" } // v2"
    );
    let (status, body) = publish(&admin, "acct", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs_until_idle().await;
    let (_, after) = admin.get(&format!("{ACCOUNTS}/{}", accounts[1])).await;
    assert_eq!(after["fields"], before["fields"]);
    check(&admin, &accounts, "after recompute").await;
}

/// Concurrent writers of children of the same parents neither deadlock nor lose a count.
async fn concurrent_children_keep_their_parents_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    setup(&admin).await;
    let mut accounts = Vec::new();
    for name in ["A", "B"] {
        let (_, body) = admin
            .post(ACCOUNTS, json!({"fields": {"name": name}}))
            .await;
        accounts.push(body["id"].as_str().expect("id").to_owned());
    }
    let creates = (0..24).map(|i| {
        admin.post(
            PAYMENTS,
            json!({"fields": {"acct": accounts[i % 2], "amount": format!("{i}.50")}}),
        )
    });
    let results = futures::future::join_all(creates).await;
    let mut ids = Vec::new();
    for (status, body) in results {
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    check(&admin, &accounts, "concurrent creates").await;
    // Concurrent re-parents in both directions lock both parents in one order.
    let paths: Vec<String> = ids.iter().map(|id| format!("{PAYMENTS}/{id}")).collect();
    let moves = paths
        .iter()
        .enumerate()
        .map(|(i, path)| admin.patch(path, json!({"fields": {"acct": accounts[(i + 1) % 2]}})));
    for (status, body) in futures::future::join_all(moves).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    check(&admin, &accounts, "concurrent re-parents").await;
}

async fn bad_rollups_are_refused_at_save(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    setup(&admin).await;
    let (_, current) = admin.get(&format!("{W}/definitions/entity/acct")).await;
    let cases = [
        (
            json!({"entity": "payment", "via": "amount", "op": "sum", "field": "amount"}),
            "/x-rollup/via",
        ),
        (
            json!({"entity": "payment", "via": "acct", "op": "sum", "field": "due"}),
            "/x-rollup/field",
        ),
        (
            json!({"entity": "payment", "via": "acct", "op": "sum", "field": "nope"}),
            "/x-rollup/field",
        ),
    ];
    for (rollup, pointer) in cases {
        let mut document = current["published"].clone();
        document["properties"]["total"]["x-rollup"] = rollup;
        let (status, body) = publish(&admin, "acct", document).await;
        assert_eq!(
            assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
            [format!("/document/properties/total{pointer}")],
            "{body}"
        );
    }
    let mut document = current["published"].clone();
    document["properties"]["total"]["x-currency"] = json!("USD");
    let (status, body) = publish(&admin, "acct", document).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/properties/total/x-result"]
    );
}

/// What the review of the first version found: overflow, a failing parent formula, cycles, and a
/// child entity changed under a rollup.
async fn rollups_fail_safely(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    setup(&admin).await;
    // A parent formula that fails (division by zero once the last child leaves) leaves its
    // field empty; the child's delete goes through.
    let (_, current) = admin.get(&format!("{W}/definitions/entity/acct")).await;
    let mut document = current["published"].clone();
    document["properties"]["per_payment"] = json!({"type": "integer", "x-kind": "formula",
        "x-result": "integer", "x-label": {"en": "Per payment"},
        "x-formula": "1000 / record.n"});
    let (status, body) = publish(&admin, "acct", document.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .post(
            ACCOUNTS,
            json!({"fields": {"name": "Solo", "per_payment": null}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY)[0],
        "/fields/per_payment",
        "nobody writes a formula"
    );
    assert_eq!(body["errors"][0]["code"], "read_only");
    let (status, body) = admin
        .post(ACCOUNTS, json!({"fields": {"name": "Solo"}}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/per_payment"],
        "division by zero with no payments yet"
    );
    document["properties"]["per_payment"]["x-formula"] =
        json!("if record.n == 0 { () } else { 1000 / record.n }");
    // Published with a guard, then a record with one payment, then a formula without it.
    let (status, body) = publish(&admin, "acct", document.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, account) = admin
        .post(ACCOUNTS, json!({"fields": {"name": "Solo"}}))
        .await;
    let account_id = account["id"].as_str().expect("id").to_owned();
    let (_, payment) = admin
        .post(
            PAYMENTS,
            json!({"fields": {"acct": account_id, "amount": "10"}}),
        )
        .await;
    document["properties"]["per_payment"]["x-formula"] = json!("1000 / record.n");
    let (status, body) = publish(&admin, "acct", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .delete(&format!(
            "{PAYMENTS}/{}",
            payment["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, account) = admin.get(&format!("{ACCOUNTS}/{account_id}")).await;
    assert_eq!(account["fields"]["n"], 0);
    assert_eq!(account["fields"]["per_payment"], Value::Null, "{account}");
    // A rollup may not feed itself, directly or through another entity.
    let (_, current) = admin.get(&format!("{W}/definitions/entity/payment")).await;
    let mut looped = current["published"].clone();
    looped["properties"]["acct_total"] = json!({"type": "integer", "x-kind": "rollup",
        "x-label": {"en": "Loop"}, "x-rollup": {"entity": "acct", "via": "acct", "op": "count"}});
    let (status, body) = publish(&admin, "payment", looped).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    // A lookup of the parent is fine, unless a rollup of the parent adds it up: then values
    // would feed themselves through recomputes.
    let mut looking = current["published"].clone();
    looking["properties"]["acct_name"] = json!({"type": "string", "x-kind": "formula",
        "x-result": "text", "x-label": {"en": "Account name"},
        "x-formula": "let a = lookup(\"acct\", record.acct); if a == () { () } else { a.name }"});
    looking["properties"]["acct_count"] = json!({"type": "integer", "x-kind": "formula",
        "x-result": "integer", "x-label": {"en": "Account count"},
        "x-formula": "let a = lookup(\"acct\", record.acct); if a == () { 0 } else { a.n }"});
    let (status, body) = publish(&admin, "payment", looking).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, acct) = admin.get(&format!("{W}/definitions/entity/acct")).await;
    let mut feeding = acct["published"].clone();
    feeding["properties"]["echo"] = json!({"type": "integer", "x-kind": "rollup",
        "x-result": "integer", "x-label": {"en": "Echo"},
        "x-rollup": {"entity": "payment", "via": "acct", "op": "sum", "field": "acct_count"}});
    let (status, body) = publish(&admin, "acct", feeding).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["code"], "rollup_cycle", "{body}");
    let (_, current) = admin.get(&format!("{W}/definitions/entity/payment")).await;
    // A child entity changed under a rollup that reads it is refused.
    let mut changed = current["published"].clone();
    changed["properties"]["amount"] =
        json!({"type": "string", "x-kind": "text", "x-label": {"en": "Amount"}});
    let (status, body) = publish(&admin, "payment", changed).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|p| p["code"] == "rollup_broken")),
        "{body}"
    );
}

/// Sums over floating-point numbers that leave the exact range are refused, not a crash.
async fn huge_sums_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let meter = json!({"type": "object", "x-label": {"en": "Meter"},
        "properties": {"name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}}}});
    let (status, body) = publish(&admin, "meter", meter).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let reading = json!({"type": "object", "x-label": {"en": "Reading"},
        "properties": {
            "meter": {"type": "string", "x-kind": "reference", "x-label": {"en": "Meter"},
                      "x-reference": {"entity": "meter"}},
            "value": {"type": "number", "x-kind": "number", "x-label": {"en": "Value"}}}});
    let (status, body) = publish(&admin, "reading", reading).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let meter = json!({"type": "object", "x-label": {"en": "Meter"},
        "properties": {"name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "total": {"type": "number", "x-kind": "rollup", "x-label": {"en": "Total"},
                      "x-rollup": {"entity": "reading", "via": "meter", "op": "sum", "field": "value"}}}});
    let (status, body) = publish(&admin, "meter", meter).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, m) = admin
        .post(
            &format!("{W}/entities/meter/records"),
            json!({"fields": {"name": "M"}}),
        )
        .await;
    let readings = format!("{W}/entities/reading/records");
    let (status, body) = admin
        .post(
            &readings,
            json!({"fields": {"meter": m["id"], "value": 6e28}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .post(
            &readings,
            json!({"fields": {"meter": m["id"], "value": 6e28}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, page) = admin.get(&readings).await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1));
}

both_databases!(
    rollups_stay_exact_under_random_changes,
    concurrent_children_keep_their_parents_exact,
    rollups_fail_safely,
    huge_sums_are_refused,
    bad_rollups_are_refused_at_save
);
