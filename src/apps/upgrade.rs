//! Upgrading an installed app to a new version of its template. Per definition and role, a
//! three-way merge of what the template shipped (the app's base), what the workspace has now and
//! what the new version ships: changes the workspace did not touch apply, changes beside the
//! workspace's own merge, and the rest are conflicts the admin resolves (take the template's,
//! or keep mine). Definitions the new version drops are kept, with their records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::merge::merge3;
use super::{Bundle, Label};
use crate::clock::SharedClock;
use crate::definitions::{self, DefinitionSet, Kind, Registry, check_document, check_publish};
use crate::domain::Actor;
use crate::error::{Error, FieldError, Result};
use crate::store::{self, Conn, Db};

/// What an upgrade does to one definition or role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// New in the template: created.
    Add,
    /// Changed in the template (merged with the workspace's own changes): published.
    Update,
    /// The workspace already has what the new version ships.
    Same,
    /// Both changed the same thing: nothing happens until resolved.
    Conflict,
    /// The admin chose to keep the workspace's version.
    KeepMine,
    /// The new version no longer ships it: kept, with its records.
    Dropped,
}

/// How the admin resolves a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Take the template's new version, dropping the workspace's changes to it.
    Theirs,
    /// Keep the workspace's version; the template's change is declined.
    Mine,
}

/// One planned change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `entity`, `form`, …, or `role`.
    pub kind: String,
    /// Its key in the workspace.
    pub key: String,
    /// What happens.
    pub action: Action,
    /// For a conflict: where both sides changed the same value (JSON pointers in the document).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// The document after the upgrade (for add and update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
}

impl Change {
    /// `kind/key`, the name resolutions use.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind, self.key)
    }
}

/// An upgrade's plan (or, once applied, what it did).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The app.
    pub app: Uuid,
    /// Its template.
    pub template: String,
    /// The version installed.
    pub from: String,
    /// The version offered.
    pub to: String,
    /// Every definition or role that differs between the versions.
    pub changes: Vec<Change>,
    /// Problems that stop the upgrade (the merged definitions do not check).
    pub problems: Vec<FieldError>,
    /// Whether it was applied.
    pub applied: bool,
}

impl Plan {
    /// How many conflicts remain unresolved.
    pub fn conflicts(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.action == Action::Conflict)
            .count()
    }
}

fn section<'a>(base: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
    base.pointer(path).and_then(Value::as_object)
}

/// Plans an upgrade inside `conn`; `resolutions` by `kind/key`.
async fn plan_in(
    conn: &impl Conn,
    workspace_id: Uuid,
    app_id: Uuid,
    bundle: &Bundle,
    resolutions: &HashMap<String, Resolution>,
) -> Result<(Plan, store::apps::InstalledAppRow, Value)> {
    let app = store::apps::find(conn, workspace_id, app_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("app {app_id}")))?;
    if bundle.manifest.name != app.template {
        return Err(Error::invalid(
            "/bundle/manifest/name",
            "other_template",
            format!(
                "the app came from template {:?}, not {:?}",
                app.template, bundle.manifest.name
            ),
        ));
    }
    let mut renaming = bundle
        .renaming(app.prefix.as_deref())
        .map_err(|problems| super::as_invalid(bundle, problems))?;
    for role in &bundle.roles {
        renaming.role(&role.key, format!("{}.{}", app.namespace, role.key));
    }
    let new = bundle.renamed(&renaming).base();
    let base = app.base.clone();
    let existing = DefinitionSet::load(conn, workspace_id).await?;
    let roles: HashMap<String, Value> = store::people::roles(conn, workspace_id)
        .await?
        .into_iter()
        .map(|r| (r.key, r.rights))
        .collect();
    let mut changes = Vec::new();
    for kind in Kind::ALL {
        let path = format!("/definitions/{}", kind.as_str());
        let keys: BTreeSet<&String> = section(&base, &path)
            .into_iter()
            .chain(section(&new, &path))
            .flat_map(Map::keys)
            .collect();
        for key in keys {
            let old = base.pointer(&format!("{path}/{key}"));
            let offered = new.pointer(&format!("{path}/{key}"));
            if let Some(change) = plan_one(
                kind.as_str(),
                key,
                old,
                existing.get(kind, key),
                offered,
                resolutions,
            ) {
                changes.push(change);
            }
        }
    }
    let role_keys: BTreeSet<&String> = section(&base, "/roles")
        .into_iter()
        .chain(section(&new, "/roles"))
        .flat_map(Map::keys)
        .collect();
    for key in role_keys {
        let rights = |doc: &Value, at: &str| doc.pointer(&format!("/roles/{key}/{at}")).cloned();
        let old = rights(&base, "rights");
        let offered = rights(&new, "rights");
        if let Some(change) = plan_one(
            "role",
            key,
            old.as_ref(),
            roles.get(key.as_str()),
            offered.as_ref(),
            resolutions,
        ) {
            changes.push(change);
        }
    }
    let problems = check_plan(&existing, &changes, &app.namespace);
    Ok((
        Plan {
            app: app.id,
            template: app.template.clone(),
            from: app.version.clone(),
            to: bundle.manifest.version.clone(),
            changes,
            problems,
            applied: false,
        },
        app,
        new,
    ))
}

