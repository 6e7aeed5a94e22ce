//! Outbound webhook subscriptions: a URL notified (signed with the subscription's secret) when
//! records of an entity are created, changed or deleted.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("webhooks")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    // An entity key, or `*` for every entity.
                    .col(string("entity"))
                    // `["created", "updated", "deleted"]` or a part of it.
                    .col(json("events"))
                    .col(string("url"))
                    // The HMAC key the receiver checks signatures with; shown once.
                    .col(string("secret"))
                    .col(string("description"))
                    .col(boolean("enabled"))
                    .col(uuid("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("webhooks", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhooks_workspace")
                    .table("webhooks")
                    .col("workspace_id")
                    .to_owned(),
            )
            .await
    }
}
