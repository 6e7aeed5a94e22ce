//! `imports`: spreadsheet imports into an entity, their state and counters.

use sea_orm::entity::prelude::*;

/// One import.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub entity: String,
    pub created_by: Uuid,
    pub file_name: String,
    pub format: String,
    pub layout: Json,
    pub size: i64,
    pub sha256: String,
    pub status: String,
    pub settings: Option<Json>,
    pub job_id: Option<Uuid>,
    pub counters: Json,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
