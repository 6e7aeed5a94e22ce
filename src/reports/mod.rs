//! Reports and dashboards: a report definition runs as one aggregate through the records door
//! (so every number respects the viewer's scope and field rules), formula measures are computed
//! over its rows with exact decimals, empty groups are filled, and each row carries the filter
//! that lists the records behind it. `present` draws results as tables and SVG charts and runs
//! admin-written templates; `export` writes CSV and XLSX.

pub mod definition;
pub mod export;
pub mod funnel;
pub mod present;
pub mod targets;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::definitions::{EntityModel, FieldKind, Kind, Registry, Snapshot};
use crate::error::{Error, FieldError, Result};
use crate::records::{Context, Records};
use crate::store::Db;

pub use definition::{ChartType, Format, Period, Report};

/// The most groups a report reads before cutting (the rest is reported as truncated).
pub const MAX_GROUPS: usize = 5_000;

/// What a dashboard or a person narrows a report to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// The period (else the report's own).
    pub period: Option<Period>,
    /// Only records this person owns.
    pub owner: Option<Uuid>,
    /// Only records owned by the people of this org unit and below.
    pub team: Option<Uuid>,
}

impl Filters {
    /// Reads `period`, `owner` and `team` from query pairs; with `strict`, any other key is
    /// refused (the API), else ignored (pages carry their own).
    ///
    /// # Errors
    /// `Error::Invalid` naming the parameter.
    pub fn parse(pairs: &[(String, String)], strict: bool) -> Result<Self> {
        let mut filters = Self::default();
        let id = |key: &str, text: &str| {
            Uuid::parse_str(text.trim())
                .map_err(|_| Error::invalid(format!("/{key}"), "uuid", format!("{key} is an id")))
        };
        for (key, value) in pairs {
            let value = value.trim();
            match key.as_str() {
                _ if value.is_empty() => {}
                "period" => filters.period = Some(Period::parse(value, "/period")?),
                "owner" => filters.owner = Some(id("owner", value)?),
                "team" => filters.team = Some(id("team", value)?),
                other if strict => {
                    return Err(Error::invalid(
                        format!("/{other}"),
                        "unknown_parameter",
                        format!("unknown parameter {other:?}; use period, owner or team"),
                    ));
                }
                _ => {}
            }
        }
        Ok(filters)
    }
}

/// A group column of a result.
#[derive(Debug, Clone, Serialize)]
pub struct GroupColumn {
    /// The field.
    pub field: String,
    /// Its date bucket.
    pub bucket: Option<String>,
    /// Its label (`{"en": …, "zh-CN": …}`).
    pub label: Value,
}

/// A measure column of a result.
#[derive(Debug, Clone, Serialize)]
pub struct MeasureColumn {
    /// Its key.
    pub key: String,
    /// Its label.
    pub label: Value,
    /// How its numbers show.
    pub format: Format,
    /// Decimal places shown.
    pub scale: u32,
    /// The currency of money measures.
    pub currency: Option<String>,
    /// The measure's own filter (its numbers list the records it keeps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

/// One group value of a row.
#[derive(Debug, Clone, Serialize)]
pub struct GroupCell {
    /// The stored value (`null` for records without one).
    pub value: Value,
    /// What to show: an option's labels, a person's or record's name, a bucket.
    pub label: Value,
    /// An option's colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// One row of a result.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Its group values.
    pub keys: Vec<GroupCell>,
    /// Its measures, in column order (`null`: nothing to measure, or a division by zero).
    pub values: Vec<Option<Decimal>>,
    /// The query-language filter listing the records behind the row.
    pub filter: Value,
}

/// The period a result covers.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodView {
    /// Its name (`this_month`, `2026-01-01..2026-03-31`).
    pub name: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day (included).
    pub to: NaiveDate,
}

/// The result of running a report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The report's key.
    pub report: String,
    /// Its label.
    pub label: Value,
    /// Its description.
    pub description: Option<Value>,
    /// The entity measured.
    pub entity: String,
    /// The presentation.
    pub chart: ChartType,
    /// The measure charts draw.
    pub chart_measure: usize,
    /// Bars run left to right.
    pub horizontal: bool,
    /// The period covered (`None`: all time).
    pub period: Option<PeriodView>,
    /// Group columns.
    pub groups: Vec<GroupColumn>,
    /// Measure columns.
    pub measures: Vec<MeasureColumn>,
    /// Rows, sorted and limited.
    pub rows: Vec<Row>,
    /// Measures over every record of the report (all rows, before the limit).
    pub totals: Vec<Option<Decimal>>,
    /// The filter behind the totals.
    pub filter: Value,
    /// The same measures over the previous period (single numbers that compare).
    pub previous: Option<Vec<Option<Decimal>>>,
    /// The previous period.
    pub previous_period: Option<PeriodView>,
    /// Rows left out by the limit or the group cap.
    pub truncated: bool,
    /// The funnel analysis from history (funnel reports that ask for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funnel: Option<funnel::Funnel>,
    /// A custom template presents the result.
    #[serde(skip)]
    pub template: Option<String>,
}

/// One item of a dashboard as run.
#[derive(Debug, Clone, Serialize)]
pub struct Tile {
    /// The report's key.
    pub report: String,
    /// The tile's title (else the report's label).
    pub title: Option<Value>,
    /// Grid columns (of 12).
    pub width: u32,
    /// Grid rows.
    pub height: u32,
    /// The result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why the report could not run for this viewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TileError>,
}

/// A report that failed on a dashboard: the others still show.
#[derive(Debug, Clone, Serialize)]
pub struct TileError {
    /// What went wrong.
    pub detail: String,
    /// Where.
    pub errors: Vec<FieldError>,
}

/// A dashboard as run.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    /// Its key.
    pub key: String,
    /// Its label.
    pub label: Value,
    /// Its description.
    pub description: Option<Value>,
    /// The filters it offers.
    pub filters: Vec<String>,
    /// The period in force.
    pub period: Option<String>,
    /// Its tiles.
    pub tiles: Vec<Tile>,
}

/// A report or dashboard a member may open.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its label.
    pub label: Value,
    /// Its description.
    pub description: Option<Value>,
    /// Its entity (reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

