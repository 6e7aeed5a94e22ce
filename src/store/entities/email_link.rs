//! `email_links`: the records an email is filed on.

use sea_orm::entity::prelude::*;

/// One email on one record.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub email_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub record_id: Uuid,
    pub workspace_id: Uuid,
}

impl ActiveModelBehavior for ActiveModel {}
