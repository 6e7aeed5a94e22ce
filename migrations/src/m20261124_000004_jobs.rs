//! The leased job queue (also the outbox for external effects) and the log of every attempt.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("jobs")
                    .col(uuid("id").primary_key())
                    .col(uuid_null("workspace_id"))
                    .col(string("kind"))
                    .col(json("payload"))
                    .col(string("status"))
                    .col(integer("attempts"))
                    .col(integer("max_attempts"))
                    .col(timestamp_with_time_zone("run_at"))
                    .col(string_null("lease_owner"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(text_null("last_error"))
                    .col(big_integer("progress_done"))
                    .col(big_integer_null("progress_total"))
                    .col(json_null("checkpoint"))
                    .col(string_null("dedupe_key").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        // Serves the claim query: due queued jobs and expired leases, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status_run_at")
                    .table("jobs")
                    .col("status")
                    .col("run_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_workspace_status")
                    .table("jobs")
                    .col("workspace_id")
                    .col("status")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("job_attempts")
                    .col(uuid("job_id"))
                    .col(integer("attempt"))
                    .col(string("worker"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .col(string_null("outcome"))
                    .col(text_null("error"))
                    .primary_key(Index::create().col("job_id").col("attempt"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("job_attempts", "job_id")
                            .to("jobs", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }
}
