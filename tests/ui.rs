//! The record pages over HTTP, on both databases: forms validated like the API with the input
//! kept, one record per form however often it is sent, stale edits, escaping of every value,
//! the board's moves, lists with filters and bulk actions, and the page language.

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, PageClient, TestApp, input_value};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LEADS: &str = "/api/v1/w/demo/entities/lead/records";

async fn lead_count(app: &TestApp) -> i64 {
    let (_, page) = app
        .admin()
        .await
        .get(&format!("{LEADS}?total=exact&limit=1"))
        .await;
    page["total"].as_i64().expect("total")
}

async fn forms_check_like_the_api_keep_the_input_and_save_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let before = lead_count(&app).await;
    let (status, form) = pages.get("/w/demo/e/lead/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains("Contact name") && form.contains("class=\"req\""),
        "labels and required markers"
    );
    let token = input_value(&form, "_token").expect("idempotency token");

    // Missing name, bad email, a money value that is not one: every problem at its field.
    let (status, _, html) = pages
        .post(
            "/w/demo/e/lead/new",
            &[
                ("_token", &token),
                ("company", "Acme"),
                ("email", "nope"),
                ("source", "referral"),
                ("status", "new"),
                ("budget", "lots"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["name", "email", "budget"] {
        assert!(
            html.contains(&format!("id=\"f-{field}-error\"")),
            "{field} has its error: {html}"
        );
    }
    assert!(
        html.contains("value=\"Acme\"") && html.contains("value=\"lots\""),
        "input kept"
    );
    assert_eq!(lead_count(&app).await, before, "nothing saved");

    // A token not issued to this session is refused.
    let (status, _, _) = pages
        .post(
            "/w/demo/e/lead/new",
            &[
                ("_token", "0190a0a0-0000-7000-8000-000000000000.00"),
                ("name", "X"),
                ("source", "referral"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let fixed = [
        ("_token", token.as_str()),
        ("name", "Li Lei"),
        ("company", "Acme"),
        ("email", "li@acme.cn"),
        ("source", "referral"),
        ("status", "new"),
        ("budget", "¥12,500.50"),
    ];
    let (status, location, _) = pages.post("/w/demo/e/lead/new", &fixed).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id = location.rsplit('/').next().expect("record id").to_owned();
    // Sent again (a double click, a reload, a retry after a lost answer): the same record.
    let (status, again, _) = pages.post("/w/demo/e/lead/new", &fixed).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(again, location);
    assert_eq!(
        lead_count(&app).await,
        before + 1,
        "one record for one form"
    );
    let (_, lead) = app.admin().await.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(lead["fields"]["budget"], json!("12500.50"));
    assert_eq!(lead["fields"]["email"], json!("li@acme.cn"));

    let (status, page) = pages.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Li Lei") && page.contains("CN¥12,500.50"),
        "money in the reader's format"
    );
}

async fn a_stale_edit_keeps_the_input_and_says_what_changed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, lead) = admin
        .post(
            LEADS,
            json!({"fields": {"name": "Han Meimei", "source": "referral", "company": "Old Co"}}),
        )
        .await;
    let id = lead["id"].as_str().expect("id").to_owned();
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (_, form) = pages.get(&format!("/w/demo/e/lead/{id}/edit")).await;
    let version = input_value(&form, "_version").expect("version");
    assert_eq!(version, "1");
    // Someone else saves first.
    let (status, _) = admin
        .patch(
            &format!("{LEADS}/{id}"),
            json!({"fields": {"company": "Their Co"}, "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mine = [
        ("_version", "1"),
        ("name", "Han Meimei"),
        ("company", "My Co"),
        ("source", "referral"),
        ("status", "new"),
    ];
    let (status, _, html) = pages
        .post(&format!("/w/demo/e/lead/{id}/edit"), &mine)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("data-testid=\"stale\""), "{html}");
    assert!(html.contains("value=\"My Co\""), "my input is kept");
    assert!(
        html.contains("Saved meanwhile: Their Co"),
        "theirs is shown"
    );
    assert_eq!(input_value(&html, "_version").as_deref(), Some("2"));
    let (_, current) = admin.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(
        current["fields"]["company"],
        json!("Their Co"),
        "nothing overwritten"
    );
    // Saving again, knowingly, applies mine.
    let mine = [
        ("_version", "2"),
        ("name", "Han Meimei"),
        ("company", "My Co"),
        ("source", "referral"),
        ("status", "new"),
    ];
    let (status, location, _) = pages
        .post(&format!("/w/demo/e/lead/{id}/edit"), &mine)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, current) = admin.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(current["fields"]["company"], json!("My Co"));
    assert_eq!(current["version"], json!(3));
}

async fn values_show_as_text_in_every_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let nasty = "<script>alert('x')</script>{{ 7*7 }}";
    let (_, lead) = admin
        .post(
            LEADS,
            json!({"fields": {"name": nasty, "company": nasty, "source": "referral"}}),
        )
        .await;
    let id = lead["id"].as_str().expect("id").to_owned();
    admin
        .patch(
            &format!("{LEADS}/{id}"),
            json!({"fields": {"title": nasty}}),
        )
        .await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    for path in [
        "/w/demo/e/lead".to_owned(),
        "/w/demo/e/lead?layout=kanban&group_by=status".to_owned(),
        format!("/w/demo/e/lead/{id}"),
        format!("/w/demo/e/lead/{id}/edit"),
    ] {
        let (status, html) = pages.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !html.contains("<script>alert"),
            "{path} carries no script: {html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{path} shows the text");
        assert!(
            html.contains("{{ 7*7 }}") && !html.contains(">49<"),
            "{path} renders no template"
        );
    }
    // The record page's timeline shows the change as text too.
    let (_, html) = pages.get(&format!("/w/demo/e/lead/{id}")).await;
    let timeline = html
        .split("data-testid=\"timeline\"")
        .nth(1)
        .expect("timeline");
    assert!(timeline.contains("&lt;script&gt;"));
}

