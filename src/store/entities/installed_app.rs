//! `installed_apps`: apps a workspace installed from templates.

use sea_orm::entity::prelude::*;

/// One installed app.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "installed_apps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub template: String,
    pub version: String,
    pub title: Json,
    pub prefix: Option<String>,
    pub namespace: String,
    pub base: Json,
    pub installed_at: DateTimeUtc,
    pub installed_by: Option<Uuid>,
    pub upgraded_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