fn plan_one(
    kind: &str,
    key: &str,
    base: Option<&Value>,
    current: Option<&Value>,
    offered: Option<&Value>,
    resolutions: &HashMap<String, Resolution>,
) -> Option<Change> {
    if base == offered {
        return None;
    }
    let change = |action: Action, conflicts: Vec<String>, document: Option<Value>| Change {
        kind: kind.to_owned(),
        key: key.to_owned(),
        action,
        conflicts,
        document,
    };
    let Some(offered) = offered else {
        return Some(change(Action::Dropped, Vec::new(), None));
    };
    let resolution = resolutions.get(&format!("{kind}/{key}")).copied();
    let merged = match (base, current) {
        (_, Some(current)) if current == offered => {
            return Some(change(Action::Same, Vec::new(), None));
        }
        (None, None) => Ok(Some(offered.clone())),
        (None, Some(_)) => Err(vec!["/".to_owned()]),
        (Some(base), current) => merge3(Some(base), current, Some(offered)),
    };
    Some(match (merged, resolution) {
        (_, Some(Resolution::Mine)) => change(Action::KeepMine, Vec::new(), None),
        (Ok(Some(document)), _) if current.is_none() => {
            change(Action::Add, Vec::new(), Some(document))
        }
        (Ok(Some(document)), _) if Some(&document) == current => {
            change(Action::Same, Vec::new(), None)
        }
        (Ok(Some(document)), _) => change(Action::Update, Vec::new(), Some(document)),
        (Ok(None), _) => change(Action::Same, Vec::new(), None),
        (Err(_), Some(Resolution::Theirs)) => change(
            if current.is_some() {
                Action::Update
            } else {
                Action::Add
            },
            Vec::new(),
            Some(offered.clone()),
        ),
        (Err(conflicts), None) => change(Action::Conflict, conflicts, None),
    })
}

