//! What the web UI keeps: each account's preferred language, the public share links of forms
//! (外链表单) with their hashed secrets, and the list views members save.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("accounts")
                    .add_column(string_null("locale"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("form_links")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string("form"))
                    // SHA-256 of the secret in the URL; the secret itself is shown once.
                    .col(string("secret_hash").unique_key())
                    .col(uuid("owner_id"))
                    .col(json("settings"))
                    .col(boolean("enabled"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(uuid_null("created_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("form_links", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_form_links_workspace")
                    .table("form_links")
                    .col("workspace_id")
                    .col("form")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("saved_views")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("account_id"))
                    .col(string("entity"))
                    .col(string("name"))
                    // The list page's query string (filters, sort, layout), checked on save.
                    .col(string("query"))
                    .col(boolean("shared"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("saved_views", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_saved_views_entity")
                    .table("saved_views")
                    .col("workspace_id")
                    .col("entity")
                    .to_owned(),
            )
            .await
    }
}
