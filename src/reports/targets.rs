//! Sales targets (销售目标分解). Targets are records of an entity marked `x-target`: a person,
//! a fiscal year, a measure (the key of a report whose first measure, over its date field, is
//! the actual) and an amount for the year, split over the fiscal months by weights. A team or
//! department's target and actual are the sums of its people's, up to the company. Progress
//! is actual over target for any node and period (year, fiscal quarter, fiscal month, ISO
//! week); the split action divides a total down the org tree by weights into person targets.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::definition::{GroupDoc, Period, Report, add_months};
use super::{Filters, Reports};
use crate::access::OrgTree;
use crate::definitions::{EntityModel, Kind};
use crate::error::{Error, FieldError, Result};
use crate::records::{Context, NewRecord};

/// The fields of a target entity (its `x-target`).
#[derive(Debug, Clone, Deserialize)]
pub struct TargetFields {
    /// The fiscal year (integer).
    pub fiscal_year: String,
    /// The measure (a report key).
    pub measure: String,
    /// The person (user).
    pub assignee: String,
    /// The amount for the year.
    pub amount: String,
    /// Monthly weights (a sub-table of `month` and `weight`).
    pub months: Option<String>,
}

/// A period of a fiscal year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPeriod {
    /// The whole fiscal year.
    Year,
    /// A fiscal quarter, 1–4.
    Quarter(u32),
    /// A fiscal month, 1–12.
    Month(u32),
    /// An ISO week.
    Week(i32, u32),
}

impl TargetPeriod {
    /// Parses `year`, `Q1`–`Q4`, `M1`–`M12` (of the fiscal year) or `2026-W10`.
    ///
    /// # Errors
    /// `Error::Invalid` at `/period`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "/period",
                "period",
                "period is year, Q1–Q4, M1–M12 (of the fiscal year) or an ISO week such as 2026-W10",
            )
        };
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("year") {
            return Ok(Self::Year);
        }
        if let Some((year, week)) = text.split_once("-W") {
            let year: i32 = year.parse().map_err(|_| bad())?;
            let week: u32 = week.parse().map_err(|_| bad())?;
            NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon).ok_or_else(bad)?;
            return Ok(Self::Week(year, week));
        }
        let upper = text.to_ascii_uppercase();
        if let Some(q) = upper.strip_prefix('Q') {
            let q: u32 = q.parse().map_err(|_| bad())?;
            return (1..=4)
                .contains(&q)
                .then_some(Self::Quarter(q))
                .ok_or_else(bad);
        }
        if let Some(m) = upper.strip_prefix('M') {
            let m: u32 = m.parse().map_err(|_| bad())?;
            return (1..=12)
                .contains(&m)
                .then_some(Self::Month(m))
                .ok_or_else(bad);
        }
        Err(bad())
    }

    /// Its name in links.
    pub fn name(self) -> String {
        match self {
            Self::Year => "year".to_owned(),
            Self::Quarter(q) => format!("Q{q}"),
            Self::Month(m) => format!("M{m}"),
            Self::Week(y, w) => format!("{y}-W{w:02}"),
        }
    }
}

/// The first day of each fiscal month of fiscal year `year` (which starts in month `start` of
/// that calendar year), and the day after the last.
pub fn fiscal_months(year: i32, start: u32) -> Option<[NaiveDate; 13]> {
    let first = NaiveDate::from_ymd_opt(year, start.clamp(1, 12), 1)?;
    let mut out = [first; 13];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = add_months(first, i32::try_from(i).ok()?)?;
    }
    Some(out)
}

/// The dates `[from, to)` of a period of fiscal year `year`.
pub fn period_bounds(
    year: i32,
    start: u32,
    period: TargetPeriod,
) -> Option<(NaiveDate, NaiveDate)> {
    let months = fiscal_months(year, start)?;
    Some(match period {
        TargetPeriod::Year => (months[0], months[12]),
        TargetPeriod::Quarter(q) => {
            let i = (q as usize - 1) * 3;
            (months[i], months[i + 3])
        }
        TargetPeriod::Month(m) => (months[m as usize - 1], months[m as usize]),
        TargetPeriod::Week(y, w) => {
            let monday = NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon)?;
            (monday, monday.checked_add_signed(Duration::days(7))?)
        }
    })
}

