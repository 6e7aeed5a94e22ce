//! `audit_events`: security events (logins, role changes, tokens, denials, erasures).

use sea_orm::entity::prelude::*;

/// One audit row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub kind: String,
    pub detail: Json,
    pub at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
