//! The UI in a real browser: headless Chromium (Debian's `chromium`) driven over WebDriver
//! (Debian's `chromium-driver`) against a real server. `.ci/test` installs both and starts one
//! ChromeDriver; without them these tests fail. Screenshots of the main pages are written to
//! `target/screenshots/` (listed in docs/ui.md).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::browser::Browser;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, Options, SmtpSink, TestApp, deliver_inbound};
use serde_json::json;

fn chromium() -> String {
    std::env::var("FORMWORK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(format!("{name}.png"))
}

/// The DOM Chromium ends up with after loading `url` (following redirects, running scripts).
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "Chromium is required for the browser tests ({}): {e}",
                chromium()
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_is_sent_to_sign_in_and_sees_the_form() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = app.url("/w/demo/");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .expect("join");
    assert!(
        dom.contains(r#"<form method="post" action="/login""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"name="email""#) && dom.contains(r#"name="password""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"name="next" value="/w/demo/""#),
        "the redirect keeps the target: {dom}"
    );
    assert!(dom.contains("/static/app.css"));
}

async fn sign_in(browser: &Browser, app: &TestApp, next: &str) {
    browser.goto(&app.url(next)).await;
    browser.fill("#email", ADMIN_EMAIL).await;
    browser.fill("#password", ADMIN_PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_until("the signed-in page", "!document.querySelector('#password')")
        .await;
}

/// Runs the server's due jobs until the page (which follows them live) shows `script` true,
/// or 10 s pass: a job the page queued may land after a first run found nothing to do.
async fn run_jobs_until(app: &TestApp, browser: &Browser, script: &str) {
    for _ in 0..50 {
        app.run_jobs_until_idle().await;
        // A reload in progress may end the check itself: it is simply asked again.
        let seen = browser
            .try_run(&format!("return !!({script});"), json!([]))
            .await;
        if seen == Ok(json!(true)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The whole path of a sales rep's first lead: sign in, fill the lead form with a mistake,
/// fix it, find the lead on the board, drag it to "contacted", see it in its history, and
/// read the UI in Chinese.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_goes_from_the_form_across_the_board_into_its_history() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let browser = Browser::open("en").await;
    sign_in(&browser, &app, "/w/demo/").await;
    assert!(browser.html().await.contains("Hello,"));
    browser.screenshot(&screenshot_path("home")).await;

    // The form: an invalid email and no name are refused at the fields, nothing saved.
    browser.goto(&app.url("/w/demo/e/lead/new")).await;
    browser.screenshot(&screenshot_path("lead-form")).await;
    browser
        .fill("#f-company", "<script>alert(1)</script>{{ 7*7 }}")
        .await;
    browser.fill("#f-email", "not-an-email").await;
    browser
        .run(
            "document.querySelector('#f-source').value = 'referral';",
            json!([]),
        )
        .await;
    browser.click("form.record-form button[type=submit]").await;
    browser.find("[data-testid=form-errors]").await;
    let name_error = browser.text("[data-field=name] .field-error").await;
    assert!(!name_error.is_empty(), "the missing name is named");
    assert!(browser.has("[data-field=email] .field-error").await);
    assert_eq!(
        browser
            .run(
                "return document.querySelector('#f-company').value;",
                json!([])
            )
            .await,
        json!("<script>alert(1)</script>{{ 7*7 }}"),
        "the input is kept"
    );
    browser
        .screenshot(&screenshot_path("lead-form-errors"))
        .await;
    let admin = app.admin().await;
    let (_, before) = admin
        .get("/api/v1/w/demo/entities/lead/records?total=exact&limit=1")
        .await;

    // Fixed, it saves once and shows the record page.
    browser.fill("#f-name", "王小明").await;
    browser.fill("#f-email", "wang@example.cn").await;
    browser.click("form.record-form button[type=submit]").await;
    browser
        .wait_until(
            "the record page",
            "!!document.querySelector('[data-testid=timeline]')",
        )
        .await;
    let record_url = browser.url().await;
    let id = record_url.rsplit('/').next().unwrap_or_default().to_owned();
    let page = browser.html().await;
    assert!(page.contains("王小明"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}"),
        "values show as text, never as markup or template"
    );
    let (_, after) = admin
        .get("/api/v1/w/demo/entities/lead/records?total=exact&limit=1")
        .await;
    assert_eq!(
        after["total"].as_i64(),
        before["total"].as_i64().map(|n| n + 1),
        "one record"
    );

    // The board by status: drag the card from "new" to "contacted".
    browser
        .goto(&app.url("/w/demo/e/lead?layout=kanban&group_by=status"))
        .await;
    let card = format!(".card-item[data-id='{id}']");
    browser.find(&card).await;
    assert!(
        browser
            .has(&format!(".lane[data-value='new'] {card}"))
            .await
    );
    browser.screenshot(&screenshot_path("lead-board")).await;
    browser
        .run(
            "const card = document.querySelector(arguments[0]);\
             const lane = document.querySelector(\".lane[data-value='contacted'] .cards\");\
             const data = new DataTransfer();\
             card.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: data}));\
             lane.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: data}));\
             lane.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: data}));\
             card.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: data}));",
            json!([card]),
        )
        .await;
    browser
        .wait_until(
            "the move to be saved",
            &format!("document.querySelector(\"{card}\").dataset.version === '2'"),
        )
        .await;
    let (_, lead) = admin
        .get(&format!("/api/v1/w/demo/entities/lead/records/{id}"))
        .await;
    assert_eq!(lead["fields"]["status"], json!("contacted"));

    // The record page tells the story: created, then the status changed on the board.
    browser.goto(&record_url).await;
    let timeline = browser.text("[data-testid=timeline]").await;
    assert!(timeline.contains("Created"), "{timeline}");
    assert!(timeline.contains("Changed"), "{timeline}");
    assert!(timeline.contains("Contacted"), "{timeline}");
    browser.screenshot(&screenshot_path("lead-page")).await;

    // A form rule reflected as the person types: the lost reason appears once the stage is lost.
    browser.goto(&app.url("/w/demo/e/opportunity/new")).await;
    assert_eq!(
        browser
            .run(
                "return document.querySelector('[data-field=lost_reason]').hidden;",
                json!([])
            )
            .await,
        json!(true)
    );
    browser
        .run(
            "const s = document.querySelector('#f-stage'); s.value = 'lost';\
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "the lost reason to appear",
            "!document.querySelector('[data-field=lost_reason]').hidden",
        )
        .await;

    // 中文: the switcher changes every UI text and the labels of the definitions.
    browser.goto(&record_url).await;
    browser
        .run(
            "const s = document.querySelector('#lang-select'); s.value = 'zh-CN'; s.form.submit();",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "the Chinese page",
            "document.documentElement.lang === 'zh-CN'",
        )
        .await;
    let chinese = browser.html().await;
    assert!(chinese.contains("动态"), "timeline title in Chinese");
    assert!(chinese.contains("线索"), "entity label in Chinese");
    browser.screenshot(&screenshot_path("lead-page-zh")).await;
    browser.goto(&app.url("/w/demo/e/lead")).await;
    assert!(browser.html().await.contains("全部线索"));
    browser.screenshot(&screenshot_path("lead-list-zh")).await;
    browser.resize(390, 844).await;
    browser.goto(&app.url("/w/demo/e/lead")).await;
    browser
        .screenshot(&screenshot_path("lead-list-phone"))
        .await;
    browser.resize(1280, 900).await;
    // A quote with a 20% discount waits for approval (the admin, who has no manager, decides).
    let (_, customer) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "华东制造有限公司", "lifecycle_stage": "intent"}}),
        )
        .await;
    let (_, deal) = admin
        .post(
            "/api/v1/w/demo/entities/opportunity/records",
            json!({"fields": {"name": "ERP 二期", "customer": customer["id"], "stage": "proposal"}}),
        )
        .await;
    let (status, quote) = admin
        .post(
            "/api/v1/w/demo/entities/quote/records",
            json!({"fields": {"name": "ERP 二期报价", "opportunity": deal["id"], "amount": "480000", "discount": 20}}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{quote}");
    app.run_jobs_until_idle().await;
    browser.goto(&app.url("/w/demo/approvals")).await;
    let inbox = browser.html().await;
    assert!(inbox.contains("data-testid=\"batch-approve\""));
    assert!(inbox.contains("直属上级"), "the level's own label: {inbox}");
    browser.screenshot(&screenshot_path("approvals-zh")).await;
    browser.close().await;

    // A stranger on the company's website: the public lead form, no account.
    let (status, link) = admin
        .post(
            "/api/v1/w/demo/forms/lead_form/links",
            json!({"thank_you": {"en": "Thank you — we will call you today."}}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{link}");
    let path = link["path"].as_str().expect("path").to_owned();
    let stranger = Browser::open("en").await;
    stranger.goto(&app.url(&path)).await;
    assert!(
        !stranger.html().await.contains("Sign out"),
        "no account involved"
    );
    stranger.screenshot(&screenshot_path("public-form")).await;
    stranger.fill("#f-name", "Ada Visitor").await;
    stranger.fill("#f-phone", "13900000000").await;
    stranger
        .run(
            "document.querySelector('#f-source').value = 'web_form';",
            json!([]),
        )
        .await;
    stranger.click("form.record-form button[type=submit]").await;
    stranger
        .wait_until(
            "the thank-you page",
            "!!document.querySelector('[data-testid=thanks]')",
        )
        .await;
    assert!(stranger.html().await.contains("we will call you today"));
    stranger.close().await;
    let (_, found) = admin
        .get("/api/v1/w/demo/entities/lead/records?filter[name]=Ada%20Visitor")
        .await;
    assert_eq!(found["records"].as_array().map(Vec::len), Some(1));
}

/// A manager reads the Sales CRM dashboard on a year of demo data (English and Chinese, every
/// chart an SVG drawn by the server), narrows it to a period, clicks a bar of the funnel and
/// lands on exactly the records behind it, then opens one report and its table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_reads_the_dashboard_and_drills_into_a_number() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::open("en").await;
    sign_in(&browser, &app, "/w/demo/reports").await;
    assert!(browser.html().await.contains("Sales overview"));
    browser.click("[data-testid=dashboards] a").await;
    browser
        .wait_until(
            "the dashboard",
            "!!document.querySelector('[data-testid=board]')",
        )
        .await;
    browser.resize(1400, 1800).await;
    let html = browser.html().await;
    assert!(!html.contains("notice error"), "every tile draws: {html}");
    let charts = browser
        .run(
            "return document.querySelectorAll('svg.chart').length;",
            json!([]),
        )
        .await;
    assert!(charts.as_u64().unwrap_or(0) >= 5, "{charts}");
    // Every chart is well-formed XML as the browser serialises it.
    let svgs = browser
        .run(
            "return Array.from(document.querySelectorAll('svg.chart')).map(s => new XMLSerializer().serializeToString(s));",
            json!([]),
        )
        .await;
    for svg in svgs.as_array().expect("list") {
        roxmltree::Document::parse(svg.as_str().expect("text")).expect("well-formed SVG");
    }
    browser.screenshot(&screenshot_path("dashboard")).await;
    // The funnel's bars say how many reached each stage and how many are there now; the
    // "now" number lists exactly those records.
    let tip = browser
        .run(
            "return document.querySelector('[data-testid=tile-pipeline_funnel] svg a title').textContent;",
            json!([]),
        )
        .await;
    assert!(tip.as_str().unwrap_or("").contains("here now"), "{tip}");
    browser
        .goto(&app.url("/w/demo/reports/pipeline_funnel"))
        .await;
    assert!(browser.has("[data-testid=funnel-table]").await);
    assert!(browser.has("[data-testid=lost-reasons]").await);
    browser.screenshot(&screenshot_path("funnel")).await;
    let now = browser
        .run(
            "const a = document.querySelector('[data-testid=funnel-table] tbody tr:nth-child(4) a'); return [a.getAttribute('href'), a.textContent];",
            json!([]),
        )
        .await;
    let href = now[0].as_str().expect("href").to_owned();
    let count = now[1].as_str().expect("count").to_owned();
    browser.goto(&app.url(&href)).await;
    assert!(browser.has("[data-testid=drill-notice]").await);
    let html = browser.html().await;
    assert!(
        html.contains(&format!("data-testid=\"total\">{count}<")),
        "the list totals {count}: {html}"
    );
    // Targets: the year's amount-won target for everyone, then the progress page.
    let admin = app.admin().await;
    let year = chrono::Utc::now().format("%Y").to_string();
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/targets/split",
            json!({"fiscal_year": year.parse::<i32>().expect("year"), "measure": "target_won_amount", "total": "10000000"}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    browser.goto(&app.url("/w/demo/targets?period=year")).await;
    assert!(browser.has("[data-testid=target-tree] .progress").await);
    browser.screenshot(&screenshot_path("targets")).await;
    // One report on its own page, with its table, in Chinese.
    browser
        .goto(&app.url("/w/demo/reports/win_rate_by_owner"))
        .await;
    assert!(browser.has("[data-testid=report-table]").await);
    assert!(browser.has("[data-testid=export-xlsx]").await);
    browser.close().await;
    let chinese = Browser::open("zh-CN").await;
    sign_in(
        &chinese,
        &app,
        "/w/demo/dashboards/sales_overview?period=this_year",
    )
    .await;
    let html = chinese.html().await;
    assert!(html.contains("销售漏斗") && html.contains("今年"), "{html}");
    chinese.resize(1400, 1800).await;
    chinese.screenshot(&screenshot_path("dashboard-zh")).await;
    // The template gallery: the demo's Sales CRM is installed; the service desk is cloned
    // beside it with a prefix, from the page.
    chinese.resize(1280, 900).await;
    chinese.goto(&app.url("/w/demo/apps")).await;
    let html = chinese.html().await;
    assert!(html.contains("模板库") && html.contains("服务台"), "{html}");
    chinese
        .fill("[data-template=service-desk] input[name=prefix]", "sd")
        .await;
    chinese.click("[data-testid=clone-service-desk]").await;
    chinese
        .wait_until(
            "the clone",
            "!!document.querySelector('[data-testid=apps-notice]')",
        )
        .await;
    let rows = chinese
        .run(
            "return document.querySelectorAll('[data-testid=installed-apps] tbody tr').length;",
            json!([]),
        )
        .await;
    assert_eq!(rows.as_u64(), Some(2), "{}", chinese.html().await);
    chinese.screenshot(&screenshot_path("apps-zh")).await;
    // Cloning it again under the same prefix is refused, naming what clashes.
    chinese
        .fill("[data-template=service-desk] input[name=prefix]", "sd")
        .await;
    chinese.click("[data-testid=clone-service-desk]").await;
    chinese
        .wait_until(
            "the refusal",
            "!!document.querySelector('[data-testid=apps-problems]')",
        )
        .await;
    assert!(chinese.html().await.contains("sd_ticket"));
    // The cloned desk, exported, comes back in from its file: checked first (its `ticket`
    // clashes with the Sales CRM's), then imported under another prefix.
    let (_, installed) = admin.get("/api/v1/w/demo/apps").await;
    let desk = installed
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["prefix"] == "sd"))
        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
        .expect("the cloned desk");
    let (status, exported) = admin
        .get(&format!("/api/v1/w/demo/apps/export?app={desk}"))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{exported}");
    let folder = tempfile::tempdir().expect("temp dir");
    let file = folder.path().join("service-desk.json");
    std::fs::write(&file, exported.to_string()).expect("write the export");
    let form = "[data-testid=import-form]";
    // A fresh page: the refused clone's problems above must not pass for the import's.
    chinese.goto(&app.url("/w/demo/apps")).await;
    chinese
        .upload(&format!("{form} input[name=bundle]"), &file)
        .await;
    chinese.click("[data-testid=import-check]").await;
    chinese
        .wait_until(
            "the refused import",
            "!!document.querySelector('[data-testid=apps-problems]')",
        )
        .await;
    let html = chinese.html().await;
    assert!(
        html.contains("/definitions/entity/ticket") || html.contains("ticket"),
        "{html}"
    );
    chinese
        .upload(&format!("{form} input[name=bundle]"), &file)
        .await;
    chinese
        .fill(&format!("{form} input[name=prefix]"), "desk2")
        .await;
    chinese.click("[data-testid=import-check]").await;
    chinese
        .wait_until(
            "the checked import",
            "!!document.querySelector('[data-testid=import-report]')",
        )
        .await;
    assert!(
        chinese
            .text("[data-testid=import-report]")
            .await
            .contains("已检查")
    );
    let (_, none_yet) = admin.get("/api/v1/w/demo/apps").await;
    assert_eq!(
        none_yet.as_array().map(Vec::len),
        Some(2),
        "a check writes nothing"
    );
    chinese
        .upload(&format!("{form} input[name=bundle]"), &file)
        .await;
    chinese
        .fill(&format!("{form} input[name=prefix]"), "desk2")
        .await;
    chinese.click("[data-testid=import-apply]").await;
    chinese
        .wait_until(
            "the import",
            "(document.querySelector('[data-testid=import-report]') || {}).textContent?.includes('已导入')",
        )
        .await;
    chinese
        .run(
            "document.getElementById('import').scrollIntoView(); return true;",
            json!([]),
        )
        .await;
    chinese.screenshot(&screenshot_path("apps-import-zh")).await;
    chinese.close().await;
    let (_, imported) = admin
        .get("/api/v1/w/demo/definitions/entity/desk2_ticket")
        .await;
    assert_eq!(
        imported["published"]["properties"]["requester"]["x-reference"]["entity"],
        "desk2_requester",
        "{imported}"
    );
    let (_, ticket) = admin
        .get("/api/v1/w/demo/definitions/entity/sd_ticket")
        .await;
    assert_eq!(
        ticket["published"]["properties"]["requester"]["x-reference"]["entity"],
        "sd_requester"
    );
}

/// Clicks `css` and waits for the page it leads to (a marker left on the old page tells them
/// apart). The page is scrolled to the top first: a page opened at an anchor has the sticky top
/// bar over its head.
async fn press(browser: &Browser, css: &str) {
    browser
        .run(
            "window.scrollTo(0, 0); window.__before = true; return true;",
            json!([]),
        )
        .await;
    browser.click(css).await;
    browser
        .wait_until(
            "the next page",
            "!window.__before && document.readyState === 'complete'",
        )
        .await;
}

/// Issue 10's first two stories in the browser, in Chinese: an admin adds a "WeChat ID" field
/// to leads in the entity designer and places it on the lead form in the form builder (with a
/// help text), then makes the lost reason of opportunities required only when the stage is
/// lost. Screenshots of both builders for docs/ui.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_field_and_places_it_on_the_form_without_code() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let browser = Browser::open("zh-CN").await;
    sign_in(&browser, &app, "/w/demo/build").await;
    press(&browser, "[data-testid=design-lead]").await;
    browser
        .wait_until(
            "the designer",
            "!!document.querySelector('[data-testid=field-list]')",
        )
        .await;
    press(&browser, "[data-testid=add-field]").await;
    browser
        .wait_until(
            "the field editor",
            "!!document.querySelector('[data-testid=field-editor]')",
        )
        .await;
    browser
        .fill("[data-testid=field-editor] input[name=field_key]", "wechat")
        .await;
    browser
        .fill(
            "[data-testid=field-editor] input[name=label_en]",
            "WeChat ID",
        )
        .await;
    browser
        .fill("[data-testid=field-editor] input[name=label_zh]", "微信号")
        .await;
    browser
        .fill("[data-testid=field-editor] input[name=max_length]", "50")
        .await;
    press(&browser, "[data-testid=save-field]").await;
    browser
        .wait_until(
            "the saved draft",
            "!!document.querySelector('[data-testid=changes]')",
        )
        .await;
    assert!(browser.html().await.contains("id=\"f-wechat\""));
    browser.resize(1280, 1400).await;
    browser
        .run("window.scrollTo(0, 0); return true;", json!([]))
        .await;
    browser
        .screenshot(&screenshot_path("builder-entity-zh"))
        .await;
    press(&browser, "[data-testid=publish]").await;
    browser
        .wait_until(
            "the publish",
            "!document.querySelector('[data-testid=publish]')",
        )
        .await;
    // The lead form: place the new field in the contact section, with a help text.
    press(&browser, "[data-testid=design-form-lead_form]").await;
    browser
        .wait_until(
            "the form builder",
            "!!document.querySelector('[data-testid=palette]')",
        )
        .await;
    browser
        .run(
            "document.getElementById('place-wechat').value = '1'; return true;",
            json!([]),
        )
        .await;
    press(&browser, "[data-testid=place-wechat]").await;
    browser
        .wait_until(
            "the placement",
            "!!document.querySelector('[data-testid=placement-form]')",
        )
        .await;
    browser
        .fill(
            "[data-testid=placement-form] input[name=help_zh]",
            "客户的微信号，用于日常沟通",
        )
        .await;
    press(&browser, "[data-testid=save-placement]").await;
    browser
        .wait_until(
            "the saved placement",
            "!!document.querySelector('[data-testid=publish-form]')",
        )
        .await;
    browser
        .run(
            "document.querySelector('.form-builder').scrollIntoView(); return true;",
            json!([]),
        )
        .await;
    browser
        .screenshot(&screenshot_path("builder-form-zh"))
        .await;
    press(&browser, "[data-testid=publish-form]").await;
    browser
        .wait_until(
            "the form publish",
            "!document.querySelector('[data-testid=publish-form]')",
        )
        .await;
    browser.goto(&app.url("/w/demo/e/lead/new")).await;
    let html = browser.html().await;
    assert!(
        html.contains("name=\"wechat\"") && html.contains("客户的微信号，用于日常沟通"),
        "{html}"
    );
    // The score formula: a mistake is shown while typing, with its line and column; a good one
    // is tried on a lead.
    browser
        .goto(&app.url("/w/demo/build/entities/lead?field=score#field-editor"))
        .await;
    browser.fill("[data-testid=formula]", "let x = ;\n1").await;
    browser
        .wait_until(
            "the syntax error",
            "document.querySelector('[data-testid=formula-status]').textContent.startsWith('1:')",
        )
        .await;
    browser
        .fill(
            "[data-testid=formula]",
            "if record.status == \"new\" { 10 } else { 20 }",
        )
        .await;
    browser
        .wait_until(
            "the formula's value",
            "document.querySelector('[data-testid=formula-status]').textContent.includes('结果')",
        )
        .await;
    browser
        .screenshot(&screenshot_path("builder-formula-zh"))
        .await;
    // Saved and published, the new score is recomputed on every lead; the designer says so.
    let admin = app.admin().await;
    for (name, status) in [("甲", "new"), ("乙", "contacted"), ("丙", "new")] {
        let (created, body) = admin
            .post(
                "/api/v1/w/demo/entities/lead/records",
                json!({"fields": {"name": name, "source": "web_form", "status": status}}),
            )
            .await;
        assert_eq!(created.as_u16(), 201, "{body}");
    }
    press(&browser, "[data-testid=save-field]").await;
    press(&browser, "[data-testid=publish]").await;
    app.run_jobs_until_idle().await;
    browser.goto(&app.url("/w/demo/build/entities/lead")).await;
    browser
        .wait_until(
            "the recompute's end",
            "(document.querySelector('[data-testid=recompute]') || {textContent: ''}).textContent.includes('已重新计算')",
        )
        .await;
    let (_, leads) = admin
        .post(
            "/api/v1/w/demo/entities/lead/records/query",
            json!({"limit": 500}),
        )
        .await;
    let leads = leads["records"].as_array().expect("leads").clone();
    assert!(leads.len() >= 3, "{leads:?}");
    for lead in &leads {
        let expected = if lead["fields"]["status"] == "new" {
            10
        } else {
            20
        };
        assert_eq!(lead["fields"]["score"], json!(expected), "{lead}");
    }
    // Lost reason: required only when the stage is lost.
    browser
        .goto(&app.url("/w/demo/build/entities/opportunity"))
        .await;
    browser
        .run(
            "document.querySelector('[data-testid=required-when] select[name=rule_field]').value = 'lost_reason';\
             document.querySelector('[data-testid=required-when] select[name=rule_when]').value = 'stage'; return true;",
            json!([]),
        )
        .await;
    browser
        .fill(
            "[data-testid=required-when] input[name=rule_equals]",
            "lost",
        )
        .await;
    press(&browser, "[data-testid=required-when] button[type=submit]").await;
    browser
        .wait_until(
            "the rule",
            "!!document.querySelector('[data-testid=publish]')",
        )
        .await;
    press(&browser, "[data-testid=publish]").await;
    browser
        .wait_until(
            "the publish",
            "!document.querySelector('[data-testid=publish]')",
        )
        .await;
    browser.close().await;
    let (_, customer) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "杭州云帆", "lifecycle_stage": "intent"}}),
        )
        .await;
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/entities/opportunity/records",
            json!({"fields": {"name": "云帆", "customer": customer["id"], "stage": "lost"}}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Issue 10's report story in the browser: a manager's "won amount by month", built in the
/// report builder on the demo deals, previewed, published and added to the sales dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_built_and_added_to_the_dashboard_in_the_browser() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::open("zh-CN").await;
    sign_in(&browser, &app, "/w/demo/build/reports/won_monthly").await;
    browser
        .run(
            "const f = document.querySelector('[data-testid=report-form]');\
             f.querySelector('[name=entity]').value = 'opportunity'; return true;",
            json!([]),
        )
        .await;
    browser
        .fill(
            "[data-testid=report-form] input[name=label_zh]",
            "每月赢单金额",
        )
        .await;
    browser
        .fill(
            "[data-testid=report-form] input[name=label_en]",
            "Won amount by month",
        )
        .await;
    // The entity's fields come with the first save.
    press(&browser, "[data-testid=save-report]").await;
    browser
        .run(
            "const f = document.querySelector('[data-testid=report-form]');\
             const set = (name, i, v) => { f.querySelectorAll('[name=' + name + ']')[i].value = v; };\
             set('chart', 0, 'bar');\
             set('cond_field', 0, 'stage'); set('cond_op', 0, 'in'); set('cond_value', 0, 'contract_signed, delivery');\
             set('date_field', 0, 'expected_close_date'); set('period', 0, 'last_12_months');\
             set('group_field', 0, 'expected_close_date'); set('group_bucket', 0, 'month');\
             set('measure_op', 0, 'sum'); set('measure_field', 0, 'amount'); set('measure_zh', 0, '赢单金额');\
             return true;",
            json!([]),
        )
        .await;
    press(&browser, "[data-testid=save-report]").await;
    browser
        .wait_until(
            "the preview",
            "!!document.querySelector('[data-testid=report-preview] .report-result')",
        )
        .await;
    browser.resize(1280, 1500).await;
    browser
        .screenshot(&screenshot_path("builder-report-zh"))
        .await;
    press(&browser, "[data-testid=publish-report]").await;
    browser
        .run(
            "document.querySelector('[data-testid=add-to-dashboard] select').value = 'sales_overview'; return true;",
            json!([]),
        )
        .await;
    press(&browser, "[data-testid=add-to-dashboard] button").await;
    browser
        .wait_until(
            "the dashboard with the new tile",
            "!!document.querySelector('[data-report=won_monthly]')",
        )
        .await;
    assert!(
        browser
            .url()
            .await
            .ends_with("/w/demo/dashboards/sales_overview")
    );
    browser.close().await;
}