/// Reports bound to the services.
#[derive(Debug, Clone, Copy)]
pub struct Reports<'a> {
    /// The database.
    pub db: &'a Db,
    /// The clock.
    pub clock: &'a SharedClock,
    /// The live registry.
    pub registry: &'a Registry,
}

fn report_not_found(key: &str) -> Error {
    Error::not_found(format!("report {key:?}"))
}

/// Whether `ctx` may open a dashboard shared with `roles` (none: every member).
fn may_open(ctx: &Context, document: &Value) -> bool {
    let Some(roles) = document.get("roles").and_then(Value::as_array) else {
        return true;
    };
    match &ctx.policy {
        None => true,
        Some(policy) => {
            policy.is_admin
                || roles
                    .iter()
                    .any(|r| r.as_str() == Some(policy.role.as_str()))
        }
    }
}

impl Reports<'_> {
    fn records(&self) -> Records<'_> {
        Records {
            db: self.db,
            clock: self.clock,
            registry: self.registry,
        }
    }

    async fn snapshot(&self, ctx: &Context) -> Result<Arc<Snapshot>> {
        self.registry
            .snapshot(self.db, ctx.scope.workspace_id, ctx.scope.generation)
            .await
    }

    /// The published reports whose entity the caller may read, and the dashboards shared with
    /// them, by label.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn catalog(&self, ctx: &Context) -> Result<(Vec<Listed>, Vec<Listed>)> {
        let snapshot = self.snapshot(ctx).await?;
        let readable = |entity: &str| {
            ctx.policy
                .as_ref()
                .is_none_or(|p| p.is_admin || p.grant(entity).read != crate::access::Reach::None)
        };
        let listed = |key: &str, doc: &Value| Listed {
            key: key.to_owned(),
            label: doc.get("label").cloned().unwrap_or(Value::Null),
            description: doc.get("description").cloned(),
            entity: doc.get("entity").and_then(Value::as_str).map(str::to_owned),
        };
        let mut reports: Vec<Listed> = snapshot
            .of_kind(Kind::Report)
            .into_iter()
            .filter(|(_, p)| {
                p.document
                    .get("entity")
                    .and_then(Value::as_str)
                    .is_some_and(|e| snapshot.entity(e).is_some() && readable(e))
            })
            .map(|(key, p)| listed(key, &p.document))
            .collect();
        let mut boards: Vec<Listed> = snapshot
            .of_kind(Kind::Dashboard)
            .into_iter()
            .filter(|(_, p)| may_open(ctx, &p.document))
            .map(|(key, p)| listed(key, &p.document))
            .collect();
        let by_label = |a: &Listed, b: &Listed| {
            let text = |l: &Listed| {
                l.label
                    .get("en")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            text(a).cmp(&text(b)).then(a.key.cmp(&b.key))
        };
        reports.sort_by(by_label);
        boards.sort_by(by_label);
        Ok((reports, boards))
    }

    /// Runs a report document that is not published (a draft being designed): checked as a
    /// publish would check it, then run for `ctx`.
    ///
    /// # Errors
    /// `Error::Invalid` listing every problem of the document, then as [`Reports::run`].
    pub async fn preview(
        &self,
        ctx: &Context,
        document: &Value,
        filters: &Filters,
    ) -> Result<Outcome> {
        // Designing reports (running formulas and funnels of any shape) is for those who edit
        // definitions; everyone else runs published reports.
        if ctx
            .policy
            .as_ref()
            .is_some_and(|p| !p.may(crate::access::Right::Definitions))
        {
            return Err(Error::forbidden(
                "previewing a report needs the right to edit definitions",
            ));
        }
        let snapshot = self.snapshot(ctx).await?;
        let mut problems = crate::definitions::check_document(Kind::Report, document, "");
        if problems.is_empty() {
            let lookup = |key: &str| {
                snapshot
                    .get(Kind::Entity, key)
                    .map(|p| (*p.document).clone())
            };
            problems.extend(definition::check_references(&lookup, document, ""));
        }
        if !problems.is_empty() {
            return Err(Error::invalid_all("the report is invalid", problems));
        }
        let report = Report::compile(&crate::script::shared(), "preview", document)?;
        self.run_report(ctx, &snapshot, &report, filters).await
    }

    /// Runs the published report `key` for `ctx`.
    ///
    /// # Errors
    /// `Error::NotFound` (report or entity), `Error::Forbidden` (the entity), `Error::Invalid`
    /// (a field the viewer may not group by, a bad filter), `Error::Db`.
    pub async fn run(&self, ctx: &Context, key: &str, filters: &Filters) -> Result<Outcome> {
        let snapshot = self.snapshot(ctx).await?;
        let published = snapshot
            .get(Kind::Report, key)
            .ok_or_else(|| report_not_found(key))?;
        let report = Report::compile(&crate::script::shared(), key, &published.document)?;
        self.run_report(ctx, &snapshot, &report, filters).await
    }

    /// Runs a compiled report (a published one, or a draft being previewed).
    ///
    /// # Errors
    /// As [`Reports::run`].
    pub async fn run_report(
        &self,
        ctx: &Context,
        snapshot: &Snapshot,
        report: &Report,
        filters: &Filters,
    ) -> Result<Outcome> {
        let doc = &report.doc;
        let model = snapshot.entity(&doc.entity).ok_or_else(|| {
            Error::not_found(format!(
                "entity {:?} of report {:?}",
                doc.entity, report.key
            ))
        })?;
        let today = self.clock.now().with_timezone(&ctx.time_zone).date_naive();
        let fiscal = ctx.calendar.fiscal_year_start;
        let period = filters.period.clone().or_else(|| doc.period.clone());
        let bounds = match (&doc.date_field, &period) {
            (Some(_), Some(period)) => period.bounds(today, fiscal),
            _ => None,
        };
        let mut base = Vec::new();
        if let Some(filter) = &doc.filter {
            base.push(filter.clone());
        }
        if let Some(owner) = filters.owner {
            base.push(json!({"field": "owner", "op": "eq", "value": owner.to_string()}));
        }
        if let Some(team) = filters.team {
            let people = self.people_under(ctx, team).await?;
            base.push(json!({"field": "owner", "op": "in", "value": people}));
        }
        let period_filter = |bounds: Option<(NaiveDate, NaiveDate)>| -> Vec<Value> {
            match (&doc.date_field, bounds) {
                (Some(field), Some((start, end))) => {
                    range_conditions(&model, field, start, end, ctx.time_zone)
                }
                _ => Vec::new(),
            }
        };
        let mut filter_items = base.clone();
        filter_items.extend(period_filter(bounds));
        let filter = and_of(filter_items);
        let group_by: Vec<Value> = doc
            .group_by
            .iter()
            .map(|g| match g.bucket() {
                Some(bucket) => json!({"field": g.field(), "bucket": bucket}),
                None => json!(g.field()),
            })
            .collect();

        let (measured, truncated_groups) = self.measure(ctx, report, &filter, &group_by).await?;
        let engine = crate::script::shared();
        let finish = |values: Vec<Option<Decimal>>| complete(&engine, report, values);

        let group_fields: Vec<&str> = doc.group_by.iter().map(|g| g.field()).collect();
        let labeler = self
            .labeler(ctx, snapshot, &model, &group_fields, &measured)
            .await;
        let mut rows = Vec::new();
        for found in &measured {
            let mut keys = Vec::new();
            let mut conditions = vec![filter.clone()];
            for (group, value) in doc.group_by.iter().zip(&found.keys) {
                conditions.extend(group_condition(
                    &model,
                    group.field(),
                    group.bucket().or(default_bucket(&model, group.field())),
                    value,
                    ctx.time_zone,
                ));
                keys.push(labeler.cell(group.field(), group.bucket().is_some(), value));
            }
            rows.push(Row {
                keys,
                values: finish(found.values.clone())?,
                filter: and_of(conditions),
            });
        }
        if doc.group_by.len() == 1 {
            let filled = fill_empty_groups(
                &model,
                &doc.group_by[0],
                bounds,
                &rows,
                &labeler,
                &filter,
                ctx.time_zone,
            );
            for (keys, row_filter) in filled {
                rows.push(Row {
                    keys,
                    values: finish(zeros(report))?,
                    filter: row_filter,
                });
            }
        }
        sort_rows(report, &model, &mut rows);

        // Totals: counts and sums add up over the groups; other measures need the whole set.
        let additive = report.measures.iter().all(|(m, kind)| {
            matches!(kind, definition::MeasureKind::Formula(_))
                || matches!(m.op.as_deref(), Some("count" | "sum"))
        });
        let totals = if doc.group_by.is_empty() {
            match measured.first() {
                Some(found) => finish(found.values.clone())?,
                None => finish(zeros(report))?,
            }
        } else if additive && !truncated_groups {
            let mut sums = zeros(report);
            for found in &measured {
                for (sum, value) in sums.iter_mut().zip(&found.values) {
                    if let (Some(sum), Some(value)) = (sum.as_mut(), value) {
                        *sum += *value;
                    }
                }
            }
            finish(sums)?
        } else {
            let (whole, _) = self.measure(ctx, report, &filter, &[]).await?;
            finish(
                whole
                    .into_iter()
                    .next()
                    .map_or_else(|| zeros(report), |m| m.values),
            )?
        };

        let chart = report.chart();
        let (previous, previous_period) = match (chart.compare, bounds) {
            (true, Some((start, end))) => match period
                .as_ref()
                .and_then(|p| definition::previous(p, start, end))
            {
                Some((from, to)) => {
                    let mut items = base.clone();
                    items.extend(period_filter(Some((from, to))));
                    let (before, _) = self.measure(ctx, report, &and_of(items), &[]).await?;
                    let values = before
                        .into_iter()
                        .next()
                        .map_or_else(|| zeros(report), |m| m.values);
                    (
                        Some(finish(values)?),
                        Some(PeriodView {
                            name: "previous".to_owned(),
                            from,
                            to: to - Duration::days(1),
                        }),
                    )
                }
                None => (None, None),
            },
            _ => (None, None),
        };

        let funnel = match (&doc.funnel, doc.group_by.first()) {
            (Some(spec), Some(stage)) if chart.kind == ChartType::Funnel => Some(
                self.run_funnel(ctx, &model, stage.field(), spec, &filter)
                    .await?,
            ),
            _ => None,
        };
        let limit = doc.limit.unwrap_or(MAX_GROUPS);
        let truncated = truncated_groups || rows.len() > limit;
        rows.truncate(limit);
        let chart_measure = chart
            .measure
            .as_ref()
            .and_then(|m| report.measures.iter().position(|(d, _)| &d.key == m))
            .unwrap_or(0);
        Ok(Outcome {
            report: report.key.clone(),
            label: doc.label.clone(),
            description: doc.description.clone(),
            entity: doc.entity.clone(),
            chart: chart.kind,
            chart_measure,
            horizontal: chart.horizontal,
            period: match (&period, bounds) {
                (Some(period), Some((from, to))) => Some(PeriodView {
                    name: period.name(),
                    from,
                    to: to - Duration::days(1),
                }),
                _ => None,
            },
            groups: doc
                .group_by
                .iter()
                .map(|g| GroupColumn {
                    field: g.field().to_owned(),
                    bucket: g.bucket().map(str::to_owned),
                    label: g
                        .label()
                        .cloned()
                        .unwrap_or_else(|| field_label(&model, g.field())),
                })
                .collect(),
            measures: self.measure_columns(report, &model),
            rows,
            totals,
            filter,
            previous,
            previous_period,
            truncated,
            funnel,
            template: doc.template.clone(),
        })
    }

    /// The funnel of the records `filter` keeps, from their history of `stage`.
    async fn run_funnel(
        &self,
        ctx: &Context,
        model: &EntityModel,
        stage: &str,
        spec: &definition::FunnelDoc,
        filter: &Value,
    ) -> Result<funnel::Funnel> {
        let options = |field: &str| -> Vec<Value> {
            model
                .document
                .pointer(&format!("/properties/{field}/x-options"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        // Colours go into style attributes: only real colours pass.
        let colour = |v: &Value| text(v, "color").filter(|c| crate::render::forms::is_color(c));
        let stages: Vec<funnel::StageOption> = options(stage)
            .iter()
            .filter_map(|o| {
                let value = text(o, "value")?;
                (!spec.lost.contains(&value)).then(|| funnel::StageOption {
                    value,
                    label: o.get("label").cloned().unwrap_or(Value::Null),
                    color: colour(o),
                })
            })
            .collect();
        let mut tracked = Vec::new();
        let mut created = HashMap::new();
        let mut cursor: Option<String> = None;
        let mut truncated = false;
        loop {
            let mut query = json!({"limit": 1000});
            if !filter.is_null() {
                query["filter"] = filter.clone();
            }
            if let Some(cursor) = &cursor {
                query["cursor"] = json!(cursor);
            }
            let page = self.records().list(ctx, &model.key, &query).await?;
            for record in page.records {
                let get = |key: &str| {
                    record
                        .fields
                        .get(key)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                created.insert(record.id, record.created_at);
                tracked.push(funnel::Tracked {
                    id: record.id,
                    current: get(stage),
                    reason: spec.lost_reason.as_deref().and_then(get),
                    moves: Vec::new(),
                });
            }
            match page.next_cursor {
                Some(next) if tracked.len() < funnel::MAX_RECORDS => cursor = Some(next),
                Some(_) => {
                    truncated = true;
                    break;
                }
                None => break,
            }
        }
        let ids: Vec<Uuid> = tracked.iter().map(|t| t.id).collect();
        let mut moves: HashMap<Uuid, Vec<funnel::Move>> = HashMap::new();
        for (id, at, value) in
            crate::store::records::field_moves(self.db.conn(), model.definition_id, &ids, stage)
                .await?
        {
            moves
                .entry(id)
                .or_default()
                .push((at, value.as_str().map(str::to_owned)));
        }
        for record in &mut tracked {
            record.moves = moves.remove(&record.id).unwrap_or_default();
            // A record whose stage predates its history (imported, or set before history
            // recorded it) has held its stage since it was created.
            if record.moves.is_empty()
                && let (Some(current), Some(at)) = (&record.current, created.get(&record.id))
            {
                record.moves.push((*at, Some(current.clone())));
            }
        }
        let mut result =
            funnel::analyse(&stages, &spec.lost, &tracked, self.clock.now(), truncated);
        for stage_out in &mut result.stages {
            stage_out.filter = and_of(vec![
                filter.clone(),
                json!({"field": stage, "op": "eq", "value": stage_out.value}),
            ]);
        }
        let reason_options = spec.lost_reason.as_deref().map(options).unwrap_or_default();
        for reason in &mut result.reasons {
            let option = reason_options
                .iter()
                .find(|o| o.get("value") == Some(&reason.value));
            reason.label = option
                .and_then(|o| o.get("label").cloned())
                .unwrap_or_else(|| match &reason.value {
                    Value::Null => json!({"en": "(no reason)", "zh-CN": "（未填写原因）"}),
                    other => other.clone(),
                });
            reason.color = option.and_then(colour);
            let mut conditions = vec![
                filter.clone(),
                json!({"field": stage, "op": "in", "value": spec.lost}),
            ];
            if let Some(field) = &spec.lost_reason {
                conditions.push(match &reason.value {
                    Value::Null => json!({"field": field, "op": "is_empty"}),
                    value => json!({"field": field, "op": "eq", "value": value}),
                });
            }
            reason.filter = and_of(conditions);
        }
        Ok(result)
    }

    /// The aggregate measures of a report per group: one aggregate per distinct measure
    /// filter (all with the same groups), merged by group values. Formula slots stay empty;
    /// counts and sums of groups one aggregate has and another lacks are zero. The flag says
    /// the group cap cut the result.
    async fn measure(
        &self,
        ctx: &Context,
        report: &Report,
        filter: &Value,
        group_by: &[Value],
    ) -> Result<(Vec<Measured>, bool)> {
        let plan = plan_queries(report);
        let mut merged: Vec<Measured> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        let mut truncated = false;
        for query in &plan {
            let mut body = json!({
                "group_by": group_by,
                "metrics": query.metrics,
                "limit": MAX_GROUPS + 1,
            });
            let scoped = and_of(vec![
                filter.clone(),
                query.filter.clone().unwrap_or(Value::Null),
            ]);
            if !scoped.is_null() {
                body["filter"] = scoped;
            }
            let found = self
                .records()
                .aggregate(ctx, &report.doc.entity, &body)
                .await
                .map_err(|e| at_report(e, query))?;
            let metric_names = names(&found, "metrics");
            let group_names = names(&found, "group_by");
            let rows = found
                .get("rows")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            truncated |= rows.len() > MAX_GROUPS;
            for raw in rows.iter().take(MAX_GROUPS) {
                let keys: Vec<Value> = group_names
                    .iter()
                    .map(|n| raw.get(n).cloned().unwrap_or(Value::Null))
                    .collect();
                let id = Value::Array(keys.clone()).to_string();
                let slot = match at.get(&id) {
                    Some(slot) => *slot,
                    None => {
                        at.insert(id, merged.len());
                        merged.push(Measured {
                            keys,
                            values: zeros(report),
                        });
                        merged.len() - 1
                    }
                };
                for (measure, metric) in &query.measures {
                    let value = metric_names
                        .get(*metric)
                        .and_then(|name| raw.get(name))
                        .and_then(decimal_of);
                    let additive = matches!(
                        report.measures[*measure].0.op.as_deref(),
                        Some("count" | "sum")
                    );
                    merged[slot].values[*measure] = value.or(additive.then_some(Decimal::ZERO));
                }
            }
        }
        Ok((merged, truncated))
    }

    /// The report `key` for `ctx` as an email in `locale`: its subject (the report's label),
    /// an HTML body (table or number, or its custom template) and a plain-text one. `app_url`
    /// is where the report page lives, for a link.
    ///
    /// # Errors
    /// As [`Reports::run`]; `Error::Internal` if the email template fails.
    pub async fn email(
        &self,
        ctx: &Context,
        key: &str,
        filters: &Filters,
        locale: crate::render::i18n::Locale,
        app_url: Option<&str>,
    ) -> Result<(String, String, String)> {
        let outcome = self.run(ctx, key, filters).await?;
        let list_url = app_url.map_or_else(String::new, |base| {
            format!("{}/e/{}", base.trim_end_matches('/'), outcome.entity)
        });
        let mut shaped = present::view(&outcome, locale, &list_url);
        if let Some(template) = &outcome.template {
            // A failing template falls back to the table; the error is the page's to show.
            if let Ok(html) = present::render_template(template, &shaped) {
                shaped["custom"] = json!(html);
            }
        }
        let subject = present::label_text(&outcome.label, locale);
        let link = app_url.map(|base| format!("{}/reports/{key}", base.trim_end_matches('/')));
        let html = crate::render::Pages::shared()?.render(
            "email_report.html",
            json!({"lang": locale.tag(), "r": shaped, "link": link}),
        )?;
        let text = present::plain_text(&shaped, link.as_deref());
        Ok((subject, html, text))
    }

    /// Runs every report of the dashboard `key` the caller may open; a report that fails for
    /// this viewer shows its error in its tile.
    ///
    /// # Errors
    /// `Error::NotFound` (the dashboard, or one not shared with the caller), `Error::Db`.
    pub async fn dashboard(&self, ctx: &Context, key: &str, filters: &Filters) -> Result<Board> {
        let snapshot = self.snapshot(ctx).await?;
        let published = snapshot
            .get(Kind::Dashboard, key)
            .filter(|p| may_open(ctx, &p.document))
            .ok_or_else(|| Error::not_found(format!("dashboard {key:?}")))?;
        let document = published.document.clone();
        let default_period = document
            .get("period")
            .cloned()
            .and_then(|p| serde_json::from_value::<Period>(p).ok());
        let mut filters = filters.clone();
        if filters.period.is_none() {
            filters.period = default_period;
        }
        let items: Vec<&Value> = document
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let report_of = |item: &Value| {
            item.get("report")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        // The tiles run together: each is its own read, and the engines serve them in parallel.
        let filters = &filters;
        let results = futures::future::join_all(items.iter().map(|item| {
            let report = report_of(item);
            async move { self.run(ctx, &report, filters).await }
        }))
        .await;
        let mut tiles = Vec::new();
        for (item, result) in items.iter().zip(results) {
            let size = |key: &str, default: u32| {
                item.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(default)
            };
            let (outcome, error) = match result {
                Ok(outcome) => (Some(outcome), None),
                Err(Error::Db(e)) => return Err(Error::Db(e)),
                Err(other) => (
                    None,
                    Some(TileError {
                        detail: other.to_string(),
                        errors: other.field_errors().to_vec(),
                    }),
                ),
            };
            tiles.push(Tile {
                report: report_of(item),
                title: item.get("title").cloned(),
                width: size("width", 6),
                height: size("height", 1),
                outcome,
                error,
            });
        }
        Ok(Board {
            key: key.to_owned(),
            label: document.get("label").cloned().unwrap_or(Value::Null),
            description: document.get("description").cloned(),
            filters: document
                .get("filters")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            period: filters.period.as_ref().map(Period::name),
            tiles,
        })
    }

    async fn people_under(&self, ctx: &Context, unit: Uuid) -> Result<Vec<String>> {
        let org = match &ctx.policy {
            Some(policy) => policy.org().clone(),
            None => {
                let units =
                    crate::store::people::units(self.db.conn(), ctx.scope.workspace_id).await?;
                if !units.iter().any(|u| u.id == unit) {
                    return Err(Error::invalid("/team", "unknown_unit", "no such team"));
                }
                return Err(Error::invalid(
                    "/team",
                    "team",
                    "a team filter needs a person's view",
                ));
            }
        };
        if org.unit(unit).is_none() {
            return Err(Error::invalid("/team", "unknown_unit", "no such team"));
        }
        Ok(org
            .people_under(unit)
            .into_iter()
            .map(|id| id.to_string())
            .collect())
    }

    fn measure_columns(&self, report: &Report, model: &EntityModel) -> Vec<MeasureColumn> {
        report
            .measures
            .iter()
            .map(|(m, _)| {
                let field = m.field.as_deref().and_then(|f| model.field(f));
                let (format, scale, currency) = match (m.format, field.map(|f| &f.kind)) {
                    (Some(Format::Percent), _) => (Format::Percent, m.scale.unwrap_or(1), None),
                    (Some(format), Some(FieldKind::Money { currency, scale })) => {
                        (format, m.scale.unwrap_or(*scale), Some(currency.clone()))
                    }
                    (Some(Format::Integer), _) => (Format::Integer, 0, None),
                    (Some(format), _) => (format, m.scale.unwrap_or(2), None),
                    (None, _) if m.op.as_deref() == Some("count") => (Format::Integer, 0, None),
                    (None, Some(FieldKind::Money { currency, scale })) => (
                        Format::Money,
                        m.scale.unwrap_or(*scale),
                        Some(currency.clone()),
                    ),
                    (None, Some(FieldKind::Integer)) if m.op.as_deref() != Some("avg") => {
                        (Format::Integer, 0, None)
                    }
                    (None, Some(FieldKind::Percent)) => {
                        (Format::Number, m.scale.unwrap_or(1), None)
                    }
                    (None, _) => (Format::Number, m.scale.unwrap_or(2), None),
                };
                let label = m.label.clone().unwrap_or_else(|| match (&m.op, &m.field) {
                    (Some(op), Some(field)) => {
                        let name = field_label(model, field);
                        json!({
                            "en": format!("{} of {}", op_label(op, false), text_of(&name, "en")),
                            "zh-CN": format!("{}{}", text_of(&name, "zh-CN"), op_label(op, true)),
                        })
                    }
                    (Some(_), None) => json!({"en": "Count", "zh-CN": "数量"}),
                    _ => json!({"en": m.key}),
                });
                MeasureColumn {
                    key: m.key.clone(),
                    label,
                    format,
                    scale,
                    currency,
                    filter: m.filter.clone(),
                }
            })
            .collect()
    }

    /// Names for the group values of `rows`: option labels, people, record titles.
    async fn labeler(
        &self,
        ctx: &Context,
        snapshot: &Snapshot,
        model: &EntityModel,
        fields: &[&str],
        rows: &[Measured],
    ) -> Labeler {
        let mut labeler = Labeler::default();
        for (g, field) in fields.iter().enumerate() {
            let values = || {
                rows.iter()
                    .filter_map(|r| r.keys.get(g).and_then(Value::as_str).map(str::to_owned))
            };
            match model.field(field).map(|f| &f.kind) {
                Some(FieldKind::SingleSelect { .. }) => {
                    let options = model
                        .document
                        .pointer(&format!("/properties/{field}/x-options"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    labeler.options.insert((*field).to_owned(), options);
                }
                Some(FieldKind::Reference { entity, .. }) => {
                    let ids: Vec<String> = values().collect();
                    if ids.is_empty() {
                        continue;
                    }
                    let Some(target) = snapshot.entity(entity) else {
                        continue;
                    };
                    for chunk in ids.chunks(1000) {
                        let query = json!({"filter": {"field": "id", "op": "in", "value": chunk}, "limit": 1000});
                        if let Ok(page) = self.records().list(ctx, entity, &query).await {
                            for record in page.records {
                                let title = target
                                    .title_field
                                    .as_ref()
                                    .and_then(|t| record.fields.get(t))
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| record.id.to_string());
                                labeler.titles.insert(record.id.to_string(), title);
                            }
                        }
                    }
                }
                Some(FieldKind::User) | None if labeler.people.is_empty() => {
                    if let Ok(members) = crate::store::workspaces::list_members(
                        self.db.conn(),
                        ctx.scope.workspace_id,
                    )
                    .await
                    {
                        labeler.people = members
                            .into_iter()
                            .map(|m| (m.account_id.to_string(), m.name))
                            .collect();
                    }
                }
                _ => {}
            }
        }
        labeler
    }
}

/// Names of group values.
#[derive(Debug, Default)]
struct Labeler {
    options: HashMap<String, Vec<Value>>,
    people: HashMap<String, String>,
    titles: HashMap<String, String>,
}

impl Labeler {
    fn cell(&self, field: &str, bucketed: bool, value: &Value) -> GroupCell {
        let empty = json!({"en": "(empty)", "zh-CN": "（空）"});
        if value.is_null() {
            return GroupCell {
                value: Value::Null,
                label: empty,
                color: None,
            };
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !bucketed && let Some(options) = self.options.get(field) {
            let option = options
                .iter()
                .find(|o| o.get("value").and_then(Value::as_str) == Some(text.as_str()));
            return GroupCell {
                value: value.clone(),
                label: option
                    .and_then(|o| o.get("label").cloned())
                    .unwrap_or(Value::String(text)),
                color: option
                    .and_then(|o| o.get("color"))
                    .and_then(Value::as_str)
                    .filter(|c| crate::render::forms::is_color(c))
                    .map(str::to_owned),
            };
        }
        let label = self
            .people
            .get(&text)
            .or_else(|| self.titles.get(&text))
            .cloned()
            .unwrap_or(text);
        GroupCell {
            value: value.clone(),
            label: Value::String(label),
            color: None,
        }
    }
}

fn names(found: &Value, key: &str) -> Vec<String> {
    found
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One aggregate a report runs: the measures sharing a filter, as metrics.
#[derive(Debug)]
struct Query {
    filter: Option<Value>,
    metrics: Vec<Value>,
    /// (measure index, metric index).
    measures: Vec<(usize, usize)>,
}

/// The aggregates a report needs: one per distinct measure filter, each with its distinct
/// (op, field) metrics.
fn plan_queries(report: &Report) -> Vec<Query> {
    let mut plan: Vec<Query> = Vec::new();
    for (i, (doc, kind)) in report.measures.iter().enumerate() {
        let definition::MeasureKind::Aggregate { op, field } = kind else {
            continue;
        };
        let q = match plan.iter().position(|q| q.filter == doc.filter) {
            Some(q) => q,
            None => {
                plan.push(Query {
                    filter: doc.filter.clone(),
                    metrics: Vec::new(),
                    measures: Vec::new(),
                });
                plan.len() - 1
            }
        };
        let metric = match field {
            Some(field) => json!({"op": op, "field": field}),
            None => json!({"op": op}),
        };
        let query = &mut plan[q];
        let m = match query.metrics.iter().position(|x| *x == metric) {
            Some(m) => m,
            None => {
                query.metrics.push(metric);
                query.metrics.len() - 1
            }
        };
        query.measures.push((i, m));
    }
    plan
}

/// The aggregate values of one group.
#[derive(Debug, Clone)]
struct Measured {
    keys: Vec<Value>,
    values: Vec<Option<Decimal>>,
}

/// Measures of an empty group: counts and sums zero, the rest nothing.
fn zeros(report: &Report) -> Vec<Option<Decimal>> {
    report
        .measures
        .iter()
        .map(|(m, _)| matches!(m.op.as_deref(), Some("count" | "sum")).then_some(Decimal::ZERO))
        .collect()
}

/// Fills the formula measures of one row, in order, from the measures before each.
fn complete(
    engine: &crate::script::ScriptEngine,
    report: &Report,
    mut values: Vec<Option<Decimal>>,
) -> Result<Vec<Option<Decimal>>> {
    for (i, (_, kind)) in report.measures.iter().enumerate() {
        if let definition::MeasureKind::Formula(script) = kind {
            let inputs: Vec<(&str, Option<Decimal>)> = report.measures[..i]
                .iter()
                .zip(&values)
                .map(|((m, _), v)| (m.key.as_str(), *v))
                .collect();
            values[i] =
                definition::evaluate(engine, script, &inputs, &format!("/measures/{i}/formula"))?;
        }
    }
    Ok(values)
}

/// An aggregate's problem re-pointed at the report: `/metrics/i` → the measure using it.
fn at_report(error: Error, query: &Query) -> Error {
    match error {
        Error::Invalid { detail, errors } => Error::Invalid {
            detail: format!("the report cannot run: {detail}"),
            errors: errors
                .into_iter()
                .map(|mut e| {
                    if let Some(rest) = e.pointer.strip_prefix("/metrics/") {
                        let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
                        if let Some((measure, _)) = index
                            .parse::<usize>()
                            .ok()
                            .and_then(|m| query.measures.iter().find(|(_, at)| *at == m))
                        {
                            e.pointer = if tail.is_empty() {
                                format!("/measures/{measure}")
                            } else {
                                format!("/measures/{measure}/{tail}")
                            };
                        }
                    }
                    e
                })
                .collect(),
        },
        other => other,
    }
}

fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(Decimal::from)
            .or_else(|| n.as_f64().and_then(|f| Decimal::try_from(f).ok())),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn and_of(mut items: Vec<Value>) -> Value {
    items.retain(|v| !v.is_null());
    match items.len() {
        0 => Value::Null,
        1 => items.pop().unwrap_or(Value::Null),
        _ => json!({"and": items}),
    }
}

fn is_datetime(model: &EntityModel, field: &str) -> bool {
    matches!(field, "created_at" | "updated_at")
        || matches!(
            model.field(field).map(|f| &f.kind),
            Some(FieldKind::DateTime)
        )
}

/// The aggregate's default bucket: datetimes group by day.
fn default_bucket(model: &EntityModel, field: &str) -> Option<&'static str> {
    is_datetime(model, field).then_some("day")
}

/// `field` within the local dates `[start, end)`.
fn range_conditions(
    model: &EntityModel,
    field: &str,
    start: NaiveDate,
    end: NaiveDate,
    zone: chrono_tz::Tz,
) -> Vec<Value> {
    let bound = |date: NaiveDate| -> Value {
        if is_datetime(model, field) {
            let at = crate::records::query::local_midnight(date, zone);
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        } else {
            Value::String(date.format("%Y-%m-%d").to_string())
        }
    };
    vec![
        json!({"field": field, "op": "gte", "value": bound(start)}),
        json!({"field": field, "op": "lt", "value": bound(end)}),
    ]
}

/// The local dates `[start, end)` of a bucket label (`2026-11`, `2026-W48`, `2026-Q4`, …).
pub fn bucket_bounds(bucket: &str, label: &str) -> Option<(NaiveDate, NaiveDate)> {
    let date = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1);
    match bucket {
        "day" => {
            let day = NaiveDate::parse_from_str(label, "%Y-%m-%d").ok()?;
            Some((day, day + Duration::days(1)))
        }
        "week" => {
            let (year, week) = label.split_once("-W")?;
            let start = NaiveDate::from_isoywd_opt(
                year.parse().ok()?,
                week.parse().ok()?,
                chrono::Weekday::Mon,
            )?;
            Some((start, start + Duration::days(7)))
        }
        "month" => {
            let (year, month) = label.split_once('-')?;
            let start = date(year.parse().ok()?, month.parse().ok()?)?;
            Some((start, definition::add_months(start, 1)?))
        }
        "quarter" => {
            let (year, quarter) = label.split_once("-Q")?;
            let quarter: u32 = quarter.parse().ok()?;
            let start = date(year.parse().ok()?, quarter.checked_sub(1)? * 3 + 1)?;
            Some((start, definition::add_months(start, 3)?))
        }
        "year" => {
            let start = date(label.parse().ok()?, 1)?;
            Some((start, definition::add_months(start, 12)?))
        }
        _ => None,
    }
}

/// The conditions selecting one group value.
fn group_condition(
    model: &EntityModel,
    field: &str,
    bucket: Option<&str>,
    value: &Value,
    zone: chrono_tz::Tz,
) -> Vec<Value> {
    if value.is_null() {
        return vec![json!({"field": field, "op": "is_empty"})];
    }
    if let (Some(bucket), Some(label)) = (bucket, value.as_str())
        && let Some((start, end)) = bucket_bounds(bucket, label)
    {
        return range_conditions(model, field, start, end, zone);
    }
    vec![json!({"field": field, "op": "eq", "value": value})]
}

/// Group rows for the values a one-key report has no records for: every option of a select,
/// every bucket of a bounded period.
fn fill_empty_groups(
    model: &EntityModel,
    group: &definition::GroupDoc,
    bounds: Option<(NaiveDate, NaiveDate)>,
    rows: &[Row],
    labeler: &Labeler,
    filter: &Value,
    zone: chrono_tz::Tz,
) -> Vec<(Vec<GroupCell>, Value)> {
    let field = group.field();
    let present: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| r.keys.first())
        .map(|k| k.value.to_string())
        .collect();
    let mut missing: Vec<Value> = Vec::new();
    match (group.bucket(), model.field(field).map(|f| &f.kind)) {
        (None, Some(FieldKind::SingleSelect { options })) => {
            missing.extend(options.iter().map(|o| Value::String(o.clone())));
        }
        (Some(bucket), _) => {
            if let Some((start, end)) = bounds {
                let mut day = start;
                let mut guard = 0;
                while day < end && guard < 1000 {
                    let label = crate::domain::query::Bucket::parse(bucket)
                        .map(|b| b.label(day))
                        .unwrap_or_default();
                    if !missing.iter().any(|m| m.as_str() == Some(label.as_str())) {
                        missing.push(Value::String(label.clone()));
                    }
                    day = bucket_bounds(bucket, &label).map_or(end, |(_, next)| next);
                    guard += 1;
                }
            }
        }
        _ => {}
    }
    missing
        .into_iter()
        .filter(|v| !present.contains(&v.to_string()))
        .filter(|v| !excluded_by(filter, field, v))
        .map(|value| {
            let mut conditions = vec![filter.clone()];
            conditions.extend(group_condition(model, field, group.bucket(), &value, zone));
            (
                vec![labeler.cell(field, group.bucket().is_some(), &value)],
                and_of(conditions),
            )
        })
        .collect()
}

/// Whether a plain condition of `filter` (alone or in a top-level `and`) on `field` keeps
/// `value` out, so that filling empty groups does not bring back what the report excludes.
fn excluded_by(filter: &Value, field: &str, value: &Value) -> bool {
    if let Some(items) = filter.get("and").and_then(Value::as_array) {
        return items.iter().any(|item| excluded_by(item, field, value));
    }
    if filter.get("field").and_then(Value::as_str) != Some(field) {
        return false;
    }
    let operand = filter.get("value");
    let listed = || {
        operand
            .and_then(Value::as_array)
            .is_some_and(|list| list.contains(value))
    };
    match filter.get("op").and_then(Value::as_str) {
        Some("eq") => operand != Some(value),
        Some("ne") => operand == Some(value),
        Some("in") => !listed(),
        Some("not_in") => listed(),
        _ => false,
    }
}

/// The report's sort, else: buckets in time order, options in their order, the first measure
/// largest first.
fn sort_rows(report: &Report, model: &EntityModel, rows: &mut [Row]) {
    let doc = &report.doc;
    let option_rank = |g: usize, value: &Value| -> usize {
        let field = doc.group_by.get(g).map(|x| x.field()).unwrap_or_default();
        match model.field(field).map(|f| &f.kind) {
            Some(FieldKind::SingleSelect { options }) if doc.group_by[g].bucket().is_none() => {
                value
                    .as_str()
                    .and_then(|v| options.iter().position(|o| o == v))
                    .unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    };
    // People and records sort by the names shown, not by their ids.
    let by_name = |g: usize| {
        let field = doc.group_by.get(g).map(|x| x.field()).unwrap_or_default();
        matches!(field, "owner" | "created_by" | "updated_by")
            || matches!(
                model.field(field).map(|f| &f.kind),
                Some(FieldKind::User | FieldKind::Reference { .. })
            )
    };
    let compare_group = |g: usize, a: &Row, b: &Row| -> std::cmp::Ordering {
        let (x, y) = (&a.keys[g].value, &b.keys[g].value);
        if by_name(g) {
            let name = |row: &Row| row.keys[g].label.as_str().unwrap_or_default().to_owned();
            return name(a).cmp(&name(b));
        }
        option_rank(g, x).cmp(&option_rank(g, y)).then_with(|| {
            match (decimal_of(x), decimal_of(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.to_string().cmp(&y.to_string()),
            }
        })
    };
    let compare_measure = |m: usize, a: &Row, b: &Row| -> std::cmp::Ordering {
        match (
            a.values.get(m).copied().flatten(),
            b.values.get(m).copied().flatten(),
        ) {
            (Some(p), Some(q)) => p.cmp(&q),
            _ => std::cmp::Ordering::Equal,
        }
    };
    // Empty values come last whichever way a key sorts.
    let empty_last = |is_group: bool, i: usize, a: &Row, b: &Row| -> std::cmp::Ordering {
        let empty = |row: &Row| {
            if is_group {
                row.keys[i].value.is_null()
            } else {
                row.values.get(i).copied().flatten().is_none()
            }
        };
        empty(a).cmp(&empty(b))
    };
    let mut keys: Vec<(bool, usize, bool)> = Vec::new(); // (is_group, index, descending)
    for sort in &doc.sort {
        if let Some(m) = report.measures.iter().position(|(d, _)| d.key == sort.by) {
            keys.push((false, m, sort.direction.as_deref() != Some("asc")));
        } else if let Some(g) = doc.group_by.iter().position(|x| x.field() == sort.by) {
            keys.push((true, g, sort.direction.as_deref() == Some("desc")));
        }
    }
    if keys.is_empty() {
        let ordered_first = doc.group_by.first().is_some_and(|g| {
            g.bucket().is_some()
                || matches!(
                    model.field(g.field()).map(|f| &f.kind),
                    Some(FieldKind::SingleSelect { .. } | FieldKind::Date | FieldKind::DateTime)
                )
        }) || matches!(
            report.chart().kind,
            ChartType::Line | ChartType::Funnel
        );
        if ordered_first {
            for g in 0..doc.group_by.len() {
                keys.push((true, g, false));
            }
        } else {
            keys.push((false, 0, true));
            for g in 0..doc.group_by.len() {
                keys.push((true, g, false));
            }
        }
    }
    rows.sort_by(|a, b| {
        for (is_group, i, descending) in &keys {
            let order = if *is_group {
                compare_group(*i, a, b)
            } else {
                compare_measure(*i, a, b)
            };
            let order = if *descending { order.reverse() } else { order };
            let order = empty_last(*is_group, *i, a, b).then(order);
            if order != std::cmp::Ordering::Equal {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    });
}

/// A field's label in every language the definition gives (`{"en": …}`).
fn field_label(model: &EntityModel, field: &str) -> Value {
    let system = match field {
        "owner" => Some(json!({"en": "Owner", "zh-CN": "负责人"})),
        "created_at" => Some(json!({"en": "Created", "zh-CN": "创建时间"})),
        "updated_at" => Some(json!({"en": "Updated", "zh-CN": "更新时间"})),
        "created_by" => Some(json!({"en": "Created by", "zh-CN": "创建人"})),
        "updated_by" => Some(json!({"en": "Updated by", "zh-CN": "更新人"})),
        _ => None,
    };
    system.unwrap_or_else(|| {
        model
            .document
            .pointer(&format!("/properties/{field}/x-label"))
            .cloned()
            .unwrap_or_else(|| json!({"en": field}))
    })
}

fn text_of(label: &Value, lang: &str) -> String {
    label
        .get(lang)
        .or_else(|| label.get("en"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn op_label(op: &str, chinese: bool) -> &'static str {
    match (op, chinese) {
        ("sum", false) => "Sum",
        ("avg", false) => "Average",
        ("min", false) => "Minimum",
        ("max", false) => "Maximum",
        ("sum", true) => "合计",
        ("avg", true) => "平均值",
        ("min", true) => "最小值",
        ("max", true) => "最大值",
        (_, false) => "Count",
        (_, true) => "数量",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn bucket_labels_map_back_to_their_days() {
        assert_eq!(
            bucket_bounds("month", "2026-11"),
            Some((d("2026-11-01"), d("2026-12-01")))
        );
        assert_eq!(
            bucket_bounds("quarter", "2026-Q4"),
            Some((d("2026-10-01"), d("2027-01-01")))
        );
        assert_eq!(
            bucket_bounds("week", "2026-W49"),
            Some((d("2026-11-30"), d("2026-12-07")))
        );
        assert_eq!(
            bucket_bounds("year", "2026"),
            Some((d("2026-01-01"), d("2027-01-01")))
        );
        assert_eq!(
            bucket_bounds("day", "2026-02-28"),
            Some((d("2026-02-28"), d("2026-03-01")))
        );
        assert_eq!(bucket_bounds("quarter", "2026-Q0"), None);
        assert_eq!(bucket_bounds("month", "soon"), None);
    }

    #[test]
    fn every_bucket_label_round_trips() {
        use crate::domain::query::Bucket;
        let mut day = d("2025-12-20");
        while day < d("2027-01-10") {
            for (name, bucket) in [
                ("day", Bucket::Day),
                ("week", Bucket::Week),
                ("month", Bucket::Month),
                ("quarter", Bucket::Quarter),
                ("year", Bucket::Year),
            ] {
                let (start, end) = bucket_bounds(name, &bucket.label(day)).expect("bounds");
                assert!(start <= day && day < end, "{name} {day}");
            }
            day += Duration::days(1);
        }
    }
}
