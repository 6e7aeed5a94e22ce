//! `memberships`: an account's role in a workspace.

use sea_orm::entity::prelude::*;

/// One membership row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: Uuid,
    pub role: String,
    pub created_at: DateTimeUtc,
    pub unit_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub deactivated_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
