//! Forward-only migrations of Formwork's system tables (accounts, workspaces, definitions, jobs).
//!
//! Each file does one thing and is never edited once merged; a change is a new file.

// sea-orm-migration's trait declares `&SchemaManager` with an elided lifetime; matching it exactly is required.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_accounts_workspaces;
mod m20261124_000002_sessions_tokens;
mod m20261124_000003_definitions;
mod m20261124_000004_jobs;
mod m20261124_000005_instance;
mod m20261125_000006_records;
mod m20261125_000007_attachments;
mod m20261125_000008_people_access;
mod m20261205_000009_workflows;
mod m20261205_000010_approvals;
mod m20261205_000011_ui;
mod m20261206_000012_apps;
mod m20261206_000013_seen_locale;
mod m20261206_000014_imports;
mod m20261206_000015_webhooks;
mod m20261206_000016_search;
mod m20261207_000017_comments;
mod m20261208_000018_emails;

/// Applies every migration in order; `formwork migrate` and `formwork serve` both run it.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_accounts_workspaces::Migration),
            Box::new(m20261124_000002_sessions_tokens::Migration),
            Box::new(m20261124_000003_definitions::Migration),
            Box::new(m20261124_000004_jobs::Migration),
            Box::new(m20261124_000005_instance::Migration),
            Box::new(m20261125_000006_records::Migration),
            Box::new(m20261125_000007_attachments::Migration),
            Box::new(m20261125_000008_people_access::Migration),
            Box::new(m20261205_000009_workflows::Migration),
            Box::new(m20261205_000010_approvals::Migration),
            Box::new(m20261205_000011_ui::Migration),
            Box::new(m20261206_000012_apps::Migration),
            Box::new(m20261206_000013_seen_locale::Migration),
            Box::new(m20261206_000014_imports::Migration),
            Box::new(m20261206_000015_webhooks::Migration),
            Box::new(m20261206_000016_search::Migration),
            Box::new(m20261207_000017_comments::Migration),
            Box::new(m20261208_000018_emails::Migration),
        ]
    }
}