/// Issue 10's workflow story in the browser, in Chinese: a sales manager's flow built in the
/// workflow designer without JSON — the shipped discount approval turned off, a new one on
/// quotes over 20% (the owner's manager, then the director over 30%, with a deadline and an
/// escalation), its message written in two languages and previewed, published — then a rep's
/// quote is approved by the rep's manager on the quote's page. Screenshots for docs/ui.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_builds_a_two_level_discount_approval_and_approves_a_quote() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin().await;
    let (rep, rep_id) = common::join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let (_, mgr_id) =
        common::join_member(&app, &admin, "mgr@example.com", "crm.sales_manager").await;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/w/demo/members/{rep_id}"),
            json!({"manager_id": mgr_id}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    let (_, customer) = rep
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "华东制造有限公司", "lifecycle_stage": "intent"}}),
        )
        .await;
    let (_, deal) = rep
        .post(
            "/api/v1/w/demo/entities/opportunity/records",
            json!({"fields": {"name": "ERP 二期", "customer": customer["id"], "stage": "proposal"}}),
        )
        .await;
    let quote = |name: &'static str, discount: i64| {
        let rep = rep.clone();
        let deal = deal["id"].clone();
        async move {
            let (status, quote) = rep
                .post(
                    "/api/v1/w/demo/entities/quote/records",
                    json!({"fields": {"name": name, "opportunity": deal, "amount": "480000", "discount": discount, "valid_until": "2027-01-31"}}),
                )
                .await;
            assert_eq!(status.as_u16(), 201, "{quote}");
            quote["id"].as_str().expect("id").to_owned()
        }
    };
    // A quote from before, to preview messages with.
    quote("ERP 一期报价", 10).await;

    let browser = Browser::open("zh-CN").await;
    sign_in(&browser, &app, "/w/demo/build").await;
    // The shipped approval is turned off.
    press(
        &browser,
        "[data-testid=design-workflow-quote_discount_approval]",
    )
    .await;
    press(&browser, "[data-testid=disable-workflow]").await;
    assert!(browser.has("[data-testid=enable-workflow]").await);
    // A new workflow on quotes.
    browser.goto(&app.url("/w/demo/build")).await;
    browser
        .fill("[data-testid=new-workflow] input[name=key]", "big_discount")
        .await;
    browser
        .fill(
            "[data-testid=new-workflow] input[name=label_zh]",
            "大额折扣审批",
        )
        .await;
    browser
        .run(
            "document.querySelector('[data-testid=new-workflow] select[name=entity]').value = 'quote'; return true;",
            json!([]),
        )
        .await;
    press(&browser, "[data-testid=new-workflow] button[type=submit]").await;
    browser
        .wait_until(
            "the designer",
            "!!document.querySelector('[data-testid=flow]')",
        )
        .await;
    // Only quotes over 20% off.
    browser
        .run(
            "const f = document.querySelector('[data-testid=condition-editor]');\
             f.closest('details').open = true;\
             f.querySelector('[name=cond_field]').value = 'discount';\
             f.querySelector('[name=cond_op]').value = 'gt'; return true;",
            json!([]),
        )
        .await;
    browser
        .fill(
            "[data-testid=condition-editor] input[name=cond_value]",
            "20",
        )
        .await;
    press(&browser, "[data-testid=save-condition]").await;
    assert!(
        browser
            .text("[data-testid=condition-summary]")
            .await
            .contains("20"),
        "the condition reads as written"
    );
    // An approval step before the starter notification.
    browser
        .run(
            "document.querySelector('[data-testid=add-step-0] select[name=new]').value = 'approval'; return true;",
            json!([]),
        )
        .await;
    press(&browser, "[data-testid=add-step-0] button[type=submit]").await;
    let editor = "[data-testid=new-step] [data-testid=step-editor-approval]";
    browser
        .fill(&format!("{editor} input[name=step_id]"), "approve")
        .await;
    browser
        .fill(&format!("{editor} input[name=step_label_zh]"), "折扣审批")
        .await;
    browser
        .fill(
            &format!("{editor} input[name=title]"),
            "{{ record.name }}：折扣 {{ record.discount }}%",
        )
        .await;
    browser
        .fill(&format!("{editor} input[name=level0_label_zh]"), "直属上级")
        .await;
    browser
        .fill(&format!("{editor} input[name=level0_deadline_days]"), "2")
        .await;
    browser
        .fill(&format!("{editor} input[name=level1_label_zh]"), "总监")
        .await;
    browser
        .fill(&format!("{editor} input[name=level1_when_value]"), "30")
        .await;
    browser
        .run(
            "const f = document.querySelector(arguments[0]);\
             f.querySelector('[name=level0_approver][value=owner_manager]').checked = true;\
             f.querySelector('[name=level0_then]').value = 'escalate';\
             f.querySelector('[name=level0_escalate][value=\"role:crm.sales_manager\"]').checked = true;\
             f.querySelector('[name=level1_approver][value=\"role:crm.director\"]').checked = true;\
             f.querySelector('[name=level1_when_field]').value = 'discount';\
             f.querySelector('[name=level1_when_op]').value = 'gt'; return true;",
            json!([editor]),
        )
        .await;
    // The approvers' title previewed with a quote.
    browser
        .click(&format!("{editor} [data-preview-button]"))
        .await;
    browser
        .wait_until(
            "the preview",
            "document.querySelector('[data-testid=new-step] [data-testid=message-preview]').textContent.includes('ERP 一期报价：折扣 10%')",
        )
        .await;
    press(&browser, &format!("{editor} [data-testid=save-step]")).await;
    assert!(
        !browser.has("[data-testid=workflow-problems]").await,
        "saved: {}",
        browser.text("[data-testid=workflow-problems]").await
    );
    assert!(browser.has("[data-testid=step-approve]").await, "saved");
    // The starter notification becomes a bilingual "approved" message to the owner.
    browser.click("[data-testid=edit-step-tell_owner]").await;
    let notify = "[data-testid=step-tell_owner] [data-testid=step-editor-notify]";
    browser
        .fill(
            &format!("{notify} input[name=title_en]"),
            "Quote {{ record.name }} approved",
        )
        .await;
    browser
        .fill(
            &format!("{notify} input[name=title_zh]"),
            "报价 {{ record.name }} 已批准",
        )
        .await;
    press(&browser, &format!("{notify} [data-testid=save-step]")).await;
    browser.resize(1280, 1500).await;
    browser
        .run(
            "document.querySelector('[data-testid=flow]').scrollIntoView(); return true;",
            json!([]),
        )
        .await;
    browser
        .screenshot(&screenshot_path("builder-workflow-zh"))
        .await;
    press(&browser, "[data-testid=publish-workflow]").await;
    assert!(
        !browser.has("[data-testid=publish-workflow]").await,
        "published"
    );
    browser.close().await;
    let (_, definition) = admin
        .get("/api/v1/w/demo/definitions/workflow/big_discount")
        .await;
    let published = &definition["published"];
    assert_eq!(
        published["steps"][0]["levels"][0]["approvers"],
        json!(["owner_manager"]),
        "{definition}"
    );
    assert_eq!(
        published["steps"][0]["levels"][0]["deadline"],
        json!({"working_days": 2, "then": "escalate", "escalate_to": ["role:crm.sales_manager"]})
    );
    assert_eq!(
        published["steps"][0]["levels"][1]["when"],
        "record.discount != () && record.discount > 30"
    );

    // A rep's 25% quote waits for the rep's manager, who approves it on the quote's page.
    let id = quote("ERP 二期报价", 25).await;
    app.run_jobs_until_idle().await;
    let manager = Browser::open("zh-CN").await;
    manager
        .goto(&app.url(&format!("/w/demo/e/quote/{id}")))
        .await;
    manager.fill("#email", "mgr@example.com").await;
    manager.fill("#password", "user-password-123").await;
    manager
        .click("form[action='/login'] button[type=submit]")
        .await;
    manager
        .wait_until(
            "the quote's approval",
            "!!document.querySelector('[data-testid=approve]')",
        )
        .await;
    assert!(manager.html().await.contains("直属上级"));
    manager
        .fill("textarea[name=comment]", "同意，本季度重点客户")
        .await;
    manager.resize(1280, 1000).await;
    manager
        .screenshot(&screenshot_path("workflow-approve-zh"))
        .await;
    press(&manager, "[data-testid=approve]").await;
    manager.close().await;
    app.run_jobs_until_idle().await;
    let (_, record) = rep
        .get(&format!("/api/v1/w/demo/entities/quote/records/{id}"))
        .await;
    let (_, runs) = admin
        .get("/api/v1/w/demo/workflow-runs?workflow=big_discount")
        .await;
    assert_eq!(runs[0]["status"], "completed", "{runs}");
    let (_, inbox) = rep.get("/api/v1/w/demo/notifications").await;
    assert!(
        inbox.to_string().contains("Quote ERP 二期报价 approved")
            || inbox.to_string().contains("报价 ERP 二期报价 已批准"),
        "the owner is told: {inbox} {record}"
    );
}

