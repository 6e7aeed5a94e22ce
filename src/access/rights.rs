//! What a role may do: per entity create / read / update / delete, each with a reach, per field
//! hidden / read-only / masked, and the rights to manage the workspace. Pure data and rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, FieldError, Result};

/// How far an operation reaches, by the record's owner (ordered: each includes the previous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Not at all.
    None,
    /// Records the person owns.
    Own,
    /// Records owned by people of the person's team (and their direct reports).
    Team,
    /// Records owned by people of the person's department and the units below it (and everyone
    /// reporting to them, directly or not).
    Department,
    /// Every record of the workspace.
    All,
}

impl Reach {
    /// Its name in role documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Own => "own",
            Self::Team => "team",
            Self::Department => "department",
            Self::All => "all",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::None,
            Self::Own,
            Self::Team,
            Self::Department,
            Self::All,
        ]
        .into_iter()
        .find(|r| r.name() == text)
    }
}

/// What a role may see and write of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FieldRule {
    /// Shown and writable.
    Visible,
    /// Shown masked (a phone as 138****0000) and writable; not filterable, sortable or
    /// groupable, since that would reveal the value.
    Masked,
    /// Shown, never written.
    ReadOnly,
    /// Shown masked, never written (what masked and read-only make together).
    MaskedReadOnly,
    /// As if the field did not exist: not shown, not written, not queried.
    Hidden,
}

impl FieldRule {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "visible" => Some(Self::Visible),
            "masked" => Some(Self::Masked),
            "read_only" => Some(Self::ReadOnly),
            "masked_read_only" => Some(Self::MaskedReadOnly),
            "hidden" => Some(Self::Hidden),
            _ => None,
        }
    }

    /// Whether the value is shown masked.
    pub fn masks(self) -> bool {
        matches!(self, Self::Masked | Self::MaskedReadOnly)
    }

    /// Whether writes are refused.
    pub fn blocks_writes(self) -> bool {
        matches!(self, Self::ReadOnly | Self::MaskedReadOnly | Self::Hidden)
    }

    /// The rule holding both restrictions.
    fn strictest(self, other: Self) -> Self {
        if self == Self::Hidden || other == Self::Hidden {
            return Self::Hidden;
        }
        match (
            self.masks() || other.masks(),
            self.blocks_writes() || other.blocks_writes(),
        ) {
            (false, false) => Self::Visible,
            (true, false) => Self::Masked,
            (false, true) => Self::ReadOnly,
            (true, true) => Self::MaskedReadOnly,
        }
    }
}

/// Rights on the records of one entity (or of every entity, under `*`); absent operations take
/// the `*` entry's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EntityRights {
    /// Creating, and whom the new record may be given to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<Reach>,
    /// Reading (lists, aggregates, history, attachments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<Reach>,
    /// Changing, and whom the record may be handed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Reach>,
    /// Deleting and restoring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<Reach>,
    /// Seeing and claiming the entity's public pool (records without an owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<bool>,
    /// Per field rules.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldRule>,
}

/// Rights to manage the workspace itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manage {
    /// Entities, forms and other definitions.
    #[serde(default)]
    pub definitions: bool,
    /// Workflows.
    #[serde(default)]
    pub workflows: bool,
    /// Installing and exporting templates.
    #[serde(default)]
    pub templates: bool,
    /// Members, org tree and roles.
    #[serde(default)]
    pub members: bool,
}

impl Manage {
    fn all() -> Self {
        Self {
            definitions: true,
            workflows: true,
            templates: true,
            members: true,
        }
    }

    fn and(self, other: Self) -> Self {
        Self {
            definitions: self.definitions && other.definitions,
            workflows: self.workflows && other.workflows,
            templates: self.templates && other.templates,
            members: self.members && other.members,
        }
    }
}

/// A management right, for checks and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// See [`Manage::definitions`].
    Definitions,
    /// See [`Manage::workflows`].
    Workflows,
    /// See [`Manage::templates`].
    Templates,
    /// See [`Manage::members`].
    Members,
}

impl Right {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Definitions => "definitions",
            Self::Workflows => "workflows",
            Self::Templates => "templates",
            Self::Members => "members",
        }
    }
}

/// Everything a role grants.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rights {
    /// By entity key, `*` for every entity.
    pub entities: BTreeMap<String, EntityRights>,
    /// Management rights.
    pub manage: Manage,
}

