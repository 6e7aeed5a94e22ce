//! `approval_tasks`: one approver's part in one level of an approval.

use sea_orm::entity::prelude::*;

/// One task row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "approval_tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub approval_id: Uuid,
    pub workspace_id: Uuid,
    pub level: i32,
    pub round: i32,
    pub position: i32,
    pub approver: Uuid,
    pub status: String,
    pub kind: String,
    pub held_for: Option<Uuid>,
    pub added_by: Option<Uuid>,
    pub comment: Option<String>,
    pub acted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
