//! `comment_revisions`: the earlier bodies of edited or deleted comments.

use sea_orm::entity::prelude::*;

/// A comment's body before one change.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "comment_revisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub comment_id: Uuid,
    pub body: String,
    pub change: String,
    pub changed_by: Uuid,
    pub changed_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
