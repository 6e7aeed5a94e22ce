//! `notifications`: in-app notifications of a member, with their read state.

use sea_orm::entity::prelude::*;

/// One notification row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub account_id: Uuid,
    pub title: String,
    pub body: String,
    pub entity: Option<String>,
    pub record_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    #[sea_orm(unique)]
    pub dedupe_key: Option<String>,
    pub created_at: DateTimeUtc,
    pub read_at: Option<DateTimeUtc>,
    pub kind: String,
    pub actor_id: Option<Uuid>,
}

impl ActiveModelBehavior for ActiveModel {}
