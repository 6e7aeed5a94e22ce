//! `webhooks`: outbound webhook subscriptions of a workspace.

use sea_orm::entity::prelude::*;

/// One subscription.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub entity: String,
    pub events: Json,
    pub url: String,
    pub secret: String,
    pub description: String,
    pub enabled: bool,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