/// Every problem of the definitions as they would be after the upgrade.
fn check_plan(existing: &DefinitionSet, changes: &[Change], namespace: &str) -> Vec<FieldError> {
    let mut after = existing.clone();
    let mut touched = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        if let (Ok(kind), Some(document)) = (Kind::parse(&change.kind), &change.document) {
            after.insert(kind, &change.key, document.clone());
            touched.push((i, kind, change));
        }
    }
    let mut problems = Vec::new();
    for (i, kind, change) in touched {
        let Some(document) = &change.document else {
            continue;
        };
        let at = |mut problem: FieldError| {
            problem.pointer = format!("/changes/{i}{}", problem.pointer);
            problem
        };
        let found = check_document(kind, document, "/document");
        if found.is_empty() {
            problems.extend(
                check_publish(&after, kind, &change.key, document)
                    .into_iter()
                    .map(at),
            );
        } else {
            problems.extend(found.into_iter().map(at));
        }
    }
    // Roles: only the app's own (its namespace), and rights that parse against the entities as
    // they will be.
    let fields = |entity: &str| {
        after.get(Kind::Entity, entity).map(|doc| {
            doc.get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    for (i, change) in changes.iter().enumerate() {
        if change.kind != "role" {
            continue;
        }
        if !change.key.starts_with(&format!("{namespace}.")) {
            problems.push(FieldError::new(
                format!("/changes/{i}"),
                "foreign_role",
                format!(
                    "role {:?} is not this app's (its roles are {namespace}.*)",
                    change.key
                ),
            ));
        }
        if let Some(document) = &change.document
            && let Err(Error::Invalid { errors, .. }) =
                crate::access::Rights::parse(document, &format!("/changes/{i}/document"), &fields)
        {
            problems.extend(errors);
        }
    }
    problems
}

/// The plan of upgrading an app to `bundle` (a newer version of its template).
///
/// # Errors
/// `Error::NotFound` for an unknown app; `Error::Invalid` for another template's bundle.
pub async fn plan(
    db: &Db,
    workspace_id: Uuid,
    app_id: Uuid,
    bundle: &Bundle,
    resolutions: &HashMap<String, Resolution>,
) -> Result<Plan> {
    Ok(
        plan_in(db.conn(), workspace_id, app_id, bundle, resolutions)
            .await?
            .0,
    )
}

/// Applies an upgrade in one transaction: every add and update (conflicts stay as they are
/// until resolved), roles, and the app's new base and version. Changing roles' rights needs
/// `may_change_roles` (an admin): people hold those roles.
///
/// # Errors
/// `Error::Forbidden` for role changes without `may_change_roles`; `Error::Invalid` when the
/// merged definitions or rights do not check (nothing is written); as [`plan`].
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    db: &Db,
    clock: &SharedClock,
    registry: &Registry,
    workspace_id: Uuid,
    app_id: Uuid,
    bundle: &Bundle,
    resolutions: &HashMap<String, Resolution>,
    actor: Actor,
    may_change_roles: bool,
) -> Result<Plan> {
    let tx = db.begin().await?;
    store::workspaces::bump_generation(&tx, workspace_id).await?;
    let (mut plan, app, new) = plan_in(&tx, workspace_id, app_id, bundle, resolutions).await?;
    let changes_roles = plan
        .changes
        .iter()
        .any(|c| c.kind == "role" && c.document.is_some());
    if changes_roles && !may_change_roles {
        return Err(Error::forbidden(
            "this upgrade changes the rights of roles: an admin applies it",
        ));
    }
    if !plan.problems.is_empty() {
        return Err(Error::invalid_all(
            "after the upgrade some definitions would not check; nothing was changed",
            plan.problems,
        ));
    }
    let now = clock.now();
    let origin = format!(
        "upgrade:{}@{}",
        bundle.manifest.name, bundle.manifest.version
    );
    let existing = DefinitionSet::load(&tx, workspace_id).await?;
    // New entities first, so that what refers to them finds their tables.
    let mut ordered: Vec<&Change> = plan.changes.iter().collect();
    ordered.sort_by_key(|c| (Kind::parse(&c.kind).ok(), c.key.clone()));
    for change in ordered {
        let Some(document) = &change.document else {
            continue;
        };
        if change.kind == "role" {
            let name = store::people::roles(&tx, workspace_id)
                .await?
                .into_iter()
                .find(|r| r.key == change.key)
                .map(|r| r.name)
                .or_else(|| {
                    new.pointer(&format!("/roles/{}/name", change.key))
                        .and_then(|n| serde_json::from_value::<Label>(n.clone()).ok())
                        .map(|l| l.en)
                })
                .unwrap_or_else(|| change.key.clone());
            store::people::upsert_role(
                &tx,
                store::people::RoleRow {
                    workspace_id,
                    key: change.key.clone(),
                    name,
                    // Parsed by `check_plan`; stored as the roles API stores rights.
                    rights: crate::access::Rights::parse(document, "", &|_| Some(Vec::new()))
                        .map_or_else(|_| document.clone(), |r| r.to_json()),
                    created_at: now,
                    updated_at: now,
                },
            )
            .await?;
            continue;
        }
        let kind = Kind::parse(&change.kind)?;
        match change.action {
            Action::Add => {
                definitions::insert_published(
                    &tx,
                    clock,
                    workspace_id,
                    definitions::Seed {
                        kind,
                        key: &change.key,
                        document: document.clone(),
                        origin: &origin,
                        actor,
                        now,
                    },
                )
                .await?;
            }
            Action::Update => {
                let row = store::definitions::find(&tx, workspace_id, kind.as_str(), &change.key)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("{} {:?}", change.kind, change.key)))?;
                definitions::publish_in(
                    &tx,
                    clock,
                    definitions::NextVersion {
                        row: &row,
                        expected_revision: row.revision,
                        previous: existing.get(kind, &change.key),
                        document: document.clone(),
                        origin: &origin,
                        clear_draft: false,
                        actor,
                        now,
                    },
                )
                .await?;
            }
            _ => {}
        }
    }
    let base = next_base(&app.base, &new, &plan.changes);
    store::apps::upgrade(&tx, app.id, &bundle.manifest.version, base, now).await?;
    tx.commit().await?;
    super::after_commit(db, clock, registry, workspace_id, "an upgrade").await;
    plan.applied = true;
    Ok(plan)
}

