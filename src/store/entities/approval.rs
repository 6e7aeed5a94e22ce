//! `approvals`: an approval a workflow run asked for, its levels, where it stands, its trail.

use sea_orm::entity::prelude::*;

/// One approval row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "approvals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub run_id: Uuid,
    pub step_id: String,
    pub entity: String,
    pub record_id: Uuid,
    pub title: String,
    pub submitter: Option<Uuid>,
    pub status: String,
    pub level: i32,
    pub round: i32,
    pub spec: Json,
    pub lock_record: bool,
    pub trail: Json,
    pub revision: i64,
    pub due_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
