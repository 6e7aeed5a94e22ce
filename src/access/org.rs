//! The org tree of a workspace (company → departments → teams → people, each person with a
//! manager), held in memory: "my team", "my department and below" and "manager of X" are
//! lookups, not queries. Pure logic.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use uuid::Uuid;

use super::rights::Reach;

/// Deepest nesting of units under the company.
pub const MAX_DEPTH: usize = 12;

/// The kind of an org unit (the company itself is implicit: the workspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A department: "department and below" scopes stop at the nearest one.
    Department,
    /// A team.
    Team,
}

impl UnitKind {
    /// Parses a kind name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "department" => Some(Self::Department),
            "team" => Some(Self::Team),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Department => "department",
            Self::Team => "team",
        }
    }
}

/// One unit of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Id.
    pub id: Uuid,
    /// The unit above (none: directly under the company).
    pub parent: Option<Uuid>,
    /// Department or team.
    pub kind: UnitKind,
    /// Name.
    pub name: String,
}

/// A member's place in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The account.
    pub account_id: Uuid,
    /// The unit they belong to (none: the company itself).
    pub unit: Option<Uuid>,
    /// Their manager.
    pub manager: Option<Uuid>,
    /// Whether they may still enter the workspace (deactivated people keep their place).
    pub active: bool,
}

/// The org tree of one workspace.
#[derive(Debug, Clone, Default)]
pub struct OrgTree {
    units: HashMap<Uuid, Unit>,
    people: HashMap<Uuid, Person>,
    /// Units by parent (`None`: top level).
    children: HashMap<Option<Uuid>, Vec<Uuid>>,
    /// People by unit.
    members: HashMap<Option<Uuid>, Vec<Uuid>>,
    /// People by manager.
    reports: HashMap<Uuid, Vec<Uuid>>,
}

impl OrgTree {
    /// Builds the tree from its rows (a unit whose parent is unknown hangs under the company).
    pub fn new(units: Vec<Unit>, people: Vec<Person>) -> Self {
        let mut tree = Self::default();
        for unit in units {
            tree.units.insert(unit.id, unit);
        }
        let known: HashSet<Uuid> = tree.units.keys().copied().collect();
        for unit in tree.units.values_mut() {
            if unit.parent.is_some_and(|p| !known.contains(&p)) {
                unit.parent = None;
            }
        }
        for unit in tree.units.values() {
            tree.children.entry(unit.parent).or_default().push(unit.id);
        }
        for person in people {
            let unit = person.unit.filter(|u| known.contains(u));
            tree.members
                .entry(unit)
                .or_default()
                .push(person.account_id);
            if let Some(manager) = person.manager {
                tree.reports
                    .entry(manager)
                    .or_default()
                    .push(person.account_id);
            }
            tree.people
                .insert(person.account_id, Person { unit, ..person });
        }
        tree
    }

    /// A unit.
    pub fn unit(&self, id: Uuid) -> Option<&Unit> {
        self.units.get(&id)
    }

    /// Every unit.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The units directly under `unit` (`None`: the top level).
    pub fn children_of(&self, unit: Option<Uuid>) -> &[Uuid] {
        self.children.get(&unit).map_or(&[], Vec::as_slice)
    }

    /// The people placed directly in `unit` (`None`: the company itself).
    pub fn members_of(&self, unit: Option<Uuid>) -> &[Uuid] {
        self.members.get(&unit).map_or(&[], Vec::as_slice)
    }

    /// A person's place.
    pub fn person(&self, account_id: Uuid) -> Option<&Person> {
        self.people.get(&account_id)
    }

    /// The manager of a person.
    pub fn manager_of(&self, account_id: Uuid) -> Option<Uuid> {
        self.people.get(&account_id).and_then(|p| p.manager)
    }

    /// The units from `unit` up to the top, nearest first (bounded, so a cycle cannot loop).
    pub fn ancestors_and_self(&self, unit: Uuid) -> Vec<Uuid> {
        let mut chain = Vec::new();
        let mut current = Some(unit);
        while let Some(id) = current {
            if chain.contains(&id) || chain.len() > MAX_DEPTH + 1 {
                break;
            }
            chain.push(id);
            current = self.units.get(&id).and_then(|u| u.parent);
        }
        chain
    }

    /// Whether making `parent` the parent of `unit` would close a cycle.
    pub fn would_cycle(&self, unit: Uuid, parent: Uuid) -> bool {
        self.ancestors_and_self(parent).contains(&unit)
    }

    /// Depth of a unit (1 for a unit directly under the company).
    pub fn depth(&self, unit: Uuid) -> usize {
        self.ancestors_and_self(unit).len()
    }