/// An operations person brings leads over from a spreadsheet: Import on the list, the file, the
/// columns already mapped from their Chinese names, a check that names the bad line, then the
/// import, followed live, and the leads on the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_are_imported_from_a_spreadsheet_in_the_browser() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let browser = Browser::open("en").await;
    sign_in(&browser, &app, "/w/demo/e/lead").await;
    browser.click("[data-testid=import-link]").await;
    browser.find("[data-testid=import-upload]").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("leads.csv");
    std::fs::write(
        &file,
        "联系人姓名,公司名称,邮箱,线索来源,线索状态\n\
         张伟,北京星辰科技,zhang@example.com,官网表单,新线索\n\
         王芳,上海云杉,wang@example.com,传真,新线索\n\
         赵磊,成都天府,zhao@example.com,转介绍,已联系\n",
    )
    .expect("csv");
    browser
        .upload("[data-testid=import-upload] input[name=file]", &file)
        .await;
    browser.click("[data-testid=import-send]").await;
    browser.find("[data-testid=import-mapping]").await;
    let mapped = browser
        .run(
            "return [0, 1, 2, 3, 4].map(i => document.querySelector('[data-testid=map-' + i + ']').value);",
            json!([]),
        )
        .await;
    assert_eq!(
        mapped,
        json!(["name", "company", "email", "source", "status"]),
        "suggested from the Chinese headers"
    );
    browser.screenshot(&screenshot_path("import-mapping")).await;

    browser.click("[data-testid=import-check]").await;
    browser.find("[data-testid=import-state]").await;
    run_jobs_until(
        &app,
        &browser,
        "document.querySelector('[data-testid=import-problems]') && document.querySelector('[data-testid=import-run]')",
    )
    .await;
    browser
        .wait_until(
            "the check's report",
            "document.querySelector('[data-testid=import-problems]') && document.querySelector('[data-testid=import-run]')",
        )
        .await;
    let report = browser.text("[data-testid=import-problems]").await;
    assert!(
        report.contains('3') && report.contains("线索来源"),
        "{report}"
    );

    browser.click("[data-testid=import-run]").await;
    // The check's page has a state too: wait for the run's page (its button gone), then run
    // the job it queued, as often as it takes under load.
    browser
        .wait_until(
            "the run's page",
            "!document.querySelector('[data-testid=import-run]') && document.querySelector('[data-testid=import-state]')",
        )
        .await;
    run_jobs_until(
        &app,
        &browser,
        "document.querySelector('[data-testid=import-state]') && document.querySelector('[data-testid=import-state]').dataset.status === 'done'",
    )
    .await;
    browser
        .wait_until(
            "the import done",
            "document.querySelector('[data-testid=import-state]').dataset.status === 'done'",
        )
        .await;
    let counters = browser.text("[data-testid=import-counters]").await;
    assert!(counters.contains("2 new"), "{counters}");
    browser.screenshot(&screenshot_path("import-done")).await;
    browser.goto(&app.url("/w/demo/e/lead")).await;
    let list = browser.html().await;
    assert!(
        list.contains("张伟") && list.contains("赵磊") && !list.contains("王芳"),
        "{list}"
    );
    browser.close().await;
}

