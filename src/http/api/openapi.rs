//! `GET /api/v1/w/{workspace}/openapi.json`: the workspace's API as an OpenAPI 3.1 document,
//! generated on each request from the published entities as the caller may use them (fields a
//! role may not see are left out, fields it may not write are read-only) plus the platform
//! endpoints, so it is always in step with the definitions. Field schemas are written for code
//! generators: plain `type` lists for null, no `if`/`then`, money as a decimal string.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::access::FieldRule;
use crate::app::Services;
use crate::definitions::entity::{Field, FieldKind};
use crate::error::Result;
use crate::http::extract::Workspace;
use crate::records::Channel;

/// The OpenAPI route.
pub(super) fn router() -> Router<Services> {
    Router::new().route("/w/{workspace}/openapi.json", get(spec))
}

/// One entity as the caller may use it.
pub(crate) struct EntityApi {
    /// Key.
    pub key: String,
    /// Label (English).
    pub label: String,
    /// Fields in order.
    pub fields: Vec<Field>,
    /// The entity's JSON Schema properties (their validation keywords carry over).
    pub properties: Map<String, Value>,
    /// Required field keys.
    pub required: Vec<String>,
    /// The caller's rule per field (absent: visible and writable).
    pub rules: HashMap<String, FieldRule>,
    /// Whether the caller may create records.
    pub can_create: bool,
}

async fn spec(State(services): State<Services>, ws: Workspace) -> Result<axum::Json<Value>> {
    let ctx = crate::http::extract::member_context(&ws.access, Channel::Api);
    let snapshot = services
        .registry()
        .snapshot(services.db(), ws.access.workspace.id, ws.scope().generation)
        .await?;
    let mut entities = Vec::new();
    for model in snapshot.entities() {
        // Entities the caller may not read are not part of their API.
        let Ok(shape) = services.records().shape(&ctx, &model.key).await else {
            continue;
        };
        entities.push(EntityApi {
            key: model.key.clone(),
            label: model
                .document
                .pointer("/x-label/en")
                .and_then(Value::as_str)
                .unwrap_or(&model.key)
                .to_owned(),
            fields: model.fields.clone(),
            properties: model
                .document
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            required: model.required.clone(),
            rules: shape.rules.clone(),
            can_create: shape.can_create,
        });
    }
    entities.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(axum::Json(document(
        &ws.access.workspace.slug,
        &ws.access.workspace.name,
        &entities,
        ws.access.is_admin(),
    )))
}

/// Status codes every operation may answer with a problem.
const PROBLEMS: [&str; 10] = [
    "400", "401", "403", "404", "405", "409", "413", "415", "422", "429",
];

/// A type that may also be null.
fn nullable(kind: &str) -> Value {
    json!([kind, "null"])
}

/// The schema of one field's value as the API returns it.
pub(crate) fn output_schema(field: &Field, property: Option<&Value>) -> Value {
    let mut schema = value_schema(field, false);
    described(&mut schema, field, property);
    if !field.is_writable()
        && let Some(map) = schema.as_object_mut()
    {
        map.insert("readOnly".to_owned(), json!(true));
    }
    schema
}

/// Validation keywords of an entity property that mean the same for the API's values.
const CARRIED: [&str; 9] = [
    "maxLength",
    "minLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "maxItems",
];

/// Adds the field's label as its description and the property's validation keywords that apply
/// to its API form (not to money, whose API form is a decimal string).
fn described(schema: &mut Value, field: &Field, property: Option<&Value>) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    // Labels are descriptions, not titles: generators name types after titles, and "Status"
    // is a field of many entities.
    map.insert("description".to_owned(), json!(field.label));
    if matches!(field.kind, FieldKind::Money { .. }) || field.computed.is_some() {
        return;
    }
    if let Some(property) = property.and_then(Value::as_object) {
        for keyword in CARRIED {
            if let Some(value) = property.get(keyword) {
                map.insert(keyword.to_owned(), value.clone());
            }
        }
    }
}

