//! The language a person last signed in with (`accounts.seen_locale`): what notifications and
//! emails fall back to for someone who never chose a language.

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
                    .add_column(string_null("seen_locale"))
                    .to_owned(),
            )
            .await
    }
}