/// Someone types part of a company's name into the search box of any page (Chinese, on a year
/// of demo data), gets the records grouped by entity, and opens one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_found_from_the_search_box() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::open("zh-CN").await;
    sign_in(&browser, &app, "/w/demo/").await;
    browser.fill("#global-search", "科技").await;
    browser
        .run(
            "document.querySelector('[data-testid=search-box]').requestSubmit(); return true;",
            json!([]),
        )
        .await;
    browser.find("[data-testid=search-hit]").await;
    assert!(browser.url().await.contains("/w/demo/search?q="));
    let groups = browser.text("main").await;
    assert!(groups.contains("客户"), "{groups}");
    browser.screenshot(&screenshot_path("search-zh")).await;
    browser
        .click("[data-testid=search-group-customer] [data-testid=search-hit] a")
        .await;
    browser
        .wait_until(
            "the customer's page",
            "location.pathname.startsWith('/w/demo/e/customer/')",
        )
        .await;
    assert!(browser.html().await.contains("科技"));
    browser.close().await;
}

/// Working together: the admin mentions a colleague in a comment on a customer (the picker
/// offers her after "@"), and the colleague, signed in on her own browser, sees the unread
/// notification, opens it and lands on the comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_mentioned_in_a_comment_sees_the_notification() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin().await;
    common::join_member(&app, &admin, "lin.fang@example.com", "crm.sales_manager").await;
    let (status, acme) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "星辰科技", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    assert!(status.is_success(), "{acme}");
    let record = format!("/w/demo/e/customer/{}", acme["id"].as_str().expect("id"));

    let browser = Browser::open("en").await;
    sign_in(&browser, &app, &record).await;
    browser
        .fill("#comment-body", "**Quote** is ready, please call them @lin")
        .await;
    browser.find(".mention-list li").await;
    assert!(browser.text(".mention-list").await.contains("lin.fang"));
    browser
        .screenshot(&screenshot_path("comment-mention"))
        .await;
    browser.click(".mention-list li").await;
    let typed = browser
        .run(
            "return document.querySelector('#comment-body').value;",
            json!([]),
        )
        .await;
    assert!(
        typed
            .as_str()
            .is_some_and(|t| t.contains("@[lin.fang](user:")),
        "the token was inserted: {typed}"
    );
    browser
        .click("[data-testid=comment-form] button[type=submit]")
        .await;
    browser.find(".comment-event .mention").await;
    assert_eq!(browser.text(".comment-event .mention").await, "@lin.fang");
    assert_eq!(browser.text(".comment-event strong").await, "Quote");
    browser.close().await;

    let colleague = Browser::open("en").await;
    colleague.goto(&app.url("/w/demo/")).await;
    colleague.fill("#email", "lin.fang@example.com").await;
    colleague.fill("#password", "user-password-123").await;
    colleague
        .click("form[action='/login'] button[type=submit]")
        .await;
    colleague
        .wait_until("the signed-in page", "!document.querySelector('#password')")
        .await;
    assert_eq!(colleague.text(".badge-link .count").await, "1");
    colleague.goto(&app.url("/w/demo/notifications")).await;
    assert!(
        colleague
            .text(".notifications li.unread")
            .await
            .contains("mentioned you on Customer “星辰科技”")
    );
    colleague
        .screenshot(&screenshot_path("notifications"))
        .await;
    colleague.click(".notifications li.unread a").await;
    colleague
        .wait_until(
            "the customer's page",
            "location.pathname.startsWith('/w/demo/e/customer/')",
        )
        .await;
    assert!(colleague.text(".comment-event").await.contains("@lin.fang"));
    assert!(!colleague.has(".badge-link .count").await, "read now");
    colleague.close().await;
}