/// A target's share of `[from, to)`: each fiscal month gets the amount × its weight's share,
/// spread evenly over its days; the period takes the days it covers.
pub fn target_for(
    amount: Decimal,
    weights: &[Decimal; 12],
    months: &[NaiveDate; 13],
    from: NaiveDate,
    to: NaiveDate,
) -> Decimal {
    let Some(total) = weights
        .iter()
        .try_fold(Decimal::ZERO, |sum, w| sum.checked_add(*w))
    else {
        return Decimal::ZERO;
    };
    if total.is_zero() {
        return Decimal::ZERO;
    }
    let mut out = Decimal::ZERO;
    for m in 0..12 {
        let (start, end) = (months[m], months[m + 1]);
        let overlap = (end.min(to) - start.max(from)).num_days();
        if overlap <= 0 {
            continue;
        }
        let days = (end - start).num_days();
        // Exact when it fits (amount × weight × days, then divided once); for amounts too large
        // for that, the share first.
        let exact = amount
            .checked_mul(weights[m])
            .and_then(|p| p.checked_mul(Decimal::from(overlap)))
            .and_then(|p| p.checked_div(total.checked_mul(Decimal::from(days))?));
        let part = exact.or_else(|| {
            amount.checked_mul(weights[m] / total * Decimal::from(overlap) / Decimal::from(days))
        });
        if let Some(sum) = part.and_then(|p| out.checked_add(p)) {
            out = sum;
        }
    }
    out
}

/// Weights of the fiscal months from a target's sub-table rows (missing months weigh 0 when
/// any is given; none given: all equal).
pub fn month_weights(rows: Option<&Value>) -> [Decimal; 12] {
    let mut weights = [Decimal::ZERO; 12];
    let mut any = false;
    for row in rows.and_then(Value::as_array).into_iter().flatten() {
        let month = row.get("month").and_then(Value::as_u64).unwrap_or(0);
        let weight = row.get("weight").and_then(number);
        if let (1..=12, Some(weight)) = (month, weight) {
            weights[month as usize - 1] += weight.max(Decimal::ZERO);
            any = true;
        }
    }
    if !any || weights.iter().all(Decimal::is_zero) {
        weights = [Decimal::ONE; 12];
    }
    weights
}

/// A decimal as a JSON number (number fields take numbers; cents survive the trip).
fn json_number(value: Decimal) -> Value {
    use rust_decimal::prelude::ToPrimitive;
    value
        .to_f64()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn number(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(Decimal::from)
            .or_else(|| n.as_f64().and_then(|f| Decimal::try_from(f).ok())),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// One node of the progress tree.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// `company`, `department`, `team` or `person`.
    pub kind: String,
    /// The unit or account (none for the company).
    pub id: Option<Uuid>,
    /// The node above.
    pub parent: Option<Uuid>,
    /// Depth below the company.
    pub depth: usize,
    /// Name.
    pub name: String,
    /// Target for the period.
    pub target: Decimal,
    /// Actual in the period.
    pub actual: Decimal,
    /// Actual over target (`None` without a target).
    pub progress: Option<Decimal>,
}

/// The progress of one measure in one period, for the whole tree.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The fiscal year.
    pub fiscal_year: i32,
    /// The measure (report key).
    pub measure: String,
    /// The measure's label.
    pub measure_label: Value,
    /// The period.
    pub period: String,
    /// Its first day.
    pub from: NaiveDate,
    /// Its last day.
    pub to: NaiveDate,
    /// The tree, depth first (company, its units and people).
    pub nodes: Vec<Node>,
    /// People, best progress first (then largest actual).
    pub leaderboard: Vec<Node>,
}

fn ratio(actual: Decimal, target: Decimal) -> Option<Decimal> {
    (!target.is_zero()).then(|| (actual / target).round_dp(4))
}

/// The tree with each node's target and actual: people carry their own, units and the
/// company the sums of everyone below. People with a number but no place in the org (or no
/// longer members) hang under the company.
pub fn roll_up(
    org: &OrgTree,
    names: &HashMap<Uuid, String>,
    company: &str,
    targets: &HashMap<Uuid, Decimal>,
    actuals: &HashMap<Uuid, Decimal>,
) -> Vec<Node> {
    let strays: Vec<Uuid> = targets
        .keys()
        .chain(actuals.keys())
        .copied()
        .filter(|p| org.person(*p).is_none())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let tally = Tally {
        org,
        names,
        targets,
        actuals,
    };
    let mut out = Vec::new();
    tally.visit(None, 0, &strays, &mut out);
    out[0].name = company.to_owned();
    out
}

/// What a roll-up reads.
struct Tally<'a> {
    org: &'a OrgTree,
    names: &'a HashMap<Uuid, String>,
    targets: &'a HashMap<Uuid, Decimal>,
    actuals: &'a HashMap<Uuid, Decimal>,
}

