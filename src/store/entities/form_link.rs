//! `form_links`: public share links of forms (外链表单), by the hash of their secret.

use sea_orm::entity::prelude::*;

/// One share link.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "form_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub form: String,
    #[sea_orm(unique)]
    pub secret_hash: String,
    pub owner_id: Uuid,
    pub settings: Json,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub created_by: Option<Uuid>,
}

impl ActiveModelBehavior for ActiveModel {}
