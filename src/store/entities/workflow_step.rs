//! `workflow_steps`: the step-by-step log of a run (inputs, outputs, errors, durations).

use sea_orm::entity::prelude::*;

/// One step log row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workflow_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i32,
    pub step_id: String,
    pub step_type: String,
    pub status: String,
    pub input: Option<Json>,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub started_at: DateTimeUtc,
    pub finished_at: DateTimeUtc,
    pub duration_us: i64,
}

impl ActiveModelBehavior for ActiveModel {}