impl Tally<'_> {
    /// Appends `unit` (`None`: the company), its units and its people, depth first; returns
    /// its target and actual.
    fn visit(
        &self,
        unit: Option<Uuid>,
        depth: usize,
        strays: &[Uuid],
        out: &mut Vec<Node>,
    ) -> (Decimal, Decimal) {
        let org = self.org;
        let at = out.len();
        let (kind, name) = match unit.and_then(|u| org.unit(u)) {
            Some(u) => (u.kind.name().to_owned(), u.name.clone()),
            None => ("company".to_owned(), String::new()),
        };
        out.push(Node {
            kind,
            id: unit,
            parent: unit.and_then(|u| org.unit(u)).and_then(|u| u.parent),
            depth,
            name,
            target: Decimal::ZERO,
            actual: Decimal::ZERO,
            progress: None,
        });
        let mut sum = (Decimal::ZERO, Decimal::ZERO);
        let mut children: Vec<Uuid> = org.children_of(unit).to_vec();
        children.sort_by_key(|c| org.unit(*c).map(|u| u.name.clone()));
        for child in children {
            let (t, a) = self.visit(Some(child), depth + 1, &[], out);
            sum.0 += t;
            sum.1 += a;
        }
        let mut people: Vec<Uuid> = org.members_of(unit).to_vec();
        people.extend(strays);
        people.sort_by_key(|p| self.names.get(p).cloned().unwrap_or_default());
        for person in people {
            let target = self.targets.get(&person).copied().unwrap_or_default();
            let actual = self.actuals.get(&person).copied().unwrap_or_default();
            if target.is_zero() && actual.is_zero() && org.person(person).is_none_or(|p| !p.active)
            {
                continue;
            }
            sum.0 += target;
            sum.1 += actual;
            out.push(Node {
                kind: "person".to_owned(),
                id: Some(person),
                parent: unit,
                depth: depth + 1,
                name: self
                    .names
                    .get(&person)
                    .cloned()
                    .unwrap_or_else(|| person.to_string()),
                target,
                actual,
                progress: ratio(actual, target),
            });
        }
        out[at].target = sum.0;
        out[at].actual = sum.1;
        out[at].progress = ratio(sum.1, sum.0);
        sum
    }
}

/// The largest total a split divides (10^15: any share, in cents, stays far inside a decimal).
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);
/// The largest weight of a part.
pub const MAX_WEIGHT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// A split of a total down the org tree: each part is a unit (with its own parts, else its
/// people evenly) or a person, with a weight.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// A unit.
    pub unit: Option<Uuid>,
    /// A person.
    pub person: Option<Uuid>,
    /// Its weight among its siblings.
    pub weight: Decimal,
    /// How a unit's share divides further.
    #[serde(default)]
    pub split: Vec<Part>,
}

/// A request to divide a total into person targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    /// The target entity (default: the workspace's one target entity).
    pub entity: Option<String>,
    /// The fiscal year.
    pub fiscal_year: i32,
    /// The measure (a report key, one of the measure field's options when it is a select).
    pub measure: String,
    /// The total for the year.
    pub total: Decimal,
    /// How it divides (empty: evenly over every active member).
    #[serde(default)]
    pub split: Vec<Part>,
    /// Weights of the fiscal months (12 numbers; default equal).
    pub months: Option<Vec<Decimal>>,
}

