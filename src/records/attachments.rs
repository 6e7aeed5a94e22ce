//! Files of attachment fields: uploaded into the database with the field's size and type
//! limits, described in the record (`{id, name, size, content_type}`), linked to the record that
//! lists them inside its write transaction, and downloaded only by members who can see that
//! record.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Context, Records, codec};
use crate::definitions::{EntityModel, FieldKind};
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::store::Conn;
use crate::store::records::{self as rows, AttachmentRow};

/// An uploaded file as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttachmentView {
    /// Id: list it in the record's field to attach the file.
    pub id: Uuid,
    /// File name.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Media type.
    pub content_type: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

impl From<&AttachmentRow> for AttachmentView {
    fn from(row: &AttachmentRow) -> Self {
        Self {
            id: row.id,
            name: row.file_name.clone(),
            size: row.size,
            content_type: row.content_type.clone(),
            sha256: row.sha256.clone(),
        }
    }
}

/// A file to upload.
#[derive(Debug)]
pub struct Upload {
    /// The attachment field it is for.
    pub field: String,
    /// The file name the client gave.
    pub file_name: String,
    /// The declared media type.
    pub content_type: String,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A file name without paths, control characters or surrounding space, at most 255 characters.
fn clean_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().to_owned();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then_some(cleaned)
}

