//! People and access: roles and their rights, the org tree, and the [`Policy`] of one person in
//! one workspace, which every reader and writer of records consults. Knows nothing of HTTP or
//! SQL: the policy answers with query conditions (`domain::query`) that the store compiles into
//! indexed predicates.

pub mod org;
pub mod rights;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use uuid::Uuid;

use crate::domain::query::{Condition, Operand, Predicate, SystemField};
pub use org::{OrgTree, Person, Unit, UnitKind};
pub use rights::{EntityRights, FieldRule, Grant, Manage, Reach, Right, Rights};

/// A role of a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Key (`member`, `crm.sales_rep`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// What it grants.
    pub rights: Rights,
    /// Whether it is one of the five built-in roles.
    pub built_in: bool,
}

/// Everything about people a workspace's access checks need: roles and the org tree.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// The org tree.
    pub org: Arc<OrgTree>,
    /// Roles by key (built-in ones included, with the workspace's changes).
    pub roles: HashMap<String, Role>,
}

impl Directory {
    /// Builds a directory: the built-in roles, overridden or joined by `stored` roles.
    pub fn new(org: OrgTree, stored: Vec<Role>) -> Self {
        let mut roles: HashMap<String, Role> = rights::BUILT_IN
            .iter()
            .filter_map(|key| {
                Some((
                    (*key).to_owned(),
                    Role {
                        key: (*key).to_owned(),
                        name: built_in_name(key).to_owned(),
                        rights: rights::built_in(key)?,
                        built_in: true,
                    },
                ))
            })
            .collect();
        for role in stored {
            if rights::FIXED.contains(&role.key.as_str()) {
                continue;
            }
            let built_in = rights::BUILT_IN.contains(&role.key.as_str());
            roles.insert(role.key.clone(), Role { built_in, ..role });
        }
        Self {
            org: Arc::new(org),
            roles,
        }
    }

    /// The rights of a role key (an unknown key grants nothing).
    pub fn rights_of(&self, role: &str) -> Rights {
        self.roles
            .get(role)
            .map(|r| r.rights.clone())
            .unwrap_or_default()
    }
}

/// The display name of a built-in role.
pub fn built_in_name(key: &str) -> &'static str {
    match key {
        "owner" => "Owner",
        "admin" => "Administrator",
        "manager" => "Manager",
        "member" => "Member",
        "viewer" => "Viewer",
        _ => "",
    }
}

/// Whether a role key is an administrator's (owner or admin): they see values of fields the
/// definition hides, purge, and examine schema changes.
pub fn is_admin_role(role: &str) -> bool {
    rights::FIXED.contains(&role)
}

/// One person's rights in one workspace, with the owner sets their reaches cover.
#[derive(Debug)]
pub struct Policy {
    /// The person.
    pub account_id: Uuid,
    /// Their role key.
    pub role: String,
    /// Whether they administer the workspace.
    pub is_admin: bool,
    /// Whether they own it (an owner's token narrowed to another role does not).
    pub is_owner: bool,
    /// Their effective rights (their role's, narrowed by their API token's role).
    pub rights: Rights,
    /// The role their API token narrows them to, if it does (work done later on their behalf,
    /// such as an import, keeps the narrowing).
    pub narrowed_to: Option<String>,
    org: Arc<OrgTree>,
    team: OnceLock<Vec<Uuid>>,
    department: OnceLock<Vec<Uuid>>,
}

impl Policy {
    /// The policy of `account_id` holding `role` (narrowed to `token_role` for a token bound to
    /// one).
    pub fn new(
        directory: &Directory,
        account_id: Uuid,
        role: &str,
        token_role: Option<&str>,
    ) -> Self {
        let mut rights = directory.rights_of(role);
        if let Some(token_role) = token_role {
            rights = rights.intersect(&directory.rights_of(token_role));
        }
        Self {
            account_id,
            role: role.to_owned(),
            is_admin: is_admin_role(role) && token_role.is_none_or(is_admin_role),
            is_owner: role == "owner" && token_role.is_none_or(|t| t == "owner"),
            rights,
            narrowed_to: token_role.map(str::to_owned),
            org: directory.org.clone(),
            team: OnceLock::new(),
            department: OnceLock::new(),
        }
    }

    /// A policy that may do everything (the workspace owner's), for tests and tools.
    pub fn unrestricted(account_id: Uuid) -> Self {
        Self::new(
            &Directory::new(OrgTree::default(), Vec::new()),
            account_id,
            "owner",
            None,
        )
    }

    /// The merged rights on an entity.
    pub fn grant(&self, entity: &str) -> Grant {
        self.rights.grant(entity)
    }

    /// Whether the person holds a management right.
    pub fn may(&self, right: Right) -> bool {
        self.rights.may(right)
    }

    /// The org tree the policy was built from.
    pub fn org(&self) -> &OrgTree {
        &self.org
    }