/// The merged rights of a role on one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Creating.
    pub create: Reach,
    /// Reading.
    pub read: Reach,
    /// Changing.
    pub update: Reach,
    /// Deleting and restoring.
    pub delete: Reach,
    /// Seeing and claiming the public pool.
    pub pool: bool,
    /// Field rules (fields absent are visible).
    pub fields: BTreeMap<String, FieldRule>,
}

impl Grant {
    /// The rule for a field.
    pub fn field(&self, key: &str) -> FieldRule {
        self.fields.get(key).copied().unwrap_or(FieldRule::Visible)
    }
}

/// Keys of the built-in roles, most powerful first.
pub const BUILT_IN: [&str; 5] = ["owner", "admin", "manager", "member", "viewer"];

/// Built-in roles whose rights cannot be changed (so that a workspace cannot lock itself out).
pub const FIXED: [&str; 2] = ["owner", "admin"];

fn everything(reach: Reach, manage: Manage) -> Rights {
    Rights {
        entities: BTreeMap::from([(
            "*".to_owned(),
            EntityRights {
                create: Some(reach),
                read: Some(reach),
                update: Some(reach),
                delete: Some(reach),
                pool: Some(true),
                fields: BTreeMap::new(),
            },
        )]),
        manage,
    }
}

/// The default rights of a built-in role (`None` for other keys).
pub fn built_in(key: &str) -> Option<Rights> {
    Some(match key {
        "owner" | "admin" => everything(Reach::All, Manage::all()),
        "manager" => everything(Reach::Department, Manage::default()),
        "member" => everything(Reach::Own, Manage::default()),
        "viewer" => Rights {
            entities: BTreeMap::from([(
                "*".to_owned(),
                EntityRights {
                    create: Some(Reach::None),
                    read: Some(Reach::All),
                    update: Some(Reach::None),
                    delete: Some(Reach::None),
                    pool: Some(true),
                    fields: BTreeMap::new(),
                },
            )]),
            manage: Manage::default(),
        },
        _ => return None,
    })
}

impl Rights {
    /// The merged rights on entity `key`.
    pub fn grant(&self, key: &str) -> Grant {
        let all = self.entities.get("*");
        let own = self.entities.get(key);
        let pick = |f: fn(&EntityRights) -> Option<Reach>| {
            own.and_then(f)
                .or_else(|| all.and_then(f))
                .unwrap_or(Reach::None)
        };
        Grant {
            create: pick(|e| e.create),
            read: pick(|e| e.read),
            update: pick(|e| e.update),
            delete: pick(|e| e.delete),
            pool: own
                .and_then(|e| e.pool)
                .or_else(|| all.and_then(|e| e.pool))
                .unwrap_or(false),
            fields: own.map(|e| e.fields.clone()).unwrap_or_default(),
        }
    }

    /// The management rights.
    pub fn may(&self, right: Right) -> bool {
        match right {
            Right::Definitions => self.manage.definitions,
            Right::Workflows => self.manage.workflows,
            Right::Templates => self.manage.templates,
            Right::Members => self.manage.members,
        }
    }

    /// What both grant: each reach the smaller, each field rule the stricter (an API token
    /// bound to a role never exceeds its account's own role).
    pub fn intersect(&self, other: &Rights) -> Rights {
        let keys: std::collections::BTreeSet<&String> =
            self.entities.keys().chain(other.entities.keys()).collect();
        let entities = keys
            .into_iter()
            .map(|key| {
                let (a, b) = (self.grant(key), other.grant(key));
                let mut fields = a.fields.clone();
                for (field, rule) in &b.fields {
                    let merged = fields
                        .get(field)
                        .map_or(*rule, |mine| mine.strictest(*rule));
                    fields.insert(field.clone(), merged);
                }
                (
                    key.clone(),
                    EntityRights {
                        create: Some(a.create.min(b.create)),
                        read: Some(a.read.min(b.read)),
                        update: Some(a.update.min(b.update)),
                        delete: Some(a.delete.min(b.delete)),
                        pool: Some(a.pool && b.pool),
                        fields,
                    },
                )
            })
            .collect();
        Rights {
            entities,
            manage: self.manage.and(other.manage),
        }
    }

    /// Whether these rights are within `ceiling` (nothing reaches further, no field is less
    /// restricted, no management right more): who holds `ceiling` may hand these out.
    pub fn within(&self, ceiling: &Rights) -> bool {
        self.intersect(ceiling).same_as(self)
    }