/// The follow-up calendar: a month of follow-ups in Chinese; dragging one to another day
/// reschedules it (same time of day) through the same edit path as any change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_is_dragged_to_another_day_in_the_calendar() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin().await;
    let (_, customer) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "星辰科技", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    let customer = customer["id"].as_str().expect("customer").to_owned();
    let mut id = String::new();
    for (subject, at) in [
        ("电话回访", "2026-12-09T02:00:00Z"),
        ("上门拜访", "2026-12-11T06:30:00Z"),
        ("发送报价", "2026-12-22T01:00:00Z"),
    ] {
        let (status, made) = admin
            .post(
                "/api/v1/w/demo/entities/follow_up/records",
                json!({"fields": {"subject": subject, "customer": customer, "way": "call", "followed_at": at}}),
            )
            .await;
        assert!(status.is_success(), "{made}");
        if id.is_empty() {
            id = made["id"].as_str().expect("id").to_owned();
        }
    }
    let browser = Browser::open("zh-CN").await;
    sign_in(
        &browser,
        &app,
        "/w/demo/e/follow_up/calendar?mode=month&date=2026-12-09",
    )
    .await;
    let item = format!(".cal-event[data-id='{id}']");
    assert!(
        browser
            .has(&format!(".cal-day[data-date='2026-12-09'] {item}"))
            .await
    );
    assert!(
        browser
            .text("[data-testid=calendar-title]")
            .await
            .contains("2026年12月")
    );
    browser
        .run(
            "const item = document.querySelector(arguments[0]);\
             const day = document.querySelector(\".cal-day[data-date='2026-12-16']\");\
             const data = new DataTransfer();\
             item.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: data}));\
             day.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: data}));\
             day.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: data}));\
             item.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: data}));",
            json!([item]),
        )
        .await;
    browser
        .wait_until(
            "the move to be saved",
            &format!("document.querySelector(\"{item}\").dataset.version === '2'"),
        )
        .await;
    assert!(
        browser
            .has(&format!(".cal-day[data-date='2026-12-16'] {item}"))
            .await
    );
    browser.screenshot(&screenshot_path("calendar-zh")).await;
    let (_, moved) = admin
        .get(&format!("/api/v1/w/demo/entities/follow_up/records/{id}"))
        .await;
    assert_eq!(moved["fields"]["followed_at"], "2026-12-16T02:00:00.000Z");
    // After a reload the follow-up is drawn on its new day.
    browser
        .goto(&app.url("/w/demo/e/follow_up/calendar?mode=month&date=2026-12-09"))
        .await;
    assert!(
        browser
            .has(&format!(".cal-day[data-date='2026-12-16'] {item}"))
            .await
    );
    browser.close().await;
}

