//! `chat_robots`: the group chat robots (WeCom, DingTalk, Feishu) a workspace's workflows post to.

use sea_orm::entity::prelude::*;

/// One robot.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_robots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub key: String,
    pub kind: String,
    pub url: String,
    pub secret: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
