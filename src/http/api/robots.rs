//! `/api/v1/w/{workspace}/chat-robots`: the group chat robots (WeCom, DingTalk, Feishu)
//! workflows post to (admins), and a test post.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::Services;
use crate::error::Result;
use crate::http::extract::{AppJson, Workspace};
use crate::robots::{self, RobotInput, RobotView};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/chat-robots", get(list).post(create))
        .route(
            "/w/{workspace}/chat-robots/{key}",
            get(show).patch(update).delete(remove),
        )
        .route("/w/{workspace}/chat-robots/{key}/test", post(test))
}

async fn list(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<RobotView>>> {
    Ok(Json(robots::list(services.db(), &ws.access).await?))
}

async fn create(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(input): AppJson<RobotInput>,
) -> Result<(StatusCode, Json<RobotView>)> {
    let robot = robots::create(services.db(), services.clock(), &ws.access, input).await?;
    Ok((StatusCode::CREATED, Json(robot)))
}

async fn show(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, key)): Path<(String, String)>,
) -> Result<Json<RobotView>> {
    Ok(Json(robots::get(services.db(), &ws.access, &key).await?))
}

async fn update(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, key)): Path<(String, String)>,
    AppJson(input): AppJson<RobotInput>,
) -> Result<Json<RobotView>> {
    Ok(Json(
        robots::update(services.db(), services.clock(), &ws.access, &key, input).await?,
    ))
}

async fn remove(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    robots::delete(services.db(), &ws.access, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, key)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>)> {
    let job = robots::test(services.db(), services.clock(), &ws.access, &key).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job": job}))))
}