/// The schema of one field's value: as returned, or as sent (`input`: money also as a number).
fn value_schema(field: &Field, input: bool) -> Value {
    match &field.kind {
        FieldKind::Text | FieldKind::LongText | FieldKind::Phone => {
            json!({"type": nullable("string")})
        }
        FieldKind::Email => json!({"type": nullable("string"), "format": "email"}),
        FieldKind::Url => json!({"type": nullable("string"), "format": "uri"}),
        FieldKind::Integer => json!({"type": nullable("integer")}),
        FieldKind::Number | FieldKind::Percent => json!({"type": nullable("number")}),
        FieldKind::Money { currency, .. } => {
            if input {
                json!({"type": ["string", "number", "null"], "description": format!("An amount in {currency}, as a decimal string (\"1234.50\") or a number.")})
            } else {
                json!({"type": nullable("string"), "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": format!("An amount in {currency}, as a decimal string.")})
            }
        }
        FieldKind::Boolean => json!({"type": nullable("boolean")}),
        FieldKind::Date => json!({"type": nullable("string"), "format": "date"}),
        FieldKind::DateTime => json!({"type": nullable("string"), "format": "date-time"}),
        FieldKind::SingleSelect { options } => {
            let mut values: Vec<Value> = options.iter().map(|o| json!(o)).collect();
            values.push(Value::Null);
            json!({"enum": values})
        }
        FieldKind::MultiSelect { options } => json!({
            "type": nullable("array"),
            "items": {"type": "string", "enum": options},
            "uniqueItems": true,
        }),
        FieldKind::Reference { entity, .. } => json!({
            "type": nullable("string"), "format": "uuid",
            "description": format!("The id of a {entity} record."),
        }),
        FieldKind::User => json!({
            "type": nullable("string"), "format": "uuid",
            "description": "The account id of a workspace member.",
        }),
        FieldKind::Attachment { .. } => {
            if input {
                json!({"type": nullable("array"), "items": {"type": "string", "format": "uuid"},
                       "description": "Ids of files uploaded to the field's attachments endpoint."})
            } else {
                json!({"type": nullable("array"), "items": {"type": "object"}})
            }
        }
        FieldKind::SubTable { columns, .. } => {
            let properties: Map<String, Value> = columns
                .iter()
                .map(|c| (c.key.clone(), value_schema(c, input)))
                .collect();
            json!({"type": nullable("array"), "items": {"type": "object", "properties": properties}})
        }
        FieldKind::AutoNumber { .. } => json!({"type": nullable("string")}),
    }
}

/// Takes null out of a schema's types and values.
fn without_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            schema["type"] = only;
        }
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

/// Whether the caller sees `field` at all.
fn seen(entity: &EntityApi, field: &Field) -> bool {
    !field.hidden && entity.rules.get(&field.key) != Some(&FieldRule::Hidden)
}

/// Whether the caller may write `field`.
fn writable(entity: &EntityApi, field: &Field) -> bool {
    seen(entity, field)
        && field.is_writable()
        && field.computed.is_none()
        && !matches!(
            entity.rules.get(&field.key),
            Some(FieldRule::ReadOnly | FieldRule::MaskedReadOnly | FieldRule::Masked)
        )
}

/// A schema component name for an entity key (`sales_lead` → `SalesLead`).
fn type_name(key: &str, suffix: &str) -> String {
    let mut name: String = key
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    name.push_str(suffix);
    name
}

