//! Renaming the keys of a bundle: a clone's prefix on every definition key, and the app's
//! namespace on every role key, with every reference between them rewritten. Pure logic.
//!
//! References rewritten: the `entity` of forms, views, reports and workflows; workflow steps'
//! `entity` and `report`; dashboard items' `report`; `x-reference` and `x-rollup` targets; the
//! report keys listed as the measures of an `x-target` entity; `lookup("entity", …)` in every
//! script; `role:<key>` recipients and approvers, manual-trigger `roles`, `assign_owner.role`,
//! dashboard `roles`; and the entity keys of role rights.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::definitions::Kind;

/// Longest definition key (`^[a-z][a-z0-9_]{0,62}$`).
pub const MAX_KEY: usize = 63;

/// Old key → new key, per definition kind and for roles.
#[derive(Debug, Clone, Default)]
pub struct Renaming {
    definitions: HashMap<(Kind, String), String>,
    roles: HashMap<String, String>,
}

impl Renaming {
    /// Renames definition `key` of `kind` to `to`.
    pub fn definition(&mut self, kind: Kind, key: &str, to: String) {
        self.definitions.insert((kind, key.to_owned()), to);
    }

    /// Renames role `key` to `to`.
    pub fn role(&mut self, key: &str, to: String) {
        self.roles.insert(key.to_owned(), to);
    }

    /// The new key of a definition (itself when not renamed).
    pub fn key_of(&self, kind: Kind, key: &str) -> String {
        self.definitions
            .get(&(kind, key.to_owned()))
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }

    /// The new key of a role (itself when not renamed).
    pub fn role_of(&self, key: &str) -> String {
        self.roles
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }

    /// Whether nothing is renamed.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty() && self.roles.is_empty()
    }

    fn rename_in(&self, kind: Kind, slot: Option<&mut Value>) {
        if let Some(value) = slot
            && let Some(key) = value.as_str()
        {
            *value = Value::String(self.key_of(kind, key));
        }
    }

    fn rename_role_reference(&self, value: &mut Value) {
        if let Some(text) = value.as_str()
            && let Some(role) = text.strip_prefix("role:")
        {
            *value = Value::String(format!("role:{}", self.role_of(role)));
        }
    }

    fn rename_roles_list(&self, list: Option<&mut Value>) {
        for item in list.and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(role) = item.as_str() {
                *item = Value::String(self.role_of(role));
            }
        }
    }

    /// Rewrites every reference inside a definition document.
    pub fn document(&self, kind: Kind, document: &mut Value) {
        if self.is_empty() {
            return;
        }
        rewrite_scripts(document, &|entity| self.key_of(Kind::Entity, entity));
        match kind {
            Kind::Form | Kind::View | Kind::Report | Kind::PrintTemplate | Kind::EmailTemplate => {
                self.rename_in(Kind::Entity, document.get_mut("entity"));
            }
            Kind::Dashboard => {
                for item in document
                    .get_mut("items")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    self.rename_in(Kind::Report, item.get_mut("report"));
                }
                self.rename_roles_list(document.get_mut("roles"));
            }
            Kind::Workflow => self.workflow(document),
            Kind::Entity => self.entity(document),
        }
    }

    fn entity(&self, document: &mut Value) {
        let measure = document
            .pointer("/x-target/measure")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(properties) = document
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        for (name, field) in properties.iter_mut() {
            self.rename_in(Kind::Entity, field.pointer_mut("/x-reference/entity"));
            self.rename_in(Kind::Entity, field.pointer_mut("/x-rollup/entity"));
            // Sub-table columns may refer to records too.
            for column in field
                .pointer_mut("/items/properties")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|columns| columns.values_mut())
            {
                self.rename_in(Kind::Entity, column.pointer_mut("/x-reference/entity"));
            }
            if measure.as_deref() == Some(name.as_str()) {
                for value in field
                    .get_mut("enum")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    self.rename_in(Kind::Report, Some(value));
                }
                for option in field
                    .get_mut("x-options")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    self.rename_in(Kind::Report, option.get_mut("value"));
                }
            }
        }
    }

    fn workflow(&self, document: &mut Value) {
        self.rename_in(Kind::Entity, document.get_mut("entity"));
        if let Some(trigger) = document.get_mut("trigger") {
            self.rename_roles_list(trigger.get_mut("roles"));
        }
        for step in document
            .get_mut("steps")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let step_type = step
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match step_type.as_str() {
                "create_record" | "update_record" => {
                    self.rename_in(Kind::Entity, step.get_mut("entity"));
                }
                "send_report" => self.rename_in(Kind::Report, step.get_mut("report")),
                "assign_owner" => {
                    if let Some(role) = step.get_mut("role")
                        && let Some(key) = role.as_str()
                    {
                        *role = Value::String(self.role_of(key));
                    }
                }
                _ => {}
            }
            for recipient in step
                .get_mut("to")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                self.rename_role_reference(recipient);
            }
            for level in step
                .get_mut("levels")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for approver in level
                    .get_mut("approvers")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    self.rename_role_reference(approver);
                }
                for escalate in level
                    .pointer_mut("/deadline/escalate_to")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    self.rename_role_reference(escalate);
                }
            }
        }
    }

    /// Rewrites the entity keys of a role's rights (`{"entities": {key: …}, "manage": …}`).
    pub fn rights(&self, rights: &mut Value) {
        let Some(entities) = rights.get_mut("entities").and_then(Value::as_object_mut) else {
            return;
        };
        let renamed: Map<String, Value> = std::mem::take(entities)
            .into_iter()
            .map(|(key, value)| {
                let key = if key == "*" {
                    key
                } else {
                    self.key_of(Kind::Entity, &key)
                };
                (key, value)
            })
            .collect();
        *entities = renamed;
    }
}

