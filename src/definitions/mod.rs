//! The versioned definition store: every kind of definition (entities, forms, views, and the
//! kinds later issues add) is validated by its meta-schema, saved as a draft, published as an
//! immutable version, rolled back by publishing an older version again, and served live from the
//! per-workspace [`Registry`].

pub mod designer;
pub mod entity;
pub mod form_designer;
pub mod meta;
mod registry;
pub mod report_designer;
mod validate;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::{Actor, DefinitionKey, new_id};
use crate::error::{Error, Result};
use crate::store::definitions::{self as rows, DefinitionChange, DefinitionRow, VersionRow};
use crate::store::{self, Conn, Db};

pub use entity::{EntityModel, Field, FieldKind, IndexSpec, OWNER_COLUMN, OnDelete, ValueType};
pub use registry::{Published, Referrer, Registry, Snapshot};
pub use validate::{DefinitionSet, check_document, check_publish, check_references};

/// The kinds of definition. Adding one means a meta-schema in `schemas/meta/` and a line here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A JSON Schema describing a kind of record.
    Entity,
    /// The layout of an entity's form.
    Form,
    /// A saved list, kanban or calendar of an entity.
    View,
    /// A workflow: a trigger, a condition and steps.
    Workflow,
    /// A report: an entity's records grouped and measured, and how to present them.
    Report,
    /// A grid of reports with shared filters.
    Dashboard,
    /// A printable document of one record (a quote, a contract).
    PrintTemplate,
    /// An email written from a record (subject and body templates).
    EmailTemplate,
}

impl Kind {
    /// Every kind, in dependency order (entities before what refers to them).
    pub const ALL: [Kind; 8] = [
        Kind::Entity,
        Kind::Form,
        Kind::View,
        Kind::PrintTemplate,
        Kind::EmailTemplate,
        Kind::Report,
        Kind::Dashboard,
        Kind::Workflow,
    ];

    /// The kind's name in URLs and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entity => "entity",
            Self::Form => "form",
            Self::View => "view",
            Self::Workflow => "workflow",
            Self::Report => "report",
            Self::Dashboard => "dashboard",
            Self::PrintTemplate => "print_template",
            Self::EmailTemplate => "email_template",
        }
    }

    /// The kind's plural, as used in URLs and bundle folders.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Entity => "entities",
            Self::Form => "forms",
            Self::View => "views",
            Self::Workflow => "workflows",
            Self::Report => "reports",
            Self::Dashboard => "dashboards",
            Self::PrintTemplate => "print_templates",
            Self::EmailTemplate => "email_templates",
        }
    }

    /// The kind whose definitions live in a folder of this path's parent (`entities/lead.json`),
    /// or, for a bundle's workflows, under `workflows/templates/<bundle>/`.
    pub fn of_file(path: &std::path::Path) -> Option<Self> {
        let parent = path.parent()?;
        let folder = parent.file_name()?.to_str()?;
        if let Some(kind) = Self::ALL.into_iter().find(|k| k.plural() == folder) {
            return Some(kind);
        }
        let templates = parent.parent()?;
        let root = templates.parent()?;
        (templates.file_name()? == "templates" && root.file_name()? == "workflows")
            .then_some(Self::Workflow)
    }

    /// The folder names of every kind, for messages.
    pub fn folders() -> String {
        Self::ALL.map(Kind::plural).join(", ")
    }

    /// Parses a kind name, singular or plural.
    ///
    /// # Errors
    /// `Error::NotFound` for an unknown kind.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == name || k.plural() == name)
            .ok_or_else(|| Error::not_found(format!("definition kind {name:?}")))
    }
}

/// A definition as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DefinitionView {
    /// Kind.
    pub kind: Kind,
    /// Key.
    pub key: String,
    /// Bumped by every change; send it back to change the definition (optimistic concurrency).
    pub revision: i64,
    /// The version in force, if published.
    pub published_version: Option<i32>,
    /// The highest version number.
    pub latest_version: i32,
    /// The document in force (from the live registry), if published.
    pub published: Option<Value>,
    /// The unpublished draft, if any.
    pub draft: Option<Value>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who made it (absent for the system).
    pub updated_by: Option<Uuid>,
}

impl DefinitionView {
    /// The document being worked on: the draft, else the published one.
    pub fn working(&self) -> Option<&Value> {
        self.draft.as_ref().or(self.published.as_ref())
    }
}

