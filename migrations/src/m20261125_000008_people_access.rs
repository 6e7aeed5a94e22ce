//! People and access: the org tree, roles, a member's place in the tree, collaborators on
//! records, a role for API tokens, invitations, two-factor secrets, password resets, and the
//! audit log of security events.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("org_units")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid_null("parent_id"))
                    .col(string("kind"))
                    .col(string("name"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("org_units", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_org_units_workspace")
                    .table("org_units")
                    .col("workspace_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("roles")
                    .col(uuid("workspace_id"))
                    .col(string("key"))
                    .col(string("name"))
                    .col(json("rights"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("workspace_id").col("key"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("roles", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            uuid_null("unit_id"),
            uuid_null("manager_id"),
            timestamp_with_time_zone_null("deactivated_at"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("memberships")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            string_null("totp_secret"),
            timestamp_with_time_zone_null("totp_enabled_at"),
            big_integer_null("totp_last_step"),
            text_null("totp_recovery"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("accounts")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("password_resets")
                    .col(uuid("id").primary_key())
                    .col(uuid("account_id"))
                    .col(string("token_hash").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("password_resets", "account_id")
                            .to("accounts", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("api_tokens")
                    .add_column(string_null("role"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("record_collaborators")
                    .col(uuid("entity_id"))
                    .col(uuid("record_id"))
                    .col(uuid("account_id"))
                    .col(uuid("workspace_id"))
                    .col(boolean("can_edit"))
                    .col(timestamp_with_time_zone("added_at"))
                    .col(uuid_null("added_by"))
                    // Ids are stored as record tables store them (text on SQLite), so the
                    // scope subquery compares like with like; hence no foreign keys here.
                    .primary_key(
                        Index::create()
                            .col("entity_id")
                            .col("record_id")
                            .col("account_id"),
                    )
                    .to_owned(),
            )
            .await?;
        // "Records shared with me" is the scope predicate's subquery.
        manager
            .create_index(
                Index::create()
                    .name("idx_record_collaborators_account")
                    .table("record_collaborators")
                    .col("entity_id")
                    .col("account_id")
                    .col("record_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("invitations")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string("email"))
                    .col(string("role"))
                    .col(string("token_hash").unique_key())
                    .col(uuid_null("invited_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("accepted_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("invitations", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(uuid("id").primary_key())
                    .col(uuid_null("workspace_id"))
                    .col(uuid_null("account_id"))
                    .col(string("kind"))
                    .col(json("detail"))
                    .col(timestamp_with_time_zone("at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_workspace")
                    .table("audit_events")
                    .col("workspace_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_account")
                    .table("audit_events")
                    .col("account_id")
                    .col("id")
                    .to_owned(),
            )
            .await
    }
}