/// A quote printed from its page: the bilingual Sales CRM template on an A4 sheet, with its
/// lines and totals, opened from the record's print button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_is_printed_from_its_page() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin().await;
    let post = |entity: &'static str, fields: serde_json::Value| {
        let admin = &admin;
        async move {
            let (status, made) = admin
                .post(
                    &format!("/api/v1/w/demo/entities/{entity}/records"),
                    json!({ "fields": fields }),
                )
                .await;
            assert!(status.is_success(), "{made}");
            made["id"].as_str().expect("id").to_owned()
        }
    };
    let customer = post(
        "customer",
        json!({"name": "北京星辰科技有限公司", "lifecycle_stage": "first_contact"}),
    )
    .await;
    let opportunity = post(
        "opportunity",
        json!({"name": "年度采购", "customer": customer, "stage": "proposal"}),
    )
    .await;
    let quote = post(
        "quote",
        json!({"name": "CRM 年度订阅", "opportunity": opportunity, "customer": customer,
               "amount": "120000.00", "discount": 10, "valid_until": "2027-01-31",
               "items": [
                   {"product": "专业版席位 Pro seats", "quantity": 50, "unit_price": "2000.00", "line_amount": "100000.00"},
                   {"product": "实施与培训 Onboarding", "quantity": 1, "unit_price": "20000.00", "line_amount": "20000.00"}
               ]}),
    )
    .await;
    let browser = Browser::open("zh-CN").await;
    sign_in(&browser, &app, &format!("/w/demo/e/quote/{quote}")).await;
    let link = browser
        .run(
            "return document.querySelector('[data-testid=print-quote_print]').getAttribute('href');",
            json!([]),
        )
        .await;
    let link = link.as_str().expect("print link").to_owned();
    browser.goto(&app.url(&link)).await;
    browser.find("[data-testid=printed] table.lines").await;
    let text = browser.text("[data-testid=printed]").await;
    assert!(text.contains("报价单号 Quote No."), "{text}");
    assert!(
        text.contains("专业版席位 Pro seats") && text.contains("¥108,000.00"),
        "{text}"
    );
    browser.resize(1000, 1300).await;
    browser.screenshot(&screenshot_path("quote-print-zh")).await;
    browser.close().await;
}