/// A version as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// Number, from 1.
    pub version: i32,
    /// Where it came from: `draft`, `bundle:<name>@<version>` or `rollback:<n>`.
    pub origin: String,
    /// When it was published.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: Option<Uuid>,
    /// Whether it is the one in force.
    pub in_force: bool,
    /// The document.
    pub document: Value,
}

/// What definition operations need: the database, the clock and the live registry.
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    /// The database.
    pub db: &'a Db,
    /// The clock.
    pub clock: &'a SharedClock,
    /// The live registry.
    pub registry: &'a Registry,
}

/// The workspace a definition operation runs in.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// Its id.
    pub workspace_id: Uuid,
    /// Its definitions generation when the request began.
    pub generation: i64,
}

fn view_of(row: &DefinitionRow, kind: Kind, snapshot: &Snapshot) -> DefinitionView {
    let published = snapshot.get(kind, &row.key).map(|p| (*p.document).clone());
    DefinitionView {
        kind,
        key: row.key.clone(),
        revision: row.revision,
        published_version: row.published_version,
        latest_version: row.latest_version,
        published,
        draft: row.draft.clone(),
        updated_at: row.updated_at,
        updated_by: row.updated_by,
    }
}

/// A new definition row at revision 1 with no versions; callers set draft or version fields.
fn fresh_row(
    workspace_id: Uuid,
    kind: Kind,
    key: &str,
    actor: Actor,
    now: DateTime<Utc>,
) -> DefinitionRow {
    DefinitionRow {
        id: new_id(),
        workspace_id,
        kind: kind.as_str().to_owned(),
        key: key.to_owned(),
        revision: 1,
        draft: None,
        published_version: None,
        latest_version: 0,
        created_at: now,
        created_by: actor.account_id(),
        updated_at: now,
        updated_by: actor.account_id(),
    }
}

fn stale(expected: i64, actual: i64) -> Error {
    Error::conflict(
        "/revision",
        "stale_revision",
        format!(
            "the definition changed since revision {expected} (now {actual}); reload it and apply your change again"
        ),
    )
}

