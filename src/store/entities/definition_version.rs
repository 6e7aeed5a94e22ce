//! `definition_versions`: immutable published versions of a definition.

use sea_orm::entity::prelude::*;

/// One version row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "definition_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub definition_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    pub document: Json,
    pub origin: String,
    pub created_at: DateTimeUtc,
    pub created_by: Option<Uuid>,
}

impl ActiveModelBehavior for ActiveModel {}
