//! Files of attachment fields, stored in the database (so a backup or a PostgreSQL replica holds
//! them too): uploaded first, then linked to the record whose field lists them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("attachments")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("entity_id"))
                    .col(string("field"))
                    .col(string_null("record_id"))
                    .col(string("file_name"))
                    .col(string("content_type"))
                    .col(big_integer("size"))
                    .col(string("sha256"))
                    .col(binary("data"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(uuid_null("created_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("attachments", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_record")
                    .table("attachments")
                    .col("entity_id")
                    .col("record_id")
                    .to_owned(),
            )
            .await
    }
}
