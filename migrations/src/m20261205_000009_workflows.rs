//! Workflow runs and their step log, in-app notifications, and the durable rotation state of
//! owner assignment. Timers and outgoing effects are jobs (`jobs`), enqueued with the step.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("workflow_runs")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(string("workflow_key"))
                    .col(uuid("definition_id"))
                    .col(integer("version"))
                    .col(string("status"))
                    .col(string_null("entity"))
                    .col(uuid_null("record_id"))
                    .col(json("event"))
                    .col(string_null("cursor"))
                    .col(json("vars"))
                    .col(integer("depth"))
                    .col(integer("steps_run"))
                    .col(text_null("error"))
                    .col(string_null("failed_step"))
                    .col(big_integer("revision"))
                    .col(uuid_null("started_by"))
                    .col(timestamp_with_time_zone_null("wake_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("workflow_runs", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "idx_workflow_runs_recent",
                &["workspace_id", "created_at"][..],
            ),
            (
                "idx_workflow_runs_record",
                &["workspace_id", "entity", "record_id"][..],
            ),
            (
                "idx_workflow_runs_workflow",
                &["workspace_id", "workflow_key", "status"][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table("workflow_runs");
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("workflow_steps")
                    .col(uuid("run_id"))
                    .col(integer("seq"))
                    .col(string("step_id"))
                    .col(string("step_type"))
                    .col(string("status"))
                    .col(json_null("input"))
                    .col(json_null("output"))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone("finished_at"))
                    .col(big_integer("duration_us"))
                    .primary_key(Index::create().col("run_id").col("seq"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("workflow_steps", "run_id")
                            .to("workflow_runs", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("account_id"))
                    .col(string("title"))
                    .col(text("body"))
                    .col(string_null("entity"))
                    .col(uuid_null("record_id"))
                    .col(uuid_null("run_id"))
                    .col(string_null("dedupe_key").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("read_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notifications", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_inbox")
                    .table("notifications")
                    .col("workspace_id")
                    .col("account_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("workflow_rotations")
                    .col(uuid("workspace_id"))
                    .col(string("key"))
                    .col(big_integer("position"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("workspace_id").col("key"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("workflow_rotations", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }
}