impl Store<'_> {
    async fn snapshot(&self, scope: Scope) -> Result<std::sync::Arc<Snapshot>> {
        self.registry
            .snapshot(self.db, scope.workspace_id, scope.generation)
            .await
    }

    async fn find(&self, scope: Scope, kind: Kind, key: &str) -> Result<DefinitionRow> {
        if DefinitionKey::parse_at(key, "/key").is_err() {
            return Err(Error::not_found(format!("{} {key:?}", kind.as_str())));
        }
        rows::find(self.db.conn(), scope.workspace_id, kind.as_str(), key)
            .await?
            .ok_or_else(|| Error::not_found(format!("{} {key:?}", kind.as_str())))
    }

    /// Every definition of a workspace, optionally of one kind.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn list(&self, scope: Scope, kind: Option<Kind>) -> Result<Vec<DefinitionView>> {
        let snapshot = self.snapshot(scope).await?;
        let all = rows::list(self.db.conn(), scope.workspace_id, kind.map(Kind::as_str)).await?;
        Ok(all
            .iter()
            .filter_map(|row| Some(view_of(row, Kind::parse(&row.kind).ok()?, &snapshot)))
            .collect())
    }

    /// One definition.
    ///
    /// # Errors
    /// `Error::NotFound`.
    pub async fn get(&self, scope: Scope, kind: Kind, key: &str) -> Result<DefinitionView> {
        let row = self.find(scope, kind, key).await?;
        Ok(view_of(&row, kind, &*self.snapshot(scope).await?))
    }

    /// Saves a draft after validating it against its meta-schema. A new definition needs no
    /// revision (or 0); an existing one needs the revision the caller last read.
    ///
    /// # Errors
    /// `Error::Invalid` listing every problem; `Error::Conflict` for a stale revision.
    pub async fn save_draft(
        &self,
        scope: Scope,
        kind: Kind,
        key: &str,
        document: Value,
        expected_revision: Option<i64>,
        actor: Actor,
    ) -> Result<DefinitionView> {
        let key = DefinitionKey::parse_at(key, "/key")?;
        let mut document = document;
        if kind == Kind::Entity {
            entity::pin_field_order(&mut document);
        }
        let problems = check_document(kind, &document, "/document");
        if !problems.is_empty() {
            return Err(Error::invalid_all(
                format!("the {} definition is invalid", kind.as_str()),
                problems,
            ));
        }
        let now = self.clock.now();
        let existing = rows::find(
            self.db.conn(),
            scope.workspace_id,
            kind.as_str(),
            key.as_str(),
        )
        .await?;
        let row = match existing {
            None => {
                if let Some(expected) = expected_revision.filter(|r| *r != 0) {
                    return Err(Error::not_found(format!(
                        "{} {key:?} at revision {expected}",
                        kind.as_str()
                    )));
                }
                let inserted = rows::insert(
                    self.db.conn(),
                    DefinitionRow {
                        draft: Some(document),
                        ..fresh_row(scope.workspace_id, kind, key.as_str(), actor, now)
                    },
                )
                .await;
                match inserted {
                    Ok(row) => row,
                    Err(Error::Db(e)) if store::is_unique_violation(&e) => {
                        return Err(stale(0, 1));
                    }
                    Err(e) => return Err(e),
                }
            }
            Some(row) => {
                let Some(expected) = expected_revision else {
                    return Err(Error::invalid(
                        "/revision",
                        "required",
                        format!(
                            "{} {key:?} exists; send the revision you last read (now {})",
                            kind.as_str(),
                            row.revision
                        ),
                    ));
                };
                let change = DefinitionChange {
                    draft: Some(Some(document)),
                    ..Default::default()
                };
                if !rows::update_if_revision(
                    self.db.conn(),
                    row.id,
                    expected,
                    change,
                    actor.account_id(),
                    now,
                )
                .await?
                {
                    return Err(stale(expected, row.revision));
                }
                self.find(scope, kind, key.as_str()).await?
            }
        };
        Ok(view_of(&row, kind, &*self.snapshot(scope).await?))
    }

    /// Drops the draft.
    ///
    /// # Errors
    /// `Error::NotFound` when there is no draft; `Error::Conflict` for a stale revision.
    pub async fn discard_draft(
        &self,
        scope: Scope,
        kind: Kind,
        key: &str,
        expected_revision: i64,
        actor: Actor,
    ) -> Result<DefinitionView> {
        let row = self.find(scope, kind, key).await?;
        if row.draft.is_none() {
            return Err(Error::not_found(format!(
                "draft of {} {key:?}",
                kind.as_str()
            )));
        }
        let change = DefinitionChange {
            draft: Some(None),
            ..Default::default()
        };
        if !rows::update_if_revision(
            self.db.conn(),
            row.id,
            expected_revision,
            change,
            actor.account_id(),
            self.clock.now(),
        )
        .await?
        {
            return Err(stale(expected_revision, row.revision));
        }
        self.get(scope, kind, key).await
    }

    /// Publishes the draft as the next version, or (with `rollback_to`) republishes an older
    /// version's document as the next version. Checks the document against the other published
    /// definitions first, then swaps the live registry.
    ///
    /// # Errors
    /// `Error::Invalid` when there is no draft, the version does not exist, or references break;
    /// `Error::Conflict` for a stale revision.
    pub async fn publish(
        &self,
        scope: Scope,
        kind: Kind,
        key: &str,
        expected_revision: i64,
        rollback_to: Option<i32>,
        actor: Actor,
    ) -> Result<DefinitionView> {
        let row = self.find(scope, kind, key).await?;
        if row.revision != expected_revision {
            return Err(stale(expected_revision, row.revision));
        }
        let (document, origin, clear_draft) = match rollback_to {
            Some(version) => {
                let old = rows::find_version(self.db.conn(), row.id, version)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid(
                            "/rollback_to",
                            "unknown_version",
                            format!("{} {key:?} has no version {version}", kind.as_str()),
                        )
                    })?;
                (old.document, format!("rollback:{version}"), false)
            }
            None => {
                let draft = row.draft.clone().ok_or_else(|| {
                    Error::invalid(
                        "/draft",
                        "no_draft",
                        format!("{} {key:?} has no draft to publish", kind.as_str()),
                    )
                })?;
                (draft, "draft".to_owned(), true)
            }
        };
        let now = self.clock.now();
        let tx = self.db.begin().await?;
        // Taking the workspace row first serialises publishes in a workspace, so the references
        // checked below are the ones in force when this version commits.
        store::workspaces::bump_generation(&tx, scope.workspace_id).await?;
        let set = DefinitionSet::load(&tx, scope.workspace_id).await?;
        let problems = check_publish(&set, kind, key, &document);
        if !problems.is_empty() {
            return Err(Error::invalid_all(
                format!(
                    "publishing this {} would leave references to what does not exist",
                    kind.as_str()
                ),
                problems,
            ));
        }
        publish_in(
            &tx,
            self.clock,
            NextVersion {
                row: &row,
                expected_revision,
                previous: set.get(kind, key),
                document,
                origin: &origin,
                clear_draft,
                actor,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        store::access_changed();
        // The version is committed; a failed reload only delays it to the next request.
        let scope = match self.refresh(scope.workspace_id).await {
            Ok(scope) => scope,
            Err(e) => {
                tracing::warn!(error = %e, "reloading the registry after a publish failed");
                scope
            }
        };
        self.get(scope, kind, key).await
    }

    /// Reloads a workspace's snapshot after a change committed; returns the new scope.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn refresh(&self, workspace_id: Uuid) -> Result<Scope> {
        let workspace = store::workspaces::find(self.db.conn(), workspace_id)
            .await?
            .ok_or_else(|| Error::not_found("workspace"))?;
        self.registry
            .reload(self.db, workspace_id, workspace.definitions_generation)
            .await?;
        Ok(Scope {
            workspace_id,
            generation: workspace.definitions_generation,
        })
    }

    /// Every version of a definition, newest first.
    ///
    /// # Errors
    /// `Error::NotFound`.
    pub async fn versions(&self, scope: Scope, kind: Kind, key: &str) -> Result<Vec<VersionView>> {
        let row = self.find(scope, kind, key).await?;
        Ok(rows::list_versions(self.db.conn(), row.id)
            .await?
            .into_iter()
            .map(|v| VersionView {
                in_force: Some(v.version) == row.published_version,
                version: v.version,
                origin: v.origin,
                created_at: v.created_at,
                created_by: v.created_by,
                document: v.document,
            })
            .collect())
    }
}

