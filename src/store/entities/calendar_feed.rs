//! `calendar_feeds`: a member's iCalendar feed address (its secret hashed), until revoked.

use sea_orm::entity::prelude::*;

/// One feed address.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calendar_feeds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub account_id: Uuid,
    #[sea_orm(unique)]
    pub secret_hash: String,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub last_read_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
