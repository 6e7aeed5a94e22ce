//! Global search through the API, on both databases: names, companies, emails and phones are
//! found across entities, by word prefix, by Chinese characters and by any common way of
//! writing a phone number; records appear and disappear with the writes that make and change
//! them; a member finds only what they may read, never through a value they see masked; a
//! change of the searchable fields rebuilds the terms in the background; bad queries get
//! pointers.

mod common;

use common::{Backend, Client, TestApp, assert_problem, join_member, publish_definition};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn create(client: &Client, entity: &str, fields: Value) -> String {
    let (status, body) = client
        .post(
            &format!("{W}/entities/{entity}/records"),
            json!({ "fields": fields }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn search(client: &Client, query: &str) -> Value {
    let (status, body) = client
        .get(&format!("{W}/search?q={}", common::query_escape(query)))
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// The titles found, as `entity:title`, in answer order.
fn found(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|group| {
            let entity = group["entity"].as_str().expect("entity").to_owned();
            group["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(move |r| format!("{entity}:{}", r["title"].as_str().expect("title")))
        })
        .collect()
}

async fn titles(client: &Client, query: &str) -> Vec<String> {
    let mut titles = found(&search(client, query).await);
    titles.sort();
    titles
}

fn lead(name: &str, extra: Value) -> Value {
    let mut fields = json!({"name": name, "source": "referral", "status": "new"});
    if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        fields.extend(extra);
    }
    fields
}

async fn names_companies_emails_and_phones_are_found_across_entities(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    create(
        &admin,
        "customer",
        json!({"name": "北京星辰科技有限公司", "phone": "+86 10 6543 2109"}),
    )
    .await;
    create(&admin, "customer", json!({"name": "Stellar Dynamics Ltd"})).await;
    let wang = create(
        &admin,
        "lead",
        lead(
            "王芳",
            json!({"company": "星辰科技", "email": "wang.fang@xingchen.cn", "phone": "138-1234-5678"}),
        ),
    )
    .await;
    create(
        &admin,
        "lead",
        lead(
            "Alice Wong",
            json!({"company": "Acme", "email": "alice@acme.io", "phone": "+1 415 555 0100"}),
        ),
    )
    .await;
    // Both pairs of "星辰科" are here, but not the three characters together.
    create(&admin, "lead", lead("星辰之家 辰科工作室", json!({}))).await;

    assert_eq!(
        titles(&admin, "星辰").await,
        [
            "customer:北京星辰科技有限公司",
            "lead:星辰之家 辰科工作室",
            "lead:王芳"
        ],
        "a company name in Chinese, on two entities"
    );
    assert_eq!(
        titles(&admin, "星辰科").await,
        ["customer:北京星辰科技有限公司", "lead:王芳"],
        "the characters must be there together"
    );
    assert_eq!(titles(&admin, "芳").await, ["lead:王芳"], "one character");
    assert_eq!(
        titles(&admin, "wang").await,
        ["lead:王芳"],
        "an email's word"
    );
    assert_eq!(
        titles(&admin, "wo").await,
        ["lead:Alice Wong"],
        "a name's word"
    );
    assert_eq!(titles(&admin, "ＡＬＩＣＥ").await, ["lead:Alice Wong"]);
    assert_eq!(titles(&admin, "alice@acme").await, ["lead:Alice Wong"]);
    assert_eq!(
        titles(&admin, "stel dyn").await,
        ["customer:Stellar Dynamics Ltd"]
    );
    assert!(
        titles(&admin, "stellar wong").await.is_empty(),
        "every word must match"
    );
    for phone in ["13812345678", "138 1234 5678", "+86 138-1234-5678", "5678"] {
        let answer = search(&admin, phone).await;
        assert_eq!(found(&answer), ["lead:王芳"], "{phone}");
        assert_eq!(
            answer["results"][0]["records"][0]["matched"],
            json!(["phone"])
        );
        assert_eq!(answer["results"][0]["records"][0]["id"], wang.as_str());
        assert_eq!(
            answer["results"][0]["records"][0]["fields"]["email"],
            "wang.fang@xingchen.cn"
        );
    }
    assert_eq!(
        titles(&admin, "65432109").await,
        ["customer:北京星辰科技有限公司"],
        "a landline without its area code"
    );
    let answer = search(&admin, "wong").await;
    assert_eq!(answer["results"][0]["label"]["zh-CN"], "线索");
    assert_eq!(answer["indexing"], json!([]));

    // Changes: the new company is found at once, the old one no more.
    let zed = create(
        &admin,
        "lead",
        lead("Zed Zhao", json!({"company": "Initech"})),
    )
    .await;
    assert_eq!(titles(&admin, "initech").await, ["lead:Zed Zhao"]);
    let (status, body) = admin
        .patch(
            &format!("{W}/entities/lead/records/{zed}"),
            json!({"fields": {"company": "Umbrella Corp"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(titles(&admin, "initech").await.is_empty());
    assert_eq!(titles(&admin, "umbrella").await, ["lead:Zed Zhao"]);
    // Deleted records are not found; restored ones are again.
    let (status, _) = admin
        .delete(&format!("{W}/entities/lead/records/{zed}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(titles(&admin, "umbrella").await.is_empty());
    let (status, body) = admin
        .post(
            &format!("{W}/entities/lead/records/{zed}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&admin, "umbrella").await, ["lead:Zed Zhao"]);
    // Batch creates are found too.
    let (status, body) = admin
        .post(
            &format!("{W}/entities/lead/records/batch"),
            json!({"records": [
                {"fields": lead("Batch One", json!({"company": "Quarkbyte"}))},
                {"fields": lead("Batch Two", json!({"company": "Quarkbyte"}))}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        titles(&admin, "quark").await,
        ["lead:Batch One", "lead:Batch Two"]
    );

    // Limits: five per entity across entities, `more` says there are others.
    for i in 0..7 {
        create(&admin, "lead", lead(&format!("Lumen {i}"), json!({}))).await;
    }
    let answer = search(&admin, "lumen").await;
    assert_eq!(
        answer["results"][0]["records"].as_array().map(Vec::len),
        Some(5)
    );
    assert_eq!(answer["results"][0]["more"], true);
    let (status, answer) = admin
        .get(&format!("{W}/search?q=lumen&entity=lead&limit=10"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["results"][0]["records"].as_array().map(Vec::len),
        Some(7)
    );
    assert_eq!(answer["results"][0]["more"], false);
    let (_, answer) = admin
        .get(&format!("{W}/search?q=lumen&entity=customer"))
        .await;
    assert_eq!(answer["results"], json!([]));
    assert_eq!(search(&admin, "!!! ---").await["results"], json!([]));

    // Bad queries.
    for (path, status, pointer) in [
        ("search", StatusCode::UNPROCESSABLE_ENTITY, "/q"),
        ("search?q=%20%20", StatusCode::UNPROCESSABLE_ENTITY, "/q"),
        (
            "search?q=a&limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "/limit",
        ),
        (
            "search?q=a&limit=51",
            StatusCode::UNPROCESSABLE_ENTITY,
            "/limit",
        ),
    ] {
        let (got, body) = admin.get(&format!("{W}/{path}")).await;
        assert_eq!(assert_problem(got, &body, status), [pointer], "{path}");
    }
    let long = "字".repeat(201);
    let (status, body) = admin
        .get(&format!("{W}/search?q={}", common::query_escape(&long)))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/q"]
    );
    let (status, body) = admin.get(&format!("{W}/search?q=a&limit=many")).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {body}"
    );
    let (status, _) = admin.get(&format!("{W}/search?q=a&entity=ghost")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin.get(&format!("{W}/search?q=a&colour=red")).await;
    assert!(status.is_client_error(), "unknown parameters are refused");
    let (status, _) = app.anonymous().get(&format!("{W}/search?q=a")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn members_find_only_what_they_may_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    create(
        &admin,
        "lead",
        lead(
            "王芳",
            json!({"company": "星辰科技", "phone": "138-1234-5678", "email": "fang@xingchen.cn"}),
        ),
    )
    .await;
    create(&admin, "customer", json!({"name": "星辰集团"})).await;
    let (rep, _) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    create(&rep, "lead", lead("王小明", json!({"company": "星辰贸易"}))).await;
    assert_eq!(
        titles(&rep, "王").await,
        ["lead:王小明"],
        "a rep reads their own leads only"
    );
    assert_eq!(titles(&rep, "星辰").await, ["lead:王小明"]);
    assert!(titles(&rep, "13812345678").await.is_empty());

    // A word common in the entity (more terms than the lookup reads before choosing): the rep's
    // few records are read and checked instead, so theirs are found among thousands.
    let many: Vec<Value> = (0..2100)
        .map(|i| json!({"fields": lead(&format!("Lumen {i}"), json!({}))}))
        .collect();
    let (status, body) = admin
        .post(
            &format!("{W}/entities/lead/records/batch"),
            json!({ "records": many }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    create(&rep, "lead", lead("Lumen Rep", json!({}))).await;
    assert_eq!(titles(&rep, "lumen").await, ["lead:Lumen Rep"]);
    assert_eq!(titles(&rep, "lumen rep").await, ["lead:Lumen Rep"]);
    let answer = search(&admin, "lumen").await;
    assert_eq!(
        answer["results"][0]["records"].as_array().map(Vec::len),
        Some(5)
    );
    assert_eq!(answer["results"][0]["more"], true);
    assert_eq!(titles(&admin, "lumen 2099").await, ["lead:Lumen 2099"]);

    // Support reads customers but no leads; naming leads is refused.
    let (support, _) = join_member(&app, &admin, "support@example.com", "crm.support").await;
    assert_eq!(titles(&support, "星辰").await, ["customer:星辰集团"]);
    let (status, body) = support.get(&format!("{W}/search?q=a&entity=lead")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);

    // A masked phone or a hidden email never makes a record show up.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/screener"),
            json!({"name": "Screener", "rights": {"entities": {
                "*": {"create": "none", "read": "all", "update": "none", "delete": "none"},
                "lead": {"fields": {"phone": "masked", "email": "hidden"}}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (screener, _) = join_member(&app, &admin, "screener@example.com", "screener").await;
    assert!(titles(&screener, "13812345678").await.is_empty());
    assert!(titles(&screener, "5678").await.is_empty());
    assert!(titles(&screener, "xingchen").await.is_empty());
    // The search page finds what the search box sends, in the member's language.
    let page =
        common::PageClient::sign_in(&app, "rep@example.com", "user-password-123", "zh-CN").await;
    let (status, html) = page.get("/w/demo/search?q=%E6%98%9F%E8%BE%B0").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("data-testid=\"search-box\""),
        "the box is in the frame"
    );
    assert_eq!(
        html.matches("data-testid=\"search-hit\"").count(),
        1,
        "{html}"
    );
    assert!(html.contains("王小明") && !html.contains("王芳"));
    assert!(html.contains("线索"), "groups are labelled in Chinese");
    let (_, html) = page.get("/w/demo/search?q=xyzzy").await;
    assert!(html.contains("data-testid=\"search-empty\""), "{html}");
    let (status, html) = page.get("/w/demo/search?q=a&entity=ghost").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-testid=\"search-problem\""), "{html}");
    let admin_page =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (_, html) = admin_page.get("/w/demo/search?q=%E6%98%9F%E8%BE%B0").await;
    assert!(
        html.contains("data-testid=\"search-group-lead\"")
            && html.contains("data-testid=\"search-group-customer\""),
        "{html}"
    );
    assert_eq!(
        html.matches("data-testid=\"search-hit\"").count(),
        3,
        "{html}"
    );

    let answer = search(&screener, "王芳").await;
    assert_eq!(found(&answer), ["lead:王芳"]);
    let fields = &answer["results"][0]["records"][0]["fields"];
    assert!(
        fields.get("phone").is_none() && fields.get("email").is_none(),
        "{fields}"
    );
    assert_eq!(fields["company"], "星辰科技");
}

async fn changing_the_searchable_fields_rebuilds_the_terms(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for (name, region) in [("Ann", "华东"), ("Bob", "华南"), ("Cai", "华东")] {
        create(
            &admin,
            "lead",
            lead(
                name,
                json!({"region": region, "email": format!("{}@example.com", name.to_lowercase())}),
            ),
        )
        .await;
    }
    assert!(
        titles(&admin, "华东").await.is_empty(),
        "regions are not searched"
    );
    assert_eq!(titles(&admin, "ann@example").await, ["lead:Ann"]);

    let (_, current) = admin.get(&format!("{W}/definitions/entity/lead")).await;
    let mut document = current["published"].clone();
    document["properties"]["region"]["x-search"] = json!(true);
    document["properties"]["email"]["x-search"] = json!(false);
    let (status, body) = publish_definition(&admin, "entity", "lead", document.clone()).await;
    assert!(status.is_success(), "{body}");
    let answer = search(&admin, "华东").await;
    assert_eq!(answer["indexing"], json!(["lead"]), "{answer}");
    let (support, _) = join_member(&app, &admin, "support@example.com", "crm.support").await;
    let answer = search(&support, "华东").await;
    assert_eq!(
        answer["indexing"],
        json!([]),
        "not told of entities it cannot read"
    );
    app.run_jobs_until_idle().await;
    let answer = search(&admin, "华东").await;
    assert_eq!(answer["indexing"], json!([]));
    let mut names = found(&answer);
    names.sort();
    assert_eq!(names, ["lead:Ann", "lead:Cai"]);
    assert!(
        titles(&admin, "ann@example").await.is_empty(),
        "emails no longer searched"
    );
    // New records follow the new fields at once.
    create(&admin, "lead", lead("Dee", json!({"region": "华东"}))).await;
    assert_eq!(
        titles(&admin, "华东").await,
        ["lead:Ann", "lead:Cai", "lead:Dee"]
    );

    // An installation upgraded from before search (no terms, no state) gets them at start.
    {
        use sea_orm::{ConnectionTrait, Statement};
        let conn = app.services.db().conn();
        let states = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT entity_id FROM search_indexes",
            ))
            .await
            .expect("states");
        for state in states {
            let entity: uuid::Uuid = state.try_get("", "entity_id").expect("entity id");
            conn.execute_unprepared(&format!("DELETE FROM \"rec_{}_terms\"", entity.simple()))
                .await
                .expect("forget terms");
        }
        conn.execute_unprepared("DELETE FROM search_indexes")
            .await
            .expect("forget states");
    }
    assert!(titles(&admin, "华东").await.is_empty());
    formwork::records::search::ensure_all(
        app.services.db(),
        app.services.clock(),
        app.services.registry(),
    )
    .await
    .expect("ensure");
    app.run_jobs_until_idle().await;
    assert_eq!(
        titles(&admin, "华东").await,
        ["lead:Ann", "lead:Cai", "lead:Dee"]
    );

    // Only text-like fields can be searched.
    document["properties"]["budget"]["x-search"] = json!(true);
    let (status, body) = publish_definition(&admin, "entity", "lead", document).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/properties/budget/x-search"]
    );
}

both_databases!(
    names_companies_emails_and_phones_are_found_across_entities,
    members_find_only_what_they_may_read,
    changing_the_searchable_fields_rebuilds_the_terms,
);
