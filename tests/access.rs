//! People and access through HTTP, on SQLite and PostgreSQL: the permission matrix (roles ×
//! scopes × operations × field rules, generated from the tables below: a new role or operation
//! adds its cases), and the attacks: other workspaces' ids, hidden fields in filters, sorts and
//! group-bys, read-only fields, escalation, revoked tokens, expired sessions, CSRF, brute force.
//! Every refusal must change nothing and be in the audit log.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

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
    /// Field rules on `lead` (custom roles only).
    fields: &'static [(&'static str, &'static str)],
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
        fields: &[],
    },
    RoleCase {
        key: "manager",
        custom: false,
        create: Reach::Department,
        read: Reach::Department,
        update: Reach::Department,
        delete: Reach::Department,
        fields: &[],
    },
    RoleCase {
        key: "member",
        custom: false,
        create: Reach::Own,
        read: Reach::Own,
        update: Reach::Own,
        delete: Reach::Own,
        fields: &[],
    },
    RoleCase {
        key: "viewer",
        custom: false,
        create: Reach::None,
        read: Reach::All,
        update: Reach::None,
        delete: Reach::None,
        fields: &[],
    },
    RoleCase {
        key: "team_lead",
        custom: true,
        create: Reach::Team,
        read: Reach::Team,
        update: Reach::Team,
        delete: Reach::Own,
        fields: &[("phone", "masked"), ("budget", "read_only")],
    },
    RoleCase {
        key: "auditor",
        custom: true,
        create: Reach::None,
        read: Reach::Department,
        update: Reach::None,
        delete: Reach::None,
        fields: &[("budget", "hidden"), ("phone", "masked_read_only")],
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
                    "update": role.update.name(), "delete": role.delete.name()},
                    "lead": {"fields": role.fields.iter().copied().collect::<BTreeMap<_, _>>()}}}}),
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

async fn denials(admin: &Client) -> usize {
    let (status, body) = admin
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
                let rule = |field: &str| {
                    role.fields
                        .iter()
                        .find(|(f, _)| *f == field)
                        .map_or("visible", |(_, r)| *r)
                };
                for (operation, (status, body), expected) in checks {
                    cases += 1;
                    assert_eq!(
                        status, expected,
                        "{} as {me}: {operation} the lead of {owner}: {body}",
                        role.key
                    );
                    if operation == "read" && status == StatusCode::OK {
                        // Field rules: what the record shows.
                        let phone = &body["fields"]["phone"];
                        match rule("phone") {
                            "masked" | "masked_read_only" => assert_eq!(phone, "138****5678"),
                            _ => assert_eq!(phone, "13812345678"),
                        }
                        assert_eq!(
                            body["fields"].get("budget").is_none(),
                            rule("budget") == "hidden",
                            "{} sees budget: {body}",
                            role.key
                        );
                    }
                }
                // Writing a field: hidden is unknown, read-only refused, within update reach.
                let updatable = covered(me, role.update).contains(owner);
                let expected = match (visible, updatable, rule("budget")) {
                    (false, _, _) => StatusCode::NOT_FOUND,
                    (true, false, _) => StatusCode::FORBIDDEN,
                    (true, true, "hidden") => StatusCode::UNPROCESSABLE_ENTITY,
                    (true, true, "read_only" | "masked_read_only") => StatusCode::FORBIDDEN,
                    (true, true, _) => StatusCode::OK,
                };
                let (status, body) = client
                    .patch(&path, json!({"fields": {"budget": "2000"}}))
                    .await;
                cases += 1;
                assert_eq!(
                    status, expected,
                    "{} as {me}: set the budget of {owner}'s lead: {body}",
                    role.key
                );
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
                    world.admin.delete(&path).await;
                    world.admin.delete(&format!("{path}?purge=true")).await;
                }
            }
        }
        assert!(cases > 100, "{cases} cases for {}", role.key);
    }
    assert!(denials(&world.admin).await > 0, "refusals are audited");
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

async fn member_id(admin: &Client, email: &str) -> String {
    members_by_email(admin).await[email].clone()
}