/// The entity's schemas: its fields as returned, as sent on create and on change, a record, a
/// page of records.
fn entity_schemas(entity: &EntityApi, schemas: &mut Map<String, Value>) {
    let fields_out: Map<String, Value> = entity
        .fields
        .iter()
        .filter(|f| seen(entity, f))
        .map(|f| {
            let masked = matches!(
                entity.rules.get(&f.key),
                Some(FieldRule::Masked | FieldRule::MaskedReadOnly)
            );
            // A masked value is shown as text whatever the field's kind (138****0000).
            let schema = if masked {
                json!({"type": nullable("string"), "description": f.label, "readOnly": true})
            } else {
                output_schema(f, entity.properties.get(&f.key))
            };
            (f.key.clone(), schema)
        })
        .collect();
    let fields_in: Map<String, Value> = entity
        .fields
        .iter()
        .filter(|f| writable(entity, f))
        .map(|f| {
            let mut schema = value_schema(f, true);
            described(&mut schema, f, entity.properties.get(&f.key));
            (f.key.clone(), schema)
        })
        .collect();
    let required: Vec<&String> = entity
        .required
        .iter()
        .filter(|k| fields_in.contains_key(*k))
        .collect();
    // A new record's required fields cannot be null (generators then give plain types).
    let mut new_in = fields_in.clone();
    for key in &required {
        if let Some(schema) = new_in.get_mut(*key) {
            without_null(schema);
        }
    }
    let fields = type_name(&entity.key, "Fields");
    let input = type_name(&entity.key, "Input");
    let changes = type_name(&entity.key, "Changes");
    let record = type_name(&entity.key, "Record");
    schemas.insert(
        fields.clone(),
        json!({"type": "object", "description": format!("The fields of a {} record.", entity.label),
               "properties": fields_out, "additionalProperties": false}),
    );
    schemas.insert(
        input.clone(),
        json!({"type": "object", "description": format!("The fields of a new {} record.", entity.label),
               "properties": new_in, "required": required, "additionalProperties": false}),
    );
    schemas.insert(
        changes.clone(),
        json!({"type": "object", "description": format!("Changes to a {} record: the fields sent are set, null clears one.", entity.label),
               "properties": fields_in, "additionalProperties": false}),
    );
    schemas.insert(
        record.clone(),
        json!({
            "type": "object",
            "required": ["id", "version", "created_at", "updated_at", "fields"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "version": {"type": "integer", "description": "Send it back to change the record."},
                "owner": {"type": nullable("string"), "format": "uuid"},
                "created_at": {"type": "string", "format": "date-time"},
                "created_by": {"type": nullable("string"), "format": "uuid"},
                "updated_at": {"type": "string", "format": "date-time"},
                "updated_by": {"type": nullable("string"), "format": "uuid"},
                "deleted_at": {"type": nullable("string"), "format": "date-time"},
                "fields": {"$ref": format!("#/components/schemas/{fields}")},
                "hidden_fields": {"type": "object"},
                "totals": {"type": "object"},
                "unconverted": {"type": "object"},
                "erased": {"type": "object"},
            },
        }),
    );
    schemas.insert(
        type_name(&entity.key, "Page"),
        json!({
            "type": "object",
            "required": ["records"],
            "properties": {
                "records": {"type": "array", "items": {"$ref": format!("#/components/schemas/{record}")}},
                "next_cursor": {"type": nullable("string")},
                "total": {"type": "integer"},
                "total_is_estimate": {"type": "boolean"},
            },
        }),
    );
}

/// A JSON response with `schema`, and the problems an operation may answer with.
fn responses(code: &str, description: &str, schema: Option<Value>) -> Value {
    let mut out = Map::new();
    let mut ok = json!({"description": description});
    if let Some(schema) = schema {
        ok["content"] = json!({"application/json": {"schema": schema}});
    }
    out.insert(code.to_owned(), ok);
    for status in PROBLEMS {
        out.insert(
            status.to_owned(),
            json!({"$ref": "#/components/responses/Problem"}),
        );
    }
    Value::Object(out)
}

