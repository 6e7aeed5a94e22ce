//! `job_attempts`: the log of every attempt at a job, by which worker, with what outcome.

use sea_orm::entity::prelude::*;

/// One attempt row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub attempt: i32,
    pub worker: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
