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

/// Records a fact unless it exists; true when this call recorded it. Inside a transaction on
/// PostgreSQL a concurrent insert of the same key waits for the other to commit, so exactly one
/// caller gets true.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_if_absent(
    conn: &impl Conn,
    key: &str,
    value: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool> {
    let model = instance_fact::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value),
        updated_at: Set(now),
    };
    let inserted = instance_fact::Entity::insert(model)
        .on_conflict(
            OnConflict::column(instance_fact::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}
