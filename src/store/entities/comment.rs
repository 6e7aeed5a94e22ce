//! `comments`: comments on records, with mentions resolved at save.

use sea_orm::entity::prelude::*;

/// One comment.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "comments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub entity: String,
    pub record_id: Uuid,
    pub author_id: Uuid,
    pub body: String,
    pub mentions: Json,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub edited_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    pub deleted_by: Option<Uuid>,
}

impl ActiveModelBehavior for ActiveModel {}
