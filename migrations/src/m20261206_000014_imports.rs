//! Spreadsheet imports: the uploaded file (in chunks, so any process of a deployment can read
//! it and a restart loses nothing), the import's state and counters, the problems found per row,
//! and the column mappings people saved per entity.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("imports")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string("entity"))
                    .col(uuid("created_by"))
                    .col(string("file_name"))
                    .col(string("format"))
                    // The file as read: encoding, delimiter, headers, rows, a sample.
                    .col(json("layout"))
                    .col(big_integer("size"))
                    .col(string("sha256"))
                    // uploaded, checking, checked, running, cancelling, cancelled, done, failed
                    .col(string("status"))
                    .col(json_null("settings"))
                    .col(uuid_null("job_id"))
                    // Rows read, created, updated, unchanged, failed; batches written.
                    .col(json("counters"))
                    .col(string_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("imports", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_imports_workspace")
                    .table("imports")
                    .col("workspace_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("import_chunks")
                    .col(uuid("import_id"))
                    .col(integer("seq"))
                    .col(binary("data"))
                    .primary_key(Index::create().col("import_id").col("seq"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("import_chunks", "import_id")
                            .to("imports", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("import_problems")
                    .col(uuid("import_id"))
                    // The file's line (XLSX: row) the problem is on; 0 for the file itself.
                    .col(big_integer("line"))
                    .col(integer("seq"))
                    .col(string_null("column_name"))
                    .col(string_null("field"))
                    .col(string("code"))
                    .col(string("message"))
                    .primary_key(Index::create().col("import_id").col("line").col("seq"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("import_problems", "import_id")
                            .to("imports", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("import_mappings")
                    .col(uuid("workspace_id"))
                    .col(string("entity"))
                    // The header as matched: trimmed, lowercased, inner spaces and marks dropped.
                    .col(string("header"))
                    .col(string("field"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(
                        Index::create()
                            .col("workspace_id")
                            .col("entity")
                            .col("header"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("import_mappings", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }
}
