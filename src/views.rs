//! List views members save: a name for the filters, sort and layout of an entity's list, kept
//! for themselves or shared with the workspace (sharing takes the right to manage definitions,
//! since shared views shape everyone's lists). Views defined as definitions (`Kind::View`) are
//! the admins' fixed views; these are the people's own.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::access::Right;
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::saved_views::{self, SavedViewRow};
use crate::workspaces::Access;

/// Longest view name, in characters.
const MAX_NAME: usize = 100;
/// Longest saved query, in bytes.
const MAX_QUERY: usize = 4000;
/// Most views one member keeps per entity.
const MAX_PER_ENTITY: usize = 50;

/// A saved view as lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct SavedView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The list's query string.
    pub query: String,
    /// Shared with the workspace.
    pub shared: bool,
    /// Saved by the reader (who may then delete it).
    pub mine: bool,
}

/// Keeps only the parts of a list query a view remembers (filters, search, sort, layout, the
/// pool), in their order; pages, the bin and the view's own id are not part of it.
pub fn clean_query(pairs: &[(String, String)]) -> String {
    let kept = pairs.iter().filter(|(key, value)| {
        !value.is_empty()
            && (matches!(
                key.as_str(),
                "view" | "layout" | "group_by" | "q" | "sort" | "pool"
            ) || key.starts_with("f."))
    });
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// Saves the list query `query` of `entity` under `name`.
///
/// # Errors
/// `Error::Invalid` (name, query, too many views), `Error::Forbidden` (sharing without the right).
pub async fn save(
    db: &Db,
    now: DateTime<Utc>,
    access: &Access,
    entity: &str,
    name: &str,
    query: &[(String, String)],
    shared: bool,
) -> Result<SavedView> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "/name",
            "length",
            format!("a view's name is 1–{MAX_NAME} characters"),
        ));
    }
    if shared {
        access.require(Right::Definitions)?;
    }
    let query = clean_query(query);
    if query.len() > MAX_QUERY {
        return Err(Error::invalid(
            "/query",
            "length",
            "the view has too many filters to keep",
        ));
    }
    let existing =
        saved_views::visible_to(db.conn(), access.workspace.id, entity, access.account_id).await?;
    if existing
        .iter()
        .filter(|v| v.account_id == access.account_id)
        .count()
        >= MAX_PER_ENTITY
    {
        return Err(Error::invalid(
            "/name",
            "limit",
            format!("at most {MAX_PER_ENTITY} views per list; delete one first"),
        ));
    }
    let row = SavedViewRow {
        id: new_id(),
        workspace_id: access.workspace.id,
        account_id: access.account_id,
        entity: entity.to_owned(),
        name: name.to_owned(),
        query,
        shared,
        created_at: now,
    };
    saved_views::insert(db.conn(), row.clone()).await?;
    Ok(view_of(&row, access.account_id))
}

fn view_of(row: &SavedViewRow, reader: Uuid) -> SavedView {
    SavedView {
        id: row.id,
        name: row.name.clone(),
        query: row.query.clone(),
        shared: row.shared,
        mine: row.account_id == reader,
    }
}

/// The views of `entity` the member sees: their own and the shared ones.
///
/// # Errors
/// `Error::Db`.
pub async fn list(db: &Db, access: &Access, entity: &str) -> Result<Vec<SavedView>> {
    Ok(
        saved_views::visible_to(db.conn(), access.workspace.id, entity, access.account_id)
            .await?
            .iter()
            .map(|row| view_of(row, access.account_id))
            .collect(),
    )
}

/// Deletes a view: one's own, or (admins) a shared one.
///
/// # Errors
/// `Error::NotFound` for a view the member does not see; `Error::Forbidden` for another's.
pub async fn delete(db: &Db, access: &Access, id: Uuid) -> Result<()> {
    let row = saved_views::find(db.conn(), access.workspace.id, id)
        .await?
        .filter(|row| row.account_id == access.account_id || row.shared)
        .ok_or_else(|| Error::not_found("saved view"))?;
    if row.account_id != access.account_id && !access.is_admin() {
        return Err(Error::forbidden(
            "only its owner or an admin may delete this view",
        ));
    }
    saved_views::delete(db.conn(), id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_keeps_filters_sort_and_layout_only() {
        let pairs: Vec<(String, String)> = [
            ("f.status", "new"),
            ("cursor", "abc"),
            ("sort", "-name"),
            ("deleted", "1"),
            ("q", ""),
            ("layout", "kanban"),
            ("saved", "x"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(clean_query(&pairs), "f.status=new&sort=-name&layout=kanban");
    }
}