async fn join(app: &TestApp, admin: &Client, name: &str, role: &str) -> (Client, String) {
    let client = app.create_user(&email(name)).await;
    let (status, body) = admin
        .post(
            &format!("{W}/members"),
            json!({"email": email(name), "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (client, body["account_id"].as_str().expect("id").to_owned())
}

/// Another workspace's ids on every endpoint kind, tokens bound elsewhere, references to records
/// out of scope: all 404 or unknown, nothing changes, every refusal audited.
async fn other_workspaces_and_scopes_stay_invisible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join(&app, &admin, "rep", "member").await;
    let (status, body) = admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .post("/api/v1/w/east/apps", json!({"template": "sales-crm"}))
        .await;
    assert!(status.is_success(), "{body}");
    let (_, east_lead) = admin
        .post(
            "/api/v1/w/east/entities/lead/records",
            json!({"fields": {"name": "east", "source": "ads"}}),
        )
        .await;
    let before = denials(&admin).await;
    let east_id = east_lead["id"].as_str().expect("id").to_owned();
    let paths = [
        ("GET", format!("{LEADS}/{east_id}")),
        ("GET", format!("{LEADS}/{east_id}/history")),
        ("GET", format!("{LEADS}/{east_id}/collaborators")),
        ("PATCH", format!("{LEADS}/{east_id}")),
        ("DELETE", format!("{LEADS}/{east_id}")),
        (
            "GET",
            format!("/api/v1/w/east/entities/lead/records/{east_id}"),
        ),
        ("GET", "/api/v1/w/east/members".to_owned()),
        ("GET", "/api/v1/w/east/roles".to_owned()),
        ("GET", "/api/v1/w/east/org/units".to_owned()),
        ("GET", "/api/v1/w/east/audit".to_owned()),
        ("GET", "/api/v1/w/east/tokens".to_owned()),
        (
            "POST",
            "/api/v1/w/east/entities/lead/records/query".to_owned(),
        ),
        ("GET", format!("{W}/attachments/{east_id}")),
    ];
    for (method, path) in &paths {
        let (status, body) = match *method {
            "GET" => rep.get(path).await,
            "PATCH" => rep.patch(path, json!({"fields": {"name": "x"}})).await,
            "DELETE" => rep.delete(path).await,
            _ => rep.post(path, json!({})).await,
        };
        assert_problem(status, &body, StatusCode::NOT_FOUND);
    }
    let (_, still) = admin
        .get(&format!("/api/v1/w/east/entities/lead/records/{east_id}"))
        .await;
    assert_eq!(still["fields"]["name"], "east", "nothing changed");
    // A record of the same workspace outside the caller's scope is just as invisible.
    let (_, theirs) = admin
        .post(
            LEADS,
            json!({"fields": {"name": "admin's", "source": "ads"}}),
        )
        .await;
    let theirs = theirs["id"].as_str().expect("id").to_owned();
    let (status, body) = rep.get(&format!("{LEADS}/{theirs}")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert!(denials(&admin).await > before, "refusals are audited");
    // A token bound to demo is not let into east, whoever owns it.
    let (status, token) = admin
        .post(&format!("{W}/tokens"), json!({"name": "ci"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let bearer = Client::with_token(app.url(""), token["secret"].as_str().expect("secret"));
    let (status, body) = bearer.get("/api/v1/w/east/members").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // References: a record out of scope cannot be referred to, nor filtered through.
    let (status, customer) = admin
        .post(
            "/api/v1/w/demo/entities/customer/records",
            json!({"fields": {"name": "云帆科技", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let customer_id = customer["id"].as_str().expect("id").to_owned();
    let opportunities = "/api/v1/w/demo/entities/opportunity/records";
    let (status, body) = rep
        .post(
            opportunities,
            json!({"fields": {"name": "deal", "stage": "lead", "customer": customer_id}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/customer"]
    );
    let (status, body) = admin
        .post(
            opportunities,
            json!({"owner": rep_id, "fields": {"name": "deal", "stage": "lead", "customer": customer_id}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let through = json!({"filter": {"field": "customer.name", "op": "eq", "value": "云帆科技"}});
    let (status, body) = rep
        .post(&format!("{opportunities}/query"), through.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["records"],
        json!([]),
        "the customer is not visible to the rep"
    );
    let (_, body) = admin.post(&format!("{opportunities}/query"), through).await;
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1));
}

/// Escalation: nobody raises their own rights, or hands out more than they hold.
async fn roles_cannot_be_escalated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join(&app, &admin, "rep", "member").await;
    let before = members_by_email(&admin).await;
    for (status, body) in [
        rep.patch(&format!("{W}/members/{rep_id}"), json!({"role": "admin"}))
            .await,
        rep.post(
            &format!("{W}/members"),
            json!({"email": email("rep"), "role": "admin"}),
        )
        .await,
        rep.put(
            &format!("{W}/roles/boss"),
            json!({"name": "b", "rights": {"manage": {"members": true}}}),
        )
        .await,
        rep.put(
            "/api/v1/w/demo/definitions/entity/lead/draft",
            json!({"document": {}}),
        )
        .await,
    ] {
        assert_problem(status, &body, StatusCode::FORBIDDEN);
    }
    // A role that manages members but reads only its own records hands out nothing wider.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/hr"),
            json!({"name": "HR", "rights": {"entities": {"*": {"read": "own", "create": "own", "update": "own", "delete": "own", "pool": true}},
                   "manage": {"members": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (hr, hr_id) = join(&app, &admin, "hr", "hr").await;
    for role in ["owner", "admin", "manager", "viewer"] {
        let (status, body) = hr
            .patch(&format!("{W}/members/{rep_id}"), json!({"role": role}))
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN);
    }
    let (status, body) = hr
        .put(
            &format!("{W}/roles/wide"),
            json!({"name": "Wide", "rights": {"entities": {"*": {"read": "all"}}}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::FORBIDDEN),
        ["/rights"]
    );
    let (status, body) = hr
        .patch(
            &format!("{W}/members/{hr_id}"),
            json!({"role": "hr", "unit_id": null}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(
        members_by_email(&admin).await,
        before
            .into_iter()
            .chain([(email("hr"), hr_id.clone())])
            .collect()
    );
    // What it may grant, it grants.
    let (status, body) = hr
        .patch(&format!("{W}/members/{rep_id}"), json!({"role": "member"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Built-in owner and admin cannot be redefined; bad rights are located.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/admin"),
            json!({"name": "x", "rights": {}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .put(
            &format!("{W}/roles/sales.rep"),
            json!({"name": "x", "rights": {"entities": {"lead": {"read": "everyone",
                   "fields": {"ghost": "hidden"}}, "nope": {}}}}),
        )
        .await;
    let mut pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    pointers.sort();
    assert_eq!(
        pointers,
        [
            "/rights/entities/lead/fields/ghost",
            "/rights/entities/lead/read",
            "/rights/entities/nope"
        ]
    );
    let (status, body) = admin
        .put(
            &format!("{W}/roles/Bad Key"),
            json!({"name": "x", "rights": {}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/key"]
    );
    // A role in use cannot be deleted.
    let (status, body) = admin.delete(&format!("{W}/roles/hr")).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    // Role changes are audited.
    let (_, events) = admin.get(&format!("{W}/audit?kind=member.&limit=50")).await;
    assert!(events.as_array().is_some_and(|e| !e.is_empty()), "{events}");
}

/// Credentials: revoked tokens, narrowed tokens, expired sessions, CSRF, brute force.
async fn credentials_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, token) = admin
        .post(
            &format!("{W}/tokens"),
            json!({"name": "read only", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    assert_eq!(token["role"], "viewer");
    let bearer = Client::with_token(app.url(""), token["secret"].as_str().expect("secret"));
    let (_, lead) = admin
        .post(LEADS, json!({"fields": {"name": "王芳", "source": "ads"}}))
        .await;
    let path = format!("{LEADS}/{}", lead["id"].as_str().expect("id"));
    assert_eq!(bearer.get(&path).await.0, StatusCode::OK);
    let (status, body) = bearer.patch(&path, json!({"fields": {"name": "x"}})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = bearer
        .put(
            "/api/v1/w/demo/definitions/entity/lead/draft",
            json!({"document": {}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .post(
            &format!("{W}/tokens"),
            json!({"name": "x", "role": "ghost"}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/role"]
    );
    // Revoked: refused at once.
    let (status, body) = admin
        .delete(&format!("{W}/tokens/{}", token["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = bearer.get(&path).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    // CSRF: a cookie-authenticated change without the token is refused and changes nothing.
    let mut forged = app.login(common::ADMIN_EMAIL, common::ADMIN_PASSWORD).await;
    forged.csrf = None;
    let (status, body) = forged
        .patch(&path, json!({"fields": {"name": "forged"}}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(admin.get(&path).await.1["fields"]["name"], "王芳");
    // Brute force: after ten failures even the right password waits, with a clear message.
    let (_, victim_id) = join(&app, &admin, "victim", "member").await;
    for _ in 0..10 {
        let (status, _) = app
            .anonymous()
            .post(
                "/api/v1/account/login",
                json!({"email": email("victim"), "password": "wrong-password-1"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .anonymous()
        .post(
            "/api/v1/account/login",
            json!({"email": email("victim"), "password": "user-password-123"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("retry")),
        "{body}"
    );
    app.advance(chrono::Duration::minutes(16));
    let victim = app.login(&email("victim"), "user-password-123").await;
    let (status, events) = victim.get("/api/v1/account/security-events").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let kinds: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(kinds.contains(&"auth.locked"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "auth.login_failed").count(),
        10
    );
    assert!(kinds.contains(&"auth.login"), "{kinds:?}");
    let _ = victim_id;
    // An expired session is refused.
    app.advance(chrono::Duration::days(31));
    let (status, body) = victim.get(&format!("{W}/members")).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}

/// Ownership: transfers (single and bulk) within reach, collaborators, and the hand-over of a
/// leaving person's records, all in history.
async fn ownership_sharing_and_hand_over(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join(&app, &admin, "rep", "member").await;
    let (mate, mate_id) = join(&app, &admin, "mate", "member").await;
    let (boss, _) = join(&app, &admin, "boss", "manager").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        let (status, body) = rep
            .post(
                LEADS,
                json!({"fields": {"name": format!("L{i}"), "source": "ads"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["owner"], json!(rep_id));
        mine.push(body["id"].as_str().expect("id").to_owned());
    }
    let path = format!("{LEADS}/{}", mine[0]);
    // A member may not give a record away (the new owner is outside their reach)...
    let (status, body) = rep.patch(&path, json!({"owner": mate_id})).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::FORBIDDEN),
        ["/owner"]
    );
    // ...but may share it: the mate reads, then edits.
    assert_eq!(mate.get(&path).await.0, StatusCode::NOT_FOUND);
    let (status, body) = rep
        .put(
            &format!("{path}/collaborators/{mate_id}"),
            json!({"access": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["access"], "read");
    assert_eq!(mate.get(&path).await.0, StatusCode::OK);
    let (status, body) = mate.patch(&path, json!({"fields": {"notes": "x"}})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, listed) = mate.post(&format!("{LEADS}/query"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed["records"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    rep.put(
        &format!("{path}/collaborators/{mate_id}"),
        json!({"access": "edit"}),
    )
    .await;
    let (status, body) = mate
        .patch(&path, json!({"fields": {"notes": "edited"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A collaborator cannot pass the record on, nor delete it.
    let (status, body) = mate
        .put(
            &format!("{path}/collaborators/{rep_id}"),
            json!({"access": "edit"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = mate.delete(&path).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, _) = rep.delete(&format!("{path}/collaborators/{mate_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(mate.get(&path).await.0, StatusCode::NOT_FOUND);
    // The manager (company level: department = everyone) transfers in bulk, all or nothing.
    let (status, body) = boss
        .post(
            &format!("{LEADS}/transfer"),
            json!({"ids": [mine[1], "0190f0f0-0000-7000-8000-000000000000"], "owner": mate_id}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(
        admin.get(&format!("{LEADS}/{}", mine[1])).await.1["owner"],
        json!(rep_id)
    );
    let (status, body) = boss
        .post(
            &format!("{LEADS}/transfer"),
            json!({"ids": [mine[1], mine[2]], "owner": mate_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transferred"], 2);
    // Someone with an account but outside the workspace cannot be given records.
    let outsider = app.create_user("outsider@example.com").await;
    let (_, me) = outsider.get("/api/v1/account").await;
    let outsider_id = me["account"]["id"]
        .as_str()
        .or_else(|| me["id"].as_str())
        .expect("outsider's id")
        .to_owned();
    let (status, body) = boss
        .post(
            &format!("{LEADS}/transfer"),
            json!({"ids": [mine[1]], "owner": outsider_id}),
        )
        .await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::FORBIDDEN,
        "{status}: {body}"
    );
    assert_eq!(
        admin.get(&format!("{LEADS}/{}", mine[1])).await.1["owner"],
        json!(mate_id),
        "nothing changed"
    );
    let (_, history) = admin.get(&format!("{LEADS}/{}/history", mine[1])).await;
    assert_eq!(
        history
            .as_array()
            .and_then(|h| h.last())
            .map(|h| h["changes"]["owner"]["new"].clone()),
        Some(json!(mate_id))
    );
    // Hand-over: the mate leaves; everything they own goes to the rep, with history.
    let (status, body) = admin
        .post(
            &format!("{W}/members/{mate_id}/deactivate"),
            json!({"hand_over_to": rep_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"]["lead"], 2);
    for id in &mine {
        assert_eq!(
            admin.get(&format!("{LEADS}/{id}")).await.1["owner"],
            json!(rep_id)
        );
    }
    let (_, history) = admin.get(&format!("{LEADS}/{}/history", mine[2])).await;
    assert_eq!(
        history
            .as_array()
            .and_then(|h| h.last())
            .map(|h| h["changes"]["reason"].clone()),
        Some(json!("hand_over"))
    );
    // A deactivated member is out at once, and cannot be given records.
    let (status, body) = mate.get(&format!("{W}/members")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin.patch(&path, json!({"owner": mate_id})).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = admin.delete(&format!("{W}/members/{rep_id}")).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, _) = admin.delete(&format!("{W}/members/{mate_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let _ = member_id(&admin, common::ADMIN_EMAIL).await;
}

/// The org tree rejects cycles, unknown parents and non-empty deletes; "manager of" answers.
async fn org_tree_is_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, rep_id) = join(&app, &admin, "rep", "member").await;
    let (_, lead_id) = join(&app, &admin, "lead", "member").await;
    let (_, sales) = admin
        .post(
            &format!("{W}/org/units"),
            json!({"name": "Sales", "kind": "department"}),
        )
        .await;
    let sales = sales["id"].as_str().expect("id").to_owned();
    let (_, east) = admin
        .post(
            &format!("{W}/org/units"),
            json!({"name": "East", "kind": "team", "parent_id": sales}),
        )
        .await;
    let east = east["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .patch(
            &format!("{W}/org/units/{sales}"),
            json!({"name": "Sales", "kind": "department", "parent_id": east}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/parent_id"]
    );
    let (status, body) = admin
        .post(
            &format!("{W}/org/units"),
            json!({"name": "", "kind": "squad"}),
        )
        .await;
    let mut pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    pointers.sort();
    assert_eq!(pointers, ["/kind", "/name"]);
    admin
        .patch(
            &format!("{W}/members/{rep_id}"),
            json!({"unit_id": east, "manager_id": lead_id}),
        )
        .await;
    let (status, body) = admin
        .patch(
            &format!("{W}/members/{lead_id}"),
            json!({"manager_id": rep_id}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/manager_id"]
    );
    let (status, body) = admin.get(&format!("{W}/members/{rep_id}/manager")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["manager_id"], json!(lead_id));
    let (status, body) = admin.delete(&format!("{W}/org/units/{east}")).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, units) = admin.get(&format!("{W}/org/units")).await;
    assert_eq!(status, StatusCode::OK);
    let east_view = units
        .as_array()
        .expect("units")
        .iter()
        .find(|u| u["id"] == json!(east))
        .cloned();
    assert_eq!(
        east_view.map(|u| u["members"].clone()),
        Some(json!([rep_id]))
    );
}

/// The public pool: unowned records visible to roles granted it, claimed up to a limit,
/// released, and reclaimed after resting too long; each move in history.
async fn public_pool(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let document = json!({
        "type": "object",
        "x-label": {"en": "Prospect"},
        "x-pool": {"claim_limit": 2, "reclaim_after_days": 10},
        "properties": {"name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}}},
        "required": ["name"]
    });
    let (status, body) = admin
        .put(
            &format!("{W}/definitions/entity/prospect/draft"),
            json!({"document": document}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin
        .post(
            &format!("{W}/definitions/entity/prospect/versions"),
            json!({"revision": body["revision"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let prospects = format!("{W}/entities/prospect/records");
    let (rep, rep_id) = join(&app, &admin, "rep", "member").await;
    let (other, _) = join(&app, &admin, "other", "member").await;
    let (status, body) = admin
        .put(
            &format!("{W}/roles/no_pool"),
            json!({"name": "No pool", "rights": {"entities": {"*": {"read": "own", "update": "own", "pool": false}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (outsider, _) = join(&app, &admin, "outsider", "no_pool").await;
    let mut pool = Vec::new();
    for i in 0..3 {
        let (_, body) = admin
            .post(&prospects, json!({"fields": {"name": format!("P{i}")}}))
            .await;
        let id = body["id"].as_str().expect("id").to_owned();
        let (status, body) = admin
            .post(&format!("{prospects}/{id}/release"), json!({}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        pool.push(id);
    }
    let (_, listed) = rep.post(&format!("{prospects}/query"), json!({})).await;
    assert_eq!(
        listed["records"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert_eq!(listed["records"][0]["owner"], json!(null));
    let (_, hidden) = outsider
        .post(&format!("{prospects}/query"), json!({}))
        .await;
    assert_eq!(hidden["records"], json!([]), "{hidden}");
    let (status, body) = outsider.get(&format!("{prospects}/{}", pool[0])).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // Pool records are read, not changed, until claimed.
    let (status, body) = rep
        .patch(
            &format!("{prospects}/{}", pool[0]),
            json!({"fields": {"name": "x"}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    for id in &pool[..2] {
        let (status, body) = rep
            .post(&format!("{prospects}/{id}/claim"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["owner"], json!(rep_id));
    }
    let (status, body) = rep
        .post(&format!("{prospects}/{}/claim", pool[2]), json!({}))
        .await;
    assert_eq!(assert_problem(status, &body, StatusCode::FORBIDDEN), [""]);
    assert_eq!(body["errors"][0]["code"], "claim_limit");
    let (status, body) = other
        .post(&format!("{prospects}/{}/claim", pool[0]), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, _) = rep
        .post(&format!("{prospects}/{}/release", pool[0]), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = rep
        .post(&format!("{prospects}/{}/claim", pool[2]), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = other
        .post(&format!("{prospects}/{}/claim", pool[2]), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // Resting past ten days, the rep's records go back to the pool.
    app.advance(chrono::Duration::days(11));
    app.services.worker().schedule_housekeeping().await;
    app.run_jobs_until_idle().await;
    let admin = app.admin().await;
    for id in &pool[1..] {
        let (status, record) = admin.get(&format!("{prospects}/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{record}");
        assert_eq!(record["owner"], json!(null), "{record}");
        let (_, history) = admin.get(&format!("{prospects}/{id}/history")).await;
        let last = history
            .as_array()
            .and_then(|h| h.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(last["changes"]["reason"], "reclaim", "{history}");
        assert_eq!(last["actor_kind"], "system");
    }
}

/// Invitations: a link with an expiring, single-use secret; new people make an account, people
/// with an account sign in as it first; revoked or expired links are gone.
async fn invitations_let_people_join(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, _) = join(&app, &admin, "rep", "member").await;
    let (status, body) = rep
        .post(
            &format!("{W}/invitations"),
            json!({"email": "x@formwork.local", "role": "member"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, invitation) = admin
        .post(
            &format!("{W}/invitations"),
            json!({"email": "New@Formwork.local", "role": "manager"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    assert_eq!(invitation["email"], "new@formwork.local");
    let token = invitation["token"].as_str().expect("token").to_owned();
    assert!(
        invitation["link"]
            .as_str()
            .is_some_and(|l| l.ends_with(&token))
    );
    let (_, pending) = admin.get(&format!("{W}/invitations")).await;
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
    assert!(pending[0].get("token").is_none(), "secrets are shown once");
    let accept = "/api/v1/account/invitations/accept";
    let (status, body) = app
        .anonymous()
        .post(
            accept,
            json!({"token": token, "name": "新人", "password": "short"}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/password"]
    );
    let (status, body) = app
        .anonymous()
        .post(
            accept,
            json!({"token": token, "name": "新人", "password": "new-password-123"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["slug"], "demo");
    assert_eq!(body["role"], "manager");
    let newcomer = app.login("new@formwork.local", "new-password-123").await;
    assert_eq!(newcomer.get(W).await.0, StatusCode::OK);
    let (status, body) = app
        .anonymous()
        .post(
            accept,
            json!({"token": token, "name": "again", "password": "new-password-123"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // Someone with an account signs in as it; nobody else can use their link.
    let (outsider, _) = {
        let client = app.create_user("outsider@formwork.local").await;
        (client, ())
    };
    let (_, second) = admin
        .post(
            &format!("{W}/invitations"),
            json!({"email": "outsider@formwork.local", "role": "viewer"}),
        )
        .await;
    let second = second["token"].as_str().expect("token").to_owned();
    let (status, body) = app.anonymous().post(accept, json!({"token": second})).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = rep.post(accept, json!({"token": second})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = outsider.post(accept, json!({"token": second})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], "viewer");
    // Revoked and expired links are gone.
    let (_, third) = admin
        .post(
            &format!("{W}/invitations"),
            json!({"email": "late@formwork.local", "role": "member", "expires_in_days": 2}),
        )
        .await;
    let (_, fourth) = admin
        .post(
            &format!("{W}/invitations"),
            json!({"email": "gone@formwork.local", "role": "member"}),
        )
        .await;
    let (status, _) = admin
        .delete(&format!(
            "{W}/invitations/{}",
            fourth["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .anonymous()
        .post(
            accept,
            json!({"token": fourth["token"], "name": "g", "password": "gone-password-123"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    app.advance(chrono::Duration::days(3));
    let (status, body) = app
        .anonymous()
        .post(
            accept,
            json!({"token": third["token"], "name": "l", "password": "late-password-123"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let admin = app.admin().await;
    let (status, body) = admin
        .post(
            &format!("{W}/invitations"),
            json!({"email": "a@b.cn", "role": "member", "expires_in_days": 90}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/expires_in_days"]
    );
}

/// Personal data: an admin exports everything stored about a record, and erases it for real,
/// leaving a tombstone; members may do neither.
async fn personal_data_is_exported_and_erased(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, _) = join(&app, &admin, "rep", "manager").await;
    let customers = format!("{W}/entities/customer/records");
    let (status, customer) = admin
        .post(
            &customers,
            json!({"fields": {"name": "张伟个人工作室", "lifecycle_stage": "first_contact",
                              "phone": "13912345678"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let id = customer["id"].as_str().expect("id").to_owned();
    let path = format!("{customers}/{id}");
    admin
        .patch(
            &path,
            json!({"fields": {"address": "杭州市西湖区文三路 1 号"}}),
        )
        .await;
    let (status, deal) = admin
        .post(
            &format!("{W}/entities/opportunity/records"),
            json!({"fields": {"name": "deal", "stage": "lead", "customer": id}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{deal}");
    for (status, body) in [
        rep.get(&format!("{path}/personal-data")).await,
        rep.post(&format!("{path}/erase"), json!({})).await,
    ] {
        assert_problem(status, &body, StatusCode::FORBIDDEN);
    }
    let (status, export) = admin.get(&format!("{path}/personal-data")).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["record"]["fields"]["phone"], "13912345678");
    assert_eq!(export["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(export["referred_by"][0]["entity"], "opportunity");
    assert_eq!(export["referred_by"][0]["records"][0], deal["id"]);
    let (status, erased) = admin.post(&format!("{path}/erase"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["history_entries"], 2);
    let (status, body) = admin.get(&path).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (_, after) = admin.get(&format!("{path}/personal-data")).await;
    let text = after.to_string();
    for secret in ["13912345678", "文三路", "张伟个人工作室"] {
        assert!(!text.contains(secret), "{secret} survives: {text}");
    }
    assert_eq!(after["record"]["fields"], json!({}));
    assert!(
        after["record"]["erased"]["fields"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("phone")))
    );
    assert_eq!(
        after["history"]
            .as_array()
            .and_then(|h| h.last())
            .map(|h| h["operation"].clone()),
        Some(json!("erase"))
    );
    let (status, body) = admin.post(&format!("{path}/restore"), json!({})).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = admin.post(&format!("{path}/erase"), json!({})).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (_, events) = admin.get(&format!("{W}/audit?kind=record.erased")).await;
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    let (_, deal_now) = admin
        .get(&format!(
            "{W}/entities/opportunity/records/{}",
            deal["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        deal_now["fields"]["customer"],
        json!(id),
        "references keep the id"
    );
}

/// Two-factor sign-in (TOTP) and password reset by an emailed one-time link, through a real
/// SMTP listener.
async fn two_factor_and_password_reset(backend: Backend) {
    let smtp = common::SmtpSink::start().await;
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            ..Default::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let (rep, _) = join(&app, &admin, "rep", "member").await;
    // Two-factor: set up, confirm with a code, then sign-in asks for it.
    let (status, setup) = rep
        .post("/api/v1/account/two-factor/setup", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    assert!(
        setup["link"]
            .as_str()
            .is_some_and(|l| l.starts_with("otpauth://totp/"))
    );
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    let code_now = |offset: i64| {
        let bytes = formwork::auth::totp::from_base32(&secret).expect("base32");
        let now = app.services.clock().now().timestamp() + offset;
        format!(
            "{:06}",
            formwork::auth::totp::code_at(&bytes, now / formwork::auth::totp::STEP).expect("code")
        )
    };
    let (status, body) = rep
        .post(
            "/api/v1/account/two-factor/enable",
            json!({"code": "000000"}),
        )
        .await;
    if code_now(0) != "000000" {
        assert_eq!(
            assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
            ["/code"]
        );
    }
    let (status, body) = rep
        .post(
            "/api/v1/account/two-factor/enable",
            json!({"code": code_now(0)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recovery: Vec<String> = body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let login = "/api/v1/account/login";
    let credentials = json!({"email": email("rep"), "password": "user-password-123"});
    let (status, body) = app.anonymous().post(login, credentials.clone()).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/totp"]
    );
    let (status, body) = app
        .anonymous()
        .post(
            login,
            json!({"email": email("rep"), "password": "user-password-123", "totp": "123"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    // The code used to enable cannot be replayed; the next step's code signs in, once.
    app.advance(chrono::Duration::seconds(30));
    let next = code_now(0);
    let with_code = json!({"email": email("rep"), "password": "user-password-123", "totp": next});
    let (status, body) = app.anonymous().post(login, with_code.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["two_factor"], true);
    let (status, body) = app.anonymous().post(login, with_code).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    // A recovery code stands in for a lost authenticator, once (case and dash do not matter).
    let typed = recovery[0].to_lowercase().replace('-', " ");
    let with_recovery =
        json!({"email": email("rep"), "password": "user-password-123", "totp": typed});
    let (status, body) = app.anonymous().post(login, with_recovery.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.anonymous().post(login, with_recovery).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    // Password reset: the answer never says whether an account exists.
    let reset = "/api/v1/account/password-reset";
    for who in ["nobody@formwork.local", &email("rep")] {
        let (status, body) = app.anonymous().post(reset, json!({"email": who})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    app.run_jobs_until_idle().await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0]
            .to_ascii_lowercase()
            .contains(&format!("to: {}", email("rep"))),
        "{}",
        messages[0]
    );
    let token = messages[0]
        .split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a link with a token")
        .to_owned();
    let confirm = "/api/v1/account/password-reset/confirm";
    let (status, body) = app
        .anonymous()
        .post(confirm, json!({"token": token, "new_password": "short"}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/new_password"]
    );
    let (status, body) = app
        .anonymous()
        .post(
            confirm,
            json!({"token": token, "new_password": "brand-new-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app
        .anonymous()
        .post(
            confirm,
            json!({"token": token, "new_password": "another-password-1"}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/token"]
    );
    // The reset ended the rep's sessions; the new password (and a fresh code) signs in.
    let (status, body) = rep.get("/api/v1/account").await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    app.advance(chrono::Duration::seconds(30));
    let (status, body) = app
        .anonymous()
        .post(
            login,
            json!({"email": email("rep"), "password": "brand-new-password-1", "totp": code_now(0)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An expired link is refused.
    app.anonymous()
        .post(reset, json!({"email": email("rep")}))
        .await;
    app.run_jobs_until_idle().await;
    let late = smtp.messages()[1]
        .split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("token")
        .to_owned();
    app.advance(chrono::Duration::minutes(31));
    let (status, body) = app
        .anonymous()
        .post(
            confirm,
            json!({"token": late, "new_password": "late-password-123"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    // With a mail server, an invitation's link is emailed to the invitee.
    let admin = app.admin().await;
    let (status, invitation) = admin
        .post(
            &format!("{W}/invitations"),
            json!({"email": "invitee@formwork.local", "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    app.run_jobs_until_idle().await;
    let mail = smtp.messages().pop().expect("an invitation email");
    assert!(
        mail.to_ascii_lowercase()
            .contains("to: invitee@formwork.local"),
        "{mail}"
    );
    let token = invitation["token"].as_str().expect("token");
    assert!(mail.contains(&format!("/invitations/{token}")), "{mail}");
}

/// Side doors: a collaborator taking a record over, a cascade reaching others' records, a
/// members-right holder resetting a role wider, acting on admins, handing records to
/// themselves, reshaping their own unit, and an owner's narrowed token making owners.
async fn side_doors_are_closed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join(&app, &admin, "rep", "member").await;
    let (mate, mate_id) = join(&app, &admin, "mate", "member").await;
    // A collaborator with edit rights edits, but cannot take the record over.
    let (_, lead) = rep
        .post(LEADS, json!({"fields": {"name": "L", "source": "ads"}}))
        .await;
    let path = format!("{LEADS}/{}", lead["id"].as_str().expect("id"));
    rep.put(
        &format!("{path}/collaborators/{mate_id}"),
        json!({"access": "edit"}),
    )
    .await;
    let (status, body) = mate.patch(&path, json!({"owner": mate_id})).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::FORBIDDEN),
        ["/owner"]
    );
    let (status, body) = mate
        .post(
            &format!("{LEADS}/transfer"),
            json!({"ids": [lead["id"]], "owner": mate_id}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(admin.get(&path).await.1["owner"], json!(rep_id));
    // Deleting one's own customer may not cascade into someone else's contact.
    let customers = format!("{W}/entities/customer/records");
    let (_, customer) = rep
        .post(
            &customers,
            json!({"fields": {"name": "云帆", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    let customer_id = customer["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .post(
            &format!("{W}/entities/contact/records"),
            json!({"fields": {"name": "王芳", "customer": customer_id}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = rep.delete(&format!("{customers}/{customer_id}")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(
        admin.get(&format!("{customers}/{customer_id}")).await.0,
        StatusCode::OK
    );
    // A manager with the members right: no reset to wider defaults, no acting on admins, no
    // hand-over, no reshaping of their own unit.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/manager"),
            json!({"name": "Manager", "rights": {"entities": {"*": {"create": "department",
                   "read": "department", "update": "department", "delete": "department", "pool": true},
                   "lead": {"fields": {"budget": "hidden"}}},
                   "manage": {"members": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (boss, _) = join(&app, &admin, "boss", "manager").await;
    let (_, other_admin) = join(&app, &admin, "second", "admin").await;
    let (_, unit) = admin
        .post(
            &format!("{W}/org/units"),
            json!({"name": "Sales", "kind": "department"}),
        )
        .await;
    let unit = unit["id"].as_str().expect("id").to_owned();
    let boss_id = members_by_email(&admin).await[&email("boss")].clone();
    admin
        .patch(&format!("{W}/members/{boss_id}"), json!({"unit_id": unit}))
        .await;
    for (status, body) in [
        boss.delete(&format!("{W}/roles/manager")).await,
        boss.patch(
            &format!("{W}/members/{other_admin}"),
            json!({"role": "member"}),
        )
        .await,
        boss.post(&format!("{W}/members/{other_admin}/deactivate"), json!({}))
            .await,
        boss.post(
            &format!("{W}/members/{mate_id}/deactivate"),
            json!({"hand_over_to": boss_id}),
        )
        .await,
        boss.patch(
            &format!("{W}/org/units/{unit}"),
            json!({"name": "Sales", "kind": "team"}),
        )
        .await,
    ] {
        assert_problem(status, &body, StatusCode::FORBIDDEN);
    }
    let (_, roles) = admin.get(&format!("{W}/roles")).await;
    let manager = roles
        .as_array()
        .and_then(|r| r.iter().find(|r| r["key"] == "manager"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        manager["rights"]["entities"]["lead"]["fields"]["budget"],
        "hidden"
    );
    // An owner's token narrowed to admin cannot make owners.
    let (_, token) = admin
        .post(
            &format!("{W}/tokens"),
            json!({"name": "narrow", "role": "admin"}),
        )
        .await;
    let narrow = Client::with_token(app.url(""), token["secret"].as_str().expect("secret"));
    let (status, body) = narrow
        .patch(&format!("{W}/members/{rep_id}"), json!({"role": "owner"}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
}

both_databases!(
    side_doors_are_closed,
    two_factor_and_password_reset,
    personal_data_is_exported_and_erased,
    invitations_let_people_join,
    public_pool,
    permission_matrix,
    field_rules,
    other_workspaces_and_scopes_stay_invisible,
    roles_cannot_be_escalated,
    credentials_are_checked,
    ownership_sharing_and_hand_over,
    org_tree_is_checked,
);
