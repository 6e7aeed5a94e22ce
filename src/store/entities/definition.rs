//! `definitions`: one row per definition of a workspace: its draft and version pointers.

use sea_orm::entity::prelude::*;

/// One definition row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "definitions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub kind: String,
    pub key: String,
    pub revision: i64,
    pub draft: Option<Json>,
    pub published_version: Option<i32>,
    pub latest_version: i32,
    pub created_at: DateTimeUtc,
    pub created_by: Option<Uuid>,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

impl ActiveModelBehavior for ActiveModel {}
