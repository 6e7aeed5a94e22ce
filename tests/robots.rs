//! Chat-robot notifications on both databases: admins register WeCom, DingTalk and Feishu
//! group robots; a workflow's notify step posts to them through the durable outbox; a local
//! server checks each service's message format and signature as the service does, refuses a
//! wrong secret or a busy moment, and the post is retried until it lands.

mod common;

use common::{Backend, Client, RobotServer, TestApp, assert_problem, join_member};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn register(admin: &Client, body: Value) -> Value {
    let (status, robot) = admin.post(&format!("{W}/chat-robots"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{robot}");
    robot
}

async fn customer(admin: &Client, name: &str) -> String {
    let (status, body) = admin
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": name, "lifecycle_stage": "first_contact"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// Accepted posts per service, as `service: text` (the title and body, whatever the format).
fn posts(server: &RobotServer) -> Vec<String> {
    server
        .accepted()
        .into_iter()
        .map(|(service, body)| {
            let text = match service.as_str() {
                "wecom" => body["markdown"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                "dingtalk" => body["markdown"]["text"].as_str().unwrap_or("").to_owned(),
                _ => body["content"]["post"]["zh_cn"].to_string(),
            };
            format!("{service}: {text}")
        })
        .collect()
}

async fn workflows_post_to_group_chat_robots(backend: Backend) {
    let server = RobotServer::start().await;
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, _) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;

    register(
        &admin,
        json!({"key": "sales_wecom", "kind": "wecom", "url": server.wecom_url(), "description": "销售群"}),
    )
    .await;
    let ding = register(
        &admin,
        json!({"key": "sales_ding", "kind": "dingtalk", "url": server.dingtalk_url(), "secret": common::DINGTALK_SECRET}),
    )
    .await;
    assert_eq!(ding["signed"], true);
    assert!(
        ding.get("secret").is_none(),
        "the secret is never shown: {ding}"
    );
    assert!(
        !ding["url"]
            .as_str()
            .unwrap_or("")
            .contains(common::DINGTALK_TOKEN),
        "the token is hidden: {ding}"
    );
    register(
        &admin,
        json!({"key": "sales_feishu", "kind": "feishu", "url": server.feishu_url(), "secret": common::FEISHU_SECRET}),
    )
    .await;

    // Refusals: pointers, no change.
    for (body, pointer) in [
        (
            json!({"key": "x", "kind": "slack", "url": server.wecom_url()}),
            "/kind",
        ),
        (
            json!({"key": "x", "kind": "wecom", "url": "not a url"}),
            "/url",
        ),
        (
            json!({"key": "Sales", "kind": "wecom", "url": server.wecom_url()}),
            "/key",
        ),
        (
            json!({"key": "x", "kind": "wecom", "url": server.wecom_url(), "secret": "s"}),
            "/secret",
        ),
        (
            json!({"key": "x", "kind": "wecom", "url": server.wecom_url(), "token": "t"}),
            "",
        ),
    ] {
        let (status, problem) = admin.post(&format!("{W}/chat-robots"), body).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["errors"][0]["pointer"]
                .as_str()
                .is_some_and(|p| p.starts_with(pointer)),
            "{problem}"
        );
    }
    let (status, problem) = admin
        .post(
            &format!("{W}/chat-robots"),
            json!({"key": "sales_ding", "kind": "dingtalk", "url": server.dingtalk_url()}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (status, problem) = rep.get(&format!("{W}/chat-robots")).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN);
    let (status, problem) = admin.get(&format!("{W}/chat-robots/nobody")).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    let (_, listed) = admin.get(&format!("{W}/chat-robots")).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    // A notify step with no recipients must post somewhere.
    let (status, problem) = common::publish_definition(
        &admin,
        "workflow",
        "nobody",
        json!({"label": {"en": "Nobody"}, "entity": "customer", "trigger": {"type": "record_created"},
               "steps": [{"id": "tell", "type": "notify", "to": [], "title": "x"}]}),
    )
    .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"][0]["pointer"], "/document/steps/0/to",
        "{problem}"
    );

    let (status, body) = common::publish_definition(
        &admin,
        "workflow",
        "tell_the_group",
        json!({
            "label": {"en": "Tell the sales group"},
            "entity": "customer",
            "trigger": {"type": "record_created"},
            "steps": [{"id": "tell", "type": "notify", "to": [],
                       "channels": ["robot:sales_wecom", "robot:sales_ding", "robot:sales_feishu", "robot:not_registered"],
                       "title": {"en": "New customer {{ record.name }}", "zh-CN": "新客户：{{ record.name }}"},
                       "body": "阶段 {{ record.lifecycle_stage }}"}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let acme = customer(&admin, "星辰科技").await;
    app.run_jobs_until_idle().await;
    let mut got = posts(&server);
    got.sort();
    assert_eq!(got.len(), 3, "{got:?} refused: {:?}", server.refused());
    assert!(
        got[0].starts_with("dingtalk: #### 新客户：星辰科技"),
        "{got:?}"
    );
    assert!(got[1].contains("\"title\":\"新客户：星辰科技\""), "{got:?}");
    assert!(
        got[2].starts_with("wecom: **新客户：星辰科技**\n阶段 first_contact"),
        "{got:?}"
    );
    let link = format!("/w/demo/e/customer/{acme}");
    assert!(
        got.iter().all(|p| p.contains(&link)),
        "each post links the record: {got:?}"
    );
    assert!(server.refused().is_empty(), "{:?}", server.refused());
    let (_, runs) = admin
        .get(&format!("{W}/workflow-runs?workflow=tell_the_group"))
        .await;
    let (_, run) = admin
        .get(&format!(
            "{W}/workflow-runs/{}",
            runs[0]["id"].as_str().expect("run")
        ))
        .await;
    let channels = &run["steps"][0]["output"]["channels"];
    assert!(channels["robot:sales_ding"]["queued"].is_string(), "{run}");
    assert!(
        channels["robot:not_registered"]["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("not_registered")),
        "{run}"
    );

    // The workflow designer offers the registered robots as channels and keeps one it does
    // not know.
    let designer =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (status, html) = designer.get("/w/demo/build/workflows/tell_the_group").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("value=\"robot:sales_feishu\" checked"),
        "{html}"
    );
    assert!(html.contains("Chat robot sales_ding (DingTalk)"), "{html}");
    assert!(
        html.contains("value=\"robot:not_registered\" checked"),
        "{html}"
    );

    // A busy service: the post is retried from the outbox until it lands, once.
    server.busy_for(3);
    customer(&admin, "Globex").await;
    app.run_jobs_until_idle().await;
    assert_eq!(server.accepted().len(), 3, "all three were busy");
    for _ in 0..3 {
        app.advance(chrono::Duration::minutes(30));
        app.run_jobs_until_idle().await;
    }
    assert_eq!(server.accepted().len(), 6, "{:?}", posts(&server));

    // A wrong secret is refused by the service's signature check; mended, the post lands.
    let (status, body) = admin
        .patch(
            &format!("{W}/chat-robots/sales_feishu"),
            json!({"secret": "wrong"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, queued) = admin
        .post(&format!("{W}/chat-robots/sales_feishu/test"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    app.run_jobs_until_idle().await;
    assert!(
        server
            .refused()
            .iter()
            .any(|(service, why)| service == "feishu" && why.starts_with("sign match fail")),
        "{:?}",
        server.refused()
    );
    assert_eq!(server.accepted().len(), 6);
    admin
        .patch(
            &format!("{W}/chat-robots/sales_feishu"),
            json!({"secret": common::FEISHU_SECRET}),
        )
        .await;
    app.advance(chrono::Duration::minutes(30));
    app.run_jobs_until_idle().await;
    assert_eq!(server.accepted().len(), 7);
    assert!(
        posts(&server)[6].contains("测试消息"),
        "{:?}",
        posts(&server)
    );

    // Switched off or removed: nothing more is posted.
    admin
        .patch(
            &format!("{W}/chat-robots/sales_wecom"),
            json!({"enabled": false}),
        )
        .await;
    let (status, _) = admin.delete(&format!("{W}/chat-robots/sales_ding")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    customer(&admin, "Initech").await;
    app.run_jobs_until_idle().await;
    let last: Vec<String> = posts(&server).into_iter().skip(7).collect();
    assert_eq!(last.len(), 1, "only Feishu is left: {last:?}");
    assert!(last[0].starts_with("feishu:"), "{last:?}");
    let (status, problem) = admin
        .post(&format!("{W}/chat-robots/sales_wecom/test"), json!({}))
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
}

async fn admins_manage_robots_from_their_page(backend: Backend) {
    let server = RobotServer::start().await;
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let page =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "zh-CN")
            .await;
    let (status, html) = page.get("/w/demo/robots").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("还没有群机器人"), "{html}");
    let (status, location, _) = page
        .post(
            "/w/demo/robots",
            &[
                ("key", "east_group"),
                ("kind", "dingtalk"),
                ("url", &server.dingtalk_url()),
                ("secret", common::DINGTALK_SECRET),
                ("description", "华东销售群"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    // A refusal keeps what was typed (but never the secret) and says why.
    let (status, _, html) = page
        .post(
            "/w/demo/robots",
            &[
                ("key", "east_group"),
                ("kind", "feishu"),
                ("url", "ftp://x"),
                ("secret", "s"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("ftp:"), "draft kept");
    assert!(!html.contains("value=\"s\""), "the secret is not echoed");
    let (_, html) = page.get("/w/demo/robots").await;
    assert!(
        html.contains("robot:east_group") && html.contains("华东销售群"),
        "{html}"
    );
    assert!(
        !html.contains(common::DINGTALK_TOKEN),
        "the token stays hidden"
    );
    let (status, _, html) = page.post("/w/demo/robots/east_group/test", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-testid=\"robot-notice\""));
    app.run_jobs_until_idle().await;
    assert_eq!(server.accepted().len(), 1, "{:?}", server.refused());
    let (status, _, _) = page.post("/w/demo/robots/east_group/disable", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = page.post("/w/demo/robots/east_group/delete", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = page.get("/w/demo/robots").await;
    assert!(!html.contains("robot:east_group"));
    // Members who are not admins may not open it.
    let rep = common::PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (status, _) = rep.get("/w/demo/robots").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

both_databases!(
    workflows_post_to_group_chat_robots,
    admins_manage_robots_from_their_page
);
