//! Records' system tables: the history of every record change, auto-number counters, and the
//! state of each entity's database indexes. Record tables themselves (one per entity of a
//! workspace) are created by the runtime when an entity is published.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("record_history")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("entity_id"))
                    .col(string("record_id"))
                    .col(timestamp_with_time_zone("at"))
                    .col(uuid_null("actor_id"))
                    .col(string("actor_kind"))
                    .col(string("channel"))
                    .col(string("operation"))
                    .col(json("changes"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("record_history", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Serves "the history of one record, in order".
        manager
            .create_index(
                Index::create()
                    .name("idx_record_history_record")
                    .table("record_history")
                    .col("entity_id")
                    .col("record_id")
                    .col("at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("record_counters")
                    .col(uuid("entity_id"))
                    .col(string("field"))
                    .col(string("period"))
                    .col(big_integer("value"))
                    .primary_key(Index::create().col("entity_id").col("field").col("period"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("entity_indexes")
                    .col(string("name").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("entity_id"))
                    .col(string("field"))
                    .col(boolean("is_unique"))
                    .col(string("status"))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("entity_indexes", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_entity_indexes_entity")
                    .table("entity_indexes")
                    .col("entity_id")
                    .to_owned(),
            )
            .await
    }
}
