//! Working together: comments on records (with their earlier versions), each member's
//! notification settings, what kind of event a notification tells of, and the chat robots
//! (WeCom, DingTalk, Feishu group webhooks) workflows post to, and each member's calendar feed
//! (an iCalendar address with a revocable secret).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("comments")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    // The entity key and record the comment is on.
                    .col(string("entity"))
                    .col(uuid("record_id"))
                    .col(uuid("author_id"))
                    // Markdown-lite source with mention tokens `@[name](user:<id>)`.
                    .col(text("body"))
                    // `[{"user": id}|{"team": id, "notified": [ids]}]` as resolved at save.
                    .col(json("mentions"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("edited_at"))
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .col(uuid_null("deleted_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("comments", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_comments_record")
                    .table("comments")
                    .col("workspace_id")
                    .col("entity")
                    .col("record_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("comment_revisions")
                    .col(uuid("id").primary_key())
                    .col(uuid("comment_id"))
                    // The body as it was before the change.
                    .col(text("body"))
                    // `edited` or `deleted`.
                    .col(string("change"))
                    .col(uuid("changed_by"))
                    .col(timestamp_with_time_zone("changed_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("comment_revisions", "comment_id")
                            .to("comments", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_comment_revisions_comment")
                    .table("comment_revisions")
                    .col("comment_id")
                    .col("changed_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notification_settings")
                    .col(uuid("workspace_id"))
                    .col(uuid("account_id"))
                    // Channels per kind of event and the daily digest (see `notifications`).
                    .col(json("settings"))
                    // The end of the period the last digest covered.
                    .col(timestamp_with_time_zone_null("digest_sent_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("workspace_id").col("account_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notification_settings", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("chat_robots")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    // What workflows name it by (`robot:<key>`), unique in the workspace.
                    .col(string("key"))
                    // `wecom`, `dingtalk` or `feishu`.
                    .col(string("kind"))
                    // The group robot's webhook address (it holds the robot's token).
                    .col(text("url"))
                    // The signing secret (DingTalk 加签, Feishu 签名校验), if the robot has one.
                    .col(text_null("secret"))
                    .col(string("description"))
                    .col(boolean("enabled"))
                    .col(uuid("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("chat_robots", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_robots_key")
                    .table("chat_robots")
                    .col("workspace_id")
                    .col("key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("calendar_feeds")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    .col(uuid("account_id"))
                    // SHA-256 of the secret in the feed's address (the secret is shown once).
                    .col(string("secret_hash").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(timestamp_with_time_zone_null("last_read_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("calendar_feeds", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_calendar_feeds_member")
                    .table("calendar_feeds")
                    .col("workspace_id")
                    .col("account_id")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("notifications")
                    .add_column(string("kind").default("workflow"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("notifications")
                    .add_column(uuid_null("actor_id"))
                    .to_owned(),
            )
            .await
    }
}
