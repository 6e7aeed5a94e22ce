//! `workflow_runs`: one run of a workflow version, where it stands, and what it has produced.

use sea_orm::entity::prelude::*;

/// One run row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workflow_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workflow_key: String,
    pub definition_id: Uuid,
    pub version: i32,
    pub status: String,
    pub entity: Option<String>,
    pub record_id: Option<Uuid>,
    pub event: Json,
    pub cursor: Option<String>,
    pub vars: Json,
    pub depth: i32,
    pub steps_run: i32,
    pub error: Option<String>,
    pub failed_step: Option<String>,
    pub revision: i64,
    pub started_by: Option<Uuid>,
    pub wake_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
