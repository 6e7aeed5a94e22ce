//! The record pages over HTTP, on both databases: forms validated like the API with the input
//! kept, one record per form however often it is sent, stale edits, escaping of every value,
//! the board's moves, lists with filters and bulk actions, and the page language.

mod common;

use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, Options, PageClient, SmtpSink, TestApp, input_value,
    join_member, publish_definition, publish_entity,
};
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
    assert_eq!(input_value(&form, "_version").as_deref(), Some("1"));
    let original = input_value(&form, "_original").expect("the values the form starts from");
    // Someone else saves first: the company, and a job title this person does not touch.
    let (status, _) = admin
        .patch(
            &format!("{LEADS}/{id}"),
            json!({"fields": {"company": "Their Co", "title": "CTO"}, "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mine = [
        ("_version", "1"),
        ("_original", original.as_str()),
        ("name", "Han Meimei"),
        ("company", "My Co"),
        ("title", ""),
        ("source", "referral"),
        ("status", "new"),
    ];
    let (status, _, html) = pages
        .post(&format!("/w/demo/e/lead/{id}/edit"), &mine)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("data-testid=\"stale\""), "{html}");
    assert!(html.contains("value=\"My Co\""), "my change is kept");
    assert!(
        html.contains("Saved meanwhile: Their Co"),
        "theirs is shown"
    );
    assert!(
        html.contains("value=\"CTO\""),
        "their change to a field I did not touch is in the form now"
    );
    assert_eq!(
        html.matches("data-testid=\"theirs\"").count(),
        1,
        "a note only where both changed"
    );
    assert_eq!(input_value(&html, "_version").as_deref(), Some("2"));
    let (_, current) = admin.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(
        current["fields"]["company"],
        json!("Their Co"),
        "nothing overwritten"
    );
    // Saving again, knowingly, applies my change and keeps their title.
    let original = input_value(&html, "_original").expect("original");
    let mine = [
        ("_version", "2"),
        ("_original", original.as_str()),
        ("name", "Han Meimei"),
        ("company", "My Co"),
        ("title", "CTO"),
        ("source", "referral"),
        ("status", "new"),
    ];
    let (status, location, _) = pages
        .post(&format!("/w/demo/e/lead/{id}/edit"), &mine)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, current) = admin.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(current["fields"]["company"], json!("My Co"));
    assert_eq!(
        current["fields"]["title"],
        json!("CTO"),
        "their change survives"
    );
    assert_eq!(current["version"], json!(3));
    // Text that looks like a number is text: "1.0" to "1" is a change.
    let (_, form) = pages.get(&format!("/w/demo/e/lead/{id}/edit")).await;
    let original = input_value(&form, "_original").expect("original");
    let version = input_value(&form, "_version").expect("version");
    for title in ["1.0", "1"] {
        let (_, form) = pages.get(&format!("/w/demo/e/lead/{id}/edit")).await;
        let original = input_value(&form, "_original").expect("original");
        let version = input_value(&form, "_version").expect("version");
        let (status, _, _) = pages
            .post(
                &format!("/w/demo/e/lead/{id}/edit"),
                &[
                    ("_version", &version),
                    ("_original", &original),
                    ("name", "Han Meimei"),
                    ("title", title),
                    ("source", "referral"),
                    ("status", "new"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let _ = (original, version);
    let (_, current) = admin.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(current["fields"]["title"], json!("1"));
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
    assert!(
        board.contains("name=\"value\" value=\"contacted\""),
        "a keyboard move to the next lane: {board}"
    );
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
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bad filter is refused, and explained on the page"
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

/// An anonymous visitor's client (no cookies kept between requests matter here).
fn visitor(lang: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT_LANGUAGE,
        reqwest::header::HeaderValue::from_str(lang).expect("header"),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client")
}

async fn post_public(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let response = client.post(url).form(form).send().await.expect("post");
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, response.text().await.expect("body"))
}

async fn a_public_form_takes_leads_from_strangers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let links = "/api/v1/w/demo/forms/lead_form/links";
    let (member, member_id) = join_member(&app, &admin, "rep@example.com", "member").await;
    let (status, _) = member.post(links, json!({})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only those who manage definitions publish forms"
    );
    let (status, _) = admin
        .post("/api/v1/w/demo/forms/ghost_form/links", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = admin
        .post(links, json!({"thank_you": {"fr": "Merci"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, link) = admin
        .post(links, json!({"owner": member_id, "thank_you": {"en": "Thanks, we will call you.", "zh-CN": "感谢，我们会尽快联系您。"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let path = link["path"].as_str().expect("path").to_owned();
    let (_, listed) = admin.get(links).await;
    assert!(listed[0].get("path").is_none(), "the secret is shown once");

    let before = lead_count(&app).await;
    let stranger = visitor("zh-CN");
    let url = app.url(&path);
    let form = stranger
        .get(&url)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(
        form.contains("联系人姓名"),
        "labels in the visitor's language"
    );
    assert!(
        !form.contains("csrf-token") && !form.contains("sidenav"),
        "nothing of the workspace shows"
    );
    let token = input_value(&form, "_token").expect("token");

    let (status, _, html) = post_public(
        &stranger,
        &url,
        &[
            ("_token", &token),
            ("company", "<b>Shop</b>"),
            ("source", "web_form"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"f-name-error\""), "{html}");
    assert!(html.contains("&lt;b&gt;Shop"), "kept and escaped");
    let fields = [
        ("_token", token.as_str()),
        ("name", "赵敏"),
        ("company", "<b>Shop</b>"),
        ("phone", "13800000000"),
        ("source", "web_form"),
        ("status", "new"),
    ];
    let (status, location, _) = post_public(&stranger, &url, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{path}/thanks"));
    let (status, _, _) = post_public(&stranger, &url, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "sent twice");
    assert_eq!(lead_count(&app).await, before + 1, "one lead for one form");
    let thanks = stranger
        .get(app.url(&location))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(thanks.contains("感谢，我们会尽快联系您。"));

    let (_, found) = admin.get(&format!("{LEADS}?filter[name]=赵敏")).await;
    let lead = &found["records"][0];
    assert_eq!(lead["owner"], json!(member_id), "owned by the link's owner");
    let id = lead["id"].as_str().expect("id");
    let (_, history) = admin.get(&format!("{LEADS}/{id}/history")).await;
    assert_eq!(history[0]["channel"], json!("form"));
    let (_, runs) = admin
        .get(&format!(
            "/api/v1/w/demo/workflow-runs?entity=lead&record={id}"
        ))
        .await;
    assert!(
        runs.as_array().is_some_and(|r| r
            .iter()
            .any(|run| run["workflow"] == json!("lead_follow_up"))),
        "the same workflows start: {runs}"
    );

    // A bot fills the invisible field: thanked, nothing kept.
    let bot_form = stranger
        .get(&url)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    let bot_token = input_value(&bot_form, "_token").expect("token");
    let (status, _, _) = post_public(
        &stranger,
        &url,
        &[
            ("_token", &bot_token),
            ("name", "Bot"),
            ("source", "web_form"),
            ("website", "http://spam.example"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(lead_count(&app).await, before + 1);

    // A visitor who keeps sending is slowed down.
    let mut limited = false;
    for _ in 0..12 {
        let (status, _, _) =
            post_public(&stranger, &url, &[("_token", "x"), ("name", "Flood")]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the flood is limited");

    // Revoked, the link is gone.
    let link_id = link["id"].as_str().expect("id");
    let (status, _) = admin.delete(&format!("{links}/{link_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = stranger.get(&url).send().await.expect("get");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let wrong = stranger
        .get(app.url("/f/not-a-secret"))
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
}

async fn approvals_are_decided_from_the_inbox_and_the_record_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, _) = join_member(&app, &admin, "rep@example.com", "member").await;
    let (status, body) = publish_entity(
        &admin,
        "deal",
        json!({"type": "object", "x-label": {"en": "Deal", "zh-CN": "交易"}, "x-title-field": "name",
               "properties": {
                   "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
                   "state": {"type": "string", "x-kind": "text", "x-label": {"en": "State"}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = publish_definition(
        &admin,
        "workflow",
        "deal_approval",
        json!({"label": {"en": "Deal approval"}, "entity": "deal", "trigger": {"type": "record_created"},
               "steps": [
                   {"id": "approve", "type": "approval", "title": "Approve {{ record.name }}",
                    "levels": [{"approvers": ["role:admin"]}], "on_reject": "rejected"},
                   {"id": "approved", "type": "set_fields", "fields": {"state": "approved"}, "next": "end"},
                   {"id": "rejected", "type": "set_fields", "fields": {"state": "rejected: {{ steps.approve.comment }}"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deals = "/api/v1/w/demo/entities/deal/records";
    let mut ids = Vec::new();
    for name in ["Alpha <b>", "Beta", "Gamma"] {
        let (status, body) = rep.post(deals, json!({"fields": {"name": name}})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    app.run_jobs_until_idle().await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (status, inbox) = pages.get("/w/demo/approvals").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        inbox.contains("Approve Alpha &lt;b&gt;") && inbox.contains("Approve Gamma"),
        "{inbox}"
    );
    let (_, home) = pages.get("/w/demo/").await;
    assert!(
        home.contains("data-testid=\"pending-count\">3<"),
        "the count shows: {home}"
    );
    let approval_ids: Vec<String> = inbox
        .split("name=\"id\" value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(approval_ids.len(), 3);

    // Batch: approve two at once.
    let (status, location, _) = pages
        .post(
            "/w/demo/approvals/act",
            &[
                ("action", "approve"),
                ("id", &approval_ids[0]),
                ("id", &approval_ids[1]),
                ("comment", "ok"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    app.run_jobs_until_idle().await;
    let (_, inbox) = pages.get("/w/demo/approvals").await;
    assert_eq!(inbox.matches("name=\"id\" value=").count(), 1, "one left");
    let (_, done) = pages.get("/w/demo/approvals?box=done").await;
    assert_eq!(done.matches("data-approval=").count(), 2, "{done}");

    // The last one from its record page: rejected with a reason.
    let last = ids
        .iter()
        .find(|id| inbox.contains(id.as_str()))
        .expect("the pending deal")
        .clone();
    let (_, record) = pages.get(&format!("/w/demo/e/deal/{last}")).await;
    assert!(
        record.contains("data-testid=\"approvals\"") && record.contains("data-testid=\"approve\"")
    );
    let approval = record
        .split("data-approval=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("approval id")
        .to_owned();
    let (status, _, _) = pages
        .post(
            "/w/demo/approvals/act",
            &[
                ("action", "reject"),
                ("id", &approval),
                ("comment", "too cheap"),
                ("back", &format!("/w/demo/e/deal/{last}")),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.run_jobs_until_idle().await;
    let (_, body) = admin.get(&format!("{deals}/{last}")).await;
    assert_eq!(body["fields"]["state"], json!("rejected: too cheap"));
    // Acting again on a decided approval is refused and explained; an unknown action too.
    let (status, _, html) = pages
        .post(
            "/w/demo/approvals/act",
            &[("action", "approve"), ("id", &approval)],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("role=\"alert\""));
    let (status, _, _) = pages
        .post(
            "/w/demo/approvals/act",
            &[("action", "explode"), ("id", &approval)],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The rep, who is no approver, cannot decide.
    let rep_pages = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (_, submitted) = rep_pages.get("/w/demo/approvals?box=submitted").await;
    assert_eq!(
        submitted.matches("data-approval=").count(),
        3,
        "the rep sees what they submitted"
    );
    assert!(
        !submitted.contains("data-testid=\"approve\""),
        "but cannot approve it"
    );
    let (status, _) = rep_pages.get("/w/demo/approvals?box=all").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn form_rules_show_hide_and_lock_fields_on_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(
        &admin,
        "case",
        json!({"type": "object", "x-label": {"en": "Case"}, "x-title-field": "subject", "required": ["subject"],
               "properties": {
                   "subject": {"type": "string", "x-kind": "text", "x-label": {"en": "Subject"}},
                   "kind": {"type": "string", "enum": ["bug", "question"], "x-kind": "single_select", "x-label": {"en": "Kind"},
                            "x-options": [{"value": "bug", "label": {"en": "Bug"}}, {"value": "question", "label": {"en": "Question"}}]},
                   "severity": {"type": "string", "enum": ["low", "high"], "x-kind": "single_select", "x-label": {"en": "Severity"},
                                "x-options": [{"value": "low", "label": {"en": "Low"}}, {"value": "high", "label": {"en": "High"}}]},
                   "answer": {"type": "string", "x-kind": "text", "x-label": {"en": "Answer"}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let form = |severity_rule: &str| {
        json!({"entity": "case", "label": {"en": "Case"}, "sections": [{"fields": [
            {"field": "subject"}, {"field": "kind", "widget": "radio"},
            {"field": "severity", "visible_when": severity_rule},
            {"field": "answer", "readonly_when": "record.kind == \"bug\""}]}]})
    };
    let mut sliding = form("record.kind == \"bug\"");
    sliding["sections"][0]["fields"][0]["widget"] = json!("slider");
    let (status, body) = publish_definition(&admin, "form", "case_form", sliding).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["errors"][0]["pointer"],
        json!("/document/sections/0/fields/0/widget"),
        "{body}"
    );
    let (status, body) =
        publish_definition(&admin, "form", "case_form", form("record.kind ==")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problem = &body["errors"][0];
    assert_eq!(
        problem["pointer"],
        json!("/document/sections/0/fields/2/visible_when"),
        "{body}"
    );
    assert!(
        problem["line"].is_number() && problem["column"].is_number(),
        "{body}"
    );
    let (status, body) =
        publish_definition(&admin, "form", "case_form", form("record.ghost == 1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["code"], json!("unknown_field"), "{body}");
    let (status, body) =
        publish_definition(&admin, "form", "case_form", form("record.kind == \"bug\"")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (_, html) = pages.get("/w/demo/e/case/new").await;
    assert!(
        html.contains("type=\"radio\" name=\"kind\""),
        "the layout's widget: {html}"
    );
    assert!(
        html.contains("data-field=\"severity\" hidden"),
        "hidden until the kind is bug: {html}"
    );
    assert!(html.contains("data-rules-url=") && html.contains("form-state"));
    let ask = |kind: &'static str| {
        let pages = &pages;
        async move {
            let (status, _, body) = pages
                .post_with(
                    "/w/demo/e/case/form-state",
                    &[("subject", "S"), ("kind", kind)],
                    &[("x-requested-with", "fetch")],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            serde_json::from_str::<Value>(&body).expect("json")
        }
    };
    assert_eq!(
        ask("bug").await,
        json!({"hidden": [], "readonly": ["answer"]})
    );
    assert_eq!(
        ask("question").await,
        json!({"hidden": ["severity"], "readonly": []})
    );

    // The server applies the rules to what is saved: a hidden field and a locked one are not
    // written, whatever the browser sent.
    let (_, form_html) = pages.get("/w/demo/e/case/new").await;
    let token = input_value(&form_html, "_token").expect("token");
    let (status, location, body) = pages
        .post(
            "/w/demo/e/case/new",
            &[
                ("_token", &token),
                ("subject", "Q"),
                ("kind", "question"),
                ("severity", "high"),
                ("answer", "42"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let id = location.rsplit('/').next().expect("id");
    let (_, case) = admin
        .get(&format!("/api/v1/w/demo/entities/case/records/{id}"))
        .await;
    assert_eq!(
        case["fields"].get("severity"),
        None,
        "hidden, not written: {case}"
    );
    assert_eq!(case["fields"]["answer"], json!("42"));
    let (_, form_html) = pages.get("/w/demo/e/case/new").await;
    let token = input_value(&form_html, "_token").expect("token");
    let (status, location, _) = pages
        .post(
            "/w/demo/e/case/new",
            &[
                ("_token", &token),
                ("subject", "B"),
                ("kind", "bug"),
                ("severity", "high"),
                ("answer", "42"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id = location.rsplit('/').next().expect("id");
    let (_, case) = admin
        .get(&format!("/api/v1/w/demo/entities/case/records/{id}"))
        .await;
    assert_eq!(case["fields"]["severity"], json!("high"));
    assert_eq!(
        case["fields"].get("answer"),
        None,
        "locked, not written: {case}"
    );
    // The record page does not show what the rules hide.
    let (_, page) = pages.get(&location).await;
    assert!(page.contains("Severity"));
    // A public link to the form asks the same rules as the visitor types.
    let (status, link) = admin
        .post("/api/v1/w/demo/forms/case_form/links", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let path = link["path"].as_str().expect("path").to_owned();
    let stranger = visitor("en");
    let html = stranger
        .get(app.url(&path))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("html");
    assert!(html.contains("data-rules-url="), "{html}");
    let state: Value = stranger
        .post(app.url(&format!("{path}/state")))
        .form(&[("subject", "S"), ("kind", "question")])
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(state, json!({"hidden": ["severity"], "readonly": []}));
}

async fn the_pool_the_bin_bulk_edits_and_notifications(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, _) = join_member(&app, &admin, "rep@example.com", "member").await;
    let mut ids = Vec::new();
    for name in ["Pool One", "Pool Two", "Kept"] {
        let (_, lead) = admin
            .post(
                LEADS,
                json!({"fields": {"name": name, "source": "referral"}}),
            )
            .await;
        ids.push(lead["id"].as_str().expect("id").to_owned());
    }
    for id in &ids[..2] {
        let (status, body) = admin
            .post(&format!("{LEADS}/{id}/release"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let _ = rep;
    let rep_pages = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (_, pool) = rep_pages.get("/w/demo/e/lead?pool=1").await;
    assert!(
        pool.contains("Pool One") && pool.contains("Pool Two") && !pool.contains("Kept"),
        "{pool}"
    );
    let (_, page) = rep_pages.get(&format!("/w/demo/e/lead/{}", ids[0])).await;
    assert!(page.contains("data-testid=\"claim\""));
    let (status, location, _) = rep_pages
        .post(&format!("/w/demo/e/lead/{}/claim", ids[0]), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, _, _) = rep_pages
        .post(
            "/w/demo/e/lead/bulk",
            &[("action", "claim"), ("id", &ids[1])],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, pool) = rep_pages.get("/w/demo/e/lead?pool=1").await;
    assert!(
        !pool.contains("Pool One") && !pool.contains("Pool Two"),
        "claimed"
    );
    let (_, mine) = admin.get(&format!("{LEADS}/{}", ids[1])).await;
    assert!(mine["owner"].is_string());
    let (status, _, _) = rep_pages
        .post(&format!("/w/demo/e/lead/{}/release", ids[1]), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, back) = admin.get(&format!("{LEADS}/{}", ids[1])).await;
    assert!(back["owner"].is_null(), "released: {back}");

    // Bulk edit: tick a field, it changes on every selected record and nothing else does.
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (status, _, form) = pages
        .post(
            "/w/demo/e/lead/bulk",
            &[("action", "edit"), ("id", &ids[0]), ("id", &ids[2])],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("name=\"_apply\""));
    let (status, _, html) = pages
        .post(
            "/w/demo/e/lead/bulk-edit",
            &[("id", &ids[0]), ("id", &ids[2]), ("status", "qualified")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no field ticked");
    assert!(html.contains("data-testid=\"bulk-problems\""));
    let (status, _, html) = pages
        .post(
            "/w/demo/e/lead/bulk-edit",
            &[
                ("id", &ids[0]),
                ("id", &ids[2]),
                ("_apply", "status"),
                ("status", "qualified"),
                ("name", "ignored"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    for id in [&ids[0], &ids[2]] {
        let (_, lead) = admin.get(&format!("{LEADS}/{id}")).await;
        assert_eq!(lead["fields"]["status"], json!("qualified"));
        assert_ne!(lead["fields"]["name"], json!("ignored"));
    }
    let (status, _, html) = pages
        .post(
            "/w/demo/e/lead/bulk-edit",
            &[("id", &ids[0]), ("_apply", "status"), ("status", "bogus")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("data-testid=\"bulk-problems\""));

    // The bin: deleted, then purged for good by an admin only.
    let (status, _, _) = pages
        .post(
            "/w/demo/e/lead/bulk",
            &[("action", "delete"), ("id", &ids[2])],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = rep_pages
        .post(&format!("/w/demo/e/lead/{}/purge", ids[2]), &[])
        .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    let (status, _, _) = pages
        .post(&format!("/w/demo/e/lead/{}/purge", ids[2]), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = admin.get(&format!("{LEADS}/{}?deleted=true", ids[2])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "purged");

    // Notifications: a workflow tells the owner; the page lists it and marks it read.
    let (status, body) = publish_definition(
        &admin,
        "workflow",
        "tell_owner",
        json!({"label": {"en": "Tell the owner"}, "entity": "lead", "trigger": {"type": "record_created"},
               "steps": [{"id": "tell", "type": "notify", "to": ["owner"], "title": "New lead {{ record.name }}"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    admin
        .post(
            LEADS,
            json!({"fields": {"name": "Told <i>", "source": "referral"}}),
        )
        .await;
    app.run_jobs_until_idle().await;
    let (_, html) = pages.get("/w/demo/notifications").await;
    assert!(html.contains("New lead Told &lt;i&gt;"), "{html}");
    assert!(html.contains("class=\"unread\""));
    let (status, _, _) = pages.post("/w/demo/notifications/read", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = pages.get("/w/demo/notifications").await;
    assert!(!html.contains("class=\"unread\""), "all read");
}

async fn sub_tables_and_files_are_edited_in_the_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_entity(
        &admin,
        "offer",
        json!({"type": "object", "x-label": {"en": "Offer"}, "x-title-field": "title",
            "properties": {
                "title": {"type": "string", "x-kind": "text", "x-label": {"en": "Title"}},
                "lines": {"type": "array", "x-kind": "sub_table", "x-label": {"en": "Lines"}, "maxItems": 50,
                    "items": {"type": "object", "required": ["product", "qty"], "properties": {
                        "product": {"type": "string", "x-kind": "text", "x-label": {"en": "Product"}},
                        "qty": {"type": "integer", "minimum": 1, "x-kind": "integer", "x-label": {"en": "Qty"}},
                        "price": {"type": "number", "minimum": 0, "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Price"}}}},
                    "x-totals": {"qty": "sum", "price": "sum"}},
                "contract": {"type": "array", "x-kind": "attachment", "x-label": {"en": "Contract"},
                    "x-attachment": {"max_size": 100000, "accept": ["application/pdf", "image/*"], "max_files": 2}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (_, form) = pages.get("/w/demo/e/offer/new").await;
    assert!(form.contains("data-subtable=\"lines\"") && form.contains("data-add-row"));
    assert!(form.contains("data-upload="), "a file input uploads");
    let token = input_value(&form, "_token").expect("token");

    // A file uploaded the way the page does (the API, with the session's CSRF header).
    let upload = pages
        .http
        .post(format!(
            "{}/api/v1/w/demo/entities/offer/attachments?field=contract&name=scan.png",
            pages.base
        ))
        .header("x-csrf-token", pages.csrf.as_str())
        .header("content-type", "image/png")
        .body(vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0])
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), StatusCode::CREATED);
    let file: Value = upload.json().await.expect("json");
    let file_id = file["id"].as_str().expect("file id").to_owned();

    // A bad row is named at its cell; the good input comes back.
    let (status, _, html) = pages
        .post(
            "/w/demo/e/offer/new",
            &[
                ("_token", &token),
                ("title", "Big deal"),
                ("_present", "lines"),
                ("lines.0.product", "License"),
                ("lines.0.qty", "0"),
                ("lines.0.price", "100"),
                ("_present", "contract"),
                ("contract", &file_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"f-lines-error\""), "{html}");
    let rows = [
        ("_token", token.as_str()),
        ("title", "Big deal"),
        ("_present", "lines"),
        ("lines.0.product", "License"),
        ("lines.0.qty", "3"),
        ("lines.0.price", "1,000.50"),
        ("lines.1.product", ""),
        ("lines.1.qty", ""),
        ("lines.1.price", ""),
        ("lines.2.product", "Support"),
        ("lines.2.qty", "1"),
        ("lines.2.price", "99.5"),
        ("_present", "contract"),
        ("contract", file_id.as_str()),
    ];
    let (status, location, body) = pages.post("/w/demo/e/offer/new", &rows).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let id = location.rsplit('/').next().expect("id").to_owned();
    let (_, offer) = admin
        .get(&format!("/api/v1/w/demo/entities/offer/records/{id}"))
        .await;
    assert_eq!(
        offer["fields"]["lines"].as_array().map(Vec::len),
        Some(2),
        "the empty row is dropped: {offer}"
    );
    assert_eq!(offer["fields"]["lines"][1]["product"], json!("Support"));
    assert_eq!(offer["totals"]["lines"]["qty"], json!(4));
    assert_eq!(offer["totals"]["lines"]["price"], json!("1100.00"));
    assert_eq!(offer["fields"]["contract"][0]["name"], json!("scan.png"));
    let (_, page) = pages.get(&location).await;
    assert!(
        page.contains("1,100.00") && page.contains("class=\"thumb\""),
        "totals and a preview: {page}"
    );
    let inline = pages
        .http
        .get(format!(
            "{}/api/v1/w/demo/attachments/{file_id}?inline=1",
            pages.base
        ))
        .send()
        .await
        .expect("preview");
    assert!(
        inline.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .starts_with("inline")
    );

    // Reordered, one removed and the file unticked: the edit keeps exactly that.
    let (_, edit) = pages.get(&format!("/w/demo/e/offer/{id}/edit")).await;
    let version = input_value(&edit, "_version").expect("version");
    let (status, _, body) = pages
        .post(
            &format!("/w/demo/e/offer/{id}/edit"),
            &[
                ("_version", &version),
                ("title", "Big deal"),
                ("_present", "lines"),
                ("lines.0.product", "Support"),
                ("lines.0.qty", "2"),
                ("lines.0.price", "99.5"),
                ("_present", "contract"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, offer) = admin
        .get(&format!("/api/v1/w/demo/entities/offer/records/{id}"))
        .await;
    assert_eq!(
        offer["fields"]["lines"],
        json!([{"product": "Support", "qty": 2, "price": "99.50"}])
    );
    assert_eq!(offer["totals"]["lines"]["price"], json!("99.50"));
    assert!(
        offer["fields"]
            .get("contract")
            .is_none_or(|c| c.as_array().is_none_or(Vec::is_empty)),
        "{offer}"
    );
}

/// The id of the first workflow run the lead's page links to.
async fn page_before_rep(pages: &PageClient, lead: &str) -> String {
    let (_, page) = pages.get(&format!("/w/demo/e/lead/{lead}")).await;
    page.split("/w/demo/runs/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a run link")
        .to_owned()
}

async fn the_record_page_tells_the_whole_story(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, customer) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "Acme 公司", "lifecycle_stage": "intent"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let id = customer["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .post("/api/v1/w/demo/entities/follow_up/records", json!({"fields": {
            "subject": "Visited <the> plant", "customer": id, "way": "visit", "followed_at": "2026-12-05T02:00:00Z"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs_until_idle().await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (status, page) = pages.get(&format!("/w/demo/e/customer/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let timeline = page
        .split("data-testid=\"timeline\"")
        .nth(1)
        .expect("timeline");
    assert!(
        timeline.contains("Follow-up added") && timeline.contains("Visited &lt;the&gt; plant"),
        "{timeline}"
    );
    assert!(timeline.contains("Created"), "its own history");
    assert!(
        timeline.contains("Changed"),
        "the workflow's update of the last follow-up"
    );
    assert!(timeline.contains("by a workflow"), "{timeline}");
    // The related list links the follow-up too.
    assert!(page.contains("/e/follow_up/"));
    // A lead's page shows the workflow that started on it (to those who manage workflows).
    let (_, rep_id) = join_member(&app, &admin, "rep@example.com", "member").await;
    let (_, lead) = admin
        .post(
            LEADS,
            json!({"fields": {"name": "Run", "source": "referral"}, "owner": rep_id}),
        )
        .await;
    app.run_jobs_until_idle().await;
    let lead_id = lead["id"].as_str().expect("id");
    let (_, page) = pages.get(&format!("/w/demo/e/lead/{lead_id}")).await;
    assert!(
        page.contains("Follow up new leads") && page.contains("workflow-event"),
        "{page}"
    );
    let rep_pages = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (status, page) = rep_pages.get(&format!("/w/demo/e/lead/{lead_id}")).await;
    assert_eq!(status, StatusCode::OK, "the rep owns it");
    // The run's own page: its log, and cancelling it (managers only).
    let run = page_before_rep(&pages, lead_id).await;
    let (status, run_page) = pages.get(&format!("/w/demo/runs/{run}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        run_page.contains("wait_three_days") && run_page.contains("Cancel the run"),
        "{run_page}"
    );
    let (status, _, _) = pages
        .post(&format!("/w/demo/runs/{run}/explode"), &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = pages.post(&format!("/w/demo/runs/{run}/cancel"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, run_page) = pages.get(&format!("/w/demo/runs/{run}")).await;
    assert!(
        run_page.contains("cancelled") && !run_page.contains("Cancel the run"),
        "{run_page}"
    );
    // Reference pickers search what the person may read.
    let (status, found) = pages.get("/w/demo/e/customer/lookup?q=Acme").await;
    assert_eq!(status, StatusCode::OK);
    let found: Value = serde_json::from_str(&found).expect("json");
    assert_eq!(found[0]["title"], json!("Acme 公司"), "{found}");
    let (_, nothing) = pages.get("/w/demo/e/customer/lookup?q=zzz-none").await;
    assert_eq!(nothing, "[]");
    let (status, _) = rep_pages.get(&format!("/w/demo/runs/{run}")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "runs are for workflow managers"
    );
    let (_, hidden) = rep_pages.get("/w/demo/e/customer/lookup?q=Acme").await;
    assert_eq!(hidden, "[]", "not the rep's customer");
    assert!(
        !page.contains("workflow-event"),
        "runs are for workflow managers"
    );
}

async fn members_save_their_own_and_shared_views(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for (name, status) in [("New One", "new"), ("Old One", "contacted")] {
        admin
            .post(
                LEADS,
                json!({"fields": {"name": name, "source": "referral", "status": status}}),
            )
            .await;
    }
    join_member(&app, &admin, "rep@example.com", "member").await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let rep = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (status, location, _) = pages
        .post(
            "/w/demo/e/lead/saved-views",
            &[
                ("name", "Fresh <leads>"),
                ("query", "f.status=new&sort=-name&cursor=abc&deleted=1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with("/w/demo/e/lead?f.status=new&sort=-name&saved="),
        "{location}"
    );
    let (_, html) = pages.get(&location).await;
    assert!(
        html.contains("Fresh &lt;leads&gt;")
            && html.contains("New One")
            && !html.contains("Old One"),
        "{html}"
    );
    let (_, theirs) = rep.get("/w/demo/e/lead").await;
    assert!(
        !theirs.contains("Fresh &lt;leads&gt;"),
        "a private view stays private"
    );
    let (status, _, _) = rep
        .post(
            "/w/demo/e/lead/saved-views",
            &[("name", "Mine"), ("query", "q=x"), ("shared", "true")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "sharing takes the right to manage definitions"
    );
    let (status, _, _) = rep
        .post(
            "/w/demo/e/lead/saved-views",
            &[("name", " "), ("query", "")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, location, _) = pages
        .post(
            "/w/demo/e/lead/saved-views",
            &[
                ("name", "Team view"),
                ("query", "f.status=contacted"),
                ("shared", "true"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, theirs) = rep.get("/w/demo/e/lead").await;
    assert!(theirs.contains("Team view"), "a shared view is everyone's");
    let view_id = location.rsplit("saved=").next().expect("id").to_owned();
    let (status, _, _) = rep
        .post(&format!("/w/demo/e/lead/saved-views/{view_id}/delete"), &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = pages
        .post(&format!("/w/demo/e/lead/saved-views/{view_id}/delete"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, theirs) = rep.get("/w/demo/e/lead").await;
    assert!(!theirs.contains("Team view"));
}

async fn background_work_shows_its_progress(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    admin
        .post(
            LEADS,
            json!({"fields": {"name": "Someone", "source": "referral"}}),
        )
        .await;
    app.run_jobs_until_idle().await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "zh-CN").await;
    let (status, html) = pages.get("/w/demo/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("后台任务") && html.contains("运行工作流"),
        "{html}"
    );
    assert!(html.contains("已完成") || html.contains("排队中"), "{html}");
    let (status, _, _) = pages.post("/w/demo/jobs/not-a-job/retry", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn values_are_text_in_emails_too(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = TestApp::spawn_with(
        backend,
        Options {
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let (status, body) = publish_definition(
        &admin,
        "workflow",
        "mail_owner",
        json!({"label": {"en": "Mail the owner"}, "entity": "lead", "trigger": {"type": "record_created"},
               "steps": [{"id": "tell", "type": "notify", "to": ["owner"], "channels": ["email"],
                          "title": "New lead {{ record.name }}", "body": "Company: {{ record.company }}"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let nasty = "<script>alert('x')</script>{{ 7*7 }}";
    admin
        .post(
            LEADS,
            json!({"fields": {"name": nasty, "company": nasty, "source": "referral"}}),
        )
        .await;
    app.run_jobs_until_idle().await;
    let messages = smtp.messages();
    let mail = messages
        .iter()
        .find(|m| m.contains("New lead"))
        .expect("the email");
    let lower = mail.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/plain") && !lower.contains("text/html"),
        "{mail}"
    );
    assert!(
        mail.contains("Company: <script>alert('x')</script>{{ 7*7 }}"),
        "the value as text, never run: {mail}"
    );
    assert!(
        !mail.contains("</script>49"),
        "no template inside a value runs"
    );
}

async fn the_home_page_shows_my_agenda(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let day = |offset: i64| {
        (today + chrono::Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (_, rep_id) = join_member(&app, &admin, "rep@example.com", "member").await;
    for (name, date, owner) in [
        ("Overdue call", day(-2), None),
        ("Call on Friday", day(3), None),
        ("Far future", day(30), None),
        ("Long forgotten", day(-90), None),
        ("Someone else's", day(1), Some(rep_id.clone())),
    ] {
        let mut body =
            json!({"fields": {"name": name, "source": "referral", "next_follow_up_date": date}});
        if let Some(owner) = owner {
            body["owner"] = json!(owner);
        }
        let (status, created) = admin.post(LEADS, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    let (_, home) = pages.get("/w/demo/").await;
    let agenda = home
        .split("data-testid=\"agenda\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("the agenda");
    assert!(
        agenda.contains("Overdue call") && agenda.contains("overdue"),
        "{agenda}"
    );
    assert!(agenda.contains("Call on Friday"));
    assert!(
        !agenda.contains("Far future")
            && !agenda.contains("Someone else")
            && !agenda.contains("Long forgotten"),
        "{agenda}"
    );
    assert!(
        agenda.find("Overdue call") < agenda.find("Call on Friday"),
        "soonest first"
    );
}

/// Every page of every Sales CRM entity draws, with the demo data, in both languages: the
/// templates meet every field kind and every definition the template ships.
async fn every_page_of_the_sales_crm_draws(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            demo_data: true,
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin().await;
    for lang in ["en", "zh-CN"] {
        let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, lang).await;
        for path in [
            "/w/demo/",
            "/w/demo/approvals",
            "/w/demo/approvals?box=all",
            "/w/demo/notifications",
            "/w/demo/jobs",
            "/workspaces",
        ] {
            let (status, html) = pages.get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {html}");
        }
        for entity in [
            "lead",
            "customer",
            "contact",
            "opportunity",
            "follow_up",
            "quote",
        ] {
            let (_, page) = admin
                .get(&format!("/api/v1/w/demo/entities/{entity}/records?limit=1"))
                .await;
            let mut paths = vec![
                format!("/w/demo/e/{entity}"),
                format!("/w/demo/e/{entity}?layout=kanban"),
                format!("/w/demo/e/{entity}?deleted=1"),
                format!("/w/demo/e/{entity}/new"),
            ];
            if let Some(id) = page["records"][0]["id"].as_str() {
                paths.push(format!("/w/demo/e/{entity}/{id}"));
                paths.push(format!("/w/demo/e/{entity}/{id}/edit"));
            }
            for path in paths {
                let (status, html) = pages.get(&path).await;
                assert_eq!(status, StatusCode::OK, "{lang} {path}: {html}");
                assert!(html.contains("</html>"), "{path} drew whole");
            }
        }
        let (_, views) = admin.get("/api/v1/w/demo/definitions/view").await;
        let views = views.get("definitions").cloned().unwrap_or(views);
        assert!(
            views.as_array().map_or(0, Vec::len) >= 8,
            "every view is tried: {views}"
        );
        for view in views.as_array().into_iter().flatten() {
            let key = view["key"].as_str().expect("a view's key");
            let (_, detail) = admin
                .get(&format!("/api/v1/w/demo/definitions/view/{key}"))
                .await;
            let entity = detail["published"]["entity"]
                .as_str()
                .expect("a view's entity");
            let (status, html) = pages.get(&format!("/w/demo/e/{entity}?view={key}")).await;
            assert_eq!(status, StatusCode::OK, "view {key}: {html}");
        }
    }
}

both_databases!(
    every_page_of_the_sales_crm_draws,
    the_home_page_shows_my_agenda,
    values_are_text_in_emails_too,
    background_work_shows_its_progress,
    members_save_their_own_and_shared_views,
    the_record_page_tells_the_whole_story,
    sub_tables_and_files_are_edited_in_the_form,
    the_pool_the_bin_bulk_edits_and_notifications,
    form_rules_show_hide_and_lock_fields_on_the_server,
    approvals_are_decided_from_the_inbox_and_the_record_page,
    a_public_form_takes_leads_from_strangers,
    forms_check_like_the_api_keep_the_input_and_save_once,
    a_stale_edit_keeps_the_input_and_says_what_changed,
    values_show_as_text_in_every_page,
    the_board_moves_cards_through_the_same_rules,
    lists_filter_sort_and_act_in_bulk,
    pages_speak_the_readers_language,
);
