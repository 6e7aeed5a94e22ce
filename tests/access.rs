//! People and access through HTTP, on SQLite and PostgreSQL: the permission matrix (roles ×
//! scopes × operations × field rules, generated from the tables below: a new role or operation
//! adds its cases), and the attacks: other workspaces' ids, hidden fields in filters, sorts and
//! group-bys, read-only fields, escalation, revoked tokens, expired sessions, CSRF, brute force.
//! Every refusal must change nothing and be in the audit log.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const LEADS: &str = "/api/v1/w/demo/entities/lead/records";

/// Reaches, from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    None,
    Own,
    Team,
    Department,
    All,
}

impl Reach {
    fn name(self) -> &'static str {
        match self {
            Reach::None => "none",
            Reach::Own => "own",
            Reach::Team => "team",
            Reach::Department => "department",
            Reach::All => "all",
        }
    }
}

/// A role under test: its key, and its reach per operation (create, read, update, delete).
struct RoleCase {
    key: &'static str,
    /// Saved as a custom role first (`None`: a built-in role with its defaults).
    custom: bool,
    create: Reach,
    read: Reach,
    update: Reach,
    delete: Reach,
}

/// The roles of the matrix. Built-in defaults: manager department, member own, viewer reads all.
const ROLES: &[RoleCase] = &[
    RoleCase {
        key: "admin",
        custom: false,
        create: Reach::All,
        read: Reach::All,
        update: Reach::All,
        delete: Reach::All,
    },
    RoleCase {
        key: "manager",
        custom: false,
        create: Reach::Department,
        read: Reach::Department,
        update: Reach::Department,
        delete: Reach::Department,
    },
    RoleCase {
        key: "member",
        custom: false,
        create: Reach::Own,
        read: Reach::Own,
        update: Reach::Own,
        delete: Reach::Own,
    },
    RoleCase {
        key: "viewer",
        custom: false,
        create: Reach::None,
        read: Reach::All,
        update: Reach::None,
        delete: Reach::None,
    },
    RoleCase {
        key: "team_lead",
        custom: true,
        create: Reach::Team,
        read: Reach::Team,
        update: Reach::Team,
        delete: Reach::Own,
    },
    RoleCase {
        key: "auditor",
        custom: true,
        create: Reach::None,
        read: Reach::Department,
        update: Reach::None,
        delete: Reach::None,
    },
];

/// The org: units (key, parent, kind).
const UNITS: &[(&str, Option<&str>, &str)] = &[
    ("sales", None, "department"),
    ("east", Some("sales"), "team"),
    ("west", Some("sales"), "team"),
    ("finance", None, "department"),
];

/// People: (name, unit, manager). `admin` is the bootstrap admin at the company level.
const PEOPLE: &[(&str, Option<&str>, Option<&str>)] = &[
    ("east_a", Some("east"), Some("east_b")),
    ("east_b", Some("east"), None),
    ("west_a", Some("west"), Some("sales_head")),
    ("sales_head", Some("sales"), None),
    ("fin_a", Some("finance"), Some("boss")),
    ("boss", None, None),
];

/// The people a reach covers for `me`, computed here from the tables (not by the product).
fn covered(me: &str, reach: Reach) -> BTreeSet<&'static str> {
    let unit_of = |p: &str| PEOPLE.iter().find(|x| x.0 == p).and_then(|x| x.1);
    let manager_of = |p: &str| PEOPLE.iter().find(|x| x.0 == p).and_then(|x| x.2);
    let all: Vec<&'static str> = PEOPLE.iter().map(|p| p.0).chain(["admin"]).collect();
    let parent = |u: &str| UNITS.iter().find(|x| x.0 == u).and_then(|x| x.1);
    let kind = |u: &str| UNITS.iter().find(|x| x.0 == u).map(|x| x.2);
    let below = |anchor: Option<&str>, u: Option<&str>| -> bool {
        let Some(anchor) = anchor else { return true };
        let mut cur = u;
        while let Some(c) = cur {
            if c == anchor {
                return true;
            }
            cur = parent(c);
        }
        false
    };
    let reports_of = |boss: &str| -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut queue = vec![boss.to_owned()];
        while let Some(b) = queue.pop() {
            for p in PEOPLE.iter().filter(|p| p.2 == Some(b.as_str())) {
                out.push(p.0);
                queue.push(p.0.to_owned());
            }
        }
        out
    };
    let mut set: BTreeSet<&'static str> = BTreeSet::new();
    match reach {
        Reach::None => {}
        Reach::Own => {
            set.extend(all.iter().filter(|p| **p == me));
        }
        Reach::Team => {
            set.extend(
                all.iter()
                    .filter(|p| unit_of(p) == unit_of(me) || **p == me),
            );
            set.extend(
                PEOPLE
                    .iter()
                    .filter(|p| manager_of(p.0) == Some(me))
                    .map(|p| p.0),
            );
        }
        Reach::Department => {
            let mut anchor = unit_of(me);
            while let Some(u) = anchor {
                if kind(u) == Some("department") {
                    break;
                }
                anchor = parent(u);
            }
            set.extend(
                all.iter()
                    .filter(|p| below(anchor, unit_of(p)) || **p == me),
            );
            set.extend(reports_of(me));
        }
        Reach::All => set.extend(all.iter()),
    }
    set
}