/// Rewrites the entity of every `lookup("entity", …)` in every string of `value` that calls it.
fn rewrite_scripts(value: &mut Value, rename: &dyn Fn(&str) -> String) {
    match value {
        Value::String(text) if text.contains("lookup") => {
            if let Some(rewritten) = rewrite_lookups(text, rename) {
                *text = rewritten;
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_scripts(item, rename);
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                rewrite_scripts(item, rename);
            }
        }
        _ => {}
    }
}

/// `lookup("lead", x)` → `lookup("p_lead", x)`; `None` when nothing changed.
fn rewrite_lookups(source: &str, rename: &dyn Fn(&str) -> String) -> Option<String> {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    let mut changed = false;
    while let Some(at) = rest.find("lookup") {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .or_else(|| out.chars().next_back())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        out.push_str(&rest[..at + "lookup".len()]);
        rest = &rest[at + "lookup".len()..];
        if !before_ok {
            continue;
        }
        let trimmed = rest.trim_start();
        let Some(args) = trimmed.strip_prefix('(') else {
            continue;
        };
        let args_trimmed = args.trim_start();
        let Some(literal) = args_trimmed.strip_prefix('"') else {
            continue;
        };
        let Some(end) = literal.find('"') else {
            continue;
        };
        let entity = &literal[..end];
        let renamed = rename(entity);
        let consumed = rest.len() - literal.len();
        out.push_str(&rest[..consumed]);
        out.push_str(&renamed);
        changed |= renamed != entity;
        rest = &literal[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prefixed() -> Renaming {
        let mut renaming = Renaming::default();
        for (kind, key) in [
            (Kind::Entity, "lead"),
            (Kind::Entity, "customer"),
            (Kind::Report, "won"),
        ] {
            renaming.definition(kind, key, format!("p_{key}"));
        }
        renaming.role("rep", "p.rep".to_owned());
        renaming
    }

    #[test]
    fn entities_rename_references_targets_and_lookups() {
        let mut doc = json!({
            "x-target": {"measure": "measure"},
            "properties": {
                "customer": {"x-reference": {"entity": "customer"}},
                "items": {"items": {"properties": {"lead": {"x-reference": {"entity": "lead"}}}}},
                "other": {"x-reference": {"entity": "invoice"}},
                "leads": {"x-rollup": {"entity": "lead", "via": "customer", "op": "count"}},
                "measure": {"enum": ["won", "kept"], "x-options": [{"value": "won"}, {"value": "kept"}]},
                "tier": {"x-formula": "let c = lookup(\"customer\", record.customer);\nlookup( \"lead\" , 1); my_lookup(\"lead\")"}
            }
        });
        prefixed().document(Kind::Entity, &mut doc);
        assert_eq!(
            doc["properties"]["customer"]["x-reference"]["entity"],
            "p_customer"
        );
        assert_eq!(
            doc["properties"]["other"]["x-reference"]["entity"],
            "invoice"
        );
        assert_eq!(doc["properties"]["leads"]["x-rollup"]["entity"], "p_lead");
        assert_eq!(
            doc["properties"]["items"]["items"]["properties"]["lead"]["x-reference"]["entity"],
            "p_lead"
        );
        assert_eq!(
            doc["properties"]["measure"]["enum"],
            json!(["p_won", "kept"])
        );
        assert_eq!(
            doc["properties"]["measure"]["x-options"][0]["value"],
            "p_won"
        );
        assert_eq!(
            doc["properties"]["tier"]["x-formula"],
            "let c = lookup(\"p_customer\", record.customer);\nlookup( \"p_lead\" , 1); my_lookup(\"lead\")"
        );
    }

    #[test]
    fn workflows_rename_entities_reports_and_roles() {
        let mut doc = json!({
            "entity": "lead",
            "trigger": {"type": "manual", "roles": ["rep", "admin"]},
            "condition": "lookup(\"customer\", record.customer) != ()",
            "steps": [
                {"id": "a", "type": "create_record", "entity": "customer", "fields": {}},
                {"id": "b", "type": "send_report", "report": "won", "to": ["role:rep", "owner"]},
                {"id": "c", "type": "assign_owner", "strategy": "round_robin", "role": "rep"},
                {"id": "d", "type": "approval", "levels": [{"approvers": ["role:rep", "role:admin"],
                    "deadline": {"working_days": 2, "then": "escalate", "escalate_to": ["role:rep"]}}]}
            ]
        });
        prefixed().document(Kind::Workflow, &mut doc);
        assert_eq!(doc["entity"], "p_lead");
        assert_eq!(doc["trigger"]["roles"], json!(["p.rep", "admin"]));
        assert_eq!(
            doc["condition"],
            "lookup(\"p_customer\", record.customer) != ()"
        );
        assert_eq!(doc["steps"][0]["entity"], "p_customer");
        assert_eq!(doc["steps"][1]["report"], "p_won");
        assert_eq!(doc["steps"][1]["to"], json!(["role:p.rep", "owner"]));
        assert_eq!(doc["steps"][2]["role"], "p.rep");
        assert_eq!(
            doc["steps"][3]["levels"][0]["approvers"],
            json!(["role:p.rep", "role:admin"])
        );
        assert_eq!(
            doc["steps"][3]["levels"][0]["deadline"]["escalate_to"],
            json!(["role:p.rep"])
        );
    }

    #[test]
    fn dashboards_views_and_rights() {
        let renaming = prefixed();
        let mut board =
            json!({"roles": ["rep"], "items": [{"report": "won"}, {"report": "other"}]});
        renaming.document(Kind::Dashboard, &mut board);
        assert_eq!(board["roles"], json!(["p.rep"]));
        assert_eq!(board["items"][0]["report"], "p_won");
        assert_eq!(board["items"][1]["report"], "other");
        let mut view = json!({"entity": "lead"});
        renaming.document(Kind::View, &mut view);
        assert_eq!(view["entity"], "p_lead");
        let mut rights = json!({"entities": {"*": {"read": "own"}, "lead": {"read": "all"}}});
        renaming.rights(&mut rights);
        assert_eq!(
            rights,
            json!({"entities": {"*": {"read": "own"}, "p_lead": {"read": "all"}}})
        );
    }
}
