//! The versioned definition store: one row per definition (draft + pointers) and its immutable versions.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("definitions")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string("kind"))
                    .col(string("key"))
                    .col(big_integer("revision"))
                    .col(json_null("draft"))
                    .col(integer_null("published_version"))
                    .col(integer("latest_version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(uuid_null("updated_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("definitions", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_definitions_workspace_kind_key")
                    .table("definitions")
                    .col("workspace_id")
                    .col("kind")
                    .col("key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("definition_versions")
                    .col(uuid("definition_id"))
                    .col(integer("version"))
                    .col(json("document"))
                    .col(string("origin"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(uuid_null("created_by"))
                    .primary_key(Index::create().col("definition_id").col("version"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("definition_versions", "definition_id")
                            .to("definitions", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }
}