/// Divides `total` over `parts` by weight, down to people; amounts are rounded to cents so
/// that they add up to the total exactly (largest remainders get the leftover cents).
///
/// # Errors
/// `Error::Invalid` naming the part that is wrong (unknown unit or person, a weight below 0,
/// weights adding to 0, a unit with nobody in it).
pub fn divide(org: &OrgTree, total: Decimal, parts: &[Part]) -> Result<BTreeMap<Uuid, Decimal>> {
    let mut shares: BTreeMap<Uuid, Decimal> = BTreeMap::new();
    let mut problems = Vec::new();
    if total.is_sign_negative() || total > MAX_AMOUNT {
        return Err(Error::invalid(
            "/total",
            "range",
            format!("the total is from 0 to {MAX_AMOUNT}"),
        ));
    }
    fn walk(
        org: &OrgTree,
        share: Decimal,
        parts: &[Part],
        pointer: &str,
        shares: &mut BTreeMap<Uuid, Decimal>,
        problems: &mut Vec<FieldError>,
    ) {
        if parts
            .iter()
            .any(|p| p.weight.is_sign_negative() || p.weight > MAX_WEIGHT)
        {
            problems.push(FieldError::new(
                pointer,
                "weights",
                format!("weights are from 0 to {MAX_WEIGHT}"),
            ));
            return;
        }
        // At most 1,000 weights of at most 10^9 each: the sum cannot overflow.
        let sum: Decimal = parts.iter().map(|p| p.weight).sum();
        if sum.is_zero() {
            problems.push(FieldError::new(
                pointer,
                "weights",
                "weights add up to more than 0",
            ));
            return;
        }
        if parts.len() > 1000 {
            problems.push(FieldError::new(pointer, "range", "at most 1,000 parts"));
            return;
        }
        for (i, part) in parts.iter().enumerate() {
            let at = format!("{pointer}/{i}");
            let portion = share * part.weight / sum;
            match (part.unit, part.person) {
                (Some(unit), None) => {
                    if org.unit(unit).is_none() {
                        problems.push(FieldError::new(
                            format!("{at}/unit"),
                            "unknown_unit",
                            "no such team or department",
                        ));
                    } else if part.split.is_empty() {
                        let people: Vec<Uuid> = org
                            .people_under(unit)
                            .into_iter()
                            .filter(|p| org.person(*p).is_some_and(|x| x.active))
                            .collect();
                        if people.is_empty() {
                            problems.push(FieldError::new(
                                format!("{at}/unit"),
                                "empty_unit",
                                "nobody is in this unit to take its share",
                            ));
                        }
                        let each = people.len().max(1);
                        for person in people {
                            *shares.entry(person).or_default() += portion / Decimal::from(each);
                        }
                    } else {
                        walk(
                            org,
                            portion,
                            &part.split,
                            &format!("{at}/split"),
                            shares,
                            problems,
                        );
                    }
                }
                (None, Some(person)) => {
                    if org.person(person).is_none_or(|p| !p.active) {
                        problems.push(FieldError::new(
                            format!("{at}/person"),
                            "unknown_person",
                            "not an active member of the workspace",
                        ));
                    } else if !part.split.is_empty() {
                        problems.push(FieldError::new(
                            format!("{at}/split"),
                            "split",
                            "a person's share does not divide further",
                        ));
                    } else {
                        *shares.entry(person).or_default() += portion;
                    }
                }
                _ => problems.push(FieldError::new(
                    at,
                    "part",
                    "a part names a unit or a person",
                )),
            }
        }
    }
    walk(org, total, parts, "/split", &mut shares, &mut problems);
    if !problems.is_empty() {
        return Err(Error::invalid_all("the split is invalid", problems));
    }
    // Cents that add up: floor every share, then hand out what is left by largest remainder.
    let cent = Decimal::new(1, 2);
    let mut floored: Vec<(Uuid, Decimal, Decimal)> = shares
        .iter()
        .map(|(p, s)| {
            let down = (s / cent).floor() * cent;
            (*p, down, *s - down)
        })
        .collect();
    let mut left = ((total - floored.iter().map(|f| f.1).sum::<Decimal>()) / cent)
        .round()
        .to_string()
        .parse::<i64>()
        .unwrap_or(0);
    floored.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    for entry in &mut floored {
        if left <= 0 {
            break;
        }
        entry.1 += cent;
        left -= 1;
    }
    Ok(floored
        .into_iter()
        .map(|(p, amount, _)| (p, amount))
        .collect())
}

