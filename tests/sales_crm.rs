//! The Sales CRM template's built-in workflows, each run on the demo team with the clock moved:
//! region assignment, lead conversion, tiered follow-up reminders with escalation, two-level
//! discount approval, contract renewal, overdue payments, yearly birthday greetings and the
//! complaint SLA. The demo's nine people sign in with the admin's password.

mod common;

use chrono::{Duration, NaiveDate};
use common::{Backend, Client, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn demo(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await
}

/// Signs in as a demo person (`zhang.wei`, `li.qiang`, …).
async fn person(app: &TestApp, who: &str) -> Client {
    app.login(
        &format!("{who}@demo.formwork.local"),
        common::ADMIN_PASSWORD,
    )
    .await
}

/// The workspace's date today (Asia/Shanghai).
fn today(app: &TestApp) -> NaiveDate {
    (app.services.clock().now() + Duration::hours(8)).date_naive()
}

async fn titles(client: &Client) -> Vec<String> {
    let (status, inbox) = client.get(&format!("{W}/notifications?limit=200")).await;
    assert_eq!(status, StatusCode::OK, "{status} {inbox}");
    inbox["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(|n| n["title"].as_str().map(str::to_owned))
        .collect()
}

async fn create(client: &Client, entity: &str, fields: Value) -> Value {
    let (status, body) = client
        .post(
            &format!("{W}/entities/{entity}/records"),
            json!({"fields": fields}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entity}: {body}");
    body
}

async fn get(client: &Client, entity: &str, id: &Value) -> Value {
    let (status, body) = client
        .get(&format!(
            "{W}/entities/{entity}/records/{}",
            id.as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn account_id(client: &Client) -> Value {
    let (_, me) = client.get("/api/v1/account").await;
    me["account"]["id"].clone()
}

/// Moves the clock and runs what fell due.
async fn advance(app: &TestApp, by: Duration) {
    app.advance(by);
    app.run_jobs_until_idle().await;
}

async fn leads_are_assigned_by_region_and_converted(backend: Backend) {
    let app = demo(backend).await;
    let admin = app.admin().await;
    let north = create(
        &admin,
        "lead",
        json!({"name": "王东", "company": "沈阳重工", "source": "web_form", "region": "东北"}),
    )
    .await;
    let south = create(
        &admin,
        "lead",
        json!({"name": "林芳", "company": "厦门海联", "source": "ads", "region": "华南"}),
    )
    .await;
    let walk_in = create(
        &admin,
        "lead",
        json!({"name": "马云飞", "company": "杭州某科技", "source": "referral", "region": "华东"}),
    )
    .await;
    app.run_jobs_until_idle().await;
    let zhang = person(&app, "zhang.wei").await;
    let liu = person(&app, "liu.yang").await;
    assert_eq!(
        get(&admin, "lead", &north["id"]).await["owner"],
        account_id(&zhang).await
    );
    assert_eq!(
        get(&admin, "lead", &south["id"]).await["owner"],
        account_id(&liu).await
    );
    assert_eq!(
        get(&admin, "lead", &walk_in["id"]).await["owner"],
        account_id(&admin).await,
        "a lead someone entered stays theirs"
    );
    assert!(
        titles(&zhang)
            .await
            .contains(&"新线索：王东（沈阳重工）".to_owned())
    );
    let (_, run) = admin
        .get(&format!(
            "{W}/workflow-runs?workflow=lead_assign&entity=lead&record={}",
            north["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert!(run.to_string().contains("北区新客户组"), "{run}");

    // 张伟 converts his lead: a customer, its contact and a first opportunity, all linked.
    let (status, started) = zhang
        .post(
            &format!("{W}/workflows/lead_convert/runs"),
            json!({"records": [north["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    app.run_jobs_until_idle().await;
    let lead = get(&zhang, "lead", &north["id"]).await;
    assert_eq!(lead["fields"]["status"], "converted", "{lead}");
    let (_, customers) = zhang
        .post(
            &format!("{W}/entities/customer/records/query"),
            json!({"filter": {"field": "name", "op": "eq", "value": "沈阳重工"}}),
        )
        .await;
    let customer = customers["records"][0].clone();
    assert_eq!(customer["fields"]["region"], "东北", "{customers}");
    assert_eq!(customer["owner"], account_id(&zhang).await);
    let (_, contacts) = zhang
        .post(
            &format!("{W}/entities/contact/records/query"),
            json!({"filter": {"field": "customer", "op": "eq", "value": customer["id"]}}),
        )
        .await;
    assert_eq!(
        contacts["records"][0]["fields"]["name"], "王东",
        "{contacts}"
    );
    let (_, deals) = zhang
        .post(
            &format!("{W}/entities/opportunity/records/query"),
            json!({"filter": {"field": "customer", "op": "eq", "value": customer["id"]}}),
        )
        .await;
    let deal = &deals["records"][0];
    assert_eq!(deal["fields"]["stage"], "first_contact", "{deals}");
    assert_eq!(deal["fields"]["contact"], contacts["records"][0]["id"]);
}

async fn reminders_escalate_and_approvals_take_two_levels(backend: Backend) {
    let app = demo(backend).await;
    let zhang = person(&app, "zhang.wei").await;
    // A tier A customer (an enterprise that buys again) followed up now.
    let customer = create(
        &zhang,
        "customer",
        json!({"name": "大连港务集团", "size": "enterprise", "lifecycle_stage": "repeat"}),
    )
    .await;
    assert_eq!(customer["fields"]["tier"], "a", "{customer}");
    create(
        &zhang,
        "follow_up",
        json!({"subject": "季度回访", "customer": customer["id"], "way": "visit",
               "followed_at": app.services.clock().now().to_rfc3339()}),
    )
    .await;
    app.run_jobs_until_idle().await;
    advance(&app, Duration::days(3) + Duration::minutes(5)).await;
    let zhang = person(&app, "zhang.wei").await;
    assert!(
        titles(&zhang)
            .await
            .contains(&"大连港务集团（A类）已3天未跟进".to_owned())
    );
    let li = person(&app, "li.qiang").await;
    assert!(!titles(&li).await.iter().any(|t| t.contains("大连港务集团")));
    advance(&app, Duration::days(2) + Duration::minutes(5)).await;
    let li = person(&app, "li.qiang").await;
    assert!(
        titles(&li)
            .await
            .contains(&"升级提醒：大连港务集团（A类）已5天未跟进".to_owned()),
        "{:?}",
        titles(&li).await
    );

    // A tier B customer (a small business that signed) is reminded after 7 days.
    let zhang = person(&app, "zhang.wei").await;
    let smb = create(
        &zhang,
        "customer",
        json!({"name": "烟台鲁信包装", "size": "smb", "lifecycle_stage": "signed"}),
    )
    .await;
    assert_eq!(smb["fields"]["tier"], "b", "{smb}");
    create(
        &zhang,
        "follow_up",
        json!({"subject": "签约回访", "customer": smb["id"], "way": "call",
               "followed_at": app.services.clock().now().to_rfc3339()}),
    )
    .await;
    app.run_jobs_until_idle().await;
    advance(&app, Duration::days(6)).await;
    let zhang = person(&app, "zhang.wei").await;
    assert!(
        !titles(&zhang)
            .await
            .iter()
            .any(|t| t.contains("烟台鲁信包装"))
    );
    advance(&app, Duration::days(1) + Duration::minutes(5)).await;
    let zhang = person(&app, "zhang.wei").await;
    assert!(
        titles(&zhang)
            .await
            .contains(&"烟台鲁信包装（B类）已7天未跟进".to_owned())
    );

    // A 35% discount: the rep's team lead, then the director.
    let zhang = person(&app, "zhang.wei").await;
    let deal = create(
        &zhang,
        "opportunity",
        json!({"name": "港口调度系统", "customer": customer["id"], "stage": "proposal", "amount": "900000"}),
    )
    .await;
    let quote = create(
        &zhang,
        "quote",
        json!({"name": "港口调度系统报价", "opportunity": deal["id"], "customer": customer["id"],
               "amount": "900000", "discount": 35}),
    )
    .await;
    assert!(
        quote["fields"]["number"]
            .as_str()
            .is_some_and(|n| n.starts_with("QT-")),
        "{quote}"
    );
    app.run_jobs_until_idle().await;
    for (who, level) in [("li.qiang", 1), ("zhou.ming", 2)] {
        let approver = person(&app, who).await;
        let (_, pending) = approver.get(&format!("{W}/approvals?box=pending")).await;
        let approval = pending
            .as_array()
            .expect("approvals")
            .iter()
            .find(|a| a["record_id"] == quote["id"])
            .cloned()
            .unwrap_or_else(|| panic!("level {level}: {who} is not asked: {pending}"));
        let (status, body) = approver
            .post(
                &format!(
                    "{W}/approvals/{}/actions",
                    approval["id"].as_str().unwrap_or_default()
                ),
                json!({"action": "approve", "comment": format!("level {level} ok")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.run_jobs_until_idle().await;
    }
    let quote = get(&zhang, "quote", &quote["id"]).await;
    assert_eq!(quote["fields"]["status"], "approved", "{quote}");
}

async fn contracts_payments_birthdays_and_complaints(backend: Backend) {
    let app = demo(backend).await;
    // Start at 10:00 in the workspace's zone (UTC+8) tomorrow, so every step below lands at
    // 15:00 there, after the date triggers' 09:00, whatever the time of day the test runs.
    let now = app.services.clock().now();
    let ten_tomorrow = ((now + Duration::hours(8)).date_naive() + Duration::days(1))
        .and_hms_opt(2, 0, 0)
        .expect("02:00 UTC")
        .and_utc();
    app.advance(ten_tomorrow - now);
    let zhang = person(&app, "zhang.wei").await;
    let start = today(&app);
    let customer = create(
        &zhang,
        "customer",
        json!({"name": "哈尔滨冰城物流", "lifecycle_stage": "signed"}),
    )
    .await;
    let contract = create(
        &zhang,
        "contract",
        json!({"name": "冰城物流年度服务", "customer": customer["id"], "amount": "120000",
               "start_date": (start - Duration::days(325)).to_string(),
               "end_date": (start + Duration::days(40)).to_string(), "status": "active"}),
    )
    .await;
    assert!(
        contract["fields"]["number"]
            .as_str()
            .is_some_and(|n| n.starts_with("CT-")),
        "{contract}"
    );
    let plan = create(
        &zhang,
        "payment_plan",
        json!({"name": "冰城物流第2期", "contract": contract["id"], "customer": customer["id"],
               "installment": 2, "due_date": (start + Duration::days(2)).to_string(),
               "amount": "60000", "status": "planned"}),
    )
    .await;
    let boss = create(
        &zhang,
        "contact",
        json!({"name": "高建国", "customer": customer["id"], "role": "decision_maker",
               // A leap year, so that any day (29 February too) is a birthday.
               "birthday": format!("1976-{}", (start + Duration::days(5)).format("%m-%d"))}),
    )
    .await;
    let huang = person(&app, "huang.li").await;
    let urgent = create(
        &huang,
        "ticket",
        json!({"subject": "系统宕机", "customer": customer["id"], "type": "complaint", "priority": "urgent"}),
    )
    .await;
    let handled = create(
        &huang,
        "ticket",
        json!({"subject": "发票抬头错误", "customer": customer["id"], "type": "complaint", "priority": "urgent"}),
    )
    .await;
    let (status, body) = huang
        .patch(
            &format!(
                "{W}/entities/ticket/records/{}",
                handled["id"].as_str().unwrap_or_default()
            ),
            json!({"fields": {"status": "resolved", "resolution": "已重开发票"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;

    // Five hours: the open urgent complaint is escalated to 赵敏, the handled one is not.
    advance(&app, Duration::hours(5)).await;
    let zhao = person(&app, "zhao.min").await;
    let zhao_titles = titles(&zhao).await;
    let number = urgent["fields"]["number"].as_str().unwrap_or_default();
    assert!(
        zhao_titles.contains(&format!("客诉超时未解决：{number} 系统宕机")),
        "{zhao_titles:?}"
    );
    assert!(!zhao_titles.iter().any(|t| t.contains("发票抬头错误")));

    // Three days: the payment is overdue; the rep and his lead hear of it.
    advance(&app, Duration::days(3)).await;
    let plan_now = get(
        &person(&app, "zhang.wei").await,
        "payment_plan",
        &plan["id"],
    )
    .await;
    assert_eq!(plan_now["fields"]["status"], "overdue", "{plan_now}");
    for who in ["zhang.wei", "li.qiang"] {
        assert!(
            titles(&person(&app, who).await)
                .await
                .contains(&"回款逾期：冰城物流第2期".to_owned()),
            "{who}"
        );
    }
    // The day before the decision maker's birthday, his owner is reminded.
    advance(&app, Duration::days(2)).await;
    let zhang = person(&app, "zhang.wei").await;
    assert!(
        titles(&zhang)
            .await
            .contains(&"明天是 高建国 的生日".to_owned())
    );
    // A week after the due date, still unpaid: the director.
    advance(&app, Duration::days(5)).await;
    assert!(
        titles(&person(&app, "zhou.ming").await)
            .await
            .contains(&"回款逾期超过7天：冰城物流第2期".to_owned())
    );
    // Thirty days before the contract ends: expiring, a renewal task, the owner told.
    advance(&app, Duration::days(1)).await;
    let zhang = person(&app, "zhang.wei").await;
    let contract_now = get(&zhang, "contract", &contract["id"]).await;
    assert_eq!(
        contract_now["fields"]["status"], "expiring",
        "{contract_now}"
    );
    let (_, tasks) = zhang
        .post(
            &format!("{W}/entities/task/records/query"),
            json!({"filter": {"field": "title", "op": "eq", "value": "续约：冰城物流年度服务"}}),
        )
        .await;
    let task = &tasks["records"][0];
    assert_eq!(
        task["fields"]["deadline"],
        (start + Duration::days(40)).to_string(),
        "{tasks}"
    );
    assert_eq!(task["owner"], account_id(&zhang).await);
    // Its end date passes unrenewed: expired, and the team lead hears of it.
    advance(&app, Duration::days(31)).await;
    let zhang = person(&app, "zhang.wei").await;
    assert_eq!(
        get(&zhang, "contract", &contract["id"]).await["fields"]["status"],
        "expired"
    );
    let number = contract["fields"]["number"].as_str().unwrap_or_default();
    assert!(
        titles(&person(&app, "li.qiang").await)
            .await
            .contains(&format!("合同 {number} 已到期未续约"))
    );
    // A year on, the birthday reminder comes again.
    let before = titles(&zhang)
        .await
        .iter()
        .filter(|t| t.contains("高建国"))
        .count();
    advance(&app, Duration::days(365)).await;
    let zhang = person(&app, "zhang.wei").await;
    let after = titles(&zhang)
        .await
        .iter()
        .filter(|t| t.contains("高建国"))
        .count();
    assert_eq!((before, after), (1, 2), "{}", boss["id"]);
}

async fn demo_people_see_what_their_roles_allow(backend: Backend) {
    let app = demo(backend).await;
    let count = |client: Client, entity: &'static str| async move {
        let (_, page) = client
            .post(
                &format!("{W}/entities/{entity}/records/query"),
                json!({"total": "exact", "limit": 1}),
            )
            .await;
        page["total"].as_u64().unwrap_or(0)
    };
    let all = count(app.admin().await, "customer").await;
    let rep = count(person(&app, "zhang.wei").await, "customer").await;
    let lead = count(person(&app, "li.qiang").await, "customer").await;
    let director = count(person(&app, "zhou.ming").await, "customer").await;
    assert!(rep > 0 && rep < lead && lead < all, "{rep} {lead} {all}");
    assert_eq!(director, all);
    // Support sees customers and tickets but no opportunities.
    let huang = person(&app, "huang.li").await;
    assert_eq!(count(huang.clone(), "customer").await, all);
    let (status, _) = huang
        .post(
            &format!("{W}/entities/opportunity/records/query"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, members) = app.admin().await.get(&format!("{W}/members")).await;
    assert_eq!(members.as_array().map(Vec::len), Some(10), "{members}");
}

async fn duplicate_leads_show_who_owns_them(backend: Backend) {
    let app = demo(backend).await;
    let zhang = person(&app, "zhang.wei").await;
    let liu = person(&app, "liu.yang").await;
    let first = create(
        &zhang,
        "lead",
        json!({"name": "周强", "company": "青岛海川机械", "phone": "13905320001", "source": "event"}),
    )
    .await;
    // Before saving, 刘洋 asks whether the phone is known: it is, and 张伟 owns it.
    let (status, check) = liu
        .post(
            &format!("{W}/entities/lead/duplicates"),
            json!({"fields": {"phone": "13905320001", "name": "周先生"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    let hits = check["duplicates"].as_array().expect("duplicates");
    assert_eq!(hits.len(), 1, "{check}");
    assert_eq!(hits[0]["id"], first["id"]);
    assert_eq!(hits[0]["owner_name"], "张伟");
    assert_eq!(hits[0]["readable"], false, "刘洋 may not open 张伟's lead");
    assert_eq!(hits[0]["matched"], json!(["phone"]));
    // He saves his anyway (撞单 is shown, not refused); his lead shows the clash, and so does
    // the first one for its owner.
    let second = create(
        &liu,
        "lead",
        json!({"name": "周先生", "company": "青岛海川机械", "phone": "13905320001", "source": "cold_call"}),
    )
    .await;
    let (_, dups) = liu
        .get(&format!(
            "{W}/entities/lead/records/{}/duplicates",
            second["id"].as_str().unwrap_or_default()
        ))
        .await;
    let hit = &dups["duplicates"][0];
    assert_eq!(hit["title"], "周强", "{dups}");
    assert_eq!(hit["matched"], json!(["phone", "company"]), "{dups}");
    let (_, theirs) = zhang
        .get(&format!(
            "{W}/entities/lead/records/{}/duplicates",
            first["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(theirs["duplicates"][0]["owner_name"], "刘洋", "{theirs}");
    // Reading the other's lead itself stays refused.
    let (status, _) = liu
        .get(&format!(
            "{W}/entities/lead/records/{}",
            first["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let pages = common::PageClient::sign_in(
        &app,
        "liu.yang@demo.formwork.local",
        common::ADMIN_PASSWORD,
        "zh-CN",
    )
    .await;
    let (_, html) = pages
        .get(&format!(
            "/w/demo/e/lead/{}",
            second["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert!(
        html.contains("data-testid=\"duplicates\"") && html.contains("张伟"),
        "{html}"
    );
    // A rule naming a field the entity lacks is refused at its pointer.
    let admin = app.admin().await;
    let (_, lead) = admin.get(&format!("{W}/definitions/entity/lead")).await;
    let mut document = lead["published"].clone();
    document["x-duplicates"] = json!([["phone"], ["wechat", "name"]]);
    let (status, body) = admin
        .put(
            &format!("{W}/definitions/entity/lead/draft"),
            json!({"document": document, "revision": lead["revision"]}),
        )
        .await;
    assert_eq!(
        common::assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/x-duplicates/1/0"]
    );
}

/// POST a merge of `duplicate` into `survivor` as `client`.
async fn merge(client: &Client, survivor: &Value, body: Value) -> (StatusCode, Value) {
    client
        .post(
            &format!(
                "{W}/entities/customer/records/{}/merge",
                survivor.as_str().unwrap_or_default()
            ),
            body,
        )
        .await
}

async fn duplicate_customers_merge_into_one(backend: Backend) {
    let app = demo(backend).await;
    let admin = app.admin().await;
    let li = person(&app, "li.qiang").await;
    let liu = account_id(&person(&app, "liu.yang").await).await;
    let survivor = create(
        &li,
        "customer",
        json!({"name": "青岛海川", "phone": "0532-8888 0001", "lifecycle_stage": "intent"}),
    )
    .await;
    let duplicate = create(
        &li,
        "customer",
        json!({"name": "青岛海川机械有限公司", "phone": "0532-8888 0001", "lifecycle_stage": "first_contact",
               "industry": "manufacturing", "website": "https://haichuan.example.cn"}),
    )
    .await;
    let (a, b) = (&survivor["id"], &duplicate["id"]);
    let contact = create(&li, "contact", json!({"name": "周强", "customer": b})).await;
    let deal = create(
        &li,
        "opportunity",
        json!({"name": "海川 产线改造", "customer": b, "stage": "proposal", "amount": "1200000.00"}),
    )
    .await;
    let before = get(&li, "customer", b).await;
    assert_eq!(
        before["fields"]["pipeline_amount"], "1200000.00",
        "{before}"
    );
    // Bad requests change nothing, each refused at its pointer.
    let (status, body) = merge(&li, a, json!({"duplicate": a})).await;
    assert_eq!(
        common::assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/duplicate"]
    );
    let (status, body) = merge(
        &li,
        a,
        json!({"duplicate": b, "take": ["name", "shoe_size", "tier"]}),
    )
    .await;
    assert_eq!(
        common::assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/take/1", "/take/2"]
    );
    // A rep may not delete customers, so may not merge them.
    let zhang = person(&app, "zhang.wei").await;
    let mine = create(
        &zhang,
        "customer",
        json!({"name": "烟台海川", "lifecycle_stage": "intent"}),
    )
    .await;
    let other = create(
        &zhang,
        "customer",
        json!({"name": "烟台海川贸易", "lifecycle_stage": "intent"}),
    )
    .await;
    let (status, _) = merge(&zhang, &mine["id"], json!({"duplicate": other["id"]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A deal of another team refers to the duplicate: the team lead may not move it.
    let (status, theirs) = admin
        .post(
            &format!("{W}/entities/opportunity/records"),
            json!({"fields": {"name": "海川 备件", "customer": b, "stage": "lead", "amount": "50000.00"}, "owner": liu}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, body) = merge(&li, a, json!({"duplicate": b})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = admin
        .delete(&format!(
            "{W}/entities/opportunity/records/{}",
            theirs["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A dry run shows what would happen and writes nothing.
    let before = get(&li, "customer", b).await;
    let (status, dry) = merge(
        &li,
        a,
        json!({"duplicate": b, "take": ["name"], "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        dry["filled"],
        json!(["industry", "name", "website"]),
        "{dry}"
    );
    assert_eq!(
        dry["record"]["fields"]["lifecycle_stage"], "intent",
        "the survivor keeps its own"
    );
    let moved: Vec<(String, u64)> = dry["moved"]
        .as_array()
        .expect("moved")
        .iter()
        .map(|m| {
            (
                format!(
                    "{}.{}",
                    m["entity"].as_str().unwrap_or(""),
                    m["field"].as_str().unwrap_or("")
                ),
                m["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(moved.contains(&("contact.customer".to_owned(), 1)), "{dry}");
    assert!(
        moved.contains(&("opportunity.customer".to_owned(), 1)),
        "{dry}"
    );
    assert_eq!(get(&li, "customer", b).await["version"], before["version"]);
    // The merge: the survivor takes the name it was asked to and fills its gaps, the contact
    // and the deal follow, rollups and the tier formula move with them.
    let (status, merged) = merge(&li, a, json!({"duplicate": b, "take": ["name"]})).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let fields = &merged["record"]["fields"];
    assert_eq!(fields["name"], "青岛海川机械有限公司", "{merged}");
    assert_eq!(fields["industry"], "manufacturing");
    assert_eq!(fields["lifecycle_stage"], "intent");
    assert_eq!(fields["opportunity_count"], 1, "{merged}");
    assert_eq!(fields["pipeline_amount"], "1200000.00", "{merged}");
    assert_eq!(
        get(&li, "contact", &contact["id"]).await["fields"]["customer"],
        *a
    );
    assert_eq!(
        get(&li, "opportunity", &deal["id"]).await["fields"]["customer"],
        *a
    );
    let (status, _) = li
        .get(&format!(
            "{W}/entities/customer/records/{}",
            b.as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the duplicate is in the recycle bin"
    );
    // Every record touched says so in its history.
    let history = |entity: &'static str, id: Value| {
        let admin = admin.clone();
        async move {
            let (_, h) = admin
                .get(&format!(
                    "{W}/entities/{entity}/records/{}/history",
                    id.as_str().unwrap_or_default()
                ))
                .await;
            h
        }
    };
    let survivor_history = history("customer", a.clone()).await;
    let last = survivor_history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["changes"].get("merged_from").is_some()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        last["changes"]["merged_from"]["id"], *b,
        "{survivor_history}"
    );
    assert_eq!(last["changes"]["fields"]["name"]["old"], "青岛海川");
    let gone = history("customer", b.clone()).await;
    assert!(gone.to_string().contains("merged_into"), "{gone}");
    let moved_history = history("contact", contact["id"].clone()).await;
    assert!(
        moved_history.to_string().contains("\"merged\""),
        "{moved_history}"
    );
    // Merging it again finds no live duplicate.
    let (status, _) = merge(&li, a, json!({"duplicate": b})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // On the pages: the record page links the duplicate to its merge page, which shows the
    // values that differ; ticking one takes it.
    let first = create(&li, "customer", json!({"name": "威海远航", "phone": "0631-555 0101", "lifecycle_stage": "intent", "region": "北区"})).await;
    let second = create(&li, "customer", json!({"name": "威海远航船舶", "phone": "0631-555 0101", "lifecycle_stage": "signed", "address": "威海市环翠区"})).await;
    let (one, two) = (
        first["id"].as_str().unwrap_or_default(),
        second["id"].as_str().unwrap_or_default(),
    );
    let pages = common::PageClient::sign_in(
        &app,
        "li.qiang@demo.formwork.local",
        common::ADMIN_PASSWORD,
        "zh-CN",
    )
    .await;
    let (_, html) = pages.get(&format!("/w/demo/e/customer/{one}")).await;
    assert!(
        html.contains(&format!("{one}/merge/{two}\" data-testid=\"merge-link\"")),
        "{html}"
    );
    let (status, html) = pages
        .get(&format!("/w/demo/e/customer/{one}/merge/{two}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("data-field=\"lifecycle_stage\"") && html.contains("data-field=\"address\""),
        "{html}"
    );
    assert!(
        !html.contains("data-field=\"phone\""),
        "equal values are not offered"
    );
    let (status, location, body) = pages
        .post(
            &format!("/w/demo/e/customer/{one}/merge/{two}"),
            &[("take", "lifecycle_stage")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, format!("/w/demo/e/customer/{one}"));
    let kept = get(&li, "customer", &first["id"]).await;
    assert_eq!(kept["fields"]["lifecycle_stage"], "signed", "{kept}");
    assert_eq!(kept["fields"]["address"], "威海市环翠区");
    assert_eq!(kept["fields"]["name"], "威海远航", "not ticked: kept");
    // A refused merge (the other one is gone now) is a page, not a crash.
    let (status, _, _) = pages
        .post(&format!("/w/demo/e/customer/{one}/merge/{two}"), &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_databases!(
    leads_are_assigned_by_region_and_converted,
    reminders_escalate_and_approvals_take_two_levels,
    contracts_payments_birthdays_and_complaints,
    demo_people_see_what_their_roles_allow,
    duplicate_leads_show_who_owns_them,
    duplicate_customers_merge_into_one,
);