/// Makes record storage follow a newly published entity version (inside the publishing
/// transaction): its table, indexes and stored values.
#[allow(clippy::too_many_arguments)]
async fn follow_entity(
    conn: &impl Conn,
    clock: &SharedClock,
    actor: Actor,
    workspace_id: Uuid,
    definition_id: Uuid,
    key: &str,
    previous: Option<&Value>,
    (version, document): (i32, &Value),
) -> Result<()> {
    let compile = |version: i32, document: &Value| {
        EntityModel::build(
            key,
            definition_id,
            version,
            std::sync::Arc::new(document.clone()),
        )
        .map_err(|e| Error::invalid_all("the entity does not compile", vec![e]))
    };
    let model = compile(version, document)?;
    let previous = previous.map(|doc| compile(version - 1, doc)).transpose()?;
    crate::records::schema::prepare(conn, clock, workspace_id, previous.as_ref(), &model).await?;
    if let Some(previous) = &previous {
        let zone = store::workspaces::find(conn, workspace_id)
            .await?
            .and_then(|w| w.time_zone.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(chrono_tz::Asia::Shanghai);
        let converted = crate::records::evolve::apply(
            conn,
            workspace_id,
            actor,
            clock.now(),
            previous,
            &model,
            zone,
        )
        .await?;
        if converted > 0 {
            tracing::info!(
                entity = key,
                converted,
                "stored values converted to the new field kinds"
            );
            // Converted values feed this entity's formulas and other entities' rollups.
            crate::records::recompute::schedule_after_conversion(conn, clock, workspace_id, &model)
                .await?;
        }
    }
    Ok(())
}

/// A definition to insert already published at version 1 (bundle installs).
#[derive(Debug, Clone)]
pub struct Seed<'a> {
    /// Kind.
    pub kind: Kind,
    /// Key.
    pub key: &'a str,
    /// Document (already validated by the caller).
    pub document: Value,
    /// Provenance written into the version, e.g. `bundle:sales-crm@1.0.0`.
    pub origin: &'a str,
    /// Who installs it.
    pub actor: Actor,
    /// When.
    pub now: DateTime<Utc>,
}