async fn the_board_moves_cards_through_the_same_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, lead) = admin
        .post(
            LEADS,
            json!({"fields": {"name": "Board", "source": "referral"}}),
        )
        .await;
    let id = lead["id"].as_str().expect("id").to_owned();
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (_, board) = pages
        .get("/w/demo/e/lead?layout=kanban&group_by=status")
        .await;
    assert!(board.contains(&format!("data-id=\"{id}\"")));
    let script = [("x-requested-with", "fetch")];
    let path = format!("/w/demo/e/lead/{id}/set");
    let (status, _, body) = pages
        .post_with(
            &path,
            &[("field", "status"), ("value", "bogus"), ("version", "1")],
            &script,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let refusal: Value = serde_json::from_str(&body).expect("json");
    assert!(refusal["message"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, _, body) = pages
        .post_with(
            &path,
            &[("field", "name"), ("value", "Renamed"), ("version", "1")],
            &script,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only board fields: {body}"
    );
    let (status, _, body) = pages
        .post_with(
            &path,
            &[
                ("field", "status"),
                ("value", "contacted"),
                ("version", "1"),
            ],
            &script,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let moved: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(moved["version"], json!(2));
    // A stale card (someone moved it meanwhile) is refused, not applied.
    let (status, _, _) = pages
        .post_with(
            &path,
            &[
                ("field", "status"),
                ("value", "qualified"),
                ("version", "1"),
            ],
            &script,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Without script, the keyboard "move" form returns to the board.
    let (status, location, _) = pages
        .post(
            &path,
            &[
                ("field", "status"),
                ("value", "qualified"),
                ("version", "2"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("layout=kanban"));
    let (_, history) = admin.get(&format!("{LEADS}/{id}/history")).await;
    let entries = history.as_array().expect("history");
    assert_eq!(entries.len(), 3, "created, then moved twice: {history}");
    for entry in &entries[1..] {
        assert_eq!(entry["channel"], json!("ui"));
        assert_eq!(entry["operation"], json!("update"));
    }
}

async fn lists_filter_sort_and_act_in_bulk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let mut ids = Vec::new();
    for (name, status) in [
        ("Zhang Wei", "new"),
        ("Liu Yang", "contacted"),
        ("Zhao Lei", "new"),
    ] {
        let (_, lead) = admin
            .post(
                LEADS,
                json!({"fields": {"name": name, "source": "referral", "status": status}}),
            )
            .await;
        ids.push(lead["id"].as_str().expect("id").to_owned());
    }
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (_, html) = pages.get("/w/demo/e/lead?f.status=new").await;
    assert!(html.contains("Zhang Wei") && html.contains("Zhao Lei") && !html.contains("Liu Yang"));
    let (_, html) = pages.get("/w/demo/e/lead?q=liu").await;
    assert!(html.contains("Liu Yang") && !html.contains("Zhang Wei"));
    let (_, html) = pages.get("/w/demo/e/lead?sort=-name&q=Z").await;
    let (zhao, zhang) = (
        html.find("Zhao Lei").expect("zhao"),
        html.find("Zhang Wei").expect("zhang"),
    );
    assert!(zhao < zhang, "sorted by name, descending");
    let (status, html) = pages.get("/w/demo/e/lead?f.ghost=1").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a bad filter is explained on the page"
    );
    assert!(html.contains("role=\"alert\""));

    // Bulk: to the recycle bin and back.
    let (status, _, _) = pages
        .post(
            "/w/demo/e/lead/bulk",
            &[("action", "delete"), ("id", &ids[0]), ("id", &ids[1])],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, bin) = pages.get("/w/demo/e/lead?deleted=1").await;
    assert!(bin.contains("Zhang Wei") && bin.contains("Liu Yang") && !bin.contains("Zhao Lei"));
    let (_, html) = pages.get("/w/demo/e/lead").await;
    assert!(!html.contains("Zhang Wei"));
    let (status, _, _) = pages
        .post(
            "/w/demo/e/lead/bulk",
            &[("action", "restore"), ("id", &ids[0])],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = pages.get("/w/demo/e/lead").await;
    assert!(html.contains("Zhang Wei"));
    let (status, _, _) = pages
        .post("/w/demo/e/lead/bulk", &[("action", "delete")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "nothing selected");
    let (status, _) = pages.get("/w/demo/e/ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn pages_speak_the_readers_language(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let chinese = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "zh-CN,zh;q=0.9").await;
    let (_, html) = chinese.get("/w/demo/e/lead/new").await;
    assert!(html.contains("<html lang=\"zh-CN\">"));
    assert!(
        html.contains("联系人姓名") && html.contains("保存"),
        "labels and UI text in Chinese"
    );
    // The account chooses English: it holds on every browser, whatever the browser asks for.
    let (status, location, _) = chinese
        .post(
            "/account/language",
            &[("lang", "en"), ("next", "/w/demo/e/lead/new")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/w/demo/e/lead/new");
    let (_, html) = chinese.get("/w/demo/e/lead/new").await;
    assert!(html.contains("Contact name") && html.contains("Save"));
    let other = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "zh-CN").await;
    let (_, html) = other.get("/w/demo/").await;
    assert!(
        html.contains("<html lang=\"en\">"),
        "the account's choice wins"
    );
    let (status, _, _) = chinese.post("/account/language", &[("lang", "fr")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = chinese
        .http
        .post(format!("{}/account/language", chinese.base))
        .form(&[("lang", "zh-CN"), ("csrf_token", "forged")])
        .send()
        .await
        .map(|r| (r.status(), String::new(), String::new()))
        .expect("post");
    assert_eq!(status, StatusCode::FORBIDDEN);
}

both_databases!(
    forms_check_like_the_api_keep_the_input_and_save_once,
    a_stale_edit_keeps_the_input_and_says_what_changed,
    values_show_as_text_in_every_page,
    the_board_moves_cards_through_the_same_rules,
    lists_filter_sort_and_act_in_bulk,
    pages_speak_the_readers_language,
);