struct World {
    app: TestApp,
    admin: Client,
    ids: BTreeMap<&'static str, String>,
    clients: BTreeMap<&'static str, Client>,
    /// Lead id by owner name.
    leads: BTreeMap<&'static str, String>,
}

async fn members_by_email(admin: &Client) -> BTreeMap<String, String> {
    let (status, body) = admin.get(&format!("{W}/members")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["email"].as_str().expect("email").to_owned(),
                m["account_id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

fn email(name: &str) -> String {
    format!("{name}@formwork.local")
}

/// Builds the custom roles, the org, the people (as members), and one lead owned by each.
async fn world(backend: Backend) -> World {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for role in ROLES.iter().filter(|r| r.custom) {
        let (status, body) = admin
            .put(
                &format!("{W}/roles/{}", role.key),
                json!({"name": role.key, "rights": {"entities": {"*": {
                    "create": role.create.name(), "read": role.read.name(),
                    "update": role.update.name(), "delete": role.delete.name()}}}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut units: BTreeMap<&str, String> = BTreeMap::new();
    for (key, parent, kind) in UNITS {
        let parent_id = parent.map(|p| units[p].clone());
        let (status, body) = admin
            .post(
                &format!("{W}/org/units"),
                json!({"name": key, "kind": kind, "parent_id": parent_id}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        units.insert(key, body["id"].as_str().expect("id").to_owned());
    }
    let mut clients = BTreeMap::new();
    for (name, _, _) in PEOPLE {
        let client = app.create_user(&email(name)).await;
        let (status, body) = admin
            .post(
                &format!("{W}/members"),
                json!({"email": email(name), "role": "member"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        clients.insert(*name, client);
    }
    let by_email = members_by_email(&admin).await;
    let mut ids: BTreeMap<&'static str, String> = PEOPLE
        .iter()
        .map(|(name, _, _)| (*name, by_email[&email(name)].clone()))
        .collect();
    ids.insert("admin", by_email[common::ADMIN_EMAIL].clone());
    for (name, unit, manager) in PEOPLE {
        let (status, body) = admin
            .patch(
                &format!("{W}/members/{}", ids[name]),
                json!({"unit_id": unit.map(|u| units[u].clone()),
                       "manager_id": manager.map(|m| ids[m].clone())}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut leads = BTreeMap::new();
    for owner in PEOPLE.iter().map(|p| p.0).chain(["admin"]) {
        let (status, body) = admin
            .post(
                LEADS,
                json!({"owner": ids[owner], "fields": {"name": format!("lead of {owner}"),
                       "source": "event", "phone": "13812345678", "budget": "1000"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        leads.insert(owner, body["id"].as_str().expect("id").to_owned());
    }
    World {
        app,
        admin,
        ids,
        clients,
        leads,
    }
}

async fn denials(world: &World) -> usize {
    let (status, body) = world
        .admin
        .get(&format!("{W}/audit?kind=access.denied&limit=500"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("events").len()
}

async fn permission_matrix(backend: Backend) {
    let world = world(backend).await;
    for role in ROLES {
        for name in world.clients.keys() {
            let (status, body) = world
                .admin
                .patch(
                    &format!("{W}/members/{}", world.ids[name]),
                    json!({"role": role.key}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let mut cases = 0;
        for (me, client) in &world.clients {
            let readable = covered(me, role.read);
            // The list holds exactly the readable records, and the aggregate counts them.
            let (status, body) = client
                .post(&format!("{LEADS}/query"), json!({"limit": 100}))
                .await;
            let expected_ids: BTreeSet<String> = world
                .leads
                .iter()
                .filter(|(owner, _)| readable.contains(*owner))
                .map(|(_, id)| id.clone())
                .collect();
            if role.read == Reach::None {
                assert_problem(status, &body, StatusCode::FORBIDDEN);
            } else {
                assert_eq!(status, StatusCode::OK, "{} as {me}: {body}", role.key);
                let got: BTreeSet<String> = body["records"]
                    .as_array()
                    .expect("records")
                    .iter()
                    .map(|r| r["id"].as_str().expect("id").to_owned())
                    .collect();
                assert_eq!(got, expected_ids, "{} as {me}: list", role.key);
                let (status, body) = client
                    .post(
                        &format!("{LEADS}/aggregate"),
                        json!({"metrics": [{"op": "count"}]}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(
                    body["rows"][0]["count"],
                    json!(expected_ids.len()),
                    "{} as {me}: count",
                    role.key
                );
            }
            for (owner, id) in &world.leads {
                let path = format!("{LEADS}/{id}");
                let visible = readable.contains(owner);
                let gate = |allowed: bool, ok: StatusCode| {
                    if !visible {
                        StatusCode::NOT_FOUND
                    } else if allowed {
                        ok
                    } else {
                        StatusCode::FORBIDDEN
                    }
                };
                let checks = [
                    ("read", client.get(&path).await, gate(true, StatusCode::OK)),
                    (
                        "history",
                        client.get(&format!("{path}/history")).await,
                        gate(true, StatusCode::OK),
                    ),
                    (
                        "update",
                        client
                            .patch(&path, json!({"fields": {"notes": format!("by {me}")}}))
                            .await,
                        gate(covered(me, role.update).contains(owner), StatusCode::OK),
                    ),
                ];
                for (operation, (status, body), expected) in checks {
                    cases += 1;
                    assert_eq!(
                        status, expected,
                        "{} as {me}: {operation} the lead of {owner}: {body}",
                        role.key
                    );
                }
                let expected = gate(
                    covered(me, role.delete).contains(owner),
                    StatusCode::NO_CONTENT,
                );
                let (status, body) = client.delete(&path).await;
                cases += 1;
                assert_eq!(
                    status, expected,
                    "{} as {me}: delete the lead of {owner}: {body}",
                    role.key
                );
                if status == StatusCode::NO_CONTENT {
                    let (status, body) = world
                        .admin
                        .post(&format!("{path}/restore"), json!({}))
                        .await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                }
            }
            // Creating: for oneself, and for each other person.
            for owner in world.ids.keys() {
                let (status, body) = client
                    .post(
                        LEADS,
                        json!({"owner": world.ids[owner], "fields": {"name": "new", "source": "ads"}}),
                    )
                    .await;
                let creatable = covered(me, role.create);
                let expected = if creatable.contains(owner) {
                    StatusCode::CREATED
                } else {
                    StatusCode::FORBIDDEN
                };
                cases += 1;
                assert_eq!(
                    status, expected,
                    "{} as {me}: create for {owner}: {body}",
                    role.key
                );
                if status == StatusCode::CREATED {
                    let path = format!("{LEADS}/{}", body["id"].as_str().expect("id"));
                    world.admin.delete(&format!("{path}")).await;
                    world.admin.delete(&format!("{path}?purge=true")).await;
                }
            }
        }
        assert!(cases > 100, "{cases} cases for {}", role.key);
    }
    assert!(denials(&world).await > 0, "refusals are audited");
    let _ = &world.app;
}

/// Field rules: hidden fields vanish everywhere, masked ones are masked and cannot be queried,
/// read-only ones cannot be written; history follows the same rules.
async fn field_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = admin
        .put(
            &format!("{W}/roles/rep"),
            json!({"name": "Rep", "rights": {"entities": {
                "*": {"create": "own", "read": "own", "update": "own", "delete": "none"},
                "lead": {"fields": {"budget": "hidden", "phone": "masked",
                                    "company": "read_only", "email": "masked_read_only"}}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rep = app.create_user("rep@formwork.local").await;
    let (status, body) = admin
        .post(
            &format!("{W}/members"),
            json!({"email": "rep@formwork.local", "role": "rep"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Creating: hidden is unknown (422), read-only refused (403), masked writable.
    let (status, body) = rep
        .post(
            LEADS,
            json!({"fields": {"name": "王芳", "source": "ads", "budget": "5"}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/budget"]
    );
    assert_eq!(body["errors"][0]["code"], "unknown_field");
    let (status, body) = rep
        .post(
            LEADS,
            json!({"fields": {"name": "王芳", "source": "ads", "company": "x"}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::FORBIDDEN),
        ["/fields/company"]
    );
    let (status, body) = rep
        .post(
            LEADS,
            json!({"fields": {"name": "王芳", "source": "ads", "phone": "13812340000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["fields"]["phone"], "138****0000");
    let id = body["id"].as_str().expect("id").to_owned();
    let path = format!("{LEADS}/{id}");
    // The admin sets the protected values; the rep sees them through their rules.
    let (status, body) = admin
        .patch(
            &path,
            json!({"fields": {"budget": "99000", "company": "云帆", "email": "wang@yunfan.cn"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, seen) = rep.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen["fields"].get("budget").is_none(), "{seen}");
    assert_eq!(seen["fields"]["company"], "云帆");
    assert_eq!(seen["fields"]["email"], "w***@yunfan.cn");
    assert_eq!(seen["fields"]["phone"], "138****0000");
    // Writing: the masked value echoed back is ignored; read-only unchanged passes, changed fails.
    let (status, body) = rep
        .patch(
            &path,
            json!({"fields": {"phone": "138****0000", "company": "云帆", "notes": "ok"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, stored) = admin.get(&path).await;
    assert_eq!(stored["fields"]["phone"], "13812340000");
    for (patch, expected, pointer) in [
        (
            json!({"company": "other"}),
            StatusCode::FORBIDDEN,
            "/fields/company",
        ),
        (
            json!({"email": "x@y.cn"}),
            StatusCode::FORBIDDEN,
            "/fields/email",
        ),
        (
            json!({"budget": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/fields/budget",
        ),
    ] {
        let (status, body) = rep.patch(&path, json!({ "fields": patch })).await;
        assert_eq!(
            assert_problem(status, &body, expected),
            [pointer],
            "{patch}"
        );
    }
    let (_, after) = admin.get(&path).await;
    assert_eq!(
        after["fields"]["company"], "云帆",
        "refusals change nothing"
    );
    // Querying: hidden is unknown, masked refused, in filters, sorts, groups and metrics.
    let queries = [
        (
            json!({"filter": {"field": "budget", "op": "gt", "value": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"filter": {"field": "phone", "op": "starts_with", "value": "138"}}),
            StatusCode::FORBIDDEN,
        ),
        (json!({"sort": ["phone"]}), StatusCode::FORBIDDEN),
        (
            json!({"sort": ["-budget"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"filter": {"field": "email", "op": "eq", "value": "wang@yunfan.cn"}}),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (query, expected) in queries {
        let (status, body) = rep.post(&format!("{LEADS}/query"), query.clone()).await;
        assert_problem(status, &body, expected);
        let _ = query;
    }
    for (aggregate, expected) in [
        (
            json!({"metrics": [{"op": "sum", "field": "budget"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"group_by": ["phone"], "metrics": [{"op": "count"}]}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, body) = rep.post(&format!("{LEADS}/aggregate"), aggregate).await;
        assert_problem(status, &body, expected);
    }
    let (status, body) = rep
        .post(
            &format!("{LEADS}/query"),
            json!({"filter": {"field": "company", "op": "eq", "value": "云帆"}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "read-only fields can be queried: {body}"
    );
    assert_eq!(body["records"].as_array().expect("records").len(), 1);
    // History: the hidden budget is gone, masked values are masked.
    let (status, history) = rep.get(&format!("{path}/history")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let text = history.to_string();
    assert!(!text.contains("99000"), "{text}");
    assert!(!text.contains("wang@"), "{text}");
    assert!(!text.contains("13812340000"), "{text}");
    assert!(text.contains("云帆"), "{text}");
    // The admin's own history still shows everything.
    let (_, full) = admin.get(&format!("{path}/history")).await;
    assert!(full.to_string().contains("99000"));
}

both_databases!(permission_matrix, field_rules);