/// The responses of a create, with links to the operations on the created record (so a
/// client or a stateful test can follow them).
fn created_responses(key: &str, record: Value) -> Value {
    let mut created = responses("201", "The created record.", Some(record));
    let links: Map<String, Value> = ["get", "update", "delete", "history", "restore"]
        .iter()
        .map(|op| {
            (
                format!("{op}_it"),
                json!({"operationId": format!("{op}_{key}"), "parameters": {"id": "$response.body#/id"}}),
            )
        })
        .collect();
    created["201"]["links"] = Value::Object(links);
    created
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(schema: &Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// The paths of one entity's records.
fn entity_paths(slug: &str, entity: &EntityApi, paths: &mut Map<String, Value>) {
    let key = &entity.key;
    let base = format!("/w/{slug}/entities/{key}/records");
    let record = reference(&type_name(key, "Record"));
    let page = reference(&type_name(key, "Page"));
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    let tag = json!([entity.label]);
    let mut collection = json!({
        "get": {
            "operationId": format!("list_{key}"),
            "summary": format!("List {} records", entity.label),
            "tags": tag,
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "sort", "in": "query", "description": "Fields, comma-separated; `-` before a field sorts descending.", "schema": {"type": "string"}},
                {"name": "total", "in": "query", "schema": {"type": "string", "enum": ["exact", "estimate"]}},
                {"name": "deleted", "in": "query", "schema": {"type": "boolean"}},
            ],
            "responses": responses("200", "A page of records.", Some(page.clone())),
        },
    });
    if entity.can_create {
        collection["post"] = json!({
            "operationId": format!("create_{key}"),
            "summary": format!("Create a {} record", entity.label),
            "tags": tag,
            "requestBody": json_body(&json!({
                "type": "object",
                "required": ["fields"],
                "properties": {
                    "fields": reference(&type_name(key, "Input")),
                    "owner": {"type": "string", "format": "uuid"},
                },
                "additionalProperties": false,
            })),
            "responses": created_responses(key, record.clone()),
        });
    }
    paths.insert(base.clone(), collection);
    paths.insert(
        format!("{base}/query"),
        json!({"post": {
            "operationId": format!("query_{key}"),
            "summary": format!("Find {} records (filter, sort, page)", entity.label),
            "tags": tag,
            "requestBody": json_body(&json!({
                "type": "object",
                "properties": {
                    "filter": {"type": "object", "description": "`{\"and\": [{\"field\": …, \"op\": \"eq\", \"value\": …}]}` (docs/records.md)."},
                    "sort": {"type": "array", "items": {"type": "string"}},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                    "cursor": {"type": "string"},
                    "total": {"type": "string", "enum": ["exact", "estimate"]},
                },
            })),
            "responses": responses("200", "A page of records.", Some(page)),
        }}),
    );
    paths.insert(
        format!("{base}/{{id}}"),
        json!({
            "parameters": [id],
            "get": {
                "operationId": format!("get_{key}"),
                "summary": format!("Read a {} record", entity.label),
                "tags": tag,
                "responses": responses("200", "The record.", Some(record.clone())),
            },
            "patch": {
                "operationId": format!("update_{key}"),
                "summary": format!("Change a {} record", entity.label),
                "tags": tag,
                "requestBody": json_body(&json!({
                    "type": "object",
                    "properties": {
                        "fields": reference(&type_name(key, "Changes")),
                        "owner": {"type": "string", "format": "uuid"},
                        "version": {"type": "integer", "description": "The version read; a stale one is refused (409)."},
                    },
                    "additionalProperties": false,
                })),
                "responses": responses("200", "The changed record.", Some(record.clone())),
            },
            "delete": {
                "operationId": format!("delete_{key}"),
                "summary": format!("Move a {} record to the recycle bin", entity.label),
                "tags": tag,
                "responses": responses("204", "Deleted.", None),
            },
        }),
    );
    paths.insert(
        format!("{base}/{{id}}/restore"),
        json!({"parameters": [id], "post": {
            "operationId": format!("restore_{key}"),
            "summary": format!("Restore a deleted {} record", entity.label),
            "tags": tag,
            "responses": responses("200", "The restored record.", Some(record)),
        }}),
    );
    paths.insert(
        format!("{base}/{{id}}/history"),
        json!({"parameters": [id], "get": {
            "operationId": format!("history_{key}"),
            "summary": format!("The history of a {} record", entity.label),
            "tags": tag,
            "responses": responses("200", "Every change, oldest first.", Some(json!({"type": "array", "items": reference("HistoryEntry")}))),
        }}),
    );
    comment_paths(&base, key, &entity.label, &id, paths);
    email_paths(&base, key, &entity.label, &id, paths);
}

/// The email endpoints of one entity's records.
fn email_paths(base: &str, key: &str, label: &str, id: &Value, paths: &mut Map<String, Value>) {
    let tag = json!([label]);
    let addresses = json!({"type": "array", "maxItems": 10, "items": {"type": "string", "minLength": 3, "maxLength": 320}});
    paths.insert(
        format!("{base}/{{id}}/emails"),
        json!({"parameters": [id],
            "get": {
                "operationId": format!("emails_{key}"),
                "summary": format!("The emails sent from or filed on a {label} record, newest first"),
                "tags": tag,
                "responses": responses("200", "Emails.", Some(json!({"type": "array", "items": {"type": "object"}}))),
            },
            "post": {
                "operationId": format!("email_{key}"),
                "summary": format!("Send an email from a {label} record (subject and body from a template when not given)"),
                "tags": tag,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "required": ["to"],
                    "properties": {
                        "template": {"type": "string"},
                        "to": addresses,
                        "cc": addresses,
                        "subject": {"type": "string", "maxLength": 300},
                        "body": {"type": "string", "maxLength": 100000},
                        "lang": {"enum": ["en", "zh-CN"]}}}}}},
                "responses": responses("201", "The email, queued.", Some(json!({"type": "object"}))),
            }}),
    );
}

