//! Email from records: messages sent from a record or received at a workspace's inbound
//! address, the records each is filed on, and each workspace's inbound address token.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("emails")
                    .col(uuid("id").primary_key())
                    .col(uuid("workspace_id"))
                    // `out` (sent from a record, or copied in by a member's BCC) or `in`.
                    .col(string("direction"))
                    // `composed` (written in Formwork and sent through the outbox) or `inbound`
                    // (taken at an inbound address).
                    .col(string("source"))
                    // The RFC 5322 Message-ID without its angle brackets; a message is filed
                    // once per workspace however often it is delivered.
                    .col(string("message_id"))
                    // Our sent email this one answers, found through In-Reply-To/References.
                    .col(uuid_null("replies_to"))
                    .col(string("from_address"))
                    .col(string("from_name"))
                    // `{"to": [..], "cc": [..]}`.
                    .col(json("recipients"))
                    .col(text("subject"))
                    // Plain text (an HTML-only message is kept as its text).
                    .col(text("body"))
                    // The email template a sent message started from.
                    .col(string_null("template"))
                    // The member who sent it (or whose BCC copy it is).
                    .col(uuid_null("sent_by"))
                    // `queued`, `sent`, `failed` or `received`.
                    .col(string("status"))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("emails", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_emails_message")
                    .table("emails")
                    .col("workspace_id")
                    .col("message_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Each member's recent sends (the per-member sending limit).
        manager
            .create_index(
                Index::create()
                    .name("idx_emails_sender")
                    .table("emails")
                    .col("workspace_id")
                    .col("sent_by")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("email_links")
                    .col(uuid("email_id"))
                    .col(uuid("workspace_id"))
                    .col(string("entity"))
                    .col(uuid("record_id"))
                    .primary_key(
                        Index::create()
                            .col("email_id")
                            .col("entity")
                            .col("record_id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("email_links", "email_id")
                            .to("emails", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_links_record")
                    .table("email_links")
                    .col("workspace_id")
                    .col("entity")
                    .col("record_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mail_inboxes")
                    .col(uuid("workspace_id").primary_key())
                    // The secret part of the workspace's inbound address (`<slug>+<token>@…`);
                    // replaced when an admin rotates it.
                    .col(string("token").unique_key())
                    // The key members' personal addresses are signed with; never shown, and
                    // replaced with the token.
                    .col(string("secret"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("mail_inboxes", "workspace_id")
                            .to("workspaces", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }
}