    /// The owners whose records `reach` covers; `None` means every record.
    pub fn owners(&self, reach: Reach) -> Option<&[Uuid]> {
        match reach {
            Reach::None => Some(&[]),
            Reach::Own => Some(std::slice::from_ref(&self.account_id)),
            Reach::Team => Some(
                self.team
                    .get_or_init(|| self.org.team_of(self.account_id))
                    .as_slice(),
            ),
            Reach::Department => Some(
                self.department
                    .get_or_init(|| self.org.department_of(self.account_id))
                    .as_slice(),
            ),
            Reach::All => None,
        }
    }

    /// Whether `reach` covers a record owned by `owner` (records without an owner only at
    /// reach all).
    pub fn covers(&self, reach: Reach, owner: Option<Uuid>) -> bool {
        match self.owners(reach) {
            None => true,
            Some(owners) => owner.is_some_and(|o| owners.contains(&o)),
        }
    }

    /// The condition selecting the records `reach` covers on the entity with definition id
    /// `entity_id`: with `shares`, records shared with the person too (for edits: shared with
    /// edit rights), and with `pool` the records without an owner; `None` when it covers every
    /// record. A caller that knows the person has no shares on the entity passes `shares: false`
    /// and gets a plain owner test, which indexes serve best.
    pub fn condition(
        &self,
        reach: Reach,
        entity_id: Uuid,
        edit: bool,
        pool: bool,
        shares: bool,
    ) -> Option<Condition> {
        let owners = self.owners(reach)?;
        let mut any = Vec::with_capacity(3);
        if pool {
            any.push(Condition::Test {
                operand: Operand::System(SystemField::Owner),
                predicate: Predicate::IsEmpty(true),
            });
        }
        if !owners.is_empty() {
            any.push(Condition::OwnedBy(owners.to_vec()));
        }
        if shares {
            any.push(Condition::SharedWith {
                entity_id,
                account_id: self.account_id,
                edit,
            });
        }
        Some(match any.len() {
            1 => any.remove(0),
            _ => Condition::Any(any),
        })
    }
}

/// The masked form of a value: free text keeps a little of each end (a phone `13812340000` as
/// `138****0000`, an email `zhang@example.com` as `z***@example.com`); numbers, money, dates
/// and everything else (`text_like` false) become `"****"`. Masking is for display; the value
/// cannot be recovered from it.
pub fn mask(value: &Value, text_like: bool) -> Value {
    if !text_like && !value.is_null() {
        return Value::String("****".to_owned());
    }
    let Value::String(text) = value else {
        return if value.is_null() {
            Value::Null
        } else {
            Value::String("****".to_owned())
        };
    };
    if let Some((local, domain)) = text.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return Value::String(format!("{first}***@{domain}"));
    }
    let chars: Vec<char> = text.chars().collect();
    let masked = if chars.len() >= 7 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    } else if chars.len() >= 2 {
        format!("{}****", chars[0])
    } else {
        "****".to_owned()
    };
    Value::String(masked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_keep_only_a_little_of_each_end() {
        assert_eq!(mask(&json!("13812340000"), true), json!("138****0000"));
        assert_eq!(
            mask(&json!("+86 138 1234 0000"), true),
            json!("+86****0000")
        );
        assert_eq!(
            mask(&json!("zhang@example.com"), true),
            json!("z***@example.com")
        );
        assert_eq!(mask(&json!("王芳"), true), json!("王****"));
        assert_eq!(mask(&json!("x"), true), json!("****"));
        assert_eq!(mask(&json!("1250.00"), false), json!("****"));
        assert_eq!(mask(&json!(12), true), json!("****"));
        assert_eq!(mask(&Value::Null, false), Value::Null);
    }

    #[test]
    fn fixed_roles_cannot_be_redefined_and_unknown_roles_grant_nothing() {
        let member_rights = rights::built_in("member").expect("built in");
        let directory = Directory::new(
            OrgTree::default(),
            vec![Role {
                key: "admin".to_owned(),
                name: "x".to_owned(),
                rights: member_rights,
                built_in: false,
            }],
        );
        assert_eq!(directory.rights_of("admin").grant("x").read, Reach::All);
        assert_eq!(directory.rights_of("ghost").grant("x").read, Reach::None);
    }

    #[test]
    fn a_token_role_narrows_and_never_widens() {
        let directory = Directory::new(OrgTree::default(), Vec::new());
        let id = Uuid::from_u128(7);
        let narrowed = Policy::new(&directory, id, "admin", Some("viewer"));
        assert!(!narrowed.is_admin);
        assert_eq!(narrowed.grant("lead").update, Reach::None);
        let widened = Policy::new(&directory, id, "member", Some("admin"));
        assert_eq!(widened.grant("lead").read, Reach::Own);
        assert!(!widened.may(Right::Definitions));
    }
}