/// A next published version of an existing definition, for [`publish_in`].
#[derive(Debug)]
pub struct NextVersion<'a> {
    /// The definition as read in the caller's transaction.
    pub row: &'a DefinitionRow,
    /// The revision the change is based on.
    pub expected_revision: i64,
    /// The published document it replaces.
    pub previous: Option<&'a Value>,
    /// The new document (checked by the caller).
    pub document: Value,
    /// Where it came from (`draft`, `rollback:3`, `upgrade:sales-crm@1.1.0`).
    pub origin: &'a str,
    /// Whether publishing clears the draft.
    pub clear_draft: bool,
    /// Who.
    pub actor: Actor,
    /// When.
    pub now: DateTime<Utc>,
}

/// Publishes the next version of an existing definition inside the caller's transaction (which
/// has checked the document and bumped the workspace's generation): workflows re-plan, entities
/// evolve their tables, the version is recorded.
///
/// # Errors
/// `Error::Conflict` for a stale revision; evolution errors; `Error::Db`.
pub async fn publish_in(
    conn: &impl Conn,
    clock: &SharedClock,
    next: NextVersion<'_>,
) -> Result<()> {
    let NextVersion {
        row,
        expected_revision,
        previous,
        mut document,
        origin,
        clear_draft,
        actor,
        now,
    } = next;
    let version = row.latest_version + 1;
    let kind = Kind::parse(&row.kind)?;
    if kind == Kind::Entity {
        entity::pin_field_order(&mut document);
    }
    if kind == Kind::Workflow {
        crate::workflows::published(
            conn,
            clock,
            row.workspace_id,
            (&row.key, row.id, version),
            &document,
        )
        .await?;
    }
    if kind == Kind::Entity {
        follow_entity(
            conn,
            clock,
            actor,
            row.workspace_id,
            row.id,
            &row.key,
            previous,
            (version, &document),
        )
        .await?;
    }
    let change = DefinitionChange {
        draft: clear_draft.then_some(None),
        published_version: Some(version),
        latest_version: Some(version),
    };
    if !rows::update_if_revision(
        conn,
        row.id,
        expected_revision,
        change,
        actor.account_id(),
        now,
    )
    .await?
    {
        return Err(stale(expected_revision, row.revision));
    }
    rows::insert_version(
        conn,
        VersionRow {
            definition_id: row.id,
            version,
            document,
            origin: origin.to_owned(),
            created_at: now,
            created_by: actor.account_id(),
        },
    )
    .await
}

/// Inserts a definition already published at version 1, inside the caller's transaction.
/// The caller bumps the workspace generation once for the whole install.
///
/// # Errors
/// `Error::Conflict` when the workspace already has a definition with this kind and key.
pub async fn insert_published(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    seed: Seed<'_>,
) -> Result<()> {
    let Seed {
        kind,
        key,
        mut document,
        origin,
        actor,
        now,
    } = seed;
    if kind == Kind::Entity {
        entity::pin_field_order(&mut document);
    }
    let pointer = format!("/definitions/{}/{key}", kind.as_str());
    if rows::find(conn, workspace_id, kind.as_str(), key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            pointer,
            "exists",
            format!("the workspace already has a {} {key:?}", kind.as_str()),
        ));
    }
    let row = DefinitionRow {
        published_version: Some(1),
        latest_version: 1,
        ..fresh_row(workspace_id, kind, key, actor, now)
    };
    let id = row.id;
    let is_entity = kind == Kind::Entity;
    let inserted = rows::insert(conn, row).await;
    match inserted {
        Ok(_) => {}
        // Another install created it between the check above and this insert.
        Err(Error::Db(e)) if store::is_unique_violation(&e) => {
            return Err(Error::conflict(
                pointer,
                "exists",
                format!("the workspace already has a {} {key:?}", kind.as_str()),
            ));
        }
        Err(e) => return Err(e),
    }
    if is_entity {
        follow_entity(
            conn,
            clock,
            actor,
            workspace_id,
            id,
            key,
            None,
            (1, &document),
        )
        .await?;
    }
    if kind == Kind::Workflow {
        crate::workflows::published(conn, clock, workspace_id, (key, id, 1), &document).await?;
    }
    rows::insert_version(
        conn,
        VersionRow {
            definition_id: id,
            version: 1,
            document,
            origin: origin.to_owned(),
            created_at: now,
            created_by: actor.account_id(),
        },
    )
    .await
}