fn media_type(declared: &str) -> String {
    declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn accepted(accept: &[String], media: &str) -> bool {
    accept.is_empty()
        || accept
            .iter()
            .any(|pattern| match pattern.strip_suffix("/*") {
                Some(family) => media.split('/').next() == Some(family),
                None => pattern == media,
            })
}

/// Whether the bytes contradict a declared type we can recognise (a file claiming to be a PNG,
/// JPEG, GIF or PDF must start like one).
fn contradicts(media: &str, data: &[u8]) -> bool {
    let starts = |magic: &[u8]| data.starts_with(magic);
    match media {
        "image/png" => !starts(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => !starts(b"\xff\xd8\xff"),
        "image/gif" => !starts(b"GIF87a") && !starts(b"GIF89a"),
        "application/pdf" => !starts(b"%PDF-"),
        _ => false,
    }
}

/// Checks a file for an attachment field as an upload does (a file name, not empty, within the
/// field's size, a media type the field accepts and the bytes do not contradict); answers the
/// cleaned name and media type. Problems are located under `pointer`.
///
/// # Errors
/// `Error::Invalid`.
pub(super) fn vet(
    field: &crate::definitions::Field,
    name: &str,
    content_type: &str,
    data: &[u8],
    pointer: &str,
) -> Result<(String, String)> {
    let FieldKind::Attachment {
        max_size, accept, ..
    } = &field.kind
    else {
        return Err(Error::invalid(
            format!("{pointer}/field"),
            "field_kind",
            format!("{:?} is not an attachment field", field.key),
        ));
    };
    let file_name = clean_name(name).ok_or_else(|| {
        Error::invalid(
            format!("{pointer}/name"),
            "file_name",
            "give the file's name (?name=contract.pdf)",
        )
    })?;
    let media = media_type(content_type);
    if data.is_empty() {
        return Err(Error::invalid(pointer, "empty", "the file is empty"));
    }
    if data.len() as u64 > *max_size {
        return Err(Error::invalid(
            pointer,
            "max_size",
            format!(
                "the file has {} bytes; {:?} takes at most {max_size}",
                data.len(),
                field.key
            ),
        ));
    }
    let well_formed = media.contains('/')
        && media
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/+-.".contains(c));
    if !well_formed {
        return Err(Error::invalid(
            format!("{pointer}/content_type"),
            "content_type",
            "send the file's media type as Content-Type",
        ));
    }
    if !accepted(accept, &media) {
        return Err(Error::invalid(
            format!("{pointer}/content_type"),
            "content_type",
            format!("{:?} accepts {}, not {media}", field.key, accept.join(", ")),
        ));
    }
    if contradicts(&media, data) {
        return Err(Error::invalid(
            format!("{pointer}/content_type"),
            "content_type",
            format!("the bytes are not a {media} file"),
        ));
    }
    Ok((file_name, media))
}

impl Records<'_> {
    /// Stores a file for an attachment field (not yet attached to any record).
    ///
    /// # Errors
    /// `Error::NotFound` (entity, field); `Error::Invalid` (not an attachment field, empty,
    /// too large, a type the field does not accept, a name that is not a file name).
    pub async fn upload(
        &self,
        ctx: &Context,
        entity: &str,
        upload: Upload,
    ) -> Result<AttachmentView> {
        let (_, model) = self.model(ctx.scope, entity).await?;
        let lens = super::Lens::new(ctx, &model);
        if lens.reach(super::Operation::Create) == crate::access::Reach::None
            && lens.reach(super::Operation::Update) == crate::access::Reach::None
        {
            return Err(Error::forbidden(format!(
                "your role may not write {entity} records"
            )));
        }
        let rule = lens.field(&model, &upload.field);
        if rule.blocks_writes() && rule != crate::access::FieldRule::Hidden {
            return Err(Error::forbidden_at(
                "/field",
                "read_only_field",
                format!("your role may not change the field {:?}", upload.field),
            ));
        }
        let field = model
            .field(&upload.field)
            .filter(|f| !f.hidden && rule != crate::access::FieldRule::Hidden)
            .ok_or_else(|| {
                Error::invalid(
                    "/field",
                    "unknown_field",
                    format!("{entity:?} has no field {:?}", upload.field),
                )
            })?;
        let (file_name, media) = vet(
            field,
            &upload.file_name,
            &upload.content_type,
            &upload.data,
            "",
        )?;
        let row = AttachmentRow {
            id: new_id(),
            workspace_id: ctx.scope.workspace_id,
            entity_id: model.definition_id,
            field: field.key.clone(),
            record_id: None,
            file_name,
            content_type: media,
            size: upload.data.len() as i64,
            sha256: hex::encode(Sha256::digest(&upload.data)),
            created_at: self.clock.now(),
            created_by: ctx.actor.account_id(),
        };
        rows::insert_attachment(self.db.conn(), &row, upload.data).await?;
        Ok(AttachmentView::from(&row))
    }

    /// A file's description and bytes, for a member who can see the record it is attached to
    /// (or its uploader, before it is attached).
    ///
    /// # Errors
    /// `Error::NotFound`.
    pub async fn download(&self, ctx: &Context, id: &str) -> Result<(AttachmentView, Vec<u8>)> {
        let not_found = || Error::not_found(format!("attachment {id:?}"));
        let id = Uuid::parse_str(id).map_err(|_| not_found())?;
        let (row, data) = rows::attachment_data(self.db.conn(), ctx.scope.workspace_id, id)
            .await?
            .ok_or_else(not_found)?;
        let snapshot = self.snapshot(ctx.scope).await?;
        let model = snapshot
            .entities()
            .into_iter()
            .find(|m| m.definition_id == row.entity_id)
            .ok_or_else(not_found)?;
        let lens = super::Lens::new(ctx, &model);
        let rule = lens.field(&model, &row.field);
        if rule == crate::access::FieldRule::Hidden || rule.masks() {
            return Err(not_found());
        }
        match row.record_id {
            Some(record_id) => {
                let record = rows::find(self.db.conn(), &model.table(), record_id)
                    .await?
                    .filter(|r| r.deleted_at.is_none() || ctx.is_admin())
                    .ok_or_else(not_found)?;
                self.check_record(ctx, &lens, &model, &record, super::Operation::Read)
                    .await
                    .map_err(|_| not_found())?;
            }
            None if row.created_by != ctx.actor.account_id() && !ctx.is_admin() => {
                return Err(not_found());
            }
            None => {}
        }
        Ok((AttachmentView::from(&row), data))
    }

    /// Replaces the attachment ids in written documents by the files' descriptions, checking
    /// that each file exists in this workspace, was uploaded for this entity and field, and is
    /// not attached to another record. Returns the files to link, by record.
    pub(super) async fn describe_files(
        &self,
        ctx: &Context,
        model: &EntityModel,
        docs: &mut [(String, Uuid, &mut Map<String, Value>)],
        problems: &mut Vec<FieldError>,
    ) -> Result<Vec<(Uuid, Vec<Uuid>)>> {
        let attachment_fields: Vec<&str> = model
            .fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Attachment { .. }))
            .map(|f| f.key.as_str())
            .collect();
        if attachment_fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut wanted: Vec<Uuid> = Vec::new();
        for (_, _, doc) in docs.iter() {
            for key in &attachment_fields {
                if let Some(items) = doc.get(*key).and_then(Value::as_array) {
                    wanted.extend(
                        items
                            .iter()
                            .filter_map(|i| i.as_str())
                            .filter_map(|s| Uuid::parse_str(s).ok()),
                    );
                }
            }
        }
        let found: HashMap<Uuid, AttachmentRow> =
            rows::find_attachments(self.db.conn(), ctx.scope.workspace_id, &wanted)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect();
        let mut links = Vec::new();
        for (prefix, record_id, doc) in docs.iter_mut() {
            let mut ids = Vec::new();
            for key in &attachment_fields {
                let Some(items) = doc.get_mut(*key).and_then(Value::as_array_mut) else {
                    continue;
                };
                for (i, item) in items.iter_mut().enumerate() {
                    let Some(id) = item.as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
                        // Already a description (kept from the stored record).
                        if let Some(id) = item
                            .get("id")
                            .and_then(Value::as_str)
                            .and_then(|s| Uuid::parse_str(s).ok())
                        {
                            ids.push(id);
                        }
                        continue;
                    };
                    let pointer = format!("{prefix}/fields/{}/{i}", codec::escape(key));
                    match found.get(&id) {
                        Some(file)
                            if file.entity_id == model.definition_id
                                && file.field == *key
                                && file.record_id.is_none_or(|r| r == *record_id) =>
                        {
                            *item = serde_json::json!({
                                "id": file.id, "name": file.file_name,
                                "size": file.size, "content_type": file.content_type,
                            });
                            ids.push(id);
                        }
                        Some(file) if file.record_id.is_some_and(|r| r != *record_id) => problems
                            .push(FieldError::new(
                                pointer,
                                "attachment_in_use",
                                "this file is attached to another record; upload it again",
                            )),
                        _ => problems.push(FieldError::new(
                            pointer,
                            "unknown_attachment",
                            format!("there is no file {id} uploaded for this field"),
                        )),
                    }
                }
            }
            if !ids.is_empty() {
                links.push((*record_id, ids));
            }
        }
        Ok(links)
    }
}

