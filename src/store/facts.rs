//! Queries on `instance_facts`.

use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, Set, sea_query::OnConflict};

use super::Conn;
use super::entities::instance_fact;
use crate::error::Result;

/// The value of a fact, if recorded.
///
/// # Errors
/// `Error::Db`.
pub async fn get(conn: &impl Conn, key: &str) -> Result<Option<serde_json::Value>> {
    Ok(instance_fact::Entity::find_by_id(key.to_owned())
        .one(conn)
        .await?
        .map(|row| row.value))
}

/// Records (or replaces) a fact.
///
/// # Errors
/// `Error::Db`.
pub async fn set(
    conn: &impl Conn,
    key: &str,
    value: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    let model = instance_fact::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value),
        updated_at: Set(now),
    };
    instance_fact::Entity::insert(model)
        .on_conflict(
            OnConflict::column(instance_fact::Column::Key)
                .update_columns([
                    instance_fact::Column::Value,
                    instance_fact::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}
