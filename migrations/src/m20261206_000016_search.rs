//! Global search: the state of each entity's search terms (the `<record table>_terms` table
//! itself is made with the record table): which searchable fields, tokenised by which version
//! of the tokeniser, the terms were built for, and whether a rebuild is under way.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("search_indexes")
                    .col(uuid("entity_id").primary_key())
                    .col(uuid("workspace_id"))
                    // `v1:name:text,email:email,…`: what the stored terms were made from.
                    .col(string("signature"))
                    // `indexing` (a rebuild job is queued or running) or `ready`.
                    .col(string("status"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("search_indexes", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_search_indexes_workspace")
                    .table("search_indexes")
                    .col("workspace_id")
                    .to_owned(),
            )
            .await
    }
}
