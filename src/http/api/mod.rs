//! The JSON API under `/api/v1`: account routes, and workspace routes under `/w/{workspace}`.

mod account;
mod apps;
mod calendar;
mod comments;
mod definitions;
mod emails;
mod forms;
mod imports;
mod jobs;
mod notifications;
mod openapi;
mod people;
mod printing;
mod records;
mod reports;
mod robots;
mod search;
mod tokens;
mod webhooks;
mod workflows;
mod workspace;

use axum::Router;

use crate::app::Services;

/// Every API route.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .nest("/account", account::router())
        .merge(apps::router())
        .merge(workspace::router())
        .merge(tokens::router())
        .merge(definitions::router())
        .merge(forms::router())
        .merge(imports::router())
        .merge(jobs::router())
        .merge(openapi::router())
        .merge(records::router())
        .merge(reports::router())
        .merge(search::router())
        .merge(people::router())
        .merge(workflows::router())
        .merge(comments::router())
        .merge(calendar::router())
        .merge(printing::router())
        .merge(emails::router())
        .merge(notifications::router())
        .merge(robots::router())
        .merge(webhooks::router())
}