    fn same_as(&self, other: &Rights) -> bool {
        let keys: std::collections::BTreeSet<&String> =
            self.entities.keys().chain(other.entities.keys()).collect();
        self.manage == other.manage
            && keys.into_iter().all(|key| {
                let (a, b) = (self.grant(key), other.grant(key));
                let rules = |g: &Grant| -> BTreeMap<String, FieldRule> {
                    g.fields
                        .iter()
                        .filter(|(_, r)| **r != FieldRule::Visible)
                        .map(|(k, r)| (k.clone(), *r))
                        .collect()
                };
                (a.create, a.read, a.update, a.delete, a.pool)
                    == (b.create, b.read, b.update, b.delete, b.pool)
                    && rules(&a) == rules(&b)
            })
    }

    /// The role document form (`{"entities": {...}, "manage": {...}}`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a role's rights, every problem located under `prefix`. `entity_fields` answers the
    /// field keys of a published entity (`None` when there is no such entity).
    ///
    /// # Errors
    /// `Error::Invalid` listing every problem.
    pub fn parse(
        value: &Value,
        prefix: &str,
        entity_fields: &dyn Fn(&str) -> Option<Vec<String>>,
    ) -> Result<Rights> {
        let mut problems = Vec::new();
        let mut rights = Rights::default();
        let Some(object) = value.as_object() else {
            return Err(Error::invalid(
                prefix,
                "type",
                "rights are an object with \"entities\" and \"manage\"",
            ));
        };
        for key in object.keys() {
            if key != "entities" && key != "manage" {
                problems.push(FieldError::new(
                    format!("{prefix}/{key}"),
                    "unknown_property",
                    format!("unknown property {key:?}; rights have \"entities\" and \"manage\""),
                ));
            }
        }
        match object.get("manage") {
            None | Some(Value::Null) => {}
            Some(Value::Object(manage)) => {
                for (key, value) in manage {
                    let pointer = format!("{prefix}/manage/{key}");
                    let Some(flag) = value.as_bool() else {
                        problems.push(FieldError::new(pointer, "type", "true or false"));
                        continue;
                    };
                    match key.as_str() {
                        "definitions" => rights.manage.definitions = flag,
                        "workflows" => rights.manage.workflows = flag,
                        "templates" => rights.manage.templates = flag,
                        "members" => rights.manage.members = flag,
                        _ => problems.push(FieldError::new(
                            pointer,
                            "unknown_property",
                            "manage has definitions, workflows, templates and members",
                        )),
                    }
                }
            }
            Some(_) => problems.push(FieldError::new(
                format!("{prefix}/manage"),
                "type",
                "manage is an object of true/false rights",
            )),
        }
        match object.get("entities") {
            None | Some(Value::Null) => {}
            Some(Value::Object(entities)) => {
                for (key, value) in entities {
                    let pointer = format!("{prefix}/entities/{}", escape(key));
                    let fields = if key == "*" {
                        Some(Vec::new())
                    } else {
                        entity_fields(key)
                    };
                    let Some(fields) = fields else {
                        problems.push(FieldError::new(
                            pointer,
                            "unknown_entity",
                            format!("no published entity {key:?}"),
                        ));
                        continue;
                    };
                    if let Some(parsed) =
                        parse_entity(value, &pointer, key == "*", &fields, &mut problems)
                    {
                        rights.entities.insert(key.clone(), parsed);
                    }
                }
            }
            Some(_) => problems.push(FieldError::new(
                format!("{prefix}/entities"),
                "type",
                "entities is an object keyed by entity key or \"*\"",
            )),
        }
        if problems.is_empty() {
            Ok(rights)
        } else {
            Err(Error::invalid_all(
                "the role's rights are invalid",
                problems,
            ))
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn parse_entity(
    value: &Value,
    pointer: &str,
    is_default: bool,
    fields: &[String],
    problems: &mut Vec<FieldError>,
) -> Option<EntityRights> {
    let Some(object) = value.as_object() else {
        problems.push(FieldError::new(
            pointer,
            "type",
            "an entity's rights are an object of create, read, update, delete and fields",
        ));
        return None;
    };
    let mut rights = EntityRights::default();
    for (key, value) in object {
        let at = format!("{pointer}/{}", escape(key));
        let slot = match key.as_str() {
            "create" => &mut rights.create,
            "read" => &mut rights.read,
            "update" => &mut rights.update,
            "delete" => &mut rights.delete,
            "pool" => {
                match value.as_bool() {
                    Some(flag) => rights.pool = Some(flag),
                    None => problems.push(FieldError::new(at, "type", "pool is true or false")),
                }
                continue;
            }
            "fields" => {
                if is_default {
                    problems.push(FieldError::new(
                        at,
                        "unexpected",
                        "field rules belong to a named entity, not \"*\"",
                    ));
                    continue;
                }
                let Some(rules) = value.as_object() else {
                    problems.push(FieldError::new(
                        at,
                        "type",
                        "fields is an object of field key → visible, masked, read_only, masked_read_only or hidden",
                    ));
                    continue;
                };
                for (field, rule) in rules {
                    let field_at = format!("{at}/{}", escape(field));
                    if !fields.iter().any(|f| f == field) {
                        problems.push(FieldError::new(
                            field_at,
                            "unknown_field",
                            format!("the entity has no field {field:?}"),
                        ));
                        continue;
                    }
                    match rule.as_str().and_then(FieldRule::parse) {
                        Some(rule) => {
                            rights.fields.insert(field.clone(), rule);
                        }
                        None => problems.push(FieldError::new(
                            field_at,
                            "enum",
                            "a field rule is visible, masked, read_only, masked_read_only or hidden",
                        )),
                    }
                }
                continue;
            }
            _ => {
                problems.push(FieldError::new(
                    at,
                    "unknown_property",
                    "an entity's rights have create, read, update, delete, pool and fields",
                ));
                continue;
            }
        };
        match value.as_str().and_then(Reach::parse) {
            Some(reach) => *slot = Some(reach),
            None => problems.push(FieldError::new(
                at,
                "enum",
                "a reach is none, own, team, department or all",
            )),
        }
    }
    Some(rights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(key: &str) -> Option<Vec<String>> {
        (key == "opportunity").then(|| vec!["amount".to_owned(), "cost".to_owned()])
    }

    #[test]
    fn entity_entries_override_the_default_per_operation() {
        let rights = Rights::parse(
            &json!({"entities": {"*": {"read": "own", "create": "own"},
                                 "opportunity": {"read": "team", "fields": {"cost": "hidden"}}}}),
            "",
            &fields,
        )
        .expect("valid");
        let grant = rights.grant("opportunity");
        assert_eq!(grant.read, Reach::Team);
        assert_eq!(grant.create, Reach::Own);
        assert_eq!(grant.update, Reach::None);
        assert_eq!(grant.field("cost"), FieldRule::Hidden);
        assert_eq!(grant.field("amount"), FieldRule::Visible);
        assert_eq!(rights.grant("lead").read, Reach::Own);
    }

    #[test]
    fn every_problem_is_located() {
        let Err(Error::Invalid { errors, .. }) = Rights::parse(
            &json!({"entities": {"nope": {}, "opportunity": {"read": "mine",
                     "fields": {"cost": "secret", "ghost": "hidden"}}},
                    "manage": {"members": "yes"}, "extra": 1}),
            "/rights",
            &fields,
        ) else {
            panic!("invalid");
        };
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for expected in [
            "/rights/extra",
            "/rights/manage/members",
            "/rights/entities/nope",
            "/rights/entities/opportunity/read",
            "/rights/entities/opportunity/fields/cost",
            "/rights/entities/opportunity/fields/ghost",
        ] {
            assert!(pointers.contains(&expected), "{expected} in {pointers:?}");
        }
    }

    #[test]
    fn intersection_takes_the_smaller_reach_and_the_stricter_rule() {
        let manager = built_in("manager").expect("built in");
        let narrow = Rights::parse(
            &json!({"entities": {"*": {"read": "all", "update": "own"},
                     "opportunity": {"fields": {"cost": "masked"}}}}),
            "",
            &fields,
        )
        .expect("valid");
        let both = manager.intersect(&narrow);
        let grant = both.grant("opportunity");
        assert_eq!(grant.read, Reach::Department);
        assert_eq!(grant.update, Reach::Own);
        assert_eq!(grant.create, Reach::None);
        assert_eq!(grant.field("cost"), FieldRule::Masked);
        assert_eq!(
            FieldRule::Masked.strictest(FieldRule::ReadOnly),
            FieldRule::MaskedReadOnly
        );
        assert!(both.within(&manager));
        assert!(!built_in("admin").expect("built in").within(&manager));
        assert!(built_in("member").expect("built in").within(&manager));
    }
}
