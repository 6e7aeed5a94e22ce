//! `emails`: messages sent from records or received at a workspace's inbound address.

use sea_orm::entity::prelude::*;

/// One email.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "emails")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub direction: String,
    pub source: String,
    pub message_id: String,
    pub replies_to: Option<Uuid>,
    pub from_address: String,
    pub from_name: String,
    pub recipients: Json,
    pub subject: String,
    pub body: String,
    pub template: Option<String>,
    pub sent_by: Option<Uuid>,
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
