//! Approvals started by workflow runs: one row per approval (its levels, where it stands, its
//! trail) and one row per approver's task (pending, approved, transferred, …).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("approvals")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("run_id"))
                    .col(string("step_id"))
                    .col(string("entity"))
                    .col(uuid("record_id"))
                    .col(string("title"))
                    .col(uuid_null("submitter"))
                    .col(string("status"))
                    .col(integer("level"))
                    .col(integer("round"))
                    .col(json("spec"))
                    .col(boolean("lock_record"))
                    .col(json("trail"))
                    .col(big_integer("revision"))
                    .col(timestamp_with_time_zone_null("due_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("approvals", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("approvals", "run_id")
                            .to("workflow_runs", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_approvals_record")
                    .table("approvals")
                    .col("workspace_id")
                    .col("entity")
                    .col("record_id")
                    .col("status")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("approval_tasks")
                    .col(uuid("id").primary_key())
                    .col(uuid("approval_id"))
                    .col(uuid("workspace_id"))
                    .col(integer("level"))
                    .col(integer("round"))
                    .col(integer("position"))
                    .col(uuid("approver"))
                    .col(string("status"))
                    .col(string("kind"))
                    .col(uuid_null("held_for"))
                    .col(uuid_null("added_by"))
                    .col(text_null("comment"))
                    .col(timestamp_with_time_zone_null("acted_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("approval_tasks", "approval_id")
                            .to("approvals", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_approval_tasks_inbox")
                    .table("approval_tasks")
                    .col("workspace_id")
                    .col("approver")
                    .col("status")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_approval_tasks_approval")
                    .table("approval_tasks")
                    .col("approval_id")
                    .to_owned(),
            )
            .await
    }
}