impl Reports<'_> {
    /// The target entity: `requested`, else the one published entity marked `x-target`.
    async fn target_entity(
        &self,
        ctx: &Context,
        requested: Option<&str>,
    ) -> Result<(std::sync::Arc<EntityModel>, TargetFields)> {
        let snapshot = self
            .registry
            .snapshot(self.db, ctx.scope.workspace_id, ctx.scope.generation)
            .await?;
        let marked: Vec<_> = snapshot
            .entities()
            .into_iter()
            .filter(|m| m.document.get("x-target").is_some())
            .filter(|m| requested.is_none_or(|r| r == m.key))
            .collect();
        let Some(model) = marked.into_iter().min_by(|a, b| a.key.cmp(&b.key)) else {
            return Err(Error::not_found(match requested {
                Some(key) => format!("target entity {key:?}"),
                None => "target entity (an entity marked x-target)".to_owned(),
            }));
        };
        let fields: TargetFields = serde_json::from_value(model.document["x-target"].clone())
            .map_err(|e| Error::internal(format!("x-target checked at publish: {e}")))?;
        Ok((model, fields))
    }

    /// The measures targets may be set on: the options of the target entity's measure field
    /// (a select), else every report with a date field; as (key, label).
    ///
    /// # Errors
    /// `Error::NotFound` (no target entity), `Error::Db`.
    pub async fn target_measures(&self, ctx: &Context) -> Result<Vec<(String, Value)>> {
        let (model, fields) = self.target_entity(ctx, None).await?;
        let options = model
            .document
            .pointer(&format!("/properties/{}/x-options", fields.measure))
            .and_then(Value::as_array)
            .cloned();
        if let Some(options) = options {
            return Ok(options
                .iter()
                .filter_map(|o| {
                    Some((
                        o.get("value")?.as_str()?.to_owned(),
                        o.get("label").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect());
        }
        let snapshot = self
            .registry
            .snapshot(self.db, ctx.scope.workspace_id, ctx.scope.generation)
            .await?;
        Ok(snapshot
            .of_kind(Kind::Report)
            .into_iter()
            .filter(|(_, p)| p.document.get("date_field").is_some())
            .map(|(key, p)| {
                (
                    key.to_owned(),
                    p.document.get("label").cloned().unwrap_or(Value::Null),
                )
            })
            .collect())
    }

    /// Progress of `measure` in a period of fiscal year `year`, for the whole org tree (or the
    /// subtree of `unit`), with a leaderboard of its people. Targets and actuals are read
    /// through the caller's access: a rep sees their own.
    ///
    /// # Errors
    /// `Error::NotFound` (no target entity, no such measure report), `Error::Invalid` (a
    /// measure report without a date field), `Error::Db`.
    pub async fn progress(
        &self,
        ctx: &Context,
        entity: Option<&str>,
        year: i32,
        measure: &str,
        period: TargetPeriod,
        unit: Option<Uuid>,
    ) -> Result<Progress> {
        let (model, fields) = self.target_entity(ctx, entity).await?;
        let start = ctx.calendar.fiscal_year_start;
        let months = fiscal_months(year, start)
            .ok_or_else(|| Error::invalid("/fiscal_year", "range", "no such fiscal year"))?;
        let (from, to) = period_bounds(year, start, period)
            .ok_or_else(|| Error::invalid("/period", "period", "no such period"))?;
        if to <= months[0] || from >= months[12] {
            return Err(Error::invalid(
                "/period",
                "period",
                format!(
                    "the week is outside fiscal year {year} ({} to {})",
                    months[0],
                    months[12] - Duration::days(1)
                ),
            ));
        }

        // Targets: every record of the year and measure the caller may read.
        let mut targets: HashMap<Uuid, Decimal> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = json!({
                "filter": {"and": [
                    {"field": fields.fiscal_year, "op": "eq", "value": year},
                    {"field": fields.measure, "op": "eq", "value": measure},
                ]},
                "limit": 1000,
            });
            if let Some(cursor) = &cursor {
                query["cursor"] = json!(cursor);
            }
            let page = self.records().list(ctx, &model.key, &query).await?;
            for record in &page.records {
                let person = record
                    .fields
                    .get(&fields.assignee)
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok());
                let amount = record.fields.get(&fields.amount).and_then(number);
                let weights =
                    month_weights(fields.months.as_ref().and_then(|m| record.fields.get(m)));
                if let (Some(person), Some(amount)) = (person, amount) {
                    *targets.entry(person).or_default() +=
                        target_for(amount, &weights, &months, from, to);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for value in targets.values_mut() {
            *value = value.round_dp(2);
        }

        // Actuals: the measure's report, by owner, over the period.
        let snapshot = self
            .registry
            .snapshot(self.db, ctx.scope.workspace_id, ctx.scope.generation)
            .await?;
        let published = snapshot
            .get(Kind::Report, measure)
            .ok_or_else(|| Error::not_found(format!("measure report {measure:?}")))?;
        let mut report = Report::compile(&crate::script::shared(), measure, &published.document)?;
        if report.doc.date_field.is_none() {
            return Err(Error::invalid(
                "/measure",
                "measure",
                format!("report {measure:?} has no date field to count a period by"),
            ));
        }
        report.doc.group_by = vec![GroupDoc::Field("owner".to_owned())];
        report.doc.limit = None;
        report.doc.sort = Vec::new();
        report.doc.chart = None;
        report.doc.funnel = None;
        let filters = Filters {
            period: Some(Period::Range {
                from,
                to: to - Duration::days(1),
            }),
            owner: None,
            team: None,
        };
        let outcome = self.run_report(ctx, &snapshot, &report, &filters).await?;
        let mut actuals: HashMap<Uuid, Decimal> = HashMap::new();
        for row in &outcome.rows {
            if let (Some(owner), Some(Some(value))) = (
                row.keys
                    .first()
                    .and_then(|k| k.value.as_str())
                    .and_then(|s| Uuid::parse_str(s).ok()),
                row.values.first(),
            ) {
                *actuals.entry(owner).or_default() += *value;
            }
        }

        let org = match &ctx.policy {
            Some(policy) => policy.org().clone(),
            None => OrgTree::default(),
        };
        let names: HashMap<Uuid, String> =
            crate::store::workspaces::list_members(self.db.conn(), ctx.scope.workspace_id)
                .await?
                .into_iter()
                .map(|m| (m.account_id, m.name))
                .collect();
        let company = crate::store::workspaces::find(self.db.conn(), ctx.scope.workspace_id)
            .await?
            .map(|w| w.name)
            .unwrap_or_default();
        let mut nodes = roll_up(&org, &names, &company, &targets, &actuals);
        if let Some(unit) = unit {
            if org.unit(unit).is_none() {
                return Err(Error::invalid(
                    "/unit",
                    "unknown_unit",
                    "no such team or department",
                ));
            }
            let start_at = nodes
                .iter()
                .position(|n| n.id == Some(unit) && n.kind != "person");
            if let Some(at) = start_at {
                let depth = nodes[at].depth;
                let end = nodes[at + 1..]
                    .iter()
                    .position(|n| n.depth <= depth)
                    .map_or(nodes.len(), |p| at + 1 + p);
                nodes = nodes[at..end].to_vec();
            }
        }
        // The leaderboard ranks people with a target or a result; the tree lists everyone.
        let mut leaderboard: Vec<Node> = nodes
            .iter()
            .filter(|n| n.kind == "person" && !(n.target.is_zero() && n.actual.is_zero()))
            .cloned()
            .collect();
        leaderboard.sort_by(|a, b| {
            b.progress
                .unwrap_or(Decimal::MIN)
                .cmp(&a.progress.unwrap_or(Decimal::MIN))
                .then(b.actual.cmp(&a.actual))
                .then(a.name.cmp(&b.name))
        });
        Ok(Progress {
            fiscal_year: year,
            measure: measure.to_owned(),
            measure_label: outcome
                .measures
                .first()
                .map(|m| m.label.clone())
                .unwrap_or(Value::Null),
            period: period.name(),
            from,
            to: to - Duration::days(1),
            nodes,
            leaderboard,
        })
    }

    /// Divides a total for a fiscal year and measure down the org tree into person targets:
    /// each person's target record of that year and measure is created or changed (through
    /// the records door: access, validation, history, workflows). Everything is checked first.
    ///
    /// # Errors
    /// `Error::Invalid` (the split, the months, the measure), `Error::Forbidden` (the caller
    /// may not write targets), `Error::Db`.
    pub async fn split(&self, ctx: &Context, request: &SplitRequest) -> Result<Vec<Value>> {
        let (model, fields) = self.target_entity(ctx, request.entity.as_deref()).await?;
        let org = match &ctx.policy {
            // A split replaces everyone's target: it needs to see every existing one.
            Some(policy)
                if policy.is_admin
                    || policy.grant(&model.key).read == crate::access::Reach::All =>
            {
                policy.org().clone()
            }
            Some(_) => {
                return Err(Error::forbidden(
                    "splitting targets needs read access to every target",
                ));
            }
            None => return Err(Error::forbidden("splitting targets needs a person")),
        };
        let mut problems = Vec::new();
        if request.total.is_sign_negative() {
            problems.push(FieldError::new("/total", "range", "the total is 0 or more"));
        }
        let months = match &request.months {
            None => None,
            Some(weights)
                if weights.len() == 12
                    && weights.iter().all(|w| !w.is_sign_negative())
                    && weights.iter().any(|w| !w.is_zero()) =>
            {
                Some(weights.clone())
            }
            Some(_) => {
                problems.push(FieldError::new(
                    "/months",
                    "months",
                    "months are 12 weights, 0 or more, not all 0",
                ));
                None
            }
        };
        if let Some(crate::definitions::FieldKind::SingleSelect { options }) =
            model.field(&fields.measure).map(|f| &f.kind)
            && !options.contains(&request.measure)
        {
            problems.push(FieldError::new(
                "/measure",
                "enum",
                format!("the measure is one of {}", options.join(", ")),
            ));
        }
        let parts = if request.split.is_empty() {
            // Everyone active, evenly.
            let mut people: Vec<Uuid> = Vec::new();
            for unit in std::iter::once(None).chain(org.units().map(|u| Some(u.id))) {
                people.extend(org.members_of(unit));
            }
            people
                .into_iter()
                .filter(|p| org.person(*p).is_some_and(|x| x.active))
                .map(|person| Part {
                    unit: None,
                    person: Some(person),
                    weight: Decimal::ONE,
                    split: Vec::new(),
                })
                .collect()
        } else {
            request.split.clone()
        };
        let shares = match divide(&org, request.total, &parts) {
            Ok(shares) => shares,
            Err(Error::Invalid { errors, .. }) => {
                problems.extend(errors);
                BTreeMap::new()
            }
            Err(other) => return Err(other),
        };
        if !problems.is_empty() {
            return Err(Error::invalid_all("the split is invalid", problems));
        }
        // The existing targets of the year and measure, by person.
        let mut by_person: HashMap<Uuid, (Uuid, i64)> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = json!({
                "filter": {"and": [
                    {"field": fields.fiscal_year, "op": "eq", "value": request.fiscal_year},
                    {"field": fields.measure, "op": "eq", "value": request.measure},
                ]},
                "limit": 1000,
            });
            if let Some(cursor) = &cursor {
                query["cursor"] = json!(cursor);
            }
            let page = self.records().list(ctx, &model.key, &query).await?;
            for record in &page.records {
                if let Some(person) = record
                    .fields
                    .get(&fields.assignee)
                    .and_then(Value::as_str)
                    .and_then(|p| Uuid::parse_str(p).ok())
                {
                    by_person.insert(person, (record.id, record.version));
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let names: HashMap<Uuid, String> =
            crate::store::workspaces::list_members(self.db.conn(), ctx.scope.workspace_id)
                .await?
                .into_iter()
                .map(|m| (m.account_id, m.name))
                .collect();
        let title = model.title_field.clone();
        let mut written = Vec::new();
        for (person, amount) in shares {
            let mut values = serde_json::Map::new();
            values.insert(fields.fiscal_year.clone(), json!(request.fiscal_year));
            values.insert(fields.measure.clone(), json!(request.measure));
            values.insert(fields.assignee.clone(), json!(person.to_string()));
            values.insert(fields.amount.clone(), json_number(amount));
            if let (Some(field), Some(weights)) = (&fields.months, &months) {
                values.insert(
                    field.clone(),
                    Value::Array(
                        weights
                            .iter()
                            .enumerate()
                            .map(|(i, w)| json!({"month": i + 1, "weight": json_number(*w)}))
                            .collect(),
                    ),
                );
            }
            if let Some(title) = &title
                && ![
                    &fields.fiscal_year,
                    &fields.measure,
                    &fields.assignee,
                    &fields.amount,
                ]
                .contains(&title)
            {
                values.insert(
                    title.clone(),
                    json!(format!(
                        "{} {} · {}",
                        request.fiscal_year,
                        request.measure,
                        names.get(&person).cloned().unwrap_or_default()
                    )),
                );
            }
            let outcome = match by_person.get(&person) {
                Some((id, version)) => {
                    self.records()
                        .update(
                            ctx,
                            &model.key,
                            &id.to_string(),
                            &values,
                            None,
                            Some(*version),
                        )
                        .await
                }
                None => {
                    self.records()
                        .create(
                            ctx,
                            &model.key,
                            NewRecord {
                                fields: values,
                                owner: Some(person),
                                id: None,
                            },
                        )
                        .await
                }
            };
            // Each person's target is its own write: a failure midway (someone changed one
            // meanwhile) leaves the earlier ones written. Running the split again converges.
            let record = outcome.map_err(|error| match error {
                Error::Conflict { detail, errors } => Error::Conflict {
                    detail: format!(
                        "{detail}; {} of the targets were written before it — run the split again",
                        written.len()
                    ),
                    errors,
                },
                other => other,
            })?;
            written.push(serde_json::to_value(&record).map_err(Error::internal)?);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::org::{Person, Unit, UnitKind};

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// Company → Sales (department) → East, West (teams); ann, bob in East; cat in West; dan
    /// in Sales itself.
    fn org() -> OrgTree {
        let unit = |n, parent, kind, name: &str| Unit {
            id: id(n),
            parent,
            kind,
            name: name.to_owned(),
        };
        let person = |n, unit| Person {
            account_id: id(n),
            unit,
            manager: None,
            active: true,
        };
        OrgTree::new(
            vec![
                unit(1, None, UnitKind::Department, "Sales"),
                unit(2, Some(id(1)), UnitKind::Team, "East"),
                unit(3, Some(id(1)), UnitKind::Team, "West"),
            ],
            vec![
                person(10, Some(id(2))),
                person(11, Some(id(2))),
                person(12, Some(id(3))),
                person(13, Some(id(1))),
            ],
        )
    }

    #[test]
    fn fiscal_years_may_start_in_any_month() {
        let april = fiscal_months(2026, 4).expect("months");
        assert_eq!(april[0], d("2026-04-01"));
        assert_eq!(april[11], d("2027-03-01"));
        assert_eq!(april[12], d("2027-04-01"));
        assert_eq!(
            period_bounds(2026, 4, TargetPeriod::Quarter(4)),
            Some((d("2027-01-01"), d("2027-04-01")))
        );
        assert_eq!(
            period_bounds(2026, 1, TargetPeriod::Month(2)),
            Some((d("2026-02-01"), d("2026-03-01")))
        );
        assert_eq!(
            TargetPeriod::parse("2026-W10")
                .map(TargetPeriod::name)
                .ok()
                .as_deref(),
            Some("2026-W10")
        );
        assert!(TargetPeriod::parse("Q5").is_err());
        assert!(TargetPeriod::parse("中").is_err());
        assert!(TargetPeriod::parse("é1").is_err());
        assert_eq!(
            TargetPeriod::parse("q2").ok(),
            Some(TargetPeriod::Quarter(2))
        );
        assert!(TargetPeriod::parse("2026-W60").is_err());
    }

    #[test]
    fn a_year_splits_into_quarters_months_and_weeks() {
        let months = fiscal_months(2026, 1).expect("months");
        let even = [Decimal::ONE; 12];
        let year = Decimal::new(1_200_000, 0);
        let (from, to) = period_bounds(2026, 1, TargetPeriod::Quarter(1)).expect("q1");
        assert_eq!(
            target_for(year, &even, &months, from, to),
            Decimal::new(300_000, 0)
        );
        // December weighs double: 13 shares, December 2 of them.
        let mut weights = even;
        weights[11] = Decimal::TWO;
        let (from, to) = period_bounds(2026, 1, TargetPeriod::Month(12)).expect("dec");
        assert_eq!(
            target_for(year, &weights, &months, from, to).round_dp(2),
            Decimal::new(18_461_538, 2)
        );
        // A week inside February (28 days): 7/28 of February's 100,000.
        let (from, to) = period_bounds(2026, 1, TargetPeriod::Week(2026, 7)).expect("week");
        assert_eq!(from, d("2026-02-09"));
        assert_eq!(
            target_for(year, &even, &months, from, to),
            Decimal::new(25_000, 0)
        );
        // The whole year adds back up.
        let (from, to) = period_bounds(2026, 1, TargetPeriod::Year).expect("year");
        assert_eq!(
            target_for(year, &weights, &months, from, to).round_dp(6),
            year
        );
    }

    #[test]
    fn a_total_divides_down_the_tree_to_the_cent() {
        let org = org();
        let parts = vec![
            Part {
                unit: Some(id(2)),
                person: None,
                weight: Decimal::TWO,
                split: vec![],
            },
            Part {
                unit: Some(id(3)),
                person: None,
                weight: Decimal::ONE,
                split: vec![],
            },
        ];
        let shares = divide(&org, Decimal::new(1_000_000, 2), &parts).expect("divides");
        // East 2/3 of 10,000.00 over ann and bob; West 1/3 to cat; cents add up.
        assert_eq!(
            shares[&id(10)] + shares[&id(11)] + shares[&id(12)],
            Decimal::new(1_000_000, 2)
        );
        assert_eq!(shares[&id(12)], Decimal::new(333_333, 2));
        assert!(shares.values().all(|v| v.scale() <= 2));
        let bad = divide(
            &org,
            Decimal::ONE,
            &[
                Part {
                    unit: Some(id(99)),
                    person: None,
                    weight: Decimal::ONE,
                    split: vec![],
                },
                Part {
                    unit: None,
                    person: Some(id(10)),
                    weight: Decimal::NEGATIVE_ONE,
                    split: vec![],
                },
            ],
        )
        .expect_err("refused");
        let pointers: Vec<String> = bad
            .field_errors()
            .iter()
            .map(|e| e.pointer.clone())
            .collect();
        assert_eq!(pointers, ["/split"]);
    }

    #[test]
    fn units_add_up_their_people() {
        let org = org();
        let names: HashMap<Uuid, String> = [(10, "ann"), (11, "bob"), (12, "cat"), (13, "dan")]
            .into_iter()
            .map(|(n, s)| (id(n), s.to_owned()))
            .collect();
        let targets: HashMap<Uuid, Decimal> = [(10, 100), (11, 100), (12, 200), (13, 50)]
            .into_iter()
            .map(|(n, v)| (id(n), Decimal::from(v)))
            .collect();
        let actuals: HashMap<Uuid, Decimal> = [(10, 150), (12, 100), (99, 7)]
            .into_iter()
            .map(|(n, v)| (id(n), Decimal::from(v)))
            .collect();
        let nodes = roll_up(&org, &names, "Acme", &targets, &actuals);
        let find = |name: &str| nodes.iter().find(|n| n.name == name).expect("node");
        assert_eq!(find("Acme").target, Decimal::from(450));
        assert_eq!(
            find("Acme").actual,
            Decimal::from(257),
            "a stranger's number counts for the company"
        );
        assert_eq!(find("Sales").target, Decimal::from(450));
        assert_eq!(find("East").actual, Decimal::from(150));
        assert_eq!(find("East").progress, Some(Decimal::new(75, 2)));
        assert_eq!(find("West").progress, Some(Decimal::new(5, 1)));
        assert_eq!(find("ann").progress, Some(Decimal::new(15, 1)));
        assert_eq!(nodes[0].kind, "company");
    }
}