/// The comment endpoints of one entity's records.
fn comment_paths(base: &str, key: &str, label: &str, id: &Value, paths: &mut Map<String, Value>) {
    let tag = json!([label]);
    paths.insert(
        format!("{base}/{{id}}/comments"),
        json!({"parameters": [id],
            "get": {
                "operationId": format!("comments_{key}"),
                "summary": format!("The comments on a {label} record, oldest first"),
                "tags": tag,
                "responses": responses("200", "Comments.", Some(json!({"type": "array", "items": reference("Comment")}))),
            },
            "post": {
                "operationId": format!("comment_{key}"),
                "summary": format!("Comment on a {label} record (mentions: @[name](user:<id>) or @[name](team:<id>))"),
                "tags": tag,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "required": ["body"],
                    "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 10000}}}}}},
                "responses": responses("201", "The comment.", Some(reference("Comment"))),
            }}),
    );
}

/// The platform endpoints of the workspace (their bodies are described loosely: the entity
/// endpoints are the typed part).
fn platform_paths(slug: &str, admin: bool, paths: &mut Map<String, Value>) {
    let any_object = json!({"type": "object"});
    let any_list = json!({"type": "array", "items": {"type": "object"}});
    let tag = json!(["Workspace"]);
    let simple = |id: &str, summary: &str, schema: &Value| {
        json!({"get": {
            "operationId": id,
            "summary": summary,
            "tags": tag,
            "responses": responses("200", summary, Some(schema.clone())),
        }})
    };
    paths.insert(
        format!("/w/{slug}"),
        simple("workspace", "The workspace.", &any_object),
    );
    paths.insert(
        format!("/w/{slug}/definitions"),
        simple(
            "definitions",
            "The workspace's definitions (entities, forms, views, workflows, reports).",
            &any_list,
        ),
    );
    paths.insert(
        format!("/w/{slug}/reports"),
        simple(
            "reports",
            "The reports and dashboards the caller may open.",
            &json!({"type": "object", "required": ["reports", "dashboards"], "properties": {
                "reports": any_list, "dashboards": any_list}}),
        ),
    );
    paths.insert(
        format!("/w/{slug}/notifications"),
        simple(
            "notifications",
            "The caller's notifications, newest first, and how many are unread.",
            &json!({"type": "object", "required": ["notifications", "unread"], "properties": {
                "notifications": any_list, "unread": {"type": "integer", "minimum": 0}}}),
        ),
    );
    let channels = json!({"type": "object", "additionalProperties": false, "properties": {
        "in_app": {"type": "boolean"}, "email": {"type": "boolean"}}});
    let settings = json!({"type": "object", "additionalProperties": false, "properties": {
        "mention": channels, "workflow": channels, "reply": channels,
        "digest": {"type": "object", "additionalProperties": false, "properties": {
            "enabled": {"type": "boolean"}, "hour": {"type": "integer", "minimum": 0, "maximum": 23}}}}});
    paths.insert(
        format!("/w/{slug}/notifications/settings"),
        json!({
            "get": {
                "operationId": "notification_settings",
                "summary": "The caller's notification settings: channels per kind of event, the daily digest.",
                "tags": tag,
                "responses": responses("200", "Settings.", Some(settings.clone())),
            },
            "put": {
                "operationId": "save_notification_settings",
                "summary": "Save the caller's notification settings (parts left out take their defaults).",
                "tags": tag,
                "requestBody": {"required": true, "content": {"application/json": {"schema": settings.clone()}}},
                "responses": responses("200", "Settings.", Some(settings)),
            }}),
    );
    paths.insert(
        format!("/w/{slug}/approvals"),
        json!({"get": {
            "operationId": "approvals",
            "summary": "The caller's approvals.",
            "tags": tag,
            "parameters": [{"name": "box", "in": "query", "schema": {"type": "string", "enum": ["pending", "done", "submitted", "all"]}}],
            "responses": responses("200", "Approvals.", Some(any_list.clone())),
        }}),
    );
    paths.insert(
        format!("/w/{slug}/search"),
        json!({"get": {
            "operationId": "search",
            "summary": "Search the records the caller may read: names, companies, emails, phones (any part of a word, Chinese too).",
            "tags": tag,
            "parameters": [
                {"name": "q", "in": "query", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
                {"name": "entity", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50}}
            ],
            "responses": responses("200", "Records found, by entity.", Some(json!({
                "type": "object",
                "required": ["query", "results", "indexing"],
                "properties": {
                    "query": {"type": "string"},
                    "indexing": {"type": "array", "items": {"type": "string"}},
                    "results": {"type": "array", "items": {
                        "type": "object",
                        "required": ["entity", "label", "records", "more"],
                        "properties": {
                            "entity": {"type": "string"},
                            "label": {"type": "object"},
                            "more": {"type": "boolean"},
                            "records": {"type": "array", "items": {
                                "type": "object",
                                "required": ["id", "title", "fields", "matched"],
                                "properties": {
                                    "id": {"type": "string", "format": "uuid"},
                                    "title": {"type": "string"},
                                    "fields": {"type": "object"},
                                    "matched": {"type": "array", "items": {"type": "string"}}
                                }}}
                        }}}
                }}))),
        }}),
    );
    // Imports are uploaded and run with raw bodies and settings (docs/api.md); their state is
    // read here.
    paths.insert(
        format!("/w/{slug}/imports"),
        json!({"get": {
            "operationId": "imports",
            "summary": "The caller's latest spreadsheet imports (admins: everyone's).",
            "tags": tag,
            "parameters": [{"name": "entity", "in": "query", "schema": {"type": "string"}}],
            "responses": responses("200", "Imports, newest first.", Some(json!({"type": "array", "items": {
                "type": "object",
                "required": ["id", "entity", "status", "counters", "layout"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "entity": {"type": "string"},
                    "status": {"type": "string", "enum": ["uploaded", "checking", "checked", "running", "cancelling", "cancelled", "done", "failed"]},
                    "counters": {"type": "object"},
                    "layout": {"type": "object"}
                }}}))),
        }}),
    );
    if admin {
        paths.insert(
            format!("/w/{slug}/webhooks"),
            json!({"get": {
                "operationId": "webhooks",
                "summary": "The workspace's webhook subscriptions (never their secrets).",
                "tags": tag,
                "responses": responses("200", "Subscriptions.", Some(json!({"type": "array", "items": {
                    "type": "object",
                    "required": ["id", "entity", "events", "url", "enabled"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "entity": {"type": "string"},
                        "events": {"type": "array", "items": {"type": "string", "enum": ["created", "updated", "deleted"]}},
                        "url": {"type": "string"},
                        "enabled": {"type": "boolean"}
                    }}}))),
            }}),
        );
        paths.insert(
            format!("/w/{slug}/chat-robots"),
            json!({"get": {
                "operationId": "chat_robots",
                "summary": "The workspace's WeCom, DingTalk and Feishu group robots (tokens hidden, never their secrets).",
                "tags": tag,
                "responses": responses("200", "Robots.", Some(json!({"type": "array", "items": {
                    "type": "object",
                    "required": ["id", "key", "kind", "url", "signed", "enabled"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "key": {"type": "string"},
                        "kind": {"type": "string", "enum": ["wecom", "dingtalk", "feishu"]},
                        "url": {"type": "string"},
                        "signed": {"type": "boolean"},
                        "enabled": {"type": "boolean"}
                    }}}))),
            }}),
        );
    }
}

