//! Which column goes to which field: suggested from the headers (a mapping saved earlier for
//! the same header first, then the field's key, then its labels in every language, then common
//! names of a kind in English and Chinese: 手机 for the one phone field), and checked when a
//! person sends theirs.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::convert::fold;
use crate::definitions::EntityModel;
use crate::definitions::entity::FieldKind;
use crate::error::{Error, FieldError, Result};

/// The target of a column holding record ids (an export's first column): rows with an id
/// change that record.
pub const ID: &str = "id";
/// The target of a column naming the owner by email or name.
pub const OWNER: &str = "owner";

/// A header as matched: folded, without the marks people put around names
/// (`* Name:`, `名称（必填）`).
pub fn header_key(header: &str) -> String {
    let cut = header
        .split(['(', '（'])
        .next()
        .unwrap_or(header)
        .trim_start_matches('\u{feff}');
    fold(cut)
        .chars()
        .filter(|c| !matches!(c, '*' | ':' | '：' | '_' | '-' | '.' | '#' | '\''))
        .collect()
}

const OWNER_NAMES: &[&str] = &[
    "owner",
    "owneremail",
    "assignedto",
    "salesrep",
    "负责人",
    "所有者",
    "归属人",
    "跟进人",
];
const ID_NAMES: &[&str] = &["id", "recordid", "记录id"];

fn kind_names(kind: &FieldKind) -> &'static [&'static str] {
    match kind {
        FieldKind::Email => &[
            "email",
            "emailaddress",
            "mail",
            "邮箱",
            "电子邮件",
            "电子邮箱",
            "邮件",
            "邮箱地址",
        ],
        FieldKind::Phone => &[
            "phone",
            "mobile",
            "tel",
            "telephone",
            "cell",
            "phonenumber",
            "mobilephone",
            "手机",
            "电话",
            "手机号",
            "手机号码",
            "联系电话",
            "电话号码",
            "联系方式",
        ],
        FieldKind::Url => &["website", "url", "web", "网址", "网站", "主页"],
        _ => &[],
    }
}

const TITLE_NAMES: &[&str] = &["name", "fullname", "contactname", "姓名", "名字", "名称"];

/// Whether a field can receive a column.
pub fn importable(kind: &FieldKind) -> bool {
    !matches!(
        kind,
        FieldKind::Attachment { .. } | FieldKind::SubTable { .. } | FieldKind::AutoNumber { .. }
    )
}

/// The fields a column may go to for a caller (`writable` says which the caller may set).
pub fn targets<'m>(
    model: &'m EntityModel,
    writable: &dyn Fn(&str) -> bool,
) -> Vec<&'m crate::definitions::Field> {
    model
        .fields
        .iter()
        .filter(|f| f.is_writable() && !f.hidden && importable(&f.kind) && writable(&f.key))
        .collect()
}

/// A suggested target per header (`None`: leave the column out). Each target is suggested once.
pub fn suggest(
    headers: &[String],
    model: &EntityModel,
    writable: &dyn Fn(&str) -> bool,
    saved: &HashMap<String, String>,
) -> Vec<Option<String>> {
    let fields = targets(model, writable);
    let mut names: HashMap<String, String> = HashMap::new();
    for field in &fields {
        names
            .entry(header_key(&field.key))
            .or_insert_with(|| field.key.clone());
        names
            .entry(header_key(&field.label))
            .or_insert_with(|| field.key.clone());
        if let Some(Value::Object(labels)) = model
            .document
            .pointer(&format!("/properties/{}/x-label", field.key))
        {
            for label in labels.values().filter_map(Value::as_str) {
                names
                    .entry(header_key(label))
                    .or_insert_with(|| field.key.clone());
            }
        }
    }
    // Common names of a kind go to the kind's only field.
    for field in &fields {
        let same_kind = fields
            .iter()
            .filter(|f| std::mem::discriminant(&f.kind) == std::mem::discriminant(&field.kind))
            .count();
        if same_kind == 1 {
            for name in kind_names(&field.kind) {
                names
                    .entry((*name).to_owned())
                    .or_insert_with(|| field.key.clone());
            }
        }
    }
    if let Some(title) = &model.title_field
        && fields.iter().any(|f| &f.key == title)
    {
        for name in TITLE_NAMES {
            names
                .entry((*name).to_owned())
                .or_insert_with(|| title.clone());
        }
    }
    for name in OWNER_NAMES {
        names
            .entry((*name).to_owned())
            .or_insert_with(|| OWNER.to_owned());
    }
    for name in ID_NAMES {
        names
            .entry((*name).to_owned())
            .or_insert_with(|| ID.to_owned());
    }
    let valid =
        |target: &str| target == ID || target == OWNER || fields.iter().any(|f| f.key == target);
    let mut used = HashSet::new();
    headers
        .iter()
        .map(|header| {
            let key = header_key(header);
            if key.is_empty() {
                return None;
            }
            let target = saved
                .get(&key)
                .filter(|t| valid(t))
                .or_else(|| names.get(&key))?
                .clone();
            used.insert(target.clone()).then_some(target)
        })
        .collect()
}

/// Checks a mapping sent by a person: one target or none per column (at most as many as the
/// file has columns), each a field the caller may write, `id` or `owner`, none twice.
///
/// # Errors
/// `Error::Invalid` naming each bad entry as `/mapping/{column}`.
pub fn check(
    mapping: &[Option<String>],
    headers: &[String],
    model: &EntityModel,
    writable: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let fields = targets(model, writable);
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    if mapping.len() > headers.len() {
        problems.push(FieldError::new(
            "/mapping",
            "too_long",
            format!(
                "the file has {} columns; the mapping lists {}",
                headers.len(),
                mapping.len()
            ),
        ));
    }
    for (i, target) in mapping.iter().enumerate() {
        let Some(target) = target.as_deref().filter(|t| !t.is_empty()) else {
            continue;
        };
        let pointer = format!("/mapping/{i}");
        if let Some(first) = seen.insert(target, i) {
            problems.push(FieldError::new(
                pointer.clone(),
                "duplicate",
                format!("column {} already goes to {target:?}", first + 1),
            ));
        }
        if target == ID || target == OWNER {
            continue;
        }
        match model.field(target) {
            None => problems.push(FieldError::new(
                pointer,
                "unknown_field",
                format!("{:?} has no field {target:?}", model.key),
            )),
            Some(field) if !fields.iter().any(|f| f.key == field.key) => {
                let why = if !importable(&field.kind) {
                    format!(
                        "{} fields are not imported from spreadsheets",
                        field.kind.name()
                    )
                } else if !field.is_writable() {
                    "Formwork computes this field".to_owned()
                } else {
                    "your role may not set this field".to_owned()
                };
                problems.push(FieldError::new(pointer, "not_importable", why));
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_all(
            "the column mapping is invalid",
            problems,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_matched_without_their_marks() {
        assert_eq!(header_key(" * Contact Name: "), "contactname");
        assert_eq!(header_key("名称（必填）"), "名称");
        assert_eq!(header_key("\u{feff}E-mail"), "email");
        assert_eq!(header_key("'owner_email"), "owneremail");
    }
}
