//! Comments, mentions and the notification centre through the API and pages, on both
//! databases: a comment mentions members and teams who can read the record (and nobody else),
//! a mention reaches the person in the app and by email (a real SMTP listener) as their
//! settings say, authors edit and delete with every earlier body kept, bad comments change
//! nothing, and a daily digest gathers what someone has not read.

mod common;

use common::{
    Backend, Client, Options, PageClient, SmtpSink, TestApp, assert_problem, join_member,
    publish_definition,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn spawn(backend: Backend, smtp: &SmtpSink) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            configure: |config| {
                config.session_idle_minutes = 60 * 24 * 30;
                config.session_max_hours = 24 * 30;
            },
            ..Options::default()
        },
    )
    .await
}

async fn customer(client: &Client, name: &str) -> String {
    let (status, body) = client
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": name, "lifecycle_stage": "first_contact"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn comments_of(id: &str) -> String {
    format!("{W}/entities/customer/records/{id}/comments")
}

async fn comment(client: &Client, record: &str, body: &str) -> (StatusCode, Value) {
    client
        .post(&comments_of(record), json!({"body": body}))
        .await
}

async fn inbox(client: &Client) -> Value {
    let (status, body) = client.get(&format!("{W}/notifications")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn mail_to(smtp: &SmtpSink, email: &str) -> Vec<String> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.contains(&format!("To: {email}")))
        .collect()
}

fn user(name: &str, id: &str) -> String {
    format!("@[{name}](user:{id})")
}

