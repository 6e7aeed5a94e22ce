//! Apps installed from templates: which template and version each came from, its prefix and
//! role namespace, and the documents as the template shipped them (the base an upgrade merges
//! the workspace's changes against).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("installed_apps")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string("template"))
                    .col(string("version"))
                    .col(json("title"))
                    .col(string_null("prefix"))
                    .col(string("namespace"))
                    // {"definitions": {kind: {key: document}}, "roles": {key: role}} as shipped.
                    .col(json("base"))
                    .col(timestamp_with_time_zone("installed_at"))
                    .col(uuid_null("installed_by"))
                    .col(timestamp_with_time_zone_null("upgraded_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("installed_apps", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_installed_apps_workspace")
                    .table("installed_apps")
                    .col("workspace_id")
                    .to_owned(),
            )
            .await
    }
}