/// Links files to their records inside the write transaction.
///
/// # Errors
/// `Error::Conflict` when a file was attached elsewhere meanwhile; `Error::Db`.
pub(super) async fn link(
    conn: &impl Conn,
    workspace_id: Uuid,
    links: &[(Uuid, Vec<Uuid>)],
) -> Result<()> {
    for (record_id, ids) in links {
        let linked = rows::link_attachments(conn, workspace_id, ids, *record_id).await?;
        if linked != ids.len() as u64 {
            return Err(Error::conflict(
                "",
                "attachment_in_use",
                "a file was attached to another record meanwhile; upload it again",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_and_contents_are_checked() {
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(
            clean_name("C:\\docs\\合同.pdf").as_deref(),
            Some("合同.pdf")
        );
        assert_eq!(clean_name("  "), None);
        assert_eq!(clean_name(".."), None);
        assert!(accepted(&["image/*".to_owned()], "image/png"));
        assert!(!accepted(&["image/*".to_owned()], "application/pdf"));
        assert!(accepted(&[], "application/zip"));
        assert!(contradicts("application/pdf", b"<html>"));
        assert!(!contradicts("application/pdf", b"%PDF-1.7"));
        assert_eq!(media_type("Image/PNG; charset=x"), "image/png");
    }
}
