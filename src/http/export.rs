//! Sending an export: the records a list query finds, as CSV streamed a page at a time, or as
//! XLSX written to a temporary file row by row and then streamed from it. The first page is read
//! before anything is sent, so a bad query or a refused entity is a proper problem answer.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::Services;
use crate::error::{Error, Result};
use crate::records::export::{Exporter, PAGE, XlsxFile};
use crate::records::{Context, Page};
use crate::render::i18n::Locale;
use crate::workspaces::Access;

/// The spreadsheet formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sheet {
    /// CSV (UTF-8 with a BOM).
    Csv,
    /// Excel.
    Xlsx,
}

/// The page of `query` after `cursor`.
async fn page(
    services: &Services,
    ctx: &Context,
    entity: &str,
    query: &Value,
    cursor: Option<&str>,
) -> Result<Page> {
    let mut query = query.clone();
    query["limit"] = Value::from(PAGE);
    if let Some(cursor) = cursor {
        query["cursor"] = Value::from(cursor);
    }
    services.records().list(ctx, entity, &query).await
}

/// Answers with every record of `entity` that `query` (a list body: filter, sort) finds, as the
/// caller sees them.
///
/// # Errors
/// As listing the records (a bad query, an entity the caller may not read).
pub(crate) async fn respond(
    services: &Services,
    ctx: Context,
    access: &Access,
    entity: &str,
    mut query: Value,
    sheet: Sheet,
    locale: Locale,
) -> Result<Response> {
    if let Some(map) = query.as_object_mut() {
        map.shift_remove("limit");
        map.shift_remove("cursor");
        map.shift_remove("total");
    }
    let people: HashMap<String, String> = crate::workspaces::members(services.db(), access)
        .await?
        .into_iter()
        .map(|m| (m.account_id.to_string(), m.name))
        .collect();
    let exporter = Exporter::new(&services.records(), &ctx, entity, locale, people).await?;
    let first = page(services, &ctx, entity, &query, None).await?;
    let stamp = services.clock().now().format("%Y%m%d-%H%M");
    match sheet {
        Sheet::Csv => {
            let (sender, receiver) =
                tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(4);
            let services = services.clone();
            let entity_key = entity.to_owned();
            tokio::spawn(async move {
                let mut current = first;
                let mut header = true;
                loop {
                    let records = services.records();
                    let titles = exporter.titles(&records, &ctx, &current).await;
                    let rows = exporter.rows(&current, &titles);
                    let chunk = exporter.csv(&rows, header, header);
                    header = false;
                    let sent = match chunk {
                        Ok(bytes) => sender.send(Ok(Bytes::from(bytes))).await,
                        Err(error) => {
                            tracing::error!(%error, "export failed");
                            let _ = sender
                                .send(Err(std::io::Error::other("export failed")))
                                .await;
                            return;
                        }
                    };
                    // The reader went away: stop reading records.
                    if sent.is_err() {
                        return;
                    }
                    let Some(cursor) = current.next_cursor.clone() else {
                        return;
                    };
                    match page(&services, &ctx, &entity_key, &query, Some(&cursor)).await {
                        Ok(next) => current = next,
                        Err(error) => {
                            tracing::error!(%error, "export failed");
                            let _ = sender
                                .send(Err(std::io::Error::other("export failed")))
                                .await;
                            return;
                        }
                    }
                }
            });
            let stream = futures::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|item| (item, receiver))
            });
            Ok(attachment(
                Body::from_stream(stream),
                "text/csv; charset=utf-8",
                &format!("{entity}-{stamp}.csv"),
            ))
        }
        Sheet::Xlsx => {
            let mut file = XlsxFile::new(entity, exporter.header())?;
            let mut current = first;
            loop {
                let titles = exporter.titles(&services.records(), &ctx, &current).await;
                file.write(&exporter.rows(&current, &titles))?;
                let Some(cursor) = current.next_cursor.clone() else {
                    break;
                };
                current = page(services, &ctx, entity, &query, Some(&cursor)).await?;
            }
            let path =
                std::env::temp_dir().join(format!("formwork-export-{}.xlsx", uuid::Uuid::now_v7()));
            let saving = path.clone();
            tokio::task::spawn_blocking(move || file.save(&saving))
                .await
                .map_err(|e| Error::internal(format!("export: {e}")))??;
            let opened = tokio::fs::File::open(&path)
                .await
                .map_err(|e| Error::internal(format!("export: {e}")))?;
            // Unlinked now, the file lives until the stream closes it.
            let _ = tokio::fs::remove_file(&path).await;
            let stream = futures::stream::unfold(opened, |mut file| async move {
                use tokio::io::AsyncReadExt;
                let mut buffer = vec![0u8; 64 * 1024];
                match file.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buffer.truncate(n);
                        Some((Ok::<_, std::io::Error>(Bytes::from(buffer)), file))
                    }
                    Err(error) => Some((Err(error), file)),
                }
            });
            Ok(attachment(
                Body::from_stream(stream),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &format!("{entity}-{stamp}.xlsx"),
            ))
        }
    }
}

fn attachment(body: Body, content_type: &'static str, filename: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