/// An email sent from a customer's page: the composer writes the Sales CRM's follow-up to the
/// customer's contact, the sender changes it and sends it, the timeline shows it sent (a real
/// SMTP listener took it), and the contact's reply to the workspace's inbound address appears
/// on the same timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_sent_from_a_customers_page_and_the_reply_lands_there() {
    let smtp = SmtpSink::start().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            inbound: true,
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let (_, customer) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "北京星辰科技有限公司", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    let customer = customer["id"].as_str().expect("id").to_owned();
    let (status, contact) = admin
        .post(
            "/api/v1/w/demo/entities/contact/records",
            json!({"fields": {"name": "李娜", "customer": customer, "email": "li.na@example.com"}}),
        )
        .await;
    assert!(status.is_success(), "{contact}");
    let record = format!("/w/demo/e/customer/{customer}");
    let browser = Browser::open("zh-CN").await;
    sign_in(&browser, &app, &record).await;
    browser.click("[data-testid=compose-email]").await;
    browser.find("[data-testid=email-form]").await;
    browser
        .run(
            "document.querySelector('[data-testid=email-template]').value = 'customer_follow_up';",
            json!([]),
        )
        .await;
    browser.click("[data-testid=use-template]").await;
    browser
        .wait_until(
            "the template's subject",
            "document.querySelector('[data-testid=email-subject]').value.includes('北京星辰科技有限公司')",
        )
        .await;
    let to = browser
        .run(
            "return document.querySelector('[data-testid=email-to]').value;",
            json!([]),
        )
        .await;
    assert_eq!(to, "li.na@example.com");
    let body = browser
        .run(
            "return document.querySelector('[data-testid=email-body]').value;",
            json!([]),
        )
        .await;
    assert!(
        body.as_str().is_some_and(|b| b.starts_with("李娜，您好")),
        "{body}"
    );
    browser
        .fill(
            "[data-testid=email-body]",
            "李娜，您好：\n\n附上我们讨论的方案，周四下午方便通个电话吗？\n\n王强\n示范销售团队",
        )
        .await;
    browser.resize(1200, 1000).await;
    browser
        .screenshot(&screenshot_path("email-compose-zh"))
        .await;
    browser.click("[data-testid=email-send]").await;
    browser.find("[data-testid=timeline-email]").await;
    assert!(browser.url().await.contains(&record));
    app.run_jobs_until_idle().await;
    let sent = smtp.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("周四下午方便通个电话吗"), "{}", sent[0]);
    let message_id = sent[0]
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("a Message-ID")
        .to_owned();
    let (_, inbound) = admin.get("/api/v1/w/demo/inbound-address").await;
    let inbound = inbound["address"].as_str().expect("address").to_owned();
    deliver_inbound(
        &app,
        "li.na@example.com",
        &inbound,
        &format!(
            "From: =?utf-8?b?5p2O5aic?= <li.na@example.com>\nTo: {inbound}\nSubject: Re: follow-up\nMessage-ID: <reply-7@example.com>\nIn-Reply-To: {message_id}\nContent-Type: text/plain; charset=utf-8\n\n可以，周四下午三点见。\n"
        ),
    )
    .await;
    browser.goto(&app.url(&record)).await;
    browser.find(".email-event.in").await;
    let timeline = browser.text("[data-testid=timeline]").await;
    assert!(timeline.contains("已发送"), "{timeline}");
    assert!(timeline.contains("李娜 <li.na@example.com>"), "{timeline}");
    browser
        .run(
            "document.querySelectorAll('.email-details').forEach(d => d.open = true);",
            json!([]),
        )
        .await;
    let timeline = browser.text("[data-testid=timeline]").await;
    assert!(timeline.contains("可以，周四下午三点见。"), "{timeline}");
    browser.resize(1200, 1100).await;
    browser
        .screenshot(&screenshot_path("email-timeline-zh"))
        .await;
    browser.close().await;
}