/// The OpenAPI 3.1 document of workspace `slug` for these entities.
pub(crate) fn document(slug: &str, name: &str, entities: &[EntityApi], admin: bool) -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    platform_paths(slug, admin, &mut paths);
    for entity in entities {
        entity_schemas(entity, &mut schemas);
        entity_paths(slug, entity, &mut paths);
    }
    schemas.insert(
        "Problem".to_owned(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "array", "items": {
                    "type": "object",
                    "required": ["pointer", "code", "message"],
                    "properties": {
                        "pointer": {"type": "string", "description": "JSON pointer into the request."},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "line": {"type": "integer"},
                        "column": {"type": "integer"},
                    },
                }},
            },
        }),
    );
    schemas.insert(
        "HistoryEntry".to_owned(),
        json!({
            "type": "object",
            "required": ["at", "actor_kind", "channel", "operation", "changes"],
            "properties": {
                "at": {"type": "string", "format": "date-time"},
                "actor": {"type": nullable("string"), "format": "uuid"},
                "actor_kind": {"type": "string"},
                "channel": {"type": "string"},
                "operation": {"type": "string"},
                "changes": {},
            },
        }),
    );
    schemas.insert(
        "Comment".to_owned(),
        json!({
            "type": "object",
            "required": ["id", "entity", "record_id", "author", "body", "html", "mentions", "version", "created_at", "can_edit", "can_delete"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "entity": {"type": "string"},
                "record_id": {"type": "string", "format": "uuid"},
                "author": {"type": "object", "required": ["id", "name"], "properties": {
                    "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}}},
                "body": {"type": "string", "description": "Markdown-lite with mention tokens; empty once deleted."},
                "html": {"type": "string"},
                "mentions": {"type": "array", "items": {"type": "object", "required": ["kind", "id", "name", "notified"], "properties": {
                    "kind": {"type": "string", "enum": ["user", "team"]},
                    "id": {"type": "string", "format": "uuid"},
                    "name": {"type": "string"},
                    "notified": {"type": "array", "items": {"type": "string", "format": "uuid"}}}}},
                "version": {"type": "integer", "minimum": 1},
                "created_at": {"type": "string", "format": "date-time"},
                "edited_at": {"type": nullable("string"), "format": "date-time"},
                "deleted_at": {"type": nullable("string"), "format": "date-time"},
                "can_edit": {"type": "boolean"},
                "can_delete": {"type": "boolean"},
            },
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("Formwork — {name}"),
            "version": "1",
            "description": "Generated from the workspace's published definitions, as the caller may use them.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer", "description": "An API token of the workspace (`POST /api/v1/w/{workspace}/tokens`)."}},
            "responses": {"Problem": {
                "description": "What was wrong, with the JSON pointer of each problem.",
                "content": {"application/problem+json": {"schema": reference("Problem")}},
            }},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> EntityApi {
        let doc = json!({
            "type": "object",
            "x-label": {"en": "Lead"},
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
                "budget": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Budget"}},
                "status": {"type": "string", "x-kind": "single_select", "x-label": {"en": "Status"},
                           "x-options": [{"value": "new", "label": {"en": "New"}}]},
                "phone": {"type": "string", "x-kind": "phone", "x-label": {"en": "Phone"}},
                "score": {"type": "integer", "x-kind": "formula", "x-result": "integer", "x-formula": "1", "x-label": {"en": "Score"}},
            },
        });
        let fields = crate::definitions::entity::field_order(&doc)
            .into_iter()
            .map(|k| {
                crate::definitions::entity::field_of(
                    &k,
                    doc.pointer(&format!("/properties/{k}"))
                        .unwrap_or(&Value::Null),
                )
            })
            .collect();
        EntityApi {
            key: "sales_lead".to_owned(),
            label: "Lead".to_owned(),
            fields,
            properties: doc["properties"].as_object().cloned().unwrap_or_default(),
            required: vec!["name".to_owned()],
            rules: HashMap::from([("phone".to_owned(), FieldRule::Masked)]),
            can_create: true,
        }
    }

    #[test]
    fn an_entity_becomes_typed_paths_and_schemas() {
        let doc = document("demo", "Demo", &[lead()], true);
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        let input = &schemas["SalesLeadInput"];
        assert_eq!(input["required"], json!(["name"]));
        assert_eq!(
            input["properties"]["name"]["type"], "string",
            "required: not null"
        );
        assert!(input["properties"]["score"].is_null(), "computed: not sent");
        assert!(
            input["properties"]["phone"].is_null(),
            "masked: not written"
        );
        assert_eq!(
            input["properties"]["budget"]["type"],
            json!(["string", "number", "null"])
        );
        let fields = &schemas["SalesLeadFields"];
        assert_eq!(
            fields["properties"]["budget"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(fields["properties"]["score"]["readOnly"], true);
        assert_eq!(
            fields["properties"]["phone"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            fields["properties"]["status"]["enum"],
            json!(["new", Value::Null])
        );
        let paths = &doc["paths"];
        assert_eq!(
            paths["/w/demo/entities/sales_lead/records"]["post"]["operationId"],
            "create_sales_lead"
        );
        assert!(paths["/w/demo/entities/sales_lead/records/{id}"]["patch"].is_object());
        // Every $ref points at something defined.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            let pointer = format!("/components/{target}");
            assert!(doc.pointer(&pointer).is_some(), "{pointer} is not defined");
        }
    }
}
