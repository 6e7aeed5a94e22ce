//! Approvals through HTTP on SQLite and PostgreSQL: "a quote with a discount over 15% needs the
//! manager's approval, over 30% the director's too". Levels by org hierarchy and role, any-of,
//! all-of and sequential; approve, reject, return to the submitter and to an earlier level,
//! resubmit, transfer, add an approver before and after oneself, withdraw; a deadline in working
//! days that reminds and escalates; the record locked while pending; every action in the
//! record's history; only current approvers may act.

mod common;

use chrono::Duration;
use common::{
    Backend, Client, Options, TestApp, assert_problem, join_member, publish_definition,
    publish_entity,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const QUOTES: &str = "/api/v1/w/demo/entities/wquote/records";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            configure: |config| {
                config.session_idle_minutes = 60 * 24 * 365;
                config.session_max_hours = 24 * 365;
            },
            ..Options::default()
        },
    )
    .await
}

struct People {
    admin: Client,
    admin_id: String,
    rep: Client,
    mgr: Client,
    mgr_id: String,
    mgr2: Client,
    mgr2_id: String,
    helper: Client,
    helper_id: String,
}

async fn setup(app: &TestApp) -> People {
    let admin = app.admin().await;
    let (_, me) = admin.get("/api/v1/account").await;
    let admin_id = me["id"]
        .as_str()
        .or(me["account"]["id"].as_str())
        .expect("admin id")
        .to_owned();
    let (rep, rep_id) = join_member(app, &admin, "rep@example.com", "member").await;
    let (mgr, mgr_id) = join_member(app, &admin, "mgr@example.com", "manager").await;
    let (mgr2, mgr2_id) = join_member(app, &admin, "mgr2@example.com", "manager").await;
    let (helper, helper_id) = join_member(app, &admin, "helper@example.com", "member").await;
    let (status, body) = admin
        .patch(
            &format!("{W}/members/{rep_id}"),
            json!({"manager_id": mgr_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let quote = json!({
        "type": "object", "x-label": {"en": "Quote"},
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "discount": {"type": "integer", "x-kind": "integer", "x-label": {"en": "Discount %"}},
            "state": {"type": "string", "x-kind": "text", "x-label": {"en": "State"}}
        }
    });
    let (status, body) = publish_entity(&admin, "wquote", quote).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = publish_definition(
        &admin,
        "workflow",
        "discount",
        json!({
            "label": {"en": "Discount approval", "zh-CN": "折扣审批"},
            "entity": "wquote",
            "trigger": {"type": "record_created"},
            "condition": "record.discount > 15",
            "steps": [
                {"id": "approve", "type": "approval",
                 "title": "Discount {{ record.discount }}% for {{ record.name }}",
                 "levels": [
                     {"approvers": ["owner_manager"], "mode": "any",
                      "deadline": {"working_days": 2, "then": "escalate", "escalate_to": ["role:admin"]}},
                     {"approvers": ["role:admin"], "when": "record.discount > 30"}
                 ],
                 "on_reject": "rejected"},
                {"id": "approved", "type": "set_fields", "fields": {"state": "approved by {{ steps.approve.by }}"}, "next": "end"},
                {"id": "rejected", "type": "set_fields", "fields": {"state": "rejected: {{ steps.approve.comment }}"}}
            ]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    People {
        admin,
        admin_id,
        rep,
        mgr,
        mgr_id,
        mgr2,
        mgr2_id,
        helper,
        helper_id,
    }
}

async fn quote(app: &TestApp, rep: &Client, name: &str, discount: i64) -> (String, Value) {
    let (status, body) = rep
        .post(
            QUOTES,
            json!({"fields": {"name": name, "discount": discount}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs_until_idle().await;
    let id = body["id"].as_str().expect("id").to_owned();
    (id, body)
}

/// The pending approval of a record, seen by `who` in their inbox.
async fn pending_for(who: &Client, record: &str) -> Option<Value> {
    let (status, body) = who.get(&format!("{W}/approvals?box=pending")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("approvals")
        .iter()
        .find(|a| a["record_id"] == record)
        .cloned()
}

async fn act(who: &Client, approval: &Value, body: Value) -> (StatusCode, Value) {
    who.post(
        &format!(
            "{W}/approvals/{}/actions",
            approval["id"].as_str().expect("id")
        ),
        body,
    )
    .await
}

async fn state(admin: &Client, id: &str) -> Value {
    let (_, record) = admin.get(&format!("{QUOTES}/{id}")).await;
    record["fields"]["state"].clone()
}

async fn levels_and_actions(backend: Backend) {
    let app = spawn(backend).await;
    let p = setup(&app).await;

    // Under 15%: no approval at all.
    let (small, _) = quote(&app, &p.rep, "Small", 10).await;
    assert!(pending_for(&p.mgr, &small).await.is_none());

    // 20%: the rep's manager alone. The record is locked meanwhile; others may not act.
    let (id, _) = quote(&app, &p.rep, "Twenty", 20).await;
    let approval = pending_for(&p.mgr, &id)
        .await
        .expect("waiting on the manager");
    assert_eq!(approval["title"], "Discount 20% for Twenty");
    let (status, body) = p
        .rep
        .patch(
            &format!("{QUOTES}/{id}"),
            json!({"fields": {"discount": 5}}),
        )
        .await;
    let pointers = assert_problem(status, &body, StatusCode::CONFLICT);
    assert!(body["errors"][0]["code"] == "locked", "{body} {pointers:?}");
    let (status, body) = act(&p.admin, &approval, json!({"action": "approve"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = act(&p.helper, &approval, json!({"action": "approve"})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = act(
        &p.mgr,
        &approval,
        json!({"action": "approve", "comment": "fine"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    app.run_jobs_until_idle().await;
    assert_eq!(
        state(&p.admin, &id).await,
        format!("approved by {}", p.mgr_id)
    );
    let (_, history) = p.admin.get(&format!("{QUOTES}/{id}/history")).await;
    let actions: Vec<String> = history
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["operation"] == "approval")
        .map(|h| {
            format!(
                "{}:{}",
                h["changes"]["action"]["action"].as_str().unwrap_or(""),
                h["changes"]["action"]["comment"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        actions.contains(&"submitted:".to_owned()) && actions.contains(&"approve:fine".to_owned()),
        "{history}"
    );
    let (status, _) = p
        .rep
        .patch(
            &format!("{QUOTES}/{id}"),
            json!({"fields": {"name": "Twenty Co"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "unlocked once decided");

    // 40%: the manager, then the director (admins).
    let (id, _) = quote(&app, &p.rep, "Forty", 40).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager first");
    let (status, body) = act(&p.mgr, &approval, json!({"action": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["level"], 1);
    let approval = pending_for(&p.admin, &id).await.expect("then the director");
    // Sent back to the manager's level (回退), approved again, then the director decides.
    let (status, body) = act(
        &p.admin,
        &approval,
        json!({"action": "return", "to_level": 0, "comment": "check margin"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["level"], 0);
    let approval = pending_for(&p.mgr, &id).await.expect("back at the manager");
    act(
        &p.mgr,
        &approval,
        json!({"action": "approve", "comment": "margin ok"}),
    )
    .await;
    let approval = pending_for(&p.admin, &id)
        .await
        .expect("the director again");
    // 加签 after oneself: the director approves, the helper must approve too.
    let (status, body) = act(
        &p.admin,
        &approval,
        json!({"action": "add_approver", "approver": p.helper_id, "position": "after"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    let approval = pending_for(&p.helper, &id)
        .await
        .expect("the added approver");
    let (status, body) = act(&p.helper, &approval, json!({"action": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    app.run_jobs_until_idle().await;
    assert_eq!(
        state(&p.admin, &id).await,
        format!("approved by {}", p.helper_id)
    );

    // 25%: rejected with a comment; the run takes the rejection branch.
    let (id, _) = quote(&app, &p.rep, "Quarter", 25).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    let (status, body) = act(
        &p.mgr,
        &approval,
        json!({"action": "reject", "comment": "too deep"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;
    assert_eq!(state(&p.admin, &id).await, "rejected: too deep");

    // 18%: returned to the submitter, resubmitted; transferred (转交); an approver added
    // before oneself (加签) decides first.
    let (id, _) = quote(&app, &p.rep, "Eighteen", 18).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    let (status, body) = act(
        &p.mgr,
        &approval,
        json!({"action": "return", "comment": "attach the contract"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "returned");
    let (status, body) = act(&p.mgr, &approval, json!({"action": "resubmit"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = act(
        &p.rep,
        &approval,
        json!({"action": "resubmit", "comment": "attached"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    let approval = pending_for(&p.mgr, &id).await.expect("manager again");
    let (status, body) = act(
        &p.mgr,
        &approval,
        json!({"action": "transfer", "to": p.mgr2_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = act(&p.mgr, &approval, json!({"action": "approve"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let approval = pending_for(&p.mgr2, &id).await.expect("transferred");
    let (status, body) = act(
        &p.mgr2,
        &approval,
        json!({"action": "add_approver", "approver": p.helper_id, "position": "before"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = act(&p.mgr2, &approval, json!({"action": "approve"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let approval = pending_for(&p.helper, &id).await.expect("added before");
    act(
        &p.helper,
        &approval,
        json!({"action": "approve", "comment": "numbers ok"}),
    )
    .await;
    let approval = pending_for(&p.mgr2, &id).await.expect("back to mgr2");
    let (status, body) = act(&p.mgr2, &approval, json!({"action": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    let kinds: Vec<(&str, &str)> = body["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().expect("k"),
                t["status"].as_str().expect("s"),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("approver", "transferred"))
            && kinds.contains(&("added_before", "approved")),
        "{kinds:?}"
    );
    app.run_jobs_until_idle().await;
    assert_eq!(
        state(&p.admin, &id).await,
        format!("approved by {}", p.mgr2_id)
    );

    // 19%: withdrawn by the submitter; the run ends.
    let (id, _) = quote(&app, &p.rep, "Nineteen", 19).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    let (status, body) = act(
        &p.rep,
        &approval,
        json!({"action": "withdraw", "comment": "customer left"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "withdrawn");
    let (status, body) = act(&p.mgr, &approval, json!({"action": "approve"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (_, runs) = p
        .admin
        .get(&format!(
            "{W}/workflow-runs?workflow=discount&entity=wquote&record={id}"
        ))
        .await;
    assert_eq!(runs[0]["status"], "completed", "{runs}");
    assert_eq!(runs[0]["vars"]["approve"]["outcome"], "withdrawn");

    // Bad actions change nothing.
    let (id, _) = quote(&app, &p.rep, "Bad", 17).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    for body in [
        json!({"action": "transfer", "to": p.mgr_id}),
        json!({"action": "add_approver", "approver": p.helper_id, "position": "sideways"}),
        json!({"action": "return", "to_level": 1}),
        json!({"action": "fly"}),
    ] {
        let (status, answer) = act(&p.mgr, &approval, body.clone()).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{body}: {status} {answer}"
        );
    }
    assert!(pending_for(&p.mgr, &id).await.is_some());
    let _ = (&p.admin_id, &p.mgr2);
}

/// A level's deadline in working days: the pending approver is reminded and the level escalates
/// to the admins, who decide.
async fn deadlines_escalate(backend: Backend) {
    let app = spawn(backend).await;
    let p = setup(&app).await;
    let (id, _) = quote(&app, &p.rep, "Slow", 16).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    assert!(approval["due_at"].is_string(), "{approval}");
    app.advance(Duration::days(1));
    app.run_jobs_until_idle().await;
    assert!(pending_for(&p.admin, &id).await.is_none(), "not yet due");
    // Two working days: at most four calendar days across a weekend.
    app.advance(Duration::days(4));
    app.run_jobs_until_idle().await;
    let escalated = pending_for(&p.admin, &id)
        .await
        .expect("escalated to the admins");
    let (_, inbox) = p.mgr.get(&format!("{W}/notifications")).await;
    assert!(
        inbox["notifications"]
            .as_array()
            .expect("n")
            .iter()
            .any(|n| n["title"].as_str().unwrap_or("").starts_with("Overdue")),
        "{inbox}"
    );
    let (status, body) = act(&p.admin, &escalated, json!({"action": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    app.run_jobs_until_idle().await;
    assert_eq!(
        state(&p.admin, &id).await,
        format!("approved by {}", p.admin_id)
    );
}

/// Sequential approvers act in order; all-of needs everyone.
async fn sequential_and_all(backend: Backend) {
    let app = spawn(backend).await;
    let p = setup(&app).await;
    let (status, body) = publish_definition(
        &p.admin,
        "workflow",
        "discount",
        json!({
            "label": {"en": "Two keys"}, "entity": "wquote", "trigger": {"type": "record_created"},
            "steps": [
                {"id": "approve", "type": "approval", "levels": [
                    {"approvers": [format!("user:{}", p.mgr_id), format!("user:{}", p.mgr2_id)], "mode": "sequential"},
                    {"approvers": [format!("user:{}", p.mgr_id), format!("user:{}", p.helper_id)], "mode": "all"}
                ]},
                {"id": "done", "type": "set_fields", "fields": {"state": "done"}}
            ]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (id, _) = quote(&app, &p.rep, "Keys", 1).await;
    assert!(
        pending_for(&p.mgr2, &id).await.is_none(),
        "mgr2 waits for mgr"
    );
    let approval = pending_for(&p.mgr, &id).await.expect("mgr first");
    act(&p.mgr, &approval, json!({"action": "approve"})).await;
    let approval = pending_for(&p.mgr2, &id).await.expect("then mgr2");
    act(&p.mgr2, &approval, json!({"action": "approve"})).await;
    let approval = pending_for(&p.helper, &id).await.expect("all-of level");
    let (_, body) = act(&p.helper, &approval, json!({"action": "approve"})).await;
    assert_eq!(
        body["status"], "pending",
        "mgr has not approved the all-of level yet"
    );
    let approval = pending_for(&p.mgr, &id)
        .await
        .expect("mgr at the all-of level");
    let (_, body) = act(&p.mgr, &approval, json!({"action": "approve"})).await;
    assert_eq!(body["status"], "approved");
    app.run_jobs_until_idle().await;
    assert_eq!(state(&p.admin, &id).await, "done");
}

both_databases!(
    levels_and_actions,
    deadlines_escalate,
    sequential_and_all,
    deadlines_approve_or_return,
    cancels_deletes_and_people_who_left,
);

/// Deadlines that approve or return by themselves; an approver role that does not exist is
/// refused at publish.
async fn deadlines_approve_or_return(backend: Backend) {
    let app = spawn(backend).await;
    let p = setup(&app).await;
    let flow = |then: &str| {
        json!({
            "label": {"en": "Timed"}, "entity": "wquote", "trigger": {"type": "record_created"},
            "steps": [
                {"id": "approve", "type": "approval", "levels": [
                    {"approvers": ["owner_manager"], "deadline": {"working_days": 1, "remind": false, "then": then}}]},
                {"id": "done", "type": "set_fields", "fields": {"state": "{{ steps.approve.outcome }}"}}
            ]
        })
    };
    let (status, body) =
        publish_definition(&p.admin, "workflow", "discount", flow("approve")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (auto, _) = quote(&app, &p.rep, "Auto", 1).await;
    app.advance(Duration::days(4));
    app.run_jobs_until_idle().await;
    assert_eq!(state(&p.admin, &auto).await, "approved");
    let (status, body) = publish_definition(&p.admin, "workflow", "discount", flow("return")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (back, _) = quote(&app, &p.rep, "Back", 1).await;
    app.advance(Duration::days(4));
    app.run_jobs_until_idle().await;
    let (_, submitted) = p.rep.get(&format!("{W}/approvals?box=submitted")).await;
    let returned = submitted
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["record_id"] == back.as_str())
        .cloned()
        .expect("submitted");
    assert_eq!(returned["status"], "returned", "{returned}");
    let (_, inbox) = p.rep.get(&format!("{W}/notifications")).await;
    assert!(
        inbox["notifications"]
            .as_array()
            .expect("n")
            .iter()
            .any(|n| n["title"]
                .as_str()
                .unwrap_or("")
                .starts_with("Returned to you")),
        "{inbox}"
    );

    let mut bad = flow("none");
    bad["steps"][0]["levels"][0]["approvers"] = json!(["role:no_such_role"]);
    let (status, body) = publish_definition(&p.admin, "workflow", "discount", bad).await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers.contains(&"/document/steps/0/levels/0/approvers/0".to_owned()),
        "{body}"
    );
}

/// Cancelling a run cancels its approval and frees the record; deleting the record does too; a
/// workflow manager hands the task of an approver who left to someone active; a run whose
/// condition failed cannot be "retried" past its condition.
async fn cancels_deletes_and_people_who_left(backend: Backend) {
    let app = spawn(backend).await;
    let p = setup(&app).await;
    // Cancel.
    let (id, _) = quote(&app, &p.rep, "Cancelled", 20).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    let (_, runs) = p
        .admin
        .get(&format!(
            "{W}/workflow-runs?workflow=discount&entity=wquote&record={id}"
        ))
        .await;
    let run_id = runs[0]["id"].as_str().expect("run").to_owned();
    let (status, body) = p
        .admin
        .post(&format!("{W}/workflow-runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, body) = act(&p.mgr, &approval, json!({"action": "approve"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = p
        .rep
        .patch(
            &format!("{QUOTES}/{id}"),
            json!({"fields": {"discount": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "unlocked: {body}");
    // The lock holds against deletes too (an admin cancels the run first).
    let (id, _) = quote(&app, &p.rep, "Deleted", 20).await;
    let (status, body) = p.admin.delete(&format!("{QUOTES}/{id}")).await;
    let _ = assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["errors"][0]["code"], "locked", "{body}");
    // The approver leaves: a workflow manager hands the task on.
    let (id, _) = quote(&app, &p.rep, "Orphan", 20).await;
    let approval = pending_for(&p.mgr, &id).await.expect("manager");
    let (status, body) = p
        .admin
        .post(
            &format!("{W}/members/{}/deactivate", p.mgr_id),
            json!({"hand_over_to": p.mgr2_id}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = act(
        &p.helper,
        &approval,
        json!({"action": "transfer", "to": p.mgr2_id}),
    )
    .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = act(
        &p.admin,
        &approval,
        json!({"action": "transfer", "to": p.mgr2_id, "comment": "mgr left"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let approval = pending_for(&p.mgr2, &id).await.expect("handed on");
    let (status, body) = act(&p.mgr2, &approval, json!({"action": "approve"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");

    // A condition that fails records a failed run, which a retry does not push past it.
    let (status, body) = publish_definition(
        &p.admin,
        "workflow",
        "discount",
        json!({"label": {"en": "Broken condition"}, "entity": "wquote", "trigger": {"type": "record_created"},
               "condition": "record.discount / 0 > 1",
               "steps": [{"id": "a", "type": "set_fields", "fields": {"state": "should not happen"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (id, _) = quote(&app, &p.rep, "Broken", 20).await;
    let (_, runs) = p
        .admin
        .get(&format!(
            "{W}/workflow-runs?workflow=discount&entity=wquote&record={id}"
        ))
        .await;
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    assert_eq!(runs[0]["failed_step"], "condition");
    let (status, body) = p
        .admin
        .post(
            &format!(
                "{W}/workflow-runs/{}/retry",
                runs[0]["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    app.run_jobs_until_idle().await;
    assert_eq!(state(&p.admin, &id).await, Value::Null);
}
