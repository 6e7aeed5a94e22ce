//! The Sales CRM demo's people: a nine-person sales department in four units (two regional
//! new-business teams, account care, analysis) with managers and the template's roles, and who
//! owns which demo record (leads by region, customers by lifecycle, the rest with their
//! customer).

use std::collections::HashMap;

use uuid::Uuid;

use super::demo::DemoRecord;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::{self, Conn};

/// An org unit of the demo.
#[derive(Debug, Clone, Copy)]
pub struct DemoUnit {
    /// Key (for people and parents).
    pub key: &'static str,
    /// Its name (the lead assignment workflow names the regional teams).
    pub name: &'static str,
    /// `department` or `team`.
    pub kind: &'static str,
    /// The unit above.
    pub parent: Option<&'static str>,
}

/// A person of the demo.
#[derive(Debug, Clone, Copy)]
pub struct DemoPerson {
    /// Key (records name their owner by it).
    pub key: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Sign-in email.
    pub email: &'static str,
    /// Role key: a Sales CRM role (without its namespace) or a built-in role.
    pub role: &'static str,
    /// Unit key.
    pub unit: &'static str,
    /// Manager's key.
    pub manager: Option<&'static str>,
}

/// The units, parents first.
pub const UNITS: [DemoUnit; 5] = [
    DemoUnit {
        key: "sales",
        name: "销售部",
        kind: "department",
        parent: None,
    },
    DemoUnit {
        key: "north",
        name: "北区新客户组",
        kind: "team",
        parent: Some("sales"),
    },
    DemoUnit {
        key: "south",
        name: "南区新客户组",
        kind: "team",
        parent: Some("sales"),
    },
    DemoUnit {
        key: "care",
        name: "客户成功组",
        kind: "team",
        parent: Some("sales"),
    },
    DemoUnit {
        key: "analysis",
        name: "销售分析组",
        kind: "team",
        parent: Some("sales"),
    },
];

/// The nine people.
pub const PEOPLE: [DemoPerson; 9] = [
    DemoPerson {
        key: "zhou",
        name: "周明",
        email: "zhou.ming@demo.formwork.local",
        role: "director",
        unit: "sales",
        manager: None,
    },
    DemoPerson {
        key: "li",
        name: "李强",
        email: "li.qiang@demo.formwork.local",
        role: "team_lead",
        unit: "north",
        manager: Some("zhou"),
    },
    DemoPerson {
        key: "zhang",
        name: "张伟",
        email: "zhang.wei@demo.formwork.local",
        role: "sales_rep",
        unit: "north",
        manager: Some("li"),
    },
    DemoPerson {
        key: "chen",
        name: "陈静",
        email: "chen.jing@demo.formwork.local",
        role: "team_lead",
        unit: "south",
        manager: Some("zhou"),
    },
    DemoPerson {
        key: "liu",
        name: "刘洋",
        email: "liu.yang@demo.formwork.local",
        role: "sales_rep",
        unit: "south",
        manager: Some("chen"),
    },
    DemoPerson {
        key: "zhao",
        name: "赵敏",
        email: "zhao.min@demo.formwork.local",
        role: "sales_manager",
        unit: "care",
        manager: Some("zhou"),
    },
    DemoPerson {
        key: "sun",
        name: "孙磊",
        email: "sun.lei@demo.formwork.local",
        role: "sales_rep",
        unit: "care",
        manager: Some("zhao"),
    },
    DemoPerson {
        key: "huang",
        name: "黄丽",
        email: "huang.li@demo.formwork.local",
        role: "support",
        unit: "care",
        manager: Some("zhao"),
    },
    DemoPerson {
        key: "wu",
        name: "吴芳",
        email: "wu.fang@demo.formwork.local",
        role: "viewer",
        unit: "analysis",
        manager: Some("zhou"),
    },
];

/// Regions the northern team serves (the lead assignment workflow says the same).
const NORTH: [&str; 3] = ["华北", "东北", "西北"];

