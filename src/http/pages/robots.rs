//! The chat robots page (admins): register a WeCom, DingTalk or Feishu group robot by its
//! address and secret, switch it off or on, send a test message, remove it.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, finish, first, problem_text, see_other};
use crate::app::Services;
use crate::error::Result;
use crate::robots::{self, RobotInput};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/robots", get(show).post(create))
        .route("/w/{workspace}/robots/{key}/{action}", post(act))
}

async fn draw(
    services: &Services,
    member: &Member,
    status: StatusCode,
    extra: Value,
) -> Result<Response> {
    let here = format!("/w/{}/robots", member.slug());
    let robots = robots::list(services.db(), &member.access).await?;
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, &here).await?;
    let mut context = json!({"robots": robots, "kinds": robots::KINDS, "section": "robots"});
    if let (Some(base), Value::Object(more)) = (context.as_object_mut(), extra) {
        base.extend(more);
    }
    page("robots.html", with(frame, context), status)
}

async fn show(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/robots");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = draw(&services, &member, StatusCode::OK, json!({})).await;
    finish(result, member.locale)
}

async fn create(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/robots");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let text = |key: &str| first(&posted, key).map(str::to_owned);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let input = RobotInput {
            key: text("key"),
            kind: text("kind"),
            url: text("url"),
            secret: text("secret"),
            description: text("description"),
            enabled: Some(true),
        };
        match robots::create(services.db(), services.clock(), &member.access, input).await {
            Ok(_) => Ok(see_other(&here)),
            Err(
                error
                @ (crate::error::Error::Invalid { .. } | crate::error::Error::Conflict { .. }),
            ) => {
                let draft: serde_json::Map<String, Value> = ["key", "kind", "url", "description"]
                    .iter()
                    .map(|k| ((*k).to_owned(), json!(text(k).unwrap_or_default())))
                    .collect();
                draw(
                    &services,
                    &member,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": problem_text(&error, member.locale), "draft": draft}),
                )
                .await
            }
            Err(other) => Err(other),
        }
    }
    .await;
    finish(result, member.locale)
}

/// `enable`, `disable`, `test` or `delete` one robot.
async fn act(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key, action)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/robots");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let (db, clock, access) = (services.db(), services.clock(), &member.access);
        let switch = |enabled| RobotInput {
            enabled: Some(enabled),
            ..RobotInput::default()
        };
        let notice = match action.as_str() {
            "enable" => {
                robots::update(db, clock, access, &key, switch(true)).await?;
                None
            }
            "disable" => {
                robots::update(db, clock, access, &key, switch(false)).await?;
                None
            }
            "test" => {
                robots::test(db, clock, access, &key).await?;
                Some("robot.test_queued")
            }
            "delete" => {
                robots::delete(db, access, &key).await?;
                None
            }
            _ => return Err(crate::error::Error::not_found(format!("action {action:?}"))),
        };
        match notice {
            Some(text) => {
                draw(
                    &services,
                    &member,
                    StatusCode::OK,
                    json!({"notice": member.locale.text(text)}),
                )
                .await
            }
            None => Ok(see_other(&here)),
        }
    }
    .await;
    finish(result, member.locale)
}
