//! Global accounts, workspaces (tenants) and memberships with a role name per workspace.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("accounts")
                    .col(uuid("id").primary_key())
                    .col(string("email").unique_key())
                    .col(string("name"))
                    .col(string("password_hash"))
                    .col(boolean("is_active"))
                    .col(boolean("must_change_password"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("workspaces")
                    .col(uuid("id").primary_key())
                    .col(string("slug").unique_key())
                    .col(string("name"))
                    .col(string("time_zone"))
                    .col(json("calendar"))
                    .col(big_integer("definitions_generation"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("memberships")
                    .col(uuid("workspace_id"))
                    .col(uuid("account_id"))
                    .col(string("role"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("workspace_id").col("account_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("memberships", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("memberships", "account_id")
                            .to("accounts", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_account")
                    .table("memberships")
                    .col("account_id")
                    .to_owned(),
            )
            .await
    }
}