    /// `unit` and every unit below it (`None`: the whole company, every unit).
    fn subtree(&self, unit: Option<Uuid>) -> Vec<Option<Uuid>> {
        let mut out = vec![unit];
        let mut i = 0;
        while i < out.len() {
            if let Some(children) = self.children.get(&out[i]) {
                for child in children {
                    if !out.contains(&Some(*child)) {
                        out.push(Some(*child));
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// Everyone reporting to `account_id`, directly or not.
    fn all_reports(&self, account_id: Uuid) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = Vec::new();
        let mut seen = HashSet::from([account_id]);
        let mut queue = vec![account_id];
        while let Some(next) = queue.pop() {
            for report in self.reports.get(&next).into_iter().flatten() {
                if seen.insert(*report) {
                    out.push(*report);
                    queue.push(*report);
                }
            }
        }
        out
    }

    /// The people of `unit` and of every unit below it (a team filter on reports and targets).
    pub fn people_under(&self, unit: Uuid) -> Vec<Uuid> {
        let mut out = Vec::new();
        for unit in self.subtree(Some(unit)) {
            out.extend(self.members.get(&unit).into_iter().flatten());
        }
        dedup(out)
    }

    /// My team: the people of my unit and my direct reports (with me).
    pub fn team_of(&self, account_id: Uuid) -> Vec<Uuid> {
        let unit = self.people.get(&account_id).and_then(|p| p.unit);
        let mut out: Vec<Uuid> = self.members.get(&unit).cloned().unwrap_or_default();
        out.extend(self.reports.get(&account_id).into_iter().flatten());
        out.push(account_id);
        dedup(out)
    }

    /// My department and below: the people of the nearest department at or above my unit (the
    /// company when there is none) and of every unit below it, plus everyone reporting to me.
    pub fn department_of(&self, account_id: Uuid) -> Vec<Uuid> {
        let unit = self.people.get(&account_id).and_then(|p| p.unit);
        let anchor = unit.and_then(|u| {
            self.ancestors_and_self(u)
                .into_iter()
                .find(|id| self.units.get(id).map(|x| x.kind) == Some(UnitKind::Department))
        });
        let mut out = Vec::new();
        for unit in self.subtree(anchor) {
            out.extend(self.members.get(&unit).into_iter().flatten());
        }
        out.extend(self.all_reports(account_id));
        out.push(account_id);
        dedup(out)
    }

    /// The owners whose records `reach` covers for `account_id`; `None` means every record.
    pub fn owners_within(&self, account_id: Uuid, reach: Reach) -> Option<Vec<Uuid>> {
        match reach {
            Reach::None => Some(Vec::new()),
            Reach::Own => Some(vec![account_id]),
            Reach::Team => Some(self.team_of(account_id)),
            Reach::Department => Some(self.department_of(account_id)),
            Reach::All => None,
        }
    }
}

fn dedup(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Company ─ Sales (department) ─ East (team): 1 lead, 2 and 3 reps (3 reports to 1);
    ///                                West (team): 4.  Finance (department): 5. Director 6 at
    /// the company level, 1 reports to 6.
    fn tree() -> OrgTree {
        let unit = |n, parent, kind| Unit {
            id: id(n),
            parent,
            kind,
            name: format!("u{n}"),
        };
        let person = |n, unit: Option<u128>, manager: Option<u128>| Person {
            account_id: id(n),
            unit: unit.map(id),
            manager: manager.map(id),
            active: true,
        };
        OrgTree::new(
            vec![
                unit(100, None, UnitKind::Department),
                unit(101, Some(id(100)), UnitKind::Team),
                unit(102, Some(id(100)), UnitKind::Team),
                unit(200, None, UnitKind::Department),
            ],
            vec![
                person(1, Some(101), Some(6)),
                person(2, Some(101), None),
                person(3, Some(101), Some(1)),
                person(4, Some(102), None),
                person(5, Some(200), None),
                person(6, None, None),
            ],
        )
    }

    #[test]
    fn team_is_the_unit_and_direct_reports() {
        let tree = tree();
        assert_eq!(tree.team_of(id(2)), vec![id(1), id(2), id(3)]);
        assert_eq!(tree.team_of(id(6)), vec![id(1), id(6)]);
        assert_eq!(tree.team_of(id(5)), vec![id(5)]);
    }

    #[test]
    fn department_reaches_down_the_tree_and_the_reporting_line() {
        let tree = tree();
        assert_eq!(tree.department_of(id(2)), vec![id(1), id(2), id(3), id(4)]);
        assert_eq!(tree.department_of(id(5)), vec![id(5)]);
        // At the company level, the department is the whole company.
        assert_eq!(tree.department_of(id(6)).len(), 6);
        assert_eq!(tree.manager_of(id(3)), Some(id(1)));
        assert_eq!(tree.owners_within(id(3), Reach::All), None);
        assert_eq!(tree.owners_within(id(3), Reach::Own), Some(vec![id(3)]));
    }

    #[test]
    fn cycles_are_detected() {
        let tree = tree();
        assert!(tree.would_cycle(id(100), id(101)));
        assert!(tree.would_cycle(id(100), id(100)));
        assert!(!tree.would_cycle(id(101), id(200)));
        assert_eq!(tree.depth(id(101)), 2);
    }
}
