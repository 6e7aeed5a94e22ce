//! `/api/v1/w/{workspace}/entities/{entity}/records`: create, read, change, delete, restore and
//! purge records; batch creates; lists (URL or JSON query), aggregates and history.
//! What each caller may see and do is decided by `records::guard` from their role's rights.

use axum::extract::{FromRef, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::app::Services;
use crate::auth::Credential;
use crate::error::{Error, Result};
use crate::http::export::Sheet;
use crate::http::extract::{AppJson, Authenticated, Workspace};
use crate::records::sharing::CollaboratorView;
use crate::records::{self, Channel, Context, HistoryView, NewRecord, Page, RecordView};

pub(super) fn router() -> Router<Services> {
    let base = "/w/{workspace}/entities/{entity}";
    Router::new()
        .route(&format!("{base}/records"), get(list_url).post(create))
        .route(&format!("{base}/records/batch"), post(create_batch))
        .route(&format!("{base}/records/export.csv"), get(export_csv))
        .route(&format!("{base}/records/export.xlsx"), get(export_xlsx))
        .route(&format!("{base}/records/query"), post(list_json))
        .route(&format!("{base}/records/aggregate"), post(aggregate))
        .route(
            &format!("{base}/records/{{id}}"),
            get(show).patch(update).delete(remove),
        )
        .route(&format!("{base}/records/{{id}}/restore"), post(restore))
        .route(&format!("{base}/records/{{id}}/history"), get(history))
        .route(
            &format!("{base}/records/{{id}}/duplicates"),
            get(record_duplicates),
        )
        .route(&format!("{base}/duplicates"), post(check_duplicates))
        .route(&format!("{base}/records/{{id}}/merge"), post(merge))
        .route(
            &format!("{base}/records/{{id}}/collaborators"),
            get(collaborators),
        )
        .route(
            &format!("{base}/records/{{id}}/collaborators/{{account}}"),
            axum::routing::put(share).delete(unshare),
        )
        .route(&format!("{base}/records/transfer"), post(transfer))
        .route(&format!("{base}/records/{{id}}/claim"), post(claim))
        .route(
            &format!("{base}/records/{{id}}/personal-data"),
            get(personal_data),
        )
        .route(&format!("{base}/records/{{id}}/erase"), post(erase))
        .route(&format!("{base}/scripts/test-run"), post(test_script))
        .route(&format!("{base}/records/{{id}}/release"), post(release))
        .route(&format!("{base}/indexes"), get(indexes))
        .route(&format!("{base}/impact"), get(impact))
        .route(
            &format!("{base}/attachments"),
            post(upload).layer(axum::extract::DefaultBodyLimit::max(ATTACHMENT_BODY_LIMIT)),
        )
        .route("/w/{workspace}/attachments/{id}", get(download))
}

/// Largest upload body; each field sets its own, smaller limit (`x-attachment.max_size`).
const ATTACHMENT_BODY_LIMIT: usize = 100 * 1024 * 1024;

/// The caller's records context: workspace, actor, channel (browser session → ui, token → api).
pub(super) struct Caller {
    pub(super) ctx: Context,
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Services: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ws = Workspace::from_request_parts(parts, state).await?;
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        let channel = match principal.credential {
            Credential::Session { .. } => Channel::Ui,
            Credential::Token { .. } => Channel::Api,
        };
        Ok(Self {
            ctx: crate::http::extract::member_context(&ws.access, channel),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    #[serde(default)]
    fields: Map<String, Value>,
    owner: Option<Uuid>,
    version: Option<i64>,
}

async fn create(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<RecordBody>,
) -> Result<(StatusCode, Json<RecordView>)> {
    if body.version.is_some() {
        return Err(Error::invalid(
            "/version",
            "unexpected",
            "a new record has no version",
        ));
    }
    let view = services
        .records()
        .create(
            &caller.ctx,
            &entity,
            NewRecord {
                fields: body.fields,
                owner: body.owner,
                id: None,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    records: Vec<NewRecordBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRecordBody {
    #[serde(default)]
    fields: Map<String, Value>,
    owner: Option<Uuid>,
}

async fn create_batch(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<BatchBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let inputs = body
        .records
        .into_iter()
        .map(|r| NewRecord {
            fields: r.fields,
            owner: r.owner,
            id: None,
        })
        .collect();
    let views = services
        .records()
        .create_batch(&caller.ctx, &entity, inputs)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "records": views })),
    ))
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

async fn list_url(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page>> {
    let body = records::query::from_url(&query_pairs(raw.as_deref()))?;
    Ok(Json(
        services.records().list(&caller.ctx, &entity, &body).await?,
    ))
}

async fn export_csv(
    State(services): State<Services>,
    caller: Caller,
    ws: Workspace,
    headers: HeaderMap,
    Path((_, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<axum::response::Response> {
    export(
        &services,
        caller,
        &ws,
        &headers,
        &entity,
        raw.as_deref(),
        Sheet::Csv,
    )
    .await
}

async fn export_xlsx(
    State(services): State<Services>,
    caller: Caller,
    ws: Workspace,
    headers: HeaderMap,
    Path((_, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<axum::response::Response> {
    export(
        &services,
        caller,
        &ws,
        &headers,
        &entity,
        raw.as_deref(),
        Sheet::Xlsx,
    )
    .await
}

/// Every record the list query in `raw` finds, as a spreadsheet in the language the request
/// accepts.
async fn export(
    services: &Services,
    caller: Caller,
    ws: &Workspace,
    headers: &HeaderMap,
    entity: &str,
    raw: Option<&str>,
    sheet: Sheet,
) -> Result<axum::response::Response> {
    let body = records::query::from_url(&query_pairs(raw))?;
    let locale = crate::render::i18n::Locale::negotiate(
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    crate::http::export::respond(
        services, caller.ctx, &ws.access, entity, body, sheet, locale,
    )
    .await
}

async fn list_json(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Page>> {
    Ok(Json(
        services.records().list(&caller.ctx, &entity, &body).await?,
    ))
}

async fn aggregate(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>> {
    Ok(Json(
        services
            .records()
            .aggregate(&caller.ctx, &entity, &body)
            .await?,
    ))
}

fn flag(raw: Option<&str>, name: &str) -> Result<bool> {
    let mut value = false;
    for (key, text) in query_pairs(raw) {
        if key != name {
            return Err(Error::bad_request(format!(
                "unknown query parameter {key:?}"
            )));
        }
        value = match text.as_str() {
            "true" | "1" | "" => true,
            "false" | "0" => false,
            _ => {
                return Err(Error::bad_request(format!("{name} is true or false")));
            }
        };
    }
    Ok(value)
}

async fn show(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RecordView>> {
    let include_deleted = flag(raw.as_deref(), "deleted")?;
    Ok(Json(
        services
            .records()
            .get(&caller.ctx, &entity, &id, include_deleted)
            .await?,
    ))
}

/// The version from the body, else from `If-Match`.
fn expected_version(body: Option<i64>, headers: &HeaderMap) -> Result<Option<i64>> {
    crate::http::extract::body_or_if_match(body, headers, "/version")
}

async fn update(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    AppJson(body): AppJson<RecordBody>,
) -> Result<Json<RecordView>> {
    let version = expected_version(body.version, &headers)?;
    Ok(Json(
        services
            .records()
            .update(&caller.ctx, &entity, &id, &body.fields, body.owner, version)
            .await?,
    ))
}

async fn remove(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode> {
    if flag(raw.as_deref(), "purge")? {
        if !caller.ctx.is_admin() {
            return Err(Error::forbidden(
                "only a workspace owner or admin may purge records",
            ));
        }
        services.records().purge(&caller.ctx, &entity, &id).await?;
    } else {
        services.records().delete(&caller.ctx, &entity, &id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn restore(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<RecordView>> {
    Ok(Json(
        services
            .records()
            .restore(&caller.ctx, &entity, &id)
            .await?,
    ))
}

async fn history(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Vec<HistoryView>>> {
    Ok(Json(
        services
            .records()
            .history(&caller.ctx, &entity, &id)
            .await?,
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DuplicateCheck {
    fields: serde_json::Map<String, Value>,
}

#[derive(Debug, serde::Serialize)]
struct Duplicates {
    duplicates: Vec<records::Duplicate>,
}

/// Before creating: the records the fields would duplicate (查重).
async fn check_duplicates(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<DuplicateCheck>,
) -> Result<Json<Duplicates>> {
    Ok(Json(Duplicates {
        duplicates: services
            .records()
            .duplicates(&caller.ctx, &entity, &body.fields, None)
            .await?,
    }))
}

/// A record's duplicates by the entity's rules (撞单).
async fn record_duplicates(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Duplicates>> {
    Ok(Json(Duplicates {
        duplicates: services
            .records()
            .duplicates_of(&caller.ctx, &entity, &id)
            .await?,
    }))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    duplicate: String,
    #[serde(default)]
    take: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

/// Merges a duplicate into the record (撞单): gaps filled, references moved, duplicate deleted.
async fn merge(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    AppJson(body): AppJson<MergeBody>,
) -> Result<Json<records::merge::MergeOutcome>> {
    let request = records::merge::MergeRequest {
        duplicate: body.duplicate,
        take: body.take,
        dry_run: body.dry_run,
    };
    Ok(Json(
        services
            .records()
            .merge(&caller.ctx, &entity, &id, &request)
            .await?,
    ))
}

async fn indexes(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
) -> Result<Json<Value>> {
    Ok(Json(
        services.records().indexes(&caller.ctx, &entity).await?,
    ))
}

async fn impact(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
) -> Result<Json<crate::records::evolve::Impact>> {
    if !caller.ctx.is_admin() {
        return Err(Error::forbidden(
            "only a workspace owner or admin may examine entity changes",
        ));
    }
    Ok(Json(services.records().impact(&caller.ctx, &entity).await?))
}

async fn upload(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(
    StatusCode,
    Json<crate::records::attachments::AttachmentView>,
)> {
    let mut field = None;
    let mut name = None;
    for (key, value) in query_pairs(raw.as_deref()) {
        match key.as_str() {
            "field" => field = Some(value),
            "name" => name = Some(value),
            other => {
                return Err(Error::bad_request(format!(
                    "unknown query parameter {other:?}; use field and name"
                )));
            }
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let view = services
        .records()
        .upload(
            &caller.ctx,
            &entity,
            crate::records::attachments::Upload {
                field: field.ok_or_else(|| {
                    Error::invalid("/field", "required", "name the attachment field (?field=…)")
                })?,
                file_name: name.unwrap_or_default(),
                content_type,
                data: body.to_vec(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Media types a page may show in place (`?inline=1`): pictures and PDFs. Anything else is
/// always a download.
const PREVIEWABLE: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
];

async fn download(
    State(services): State<Services>,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let inline = flag(raw.as_deref(), "inline")?;
    let (file, data) = services.records().download(&caller.ctx, &id).await?;
    let encoded: String = form_urlencoded::byte_serialize(file.name.as_bytes()).collect();
    let shown = inline && PREVIEWABLE.contains(&file.content_type.as_str());
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if shown { "inline" } else { "attachment" },
        encoded.replace('+', "%20")
    );
    // A PDF needs the browser's viewer, which a sandbox blocks; it still may load nothing else.
    let policy = if shown && file.content_type == "application/pdf" {
        "default-src 'none'"
    } else {
        "sandbox; default-src 'none'"
    };
    let headers = [
        (header::CONTENT_TYPE, file.content_type.clone()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::CONTENT_SECURITY_POLICY, policy.to_owned()),
        (header::CACHE_CONTROL, "private, no-store".to_owned()),
    ];
    Ok((headers, data).into_response())
}

async fn collaborators(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Vec<CollaboratorView>>> {
    Ok(Json(
        services
            .records()
            .collaborators(&caller.ctx, &entity, &id)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    access: String,
}

fn member_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text)
        .map_err(|_| Error::invalid("/account_id", "unknown_user", "not a member id"))
}

async fn share(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id, account)): Path<(String, String, String, String)>,
    AppJson(body): AppJson<ShareBody>,
) -> Result<Json<Vec<CollaboratorView>>> {
    let can_edit = match body.access.as_str() {
        "read" => false,
        "edit" => true,
        _ => {
            return Err(Error::invalid("/access", "enum", "access is read or edit"));
        }
    };
    Ok(Json(
        services
            .records()
            .share(
                &caller.ctx,
                &entity,
                &id,
                member_id(&account)?,
                Some(can_edit),
            )
            .await?,
    ))
}

async fn unshare(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id, account)): Path<(String, String, String, String)>,
) -> Result<StatusCode> {
    services
        .records()
        .share(&caller.ctx, &entity, &id, member_id(&account)?, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    ids: Vec<String>,
    owner: Uuid,
}

#[derive(Debug, serde::Serialize)]
struct Transferred {
    transferred: usize,
}

async fn transfer(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<TransferBody>,
) -> Result<Json<Transferred>> {
    let transferred = services
        .records()
        .transfer(&caller.ctx, &entity, &body.ids, body.owner)
        .await?;
    Ok(Json(Transferred { transferred }))
}

async fn claim(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<RecordView>> {
    Ok(Json(
        services.records().claim(&caller.ctx, &entity, &id).await?,
    ))
}

async fn release(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    services
        .records()
        .release(&caller.ctx, &entity, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn personal_data(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<crate::records::erasure::PersonalData>> {
    Ok(Json(
        services
            .records()
            .personal_data(&caller.ctx, &entity, &id)
            .await?,
    ))
}

async fn erase(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<crate::records::erasure::Erasure>> {
    Ok(Json(
        services.records().erase(&caller.ctx, &entity, &id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRun {
    script: String,
    record_id: Option<String>,
    fields: Option<Map<String, Value>>,
}

/// Evaluates a script against a record without writing anything.
async fn test_script(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppJson(body): AppJson<TestRun>,
) -> Result<Json<Value>> {
    Ok(Json(
        services
            .records()
            .test_script(
                &caller.ctx,
                services.scripts(),
                &entity,
                &body.script,
                body.record_id.as_deref(),
                body.fields,
            )
            .await?,
    ))
}
