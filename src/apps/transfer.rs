//! Exporting a workspace's app as one bundle document (definitions, roles, and optionally every
//! record with its history, counters and attachments) and importing the records of such a
//! bundle: people are matched to members by email, the rest mapped to the importer.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::rename::Renaming;
use super::{Bundle, BundleDefinition, BundleRole, Label, Manifest};
use crate::definitions::Kind;
use crate::domain::Actor;
use crate::error::{Error, FieldError, Result};
use crate::records::transfer::{self as moving, Moved, MovedAttachment, MovedCounter, MovedRecord};
use crate::store::records::{AttachmentRow, HistoryRow, RecordRow};
use crate::store::{self, Conn, Db};

/// Most records one bundle may carry.
pub const MAX_RECORDS: usize = 200_000;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// One installed app (default: every definition of the workspace).
    pub app: Option<Uuid>,
    /// Include every record with its history.
    pub data: bool,
    /// The bundle's name (default: the app's template, or `workspace-app`).
    pub name: Option<String>,
    /// Its version (default: the app's, or 1.0.0).
    pub version: Option<String>,
}

/// A person named in exported data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Person {
    id: Uuid,
    email: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataDocument {
    #[serde(default)]
    people: Vec<Person>,
    #[serde(default)]
    records: Vec<DataRecord>,
    #[serde(default)]
    counters: Vec<DataCounter>,
    #[serde(default)]
    attachments: Vec<DataAttachment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataRecord {
    entity: String,
    id: Uuid,
    #[serde(default)]
    owner: Option<Uuid>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    created_by: Option<Uuid>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    updated_by: Option<Uuid>,
    version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deletion_id: Option<Uuid>,
    fields: Map<String, Value>,
    #[serde(default)]
    history: Vec<DataHistory>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataHistory {
    at: DateTime<Utc>,
    #[serde(default)]
    actor: Option<Uuid>,
    #[serde(default = "account_kind")]
    actor_kind: String,
    #[serde(default = "import_channel")]
    channel: String,
    operation: String,
    changes: Value,
}

fn account_kind() -> String {
    "account".to_owned()
}

fn import_channel() -> String {
    "import".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataCounter {
    entity: String,
    field: String,
    period: String,
    value: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataAttachment {
    id: Uuid,
    entity: String,
    record: Uuid,
    field: String,
    name: String,
    content_type: String,
    data: String,
}

/// How an imported bundle's people were matched.
#[derive(Debug, Clone, Serialize)]
pub struct PersonMatch {
    /// The email in the bundle.
    pub email: String,
    /// The name in the bundle.
    pub name: String,
    /// Whether a member of this workspace has that email; otherwise their records and
    /// changes are the importer's.
    pub matched: bool,
}

/// What an import of records wrote (or would write).
#[derive(Debug, Clone, Serialize)]
pub struct DataReport {
    /// Records per entity.
    pub records: BTreeMap<String, usize>,
    /// History entries.
    pub history: usize,
    /// Attachments.
    pub attachments: usize,
    /// People named in the data.
    pub people: Vec<PersonMatch>,
}

/// The workspace's members by email (lower case).
async fn members_by_email(conn: &impl Conn, workspace_id: Uuid) -> Result<HashMap<String, Uuid>> {
    let mut by_email = HashMap::new();
    for membership in store::people::memberships(conn, workspace_id).await? {
        if membership.deactivated_at.is_some() {
            continue;
        }
        if let Some(account) = store::accounts::find(conn, membership.account_id).await? {
            by_email.insert(account.email.to_lowercase(), account.id);
        }
    }
    Ok(by_email)
}

/// Replaces every string equal to a key of `ids` by its value, anywhere in `value`.
fn map_ids(value: &mut Value, ids: &HashMap<String, String>) {
    match value {
        Value::String(text) => {
            if let Some(new) = ids.get(text.as_str()) {
                *text = new.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| map_ids(v, ids)),
        Value::Object(map) => map.values_mut().for_each(|v| map_ids(v, ids)),
        _ => {}
    }
}

/// Imports the records of a bundle's `data` into the workspace inside `conn`, after the app's
/// definitions are in place. Ids of people and attachments are mapped; record ids are kept.
///
/// # Errors
/// `Error::Invalid` naming `/data/...` for anything wrong; nothing is written then.
pub async fn import_data(
    conn: &impl Conn,
    workspace_id: Uuid,
    data: &Value,
    renaming: &Renaming,
    entities: &std::collections::HashSet<String>,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<DataReport> {
    let document: DataDocument = serde_json::from_value(data.clone())
        .map_err(|e| Error::invalid("/data", "data", format!("the data is malformed: {e}")))?;
    if document.records.len() > MAX_RECORDS {
        return Err(Error::invalid(
            "/data/records",
            "too_many",
            format!(
                "{} records; a bundle carries at most {MAX_RECORDS} (import more with the records import)",
                document.records.len()
            ),
        ));
    }
    let importer = actor.account_id();
    let members = members_by_email(conn, workspace_id).await?;
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut people: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    let mut matches = Vec::new();
    for person in &document.people {
        let found = members.get(&person.email.to_lowercase()).copied();
        let to = found.or(importer);
        people.insert(person.id, to);
        if let Some(to) = to {
            ids.insert(person.id.to_string(), to.to_string());
        }
        matches.push(PersonMatch {
            email: person.email.clone(),
            name: person.name.clone(),
            matched: found.is_some(),
        });
    }
    let person = |id: Option<Uuid>| id.and_then(|id| people.get(&id).copied().unwrap_or(importer));
    let mut attachments = Vec::new();
    let mut problems = Vec::new();
    for (i, attachment) in document.attachments.iter().enumerate() {
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&attachment.data) {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(FieldError::new(
                    format!("/data/attachments/{i}/data"),
                    "base64",
                    format!("not base64: {e}"),
                ));
                continue;
            }
        };
        let new_id = crate::domain::new_id();
        ids.insert(attachment.id.to_string(), new_id.to_string());
        attachments.push(MovedAttachment {
            entity: renaming.key_of(Kind::Entity, &attachment.entity),
            row: AttachmentRow {
                id: new_id,
                workspace_id,
                entity_id: Uuid::nil(),
                field: attachment.field.clone(),
                record_id: Some(attachment.record),
                file_name: attachment.name.clone(),
                content_type: attachment.content_type.clone(),
                size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
                sha256: hex::encode(Sha256::digest(&bytes)),
                created_at: now,
                created_by: importer,
            },
            data: bytes,
        });
    }
    if !problems.is_empty() {
        return Err(Error::invalid_all("the app's data is invalid", problems));
    }
    let records = document
        .records
        .into_iter()
        .map(|record| {
            let mut doc = Value::Object(record.fields);
            map_ids(&mut doc, &ids);
            let history = record
                .history
                .into_iter()
                .map(|h| {
                    let mut changes = h.changes;
                    map_ids(&mut changes, &ids);
                    HistoryRow {
                        id: Uuid::nil(),
                        workspace_id,
                        entity_id: Uuid::nil(),
                        record_id: record.id,
                        at: h.at,
                        actor_id: person(h.actor),
                        actor_kind: h.actor_kind,
                        channel: h.channel,
                        operation: h.operation,
                        changes,
                    }
                })
                .collect();
            MovedRecord {
                entity: renaming.key_of(Kind::Entity, &record.entity),
                row: RecordRow {
                    id: record.id,
                    owner: person(record.owner),
                    created_at: record.created_at,
                    created_by: person(record.created_by),
                    updated_at: record.updated_at,
                    updated_by: person(record.updated_by),
                    version: record.version,
                    deleted_at: record.deleted_at,
                    deletion_id: record.deletion_id,
                    doc: match doc {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    },
                },
                history,
            }
        })
        .collect();
    let moved = Moved {
        records,
        counters: document
            .counters
            .into_iter()
            .map(|c| MovedCounter {
                entity: renaming.key_of(Kind::Entity, &c.entity),
                field: c.field,
                period: c.period,
                value: c.value,
            })
            .collect(),
        attachments,
    };
    let restored = moving::restore_in(conn, workspace_id, moved, entities, &|i| {
        format!("/data/records/{i}")
    })
    .await?;
    Ok(DataReport {
        records: restored.records,
        history: restored.history,
        attachments: restored.attachments,
        people: matches,
    })
}

/// A role's key inside an exported bundle: without its namespace (`crm.sales_rep` →
/// `sales_rep`), made unique.
fn bare_role_key(key: &str, taken: &mut std::collections::HashSet<String>) -> String {
    let bare = key.rsplit('.').next().unwrap_or(key).to_owned();
    let candidate = if taken.contains(&bare) || bare.len() < 2 {
        key.replace('.', "_")
    } else {
        bare
    };
    taken.insert(candidate.clone());
    candidate
}

/// Exports a workspace's app (or every definition of the workspace) as one bundle document
/// (`schemas/meta/template.schema.json`), with its records when `options.data`.
///
/// # Errors
/// `Error::NotFound` for an unknown app; `Error::Invalid` for a bad name or version;
/// `Error::Db`.
pub async fn export(db: &Db, workspace_id: Uuid, options: &ExportOptions) -> Result<Value> {
    let conn = db.conn();
    let workspace = store::workspaces::find(conn, workspace_id)
        .await?
        .ok_or_else(|| Error::not_found("workspace"))?;
    let app = match options.app {
        Some(id) => Some(
            store::apps::find(conn, workspace_id, id)
                .await?
                .ok_or_else(|| Error::not_found(format!("app {id}")))?,
        ),
        None => None,
    };
    let published = store::definitions::published(conn, workspace_id).await?;
    let in_app = |kind: &str, key: &str| {
        app.as_ref().is_none_or(|app| {
            app.base
                .pointer(&format!("/definitions/{kind}/{key}"))
                .is_some()
        })
    };
    let all_roles = store::people::roles(conn, workspace_id).await?;
    let roles: Vec<_> = all_roles
        .into_iter()
        .filter(|role| match &app {
            Some(app) => app
                .base
                .get("roles")
                .and_then(Value::as_object)
                .is_some_and(|r| r.contains_key(&role.key)),
            None => !crate::access::rights::BUILT_IN.contains(&role.key.as_str()),
        })
        .collect();
    // Back to the bundle's own keys: the clone's prefix and the role namespace come off.
    let mut back = Renaming::default();
    let prefix = app.as_ref().and_then(|a| a.prefix.clone());
    let mut definitions = Vec::new();
    for row in &published {
        let Ok(kind) = Kind::parse(&row.kind) else {
            continue;
        };
        if !in_app(&row.kind, &row.key) {
            continue;
        }
        let bare = prefix
            .as_ref()
            .and_then(|p| row.key.strip_prefix(&format!("{p}_")))
            .unwrap_or(&row.key)
            .to_owned();
        back.definition(kind, &row.key, bare.clone());
        definitions.push((kind, row.key.clone(), bare, row.document.clone()));
    }
    let mut taken = std::collections::HashSet::new();
    let mut bundle_roles = Vec::new();
    for role in &roles {
        let bare = bare_role_key(&role.key, &mut taken);
        back.role(&role.key, bare.clone());
        bundle_roles.push((role, bare));
    }
    let mut document_definitions: Map<String, Value> = Map::new();
    let mut entity_keys = Vec::new();
    let mut bundle_definitions = Vec::new();
    for (kind, key, bare, mut document) in definitions {
        back.document(kind, &mut document);
        if kind == Kind::Entity {
            entity_keys.push(key.clone());
        }
        if let Some(by_key) = document_definitions
            .entry(kind.as_str())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            by_key.insert(bare.clone(), document.clone());
        }
        bundle_definitions.push(BundleDefinition {
            kind,
            key: bare.clone(),
            document,
            source: format!("/definitions/{}/{bare}", kind.as_str()),
        });
    }
    let mut document_roles = Map::new();
    for (role, bare) in bundle_roles {
        let mut rights = role.rights.clone();
        back.rights(&mut rights);
        let label = Label {
            en: role.name.clone(),
            zh_cn: None,
        };
        document_roles.insert(
            bare.clone(),
            serde_json::json!({"name": label, "rights": rights}),
        );
        let _ = BundleRole {
            key: bare,
            name: label,
            rights,
            source: String::new(),
        };
    }
    let name = options
        .name
        .clone()
        .or_else(|| app.as_ref().map(|a| a.template.clone()))
        .unwrap_or_else(|| "workspace-app".to_owned());
    let version = options
        .version
        .clone()
        .or_else(|| app.as_ref().map(|a| a.version.clone()))
        .unwrap_or_else(|| "1.0.0".to_owned());
    let title = app
        .as_ref()
        .and_then(|a| serde_json::from_value::<Label>(a.title.clone()).ok())
        .unwrap_or(Label {
            en: workspace.name.clone(),
            zh_cn: None,
        });
    let manifest = Manifest {
        schema: None,
        name,
        version,
        title,
        description: None,
        languages: vec!["en".to_owned(), "zh-CN".to_owned()],
        preview_image: None,
        namespace: app
            .as_ref()
            .filter(|a| a.prefix.is_none())
            .map(|a| a.namespace.clone()),
    };
    let mut document = serde_json::json!({
        "manifest": manifest,
        "definitions": document_definitions,
        "roles": document_roles,
    });
    if let Some(app) = &app {
        // What the template shipped, in the bundle's own keys: the next upgrade of the imported
        // app merges against it, keeping this workspace's customisations.
        document["base"] = super::rename_base(&app.base, &back);
    }
    if options.data {
        let moved = moving::dump(conn, workspace_id, &entity_keys).await?;
        document["data"] = data_document(conn, workspace_id, moved, &back).await?;
    }
    // The exported document must be importable: it goes through the same checks as an import.
    let parsed = super::from_document(&document)?;
    let _: &Bundle = &parsed;
    Ok(document)
}

async fn data_document(
    conn: &impl Conn,
    workspace_id: Uuid,
    moved: Moved,
    back: &Renaming,
) -> Result<Value> {
    let mut people_ids = moved.people();
    for membership in store::people::memberships(conn, workspace_id).await? {
        people_ids.insert(membership.account_id);
    }
    let mut people = Vec::new();
    for id in people_ids {
        if let Some(account) = store::accounts::find(conn, id).await? {
            people.push(Person {
                id,
                email: account.email,
                name: account.name,
            });
        }
    }
    let records: Vec<DataRecord> = moved
        .records
        .into_iter()
        .map(|record| DataRecord {
            entity: back.key_of(Kind::Entity, &record.entity),
            id: record.row.id,
            owner: record.row.owner,
            created_at: record.row.created_at,
            created_by: record.row.created_by,
            updated_at: record.row.updated_at,
            updated_by: record.row.updated_by,
            version: record.row.version,
            deleted_at: record.row.deleted_at,
            deletion_id: record.row.deletion_id,
            fields: record.row.doc,
            history: record
                .history
                .into_iter()
                .map(|h| DataHistory {
                    at: h.at,
                    actor: h.actor_id,
                    actor_kind: h.actor_kind,
                    channel: h.channel,
                    operation: h.operation,
                    changes: h.changes,
                })
                .collect(),
        })
        .collect();
    let counters: Vec<DataCounter> = moved
        .counters
        .into_iter()
        .map(|c| DataCounter {
            entity: back.key_of(Kind::Entity, &c.entity),
            field: c.field,
            period: c.period,
            value: c.value,
        })
        .collect();
    let attachments: Vec<DataAttachment> = moved
        .attachments
        .into_iter()
        .filter_map(|a| {
            Some(DataAttachment {
                id: a.row.id,
                entity: back.key_of(Kind::Entity, &a.entity),
                record: a.row.record_id?,
                field: a.row.field,
                name: a.row.file_name,
                content_type: a.row.content_type,
                data: base64::engine::general_purpose::STANDARD.encode(&a.data),
            })
        })
        .collect();
    serde_json::to_value(DataDocument {
        people,
        records,
        counters,
        attachments,
    })
    .map_err(Error::internal)
}