/// Gives every demo record an owner: leads to the new-business team of their region, repeat
/// customers to account care and the others by region, each in turn; contacts, opportunities
/// and follow-ups to their customer's owner.
pub fn assign_owners(records: &mut [DemoRecord]) {
    let turn = |pool: &[&'static str], n: &mut usize| {
        *n += 1;
        pool[*n % pool.len()]
    };
    let (mut north, mut south, mut care) = (0, 0, 0);
    let mut by_customer: HashMap<String, &'static str> = HashMap::new();
    for record in records.iter_mut() {
        let region_north = record.text("region").is_some_and(|r| NORTH.contains(&r));
        let owner = match record.entity {
            "lead" => {
                if region_north {
                    turn(&["zhang", "li"], &mut north)
                } else {
                    turn(&["liu", "chen"], &mut south)
                }
            }
            "customer" => {
                let owner = match record.text("lifecycle_stage") {
                    // Accounts that buy again are account care's; the rest stay with the
                    // rep of their region who won them.
                    Some("repeat") => turn(&["sun", "zhao"], &mut care),
                    _ if region_north => turn(&["zhang", "li"], &mut north),
                    _ => turn(&["liu", "chen"], &mut south),
                };
                by_customer.insert(record.id.to_string(), owner);
                owner
            }
            "ticket" | "survey" => "huang",
            _ => record
                .text("customer")
                .and_then(|c| by_customer.get(c).copied())
                .unwrap_or("zhou"),
        };
        record.owner = owner;
    }
}

/// Creates the demo people (with `password`), units, memberships, managers and roles (the
/// Sales CRM's, in namespace `namespace`) in the caller's transaction; returns key → account id.
///
/// # Errors
/// `Error::Db`; `Error::Invalid` for a password the policy refuses.
pub async fn seed(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    namespace: &str,
    password: &str,
    must_change_password: bool,
) -> Result<HashMap<&'static str, Uuid>> {
    let now = clock.now();
    let mut units: HashMap<&str, Uuid> = HashMap::new();
    for unit in UNITS {
        let row = store::people::insert_unit(
            conn,
            store::people::UnitRow {
                id: crate::domain::new_id(),
                workspace_id,
                parent_id: unit.parent.and_then(|p| units.get(p).copied()),
                kind: unit.kind.to_owned(),
                name: unit.name.to_owned(),
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        units.insert(unit.key, row.id);
    }
    let mut people = HashMap::new();
    for person in PEOPLE {
        let account = crate::auth::create_account(
            conn,
            clock,
            person.email,
            person.name,
            password,
            must_change_password,
        )
        .await?;
        // A Chinese sales department: their notifications and pages are in Chinese.
        store::accounts::set_locale(conn, account.id, Some("zh-CN".to_owned()), now).await?;
        people.insert(person.key, account.id);
    }
    for person in PEOPLE {
        let role = if crate::access::rights::BUILT_IN.contains(&person.role) {
            person.role.to_owned()
        } else {
            format!("{namespace}.{}", person.role)
        };
        let account = people
            .get(person.key)
            .copied()
            .ok_or_else(|| Error::internal("a demo person was not created"))?;
        let mut membership = crate::workspaces::new_membership(workspace_id, account, role, now);
        membership.unit_id = units.get(person.unit).copied();
        membership.manager_id = person.manager.and_then(|m| people.get(m).copied());
        store::workspaces::upsert_membership(conn, membership).await?;
    }
    store::access_changed();
    Ok(people)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_is_consistent() {
        for person in PEOPLE {
            assert!(UNITS.iter().any(|u| u.key == person.unit), "{}", person.key);
            if let Some(manager) = person.manager {
                assert!(PEOPLE.iter().any(|p| p.key == manager));
            }
        }
    }

    #[test]
    fn every_demo_record_has_an_owner_of_the_team() {
        let records = super::super::demo::sales_crm(chrono::Utc::now(), 1);
        let mut owners = std::collections::HashSet::new();
        for record in &records {
            assert!(
                PEOPLE.iter().any(|p| p.key == record.owner),
                "{} {} has no owner",
                record.entity,
                record.id
            );
            owners.insert(record.owner);
        }
        assert!(owners.len() >= 6, "{owners:?}");
    }
}
