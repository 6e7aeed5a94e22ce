//! The Sales CRM demo after the signature: for every signed deal a contract, its payment plan
//! in instalments and the payments received (回款, most on time, some late or short), after-sales
//! tickets with satisfaction surveys, and tasks on the open deals. Deterministic for a seed, like
//! [`super::demo`], and drawn from the deals' own dates and amounts.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::demo::{DemoChange, DemoRecord};

const BEIJING_HOURS: i64 = 8;

fn local(at: DateTime<Utc>) -> NaiveDate {
    (at + Duration::hours(BEIJING_HOURS)).date_naive()
}

/// 10:00 Beijing time on `date`.
fn morning(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(2, 0, 0)
        .map_or_else(Utc::now, |t| t.and_utc())
}

fn stamp(at: DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn yuan(fen: i64) -> Value {
    if fen % 100 == 0 {
        Value::from(fen / 100)
    } else {
        Value::from(fen as f64 / 100.0)
    }
}

fn fen_of(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|y| y * 100)
            .or_else(|| n.as_f64().map(|y| (y * 100.0).round() as i64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.parse::<f64>().map_or(0, |y| (y * 100.0).round() as i64),
        _ => 0,
    }
}

/// When the deal reached `stage` (its creation if it started there).
fn reached(record: &DemoRecord, stage: &str) -> Option<DateTime<Utc>> {
    if record.fields.get("stage").and_then(Value::as_str) == Some(stage) {
        return Some(record.created_at);
    }
    record
        .changes
        .iter()
        .find(|c| c.fields.get("stage").and_then(Value::as_str) == Some(stage))
        .map(|c| c.at)
}

struct Out<'a> {
    rng: StdRng,
    now: DateTime<Utc>,
    records: &'a mut Vec<DemoRecord>,
}

impl Out<'_> {
    fn id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.r#gen()).into_uuid()
    }

    fn push(
        &mut self,
        entity: &'static str,
        at: DateTime<Utc>,
        fields: Value,
        changes: Vec<(DateTime<Utc>, Value)>,
    ) -> Uuid {
        let id = self.id();
        let as_map = |v: Value| match v {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let now = self.now;
        self.records.push(DemoRecord {
            entity,
            id,
            owner: "",
            created_at: at.min(now - Duration::minutes(1)),
            fields: as_map(fields),
            changes: changes
                .into_iter()
                .filter(|(when, _)| *when < now && *when > at)
                .map(|(when, f)| DemoChange {
                    at: when,
                    fields: as_map(f),
                })
                .collect(),
        });
        id
    }

    fn pick<'b>(&mut self, items: &[&'b str]) -> &'b str {
        items[self.rng.gen_range(0..items.len())]
    }
}

const TICKET_SUBJECTS: &[(&str, &str)] = &[
    ("系统登录缓慢", "repair"),
    ("数据导出报错", "repair"),
    ("发票信息有误", "complaint"),
    ("交付进度延迟", "complaint"),
    ("培训课程安排咨询", "consultation"),
    ("新增账号权限咨询", "consultation"),
    ("设备到货破损", "return"),
    ("接口对接失败", "repair"),
    ("售后响应不及时", "complaint"),
];

const RESOLUTIONS: &[&str] = &[
    "远程排查后已修复，客户确认正常。",
    "已重新开具发票并快递寄出。",
    "调整交付计划并与客户确认新的里程碑。",
    "已安排线上培训，客户满意。",
    "更换设备，已签收。",
];

const SURVEY_COMMENTS: &[&str] = &[
    "响应很快，问题解决得很彻底。",
    "工程师很专业，希望文档再完善一些。",
    "整体满意，交付周期可以再缩短。",
    "服务态度好，会推荐给同行。",
    "处理时间偏长，但结果满意。",
];

const TASKS: &[&str] = &[
    "准备方案演示",
    "确认采购预算",
    "安排技术交流会",
    "发送报价单",
    "约见决策人",
    "整理需求清单",
];

const METHODS: &[&str] = &[
    "bank_transfer",
    "bank_transfer",
    "bank_transfer",
    "wechat_alipay",
    "cheque",
];

/// What the after-signature records need of a deal: id, name, customer, amount in fen, when it
/// was signed, and its stage now.
type Deal = (Uuid, String, String, i64, Option<DateTime<Utc>>, String);