async fn comments_mention_only_people_who_can_read_the_record(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, &smtp).await;
    let admin = app.admin().await;
    let (li, li_id) = join_member(&app, &admin, "li@example.com", "crm.sales_manager").await;
    let (rep, rep_id) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let (support, support_id) = join_member(&app, &admin, "sup@example.com", "crm.support").await;
    let acme = customer(&admin, "北京星辰科技").await;

    // A mention with markup: the name in the token is only a hint, rewritten to the person's.
    let (status, first) = comment(
        &admin,
        &acme,
        &format!(
            "**Call** {} about the quote\n\n- price\n- https://example.com/q",
            user("Boss", &li_id)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(
        first["body"]
            .as_str()
            .is_some_and(|b| b.contains(&user("li", &li_id))),
        "{first}"
    );
    let html = first["html"].as_str().expect("html");
    assert!(html.contains("<strong>Call</strong>"), "{html}");
    assert!(html.contains("<span class=\"mention\""), "{html}");
    assert!(html.contains("<ul><li>price</li>"), "{html}");
    assert!(html.contains("href=\"https://example.com/q\""), "{html}");
    assert_eq!(first["mentions"][0]["notified"], json!([li_id]));
    assert_eq!(first["version"], 1);
    let first_id = first["id"].as_str().expect("id").to_owned();

    let told = inbox(&li).await;
    assert_eq!(told["unread"], 1, "{told}");
    let note = &told["notifications"][0];
    assert_eq!(note["kind"], "mention");
    assert_eq!(note["entity"], "customer");
    assert_eq!(note["record_id"], json!(acme));
    assert!(
        note["title"]
            .as_str()
            .is_some_and(|t| t.contains("mentioned you") && t.contains("北京星辰科技")),
        "{note}"
    );
    assert!(
        note["body"]
            .as_str()
            .is_some_and(|b| b.contains("@li about the quote")),
        "{note}"
    );
    app.run_jobs_until_idle().await;
    let mails = mail_to(&smtp, "li@example.com");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("@li about the quote"), "{}", mails[0]);
    assert!(
        mails[0].contains(&format!("/w/demo/e/customer/{acme}#comment-{first_id}")),
        "{}",
        mails[0]
    );

    // Refusals change nothing and tell nobody.
    let unknown = "0190a0b0-0000-7000-8000-000000000001";
    for (body, code) in [
        (user("rep", &rep_id), "mention_cannot_see"),
        (
            format!("**{}** please", user("rep", &rep_id)),
            "mention_cannot_see",
        ),
        (user("ghost", unknown), "unknown_mention"),
        (format!("@[x](team:{unknown})"), "unknown_mention"),
        ("hi @[x](user:not-an-id)".to_owned(), "bad_mention"),
        ("<script>alert(1)</script>".to_owned(), "html_not_allowed"),
        ("[win](javascript:alert(1))".to_owned(), "unsafe_link"),
        ("   ".to_owned(), "required"),
        ("长".repeat(10_001), "too_long"),
    ] {
        let (status, problem) = comment(&admin, &acme, &body).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["pointer"], "/body", "{problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{problem}");
    }
    let (status, problem) = admin
        .post(&comments_of(&acme), json!({"body": "hi", "pin": true}))
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = admin.get(&comments_of(&acme)).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(inbox(&rep).await["unread"], 0);
    assert_eq!(inbox(&li).await["unread"], 1);

    // Someone who cannot read the record learns nothing of it or of its comments.
    let (status, problem) = rep.get(&comments_of(&acme)).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    let (status, problem) = comment(&rep, &acme, "hello").await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    let (status, problem) = rep
        .patch(
            &format!("{W}/comments/{first_id}"),
            json!({"body": "mine now"}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    for path in [
        format!("{W}/comments/{first_id}/revisions"),
        format!("{W}/entities/customer/records/{acme}/mentionable?q="),
    ] {
        let (status, problem) = rep.get(&path).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
    }
    let (status, problem) = rep.delete(&format!("{W}/comments/{first_id}")).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);

    // The picker offers those who can read the record, and teams with such people.
    let (_, east) = admin
        .post(
            &format!("{W}/org/units"),
            json!({"name": "East", "kind": "team"}),
        )
        .await;
    let east = east["id"].as_str().expect("team").to_owned();
    for id in [&li_id, &rep_id] {
        let (status, body) = admin
            .patch(&format!("{W}/members/{id}"), json!({"unit_id": east}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, offered) = admin
        .get(&format!(
            "{W}/entities/customer/records/{acme}/mentionable?q="
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{offered}");
    let offered: Vec<String> = offered
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            format!(
                "{}:{}:{}",
                c["kind"].as_str().unwrap_or(""),
                c["name"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        offered.contains(&"user:li:li@example.com".to_owned()),
        "{offered:?}"
    );
    assert!(
        offered.contains(&"user:sup:sup@example.com".to_owned()),
        "{offered:?}"
    );
    assert!(offered.contains(&"team:East:2".to_owned()), "{offered:?}");
    assert!(!offered.iter().any(|o| o.contains("rep@")), "{offered:?}");
    let (status, problem) = admin
        .get(&format!(
            "{W}/entities/customer/records/{acme}/mentionable?limit=0"
        ))
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);

    // A team mention reaches its people who can read the record: Li, not the rep.
    let (status, team) = comment(&admin, &acme, &format!("@[East](team:{east}) please look")).await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    assert_eq!(team["mentions"][0]["kind"], "team");
    assert_eq!(team["mentions"][0]["notified"], json!([li_id]));
    assert_eq!(inbox(&li).await["unread"], 2);
    assert_eq!(inbox(&rep).await["unread"], 0);

    // Edits: the author only, on the version they read; newly mentioned people are told,
    // those told before are not told again.
    let path = format!("{W}/comments/{first_id}");
    let (status, problem) = li.patch(&path, json!({"body": "rewritten"})).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN);
    let (status, edited) = admin
        .patch(
            &path,
            json!({"body": format!("{} and {} call *today*", user("li", &li_id), user("s", &support_id)), "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["version"], 2);
    assert!(edited["edited_at"].is_string(), "{edited}");
    assert!(
        edited["html"]
            .as_str()
            .is_some_and(|h| h.contains("<em>today</em>"))
    );
    assert_eq!(
        inbox(&li).await["unread"],
        2,
        "Li was told of this comment already"
    );
    assert_eq!(inbox(&support).await["unread"], 1);
    let (status, problem) = admin
        .patch(&path, json!({"body": "late", "version": 1}))
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (status, problem) = admin
        .patch(&path, json!({"body": user("rep", &rep_id), "version": 2}))
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);

    // Earlier versions: for the author and admins.
    let (status, revisions) = admin.get(&format!("{path}/revisions")).await;
    assert_eq!(status, StatusCode::OK, "{revisions}");
    assert_eq!(revisions.as_array().map(Vec::len), Some(1));
    assert_eq!(revisions[0]["change"], "edited");
    assert!(
        revisions[0]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("**Call**")),
        "{revisions}"
    );
    let (status, problem) = li.get(&format!("{path}/revisions")).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN);

    // Deletes: the author or an admin; the comment stays as a placeholder.
    let (status, problem) = li.delete(&path).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN);
    let (status, _) = admin.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        inbox(&li).await["unread"],
        1,
        "the deleted comment's words left Li's inbox; the team mention stays"
    );
    let (status, _) = admin.delete(&path).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "deleting again changes nothing"
    );
    let (status, problem) = admin.patch(&path, json!({"body": "back"})).await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (_, listed) = li.get(&comments_of(&acme)).await;
    let gone = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["id"] == json!(first_id))
        .expect("placeholder");
    assert!(gone["deleted_at"].is_string(), "{gone}");
    assert_eq!(gone["body"], "");
    assert_eq!(gone["can_edit"], false);
    let (_, revisions) = admin.get(&format!("{path}/revisions")).await;
    assert_eq!(revisions.as_array().map(Vec::len), Some(2));
    assert_eq!(revisions[1]["change"], "deleted");

    // An admin may remove someone else's comment; its author sees it gone.
    let (status, own) = comment(&li, &acme, "my note").await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    assert_eq!(own["can_edit"], true);
    let (status, _) = admin
        .delete(&format!("{W}/comments/{}", own["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // A deleted record keeps its conversation but takes no new comments.
    let (status, _) = admin
        .delete(&format!("{W}/entities/customer/records/{acme}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, listed) = admin.get(&comments_of(&acme)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    let (status, problem) = comment(&admin, &acme, "after").await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    let (status, problem) = admin
        .patch(
            &format!("{W}/comments/{}", team["id"].as_str().expect("id")),
            json!({"body": "changed after the delete"}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
}

async fn settings_choose_channels_and_a_daily_digest(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, &smtp).await;
    let admin = app.admin().await;
    let (li, li_id) = join_member(&app, &admin, "li@example.com", "crm.sales_manager").await;
    let acme = customer(&admin, "Acme").await;
    let settings = format!("{W}/notifications/settings");

    let (status, defaults) = li.get(&settings).await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert_eq!(
        defaults,
        json!({"mention": {"in_app": true, "email": true},
               "workflow": {"in_app": true, "email": true},
               "reply": {"in_app": true, "email": false},
               "digest": {"enabled": false, "hour": 8}})
    );
    for (body, pointer) in [
        (json!({"mention": {"sms": true}}), "/mention"),
        (json!({"workflow": {"in_app": "yes"}}), "/workflow/in_app"),
        (
            json!({"digest": {"enabled": true, "hour": 24}}),
            "/digest/hour",
        ),
    ] {
        let (status, problem) = li.put(&settings, body).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["errors"][0]["pointer"]
                .as_str()
                .is_some_and(|p| p.starts_with(pointer)),
            "{problem}"
        );
    }
    let (_, unchanged) = li.get(&settings).await;
    assert_eq!(unchanged, defaults, "refusals change nothing");

    // Mentions in the app only.
    let (status, saved) = li
        .put(
            &settings,
            json!({"mention": {"in_app": true, "email": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["mention"]["email"], false);
    assert_eq!(
        saved["workflow"]["email"], true,
        "missing parts keep defaults"
    );
    let (status, _) = comment(&admin, &acme, &format!("{} hi", user("li", &li_id))).await;
    assert_eq!(status, StatusCode::CREATED);
    app.run_jobs_until_idle().await;
    assert_eq!(inbox(&li).await["unread"], 1);
    assert!(mail_to(&smtp, "li@example.com").is_empty());

    // Workflow messages by email only.
    li.put(
        &settings,
        json!({"mention": {"in_app": true, "email": false}, "workflow": {"in_app": false, "email": true}}),
    )
    .await;
    let (status, body) = publish_definition(
        &admin,
        "workflow",
        "tell_li",
        json!({
            "label": {"en": "Tell Li"},
            "entity": "customer",
            "trigger": {"type": "record_created"},
            "steps": [{"id": "tell", "type": "notify", "to": [format!("user:{li_id}")],
                       "channels": ["in_app", "email"], "title": "New customer {{ record.name }}"}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    customer(&admin, "Globex").await;
    app.run_jobs_until_idle().await;
    assert_eq!(
        inbox(&li).await["unread"],
        1,
        "no workflow message in the app"
    );
    let mails = mail_to(&smtp, "li@example.com");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("New customer Globex"), "{}", mails[0]);

    // A daily digest of what is unread, once a day.
    let (status, saved) = li
        .put(
            &settings,
            json!({"mention": {"in_app": true, "email": false}, "digest": {"enabled": true, "hour": 9}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    for text in ["first", "second"] {
        let (status, _) = comment(&admin, &acme, &format!("{} {text}", user("li", &li_id))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, all) = li.get(&format!("{W}/notifications?unread=true")).await;
    assert_eq!(all["unread"], 3, "{all}");
    let read = all["notifications"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, marked) = li
        .post(&format!("{W}/notifications/{read}/read"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    let before = smtp.messages().len();
    // To the next 09:30 in the workspace's zone (a fixed jump would land before or after the
    // digest hour depending on when the test runs).
    let now = app.services.clock().now();
    let zone = chrono_tz::Asia::Shanghai;
    let local = now.with_timezone(&zone).date_naive();
    let at_half_past_nine = |day: chrono::NaiveDate| {
        use chrono::TimeZone;
        zone.from_local_datetime(&day.and_hms_opt(9, 30, 0).expect("time"))
            .single()
            .expect("09:30 exists")
            .with_timezone(&chrono::Utc)
    };
    let mut next = at_half_past_nine(local);
    if next <= now {
        next = at_half_past_nine(local.succ_opt().expect("tomorrow"));
    }
    app.advance(next - now);
    app.services.worker().schedule_housekeeping().await;
    app.run_jobs_until_idle().await;
    let digests: Vec<String> = mail_to(&smtp, "li@example.com")
        .into_iter()
        .filter(|m| m.contains("unread notifications"))
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    assert_eq!(smtp.messages().len(), before + 1);
    // Unread since the digest was turned on: "first"; "second" was read, "hi" came before.
    let digest = &digests[0];
    assert!(digest.contains("1 unread notifications"), "{digest}");
    assert!(!digest.contains("@li hi"), "{digest}");
    assert!(digest.contains("@li first"), "{digest}");
    assert!(
        !digest.contains("@li second"),
        "the read one is not listed: {digest}"
    );
    // The next hour's run sends nothing more that day.
    app.advance(chrono::Duration::hours(1));
    app.services.worker().schedule_housekeeping().await;
    app.run_jobs_until_idle().await;
    assert_eq!(smtp.messages().len(), before + 1);
}

async fn pages_comment_mention_and_open_the_notification(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, &smtp).await;
    let admin = app.admin().await;
    let (_, li_id) = join_member(&app, &admin, "li@example.com", "crm.sales_manager").await;
    let acme = customer(&admin, "Acme").await;
    // Li reads Chinese: what tells her is written in it.
    let li_page = PageClient::sign_in(&app, "li@example.com", "user-password-123", "zh-CN").await;
    let admin_page =
        PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let record = format!("/w/demo/e/customer/{acme}");
    let (status, location, _) = admin_page
        .post(
            &format!("{record}/comments"),
            &[("body", &format!("**Please** call {}", user("li", &li_id)))],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with(&format!("{record}#comment-")),
        "{location}"
    );
    let (_, page) = admin_page.get(&record).await;
    assert!(
        page.contains("<strong>Please</strong> call <span class=\"mention\""),
        "comment drawn"
    );
    assert!(page.contains("data-mentions="), "the picker is offered");

    // A refused comment redraws the page with the text kept and the reason.
    let (status, _, page) = admin_page
        .post(
            &format!("{record}/comments"),
            &[("body", "<b>bold</b> plan")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("&lt;b&gt;bold&lt;"), "draft kept");
    assert!(
        page.contains("data-testid=\"comment-error\""),
        "reason shown"
    );

    // The picker suggests Li to the admin.
    let (status, picked) = admin_page.get(&format!("{record}/mentionable?q=li")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(picked.contains(&li_id), "{picked}");

    // Li's inbox, in Chinese; opening the notification reads it and shows the record.
    let (_, inbox_page) = li_page.get("/w/demo/notifications").await;
    assert!(
        inbox_page.contains("在客户「Acme」中提到了你"),
        "{inbox_page}"
    );
    let api = inbox(&app.login("li@example.com", "user-password-123").await).await;
    let id = api["notifications"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = li_page
        .get(&format!("/w/demo/notifications/{id}/open"))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "opening goes to the record");
    let api = inbox(&app.login("li@example.com", "user-password-123").await).await;
    assert_eq!(api["unread"], 0);
    let (status, _) = li_page
        .get("/w/demo/notifications/0190a0b0-0000-7000-8000-000000000001/open")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Settings from the page: boxes not sent are channels turned off.
    let (status, _, page) = li_page
        .post(
            "/w/demo/notifications/settings",
            &[
                ("mention.in_app", "on"),
                ("reply.email", "on"),
                ("digest.enabled", "on"),
                ("digest.hour", "7"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"saved\""));
    let (_, saved) = app
        .login("li@example.com", "user-password-123")
        .await
        .get(&format!("{W}/notifications/settings"))
        .await;
    assert_eq!(
        saved,
        json!({"mention": {"in_app": true, "email": false},
               "workflow": {"in_app": false, "email": false},
               "reply": {"in_app": false, "email": true},
               "digest": {"enabled": true, "hour": 7}})
    );
}

both_databases!(
    comments_mention_only_people_who_can_read_the_record,
    settings_choose_channels_and_a_daily_digest,
    pages_comment_mention_and_open_the_notification,
);
