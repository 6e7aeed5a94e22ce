//! Three-way merge of JSON documents for template upgrades: the template's old version (base),
//! the workspace's current version (ours) and the template's new version (theirs). Objects merge
//! key by key, so a workspace that relabelled one field still takes a field the template added;
//! arrays and scalars are atomic. Pure logic.

use serde_json::{Map, Value};

/// Where ours and theirs changed the same thing differently: JSON pointers.
pub type Conflicts = Vec<String>;

/// Merges `ours` and `theirs`, both descended from `base`; `None` stands for "absent".
///
/// # Errors
/// The pointers where both sides changed the same value differently.
pub fn merge3(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Result<Option<Value>, Conflicts> {
    let mut conflicts = Vec::new();
    let merged = merge_at(base, ours, theirs, "", &mut conflicts);
    if conflicts.is_empty() {
        Ok(merged)
    } else {
        Err(conflicts)
    }
}

fn merge_at(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
    pointer: &str,
    conflicts: &mut Conflicts,
) -> Option<Value> {
    if ours == theirs || theirs == base {
        return ours.cloned();
    }
    if ours == base {
        return theirs.cloned();
    }
    match (base, ours, theirs) {
        (base, Some(Value::Object(ours)), Some(Value::Object(theirs))) => {
            let empty = Map::new();
            let base = match base {
                Some(Value::Object(base)) => base,
                _ => &empty,
            };
            let mut merged = Map::new();
            // Ours' order first (the workspace's field order), then what theirs added.
            let keys = ours
                .keys()
                .chain(theirs.keys().filter(|k| !ours.contains_key(*k)))
                .chain(
                    base.keys()
                        .filter(|k| !ours.contains_key(*k) && !theirs.contains_key(*k)),
                );
            for key in keys {
                let at = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                if let Some(value) = merge_at(
                    base.get(key),
                    ours.get(key),
                    theirs.get(key),
                    &at,
                    conflicts,
                ) {
                    merged.insert(key.clone(), value);
                }
            }
            Some(Value::Object(merged))
        }
        _ => {
            conflicts.push(if pointer.is_empty() {
                "/".to_owned()
            } else {
                pointer.to_owned()
            });
            ours.cloned()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn merge(base: &Value, ours: &Value, theirs: &Value) -> Result<Option<Value>, Conflicts> {
        merge3(Some(base), Some(ours), Some(theirs))
    }

    #[test]
    fn takes_one_sided_changes() {
        let base = json!({"a": 1, "b": {"x": 1, "y": 2}});
        let ours = json!({"a": 1, "b": {"x": 10, "y": 2}, "mine": true});
        let theirs = json!({"a": 2, "b": {"x": 1, "y": 2, "z": 3}});
        assert_eq!(
            merge(&base, &ours, &theirs),
            Ok(Some(
                json!({"a": 2, "b": {"x": 10, "y": 2, "z": 3}, "mine": true})
            ))
        );
    }

    #[test]
    fn deletions_merge_and_identical_changes_agree() {
        let base = json!({"a": 1, "b": 2, "c": 3});
        let ours = json!({"a": 1, "c": 4});
        let theirs = json!({"a": 1, "b": 2, "c": 4, "d": 5});
        assert_eq!(
            merge(&base, &ours, &theirs),
            Ok(Some(json!({"a": 1, "c": 4, "d": 5})))
        );
    }

    #[test]
    fn both_sides_changing_one_value_conflict_at_its_pointer() {
        let base = json!({"p": {"f/1": {"label": "A"}}, "list": [1]});
        let ours = json!({"p": {"f/1": {"label": "B"}}, "list": [1, 2]});
        let theirs = json!({"p": {"f/1": {"label": "C"}}, "list": [0]});
        assert_eq!(
            merge(&base, &ours, &theirs),
            Err(vec!["/p/f~11/label".to_owned(), "/list".to_owned()])
        );
    }

    #[test]
    fn absent_documents() {
        let doc = json!({"a": 1});
        assert_eq!(merge3(None, None, Some(&doc)), Ok(Some(doc.clone())));
        assert_eq!(merge3(Some(&doc), None, Some(&doc)), Ok(None));
        assert_eq!(
            merge3(Some(&doc), None, Some(&json!({"a": 2}))),
            Err(vec!["/".to_owned()])
        );
    }
}