/// Appends the after-signature records for the deals in `records`.
pub fn extend(records: &mut Vec<DemoRecord>, now: DateTime<Utc>, seed: u64) {
    let deals: Vec<Deal> = records
        .iter()
        .filter(|r| r.entity == "opportunity")
        .map(|r| {
            (
                r.id,
                r.text("name").unwrap_or("商机").to_owned(),
                r.text("customer").unwrap_or_default().to_owned(),
                fen_of(r.last("amount")),
                reached(r, "contract_signed"),
                r.text("stage").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let today = local(now);
    let first_new = records.len();
    let mut out = Out {
        rng: StdRng::seed_from_u64(seed.wrapping_add(0x5eed_a17e)),
        now,
        records,
    };
    for (deal, name, customer, amount, signed, stage) in deals {
        match (signed, stage.as_str()) {
            (Some(signed), "contract_signed" | "delivery") if amount > 0 => {
                contract(&mut out, today, (deal, &name, &customer, amount, signed));
            }
            (None, "lead" | "first_contact" | "needs_confirmed" | "proposal")
                if out.rng.gen_bool(0.6) =>
            {
                let title = format!("{}：{name}", out.pick(TASKS));
                let deadline = today + Duration::days(out.rng.gen_range(-3..14));
                let done = deadline < today && out.rng.gen_bool(0.7);
                let created = now - Duration::days(out.rng.gen_range(3..20));
                let priority = out.pick(&["high", "medium", "medium", "low"]);
                let completed = morning(deadline);
                out.push(
                    "task",
                    created,
                    json!({"title": title, "customer": customer, "opportunity": deal,
                           "priority": priority, "deadline": deadline.to_string(), "status": "open"}),
                    if done {
                        vec![(completed, json!({"status": "done", "completed_at": stamp(completed)}))]
                    } else {
                        Vec::new()
                    },
                );
            }
            _ => {}
        }
    }
    // Oldest first, so auto-numbers follow the dates.
    out.records[first_new..].sort_by_key(|r| r.created_at);
    keep_open_leads_warm(&mut out, today);
}

/// Open leads a rep is still working were touched lately: each gets its next follow-up planned
/// in the last three weeks (so the pool's 30-day reclaim takes the stale and finished ones,
/// not the live pipeline). About one in five is left to go cold.
fn keep_open_leads_warm(out: &mut Out<'_>, today: NaiveDate) {
    let now = out.now;
    for i in 0..out.records.len() {
        let record = &out.records[i];
        let open = record.entity == "lead"
            && matches!(
                record.text("status"),
                Some("new" | "contacted" | "qualified")
            );
        if !open || out.rng.gen_bool(0.2) {
            continue;
        }
        let at = now - Duration::hours(out.rng.gen_range(6..21 * 24));
        let next = today + Duration::days(out.rng.gen_range(1..15));
        let record = &mut out.records[i];
        let after_everything = record.changes.last().map_or(record.created_at, |c| c.at);
        if at > after_everything {
            let mut fields = Map::new();
            fields.insert(
                "next_follow_up_date".to_owned(),
                Value::String(next.to_string()),
            );
            record.changes.push(DemoChange { at, fields });
        }
    }
}

fn contract(
    out: &mut Out<'_>,
    today: NaiveDate,
    (deal, name, customer, amount, signed): (Uuid, &str, &str, i64, DateTime<Utc>),
) {
    let signed_on = local(signed);
    let start = signed_on + Duration::days(7);
    let months = if out.rng.gen_bool(0.3) { 6 } else { 12 };
    let end = start + Duration::days(if months == 6 { 182 } else { 365 });
    let status = if end < today {
        "expired"
    } else if end <= today + Duration::days(30) {
        "expiring"
    } else {
        "active"
    };
    let contract_id = out.push(
        "contract",
        signed + Duration::hours(2),
        json!({"name": format!("{name}合同"), "customer": customer, "opportunity": deal,
               "amount": yuan(amount), "signed_on": signed_on.to_string(),
               "start_date": start.to_string(), "end_date": end.to_string(), "status": status}),
        Vec::new(),
    );
    // Instalments: 30/40/30 over a year, 50/50 over half a year.
    let shares: &[(i64, i64)] = if months == 6 {
        &[(50, 0), (50, 90)]
    } else {
        &[(30, 0), (40, 120), (30, 240)]
    };
    let mut planned = 0;
    for (i, (share, offset)) in shares.iter().enumerate() {
        let part = if i + 1 == shares.len() {
            amount - planned
        } else {
            amount * share / 100 / 100 * 100
        };
        planned += part;
        let due = start + Duration::days(*offset);
        let plan_name = format!("{name}第{}期", i + 1);
        let roll: f64 = out.rng.r#gen();
        let (paid_fen, paid_on) = if due + Duration::days(3) > today {
            (0, None)
        } else if roll < 0.8 {
            let late = out.rng.gen_range(-5..12);
            (
                part,
                Some((due + Duration::days(late)).min(today - Duration::days(1))),
            )
        } else if roll < 0.9 {
            (part / 2 / 100 * 100, Some(due + Duration::days(5)))
        } else {
            (0, None)
        };
        let final_status = match (paid_fen, due < today) {
            (0, true) => "overdue",
            (0, false) => "planned",
            (p, _) if p >= part => "paid",
            _ => "partially_paid",
        };
        let created = signed + Duration::hours(3);
        let mut changes = Vec::new();
        if let Some(on) = paid_on {
            changes.push((
                morning(on) + Duration::hours(1),
                json!({"status": final_status}),
            ));
        } else if final_status == "overdue" {
            changes.push((
                morning(due + Duration::days(1)),
                json!({"status": "overdue"}),
            ));
        }
        let plan = out.push(
            "payment_plan",
            created,
            json!({"name": plan_name, "contract": contract_id, "customer": customer,
                   "installment": i + 1, "due_date": due.to_string(), "amount": yuan(part),
                   "status": "planned"}),
            changes,
        );
        if let Some(on) = paid_on {
            let method = out.pick(METHODS);
            out.push(
                "payment_received",
                morning(on),
                json!({"name": format!("{plan_name}回款"), "customer": customer, "opportunity": deal,
                       "contract": contract_id, "payment_plan": plan, "amount": yuan(paid_fen),
                       "received_on": on.to_string(), "method": method}),
                Vec::new(),
            );
        }
    }
    // After-sales: about half the customers call at least once.
    let tickets = if out.rng.gen_bool(0.5) {
        out.rng.gen_range(1..=2)
    } else {
        0
    };
    for _ in 0..tickets {
        let (subject, kind) = TICKET_SUBJECTS[out.rng.gen_range(0..TICKET_SUBJECTS.len())];
        let opened = morning(start + Duration::days(out.rng.gen_range(5..200)));
        if opened >= out.now - Duration::hours(2) {
            continue;
        }
        let priority = out.pick(&["urgent", "high", "normal", "normal", "low"]);
        let age = out.now - opened;
        let resolved_at = opened + Duration::hours(out.rng.gen_range(2..72));
        let resolved = age > Duration::days(5) && resolved_at < out.now;
        let mut changes = vec![(
            opened + Duration::minutes(40),
            json!({"status": "in_progress"}),
        )];
        if resolved {
            let resolution = out.pick(RESOLUTIONS);
            changes.push((
                resolved_at,
                json!({"status": "resolved", "resolution": resolution, "resolved_at": stamp(resolved_at)}),
            ));
        }
        let ticket = out.push(
            "ticket",
            opened,
            json!({"subject": subject, "customer": customer, "contract": contract_id,
                   "type": kind, "priority": priority, "status": "new",
                   "description": format!("客户反馈：{subject}。")}),
            changes,
        );
        if resolved && out.rng.gen_bool(0.7) {
            let surveyed = resolved_at + Duration::days(1);
            if surveyed < out.now {
                let score = out.rng.gen_range(3..=5);
                let nps = out.rng.gen_range(5..=10);
                let comments = out.pick(SURVEY_COMMENTS);
                out.push(
                    "survey",
                    surveyed,
                    json!({"title": format!("{subject}回访"), "customer": customer, "ticket": ticket,
                           "contract": contract_id, "score": score, "nps": nps,
                           "comments": comments, "surveyed_on": local(surveyed).to_string()}),
                    Vec::new(),
                );
            }
        }
    }
}