/// The app's base after an upgrade: the new version's documents, except where a conflict is
/// still open (those keep the old base, so the next plan shows them again).
fn next_base(old: &Value, new: &Value, changes: &[Change]) -> Value {
    let open: BTreeMap<String, ()> = changes
        .iter()
        .filter(|c| c.action == Action::Conflict)
        .map(|c| (c.name(), ()))
        .collect();
    let mut base = new.clone();
    for name in open.keys() {
        let Some((kind, key)) = name.split_once('/') else {
            continue;
        };
        let path = if kind == "role" {
            format!("/roles/{key}")
        } else {
            format!("/definitions/{kind}/{key}")
        };
        let kept = old.pointer(&path).cloned();
        let (parent, leaf) = path.rsplit_once('/').unwrap_or(("", key));
        if let Some(section) = base.pointer_mut(parent).and_then(Value::as_object_mut) {
            match kept {
                Some(value) => {
                    section.insert(leaf.to_owned(), value);
                }
                None => {
                    section.remove(leaf);
                }
            }
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plans_each_case() {
        let none = HashMap::new();
        let base = json!({"label": "A", "x": 1});
        // Untouched in the workspace: the template's change applies as is.
        let change = plan_one(
            "entity",
            "lead",
            Some(&base),
            Some(&base),
            Some(&json!({"label": "A", "x": 2})),
            &none,
        )
        .expect("a change");
        assert_eq!(change.action, Action::Update);
        assert_eq!(change.document, Some(json!({"label": "A", "x": 2})));
        // Changed beside the template's change: merged.
        let change = plan_one(
            "entity",
            "lead",
            Some(&base),
            Some(&json!({"label": "Mine", "x": 1})),
            Some(&json!({"label": "A", "x": 2})),
            &none,
        )
        .expect("a change");
        assert_eq!(change.document, Some(json!({"label": "Mine", "x": 2})));
        // The same value changed on both sides: a conflict, unless resolved.
        let current = json!({"label": "Mine", "x": 1});
        let offered = json!({"label": "Theirs", "x": 1});
        let change = plan_one(
            "entity",
            "lead",
            Some(&base),
            Some(&current),
            Some(&offered),
            &none,
        )
        .expect("a change");
        assert_eq!(change.action, Action::Conflict);
        assert_eq!(change.conflicts, vec!["/label".to_owned()]);
        let theirs = HashMap::from([("entity/lead".to_owned(), Resolution::Theirs)]);
        let change = plan_one(
            "entity",
            "lead",
            Some(&base),
            Some(&current),
            Some(&offered),
            &theirs,
        )
        .expect("a change");
        assert_eq!(
            (change.action, change.document),
            (Action::Update, Some(offered.clone()))
        );
        // Unchanged in the template: nothing to plan; dropped: kept.
        assert!(plan_one("entity", "lead", Some(&base), None, Some(&base), &none).is_none());
        assert_eq!(
            plan_one("entity", "lead", Some(&base), Some(&base), None, &none).map(|c| c.action),
            Some(Action::Dropped)
        );
        // New in the template; or new but the workspace made its own.
        assert_eq!(
            plan_one("form", "f", None, None, Some(&base), &none).map(|c| c.action),
            Some(Action::Add)
        );
        assert_eq!(
            plan_one("form", "f", None, Some(&current), Some(&base), &none).map(|c| c.action),
            Some(Action::Conflict)
        );
    }

    #[test]
    fn open_conflicts_keep_their_old_base() {
        let old = json!({"definitions": {"entity": {"a": 1, "b": 1}}, "roles": {}});
        let new = json!({"definitions": {"entity": {"a": 2, "b": 2}}, "roles": {}});
        let changes = vec![Change {
            kind: "entity".to_owned(),
            key: "b".to_owned(),
            action: Action::Conflict,
            conflicts: vec!["/".to_owned()],
            document: None,
        }];
        assert_eq!(
            next_base(&old, &new, &changes),
            json!({"definitions": {"entity": {"a": 2, "b": 1}}, "roles": {}})
        );
    }
}
