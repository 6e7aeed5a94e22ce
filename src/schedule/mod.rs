//! Calendars of records: any entity with a date or datetime field seen as a month, a week or
//! an agenda (days in the workspace's time zone), filtered by owner or team, with the caller's
//! scope and field rules as in any list; rescheduling a record to another day is an ordinary
//! update (same validation, history and workflows), keeping a datetime's time of day. Each
//! member may have an iCalendar feed of their own records on the workspace's calendar views,
//! read by calendar apps through an address with a secret they can revoke ([`ics`]).

pub mod ics;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::definitions::{EntityModel, FieldKind, Kind};
use crate::error::{Error, Result};
use crate::records::{Channel, Context, RecordView, Records};
use crate::store::feeds::{self, FeedRow};
use crate::store::write::{Sharing, committed};
use crate::workspaces::{Access, AccessCache};

/// Most records one calendar answer holds.
pub const MAX_EVENTS: u64 = 1_000;
/// Longest span one calendar answer covers.
const MAX_DAYS: i64 = 62;
/// What a feed covers: from a month back to half a year ahead.
const FEED_BACK_DAYS: i64 = 31;
const FEED_AHEAD_DAYS: i64 = 183;

/// How a calendar page shows its days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The weeks of a month.
    Month,
    /// Seven days from Monday.
    Week,
    /// The next 30 days as a list.
    Agenda,
}

impl Mode {
    /// Reads a mode's name.
    ///
    /// # Errors
    /// `Error::Invalid` at `/mode`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "month" => Ok(Self::Month),
            "week" => Ok(Self::Week),
            "agenda" => Ok(Self::Agenda),
            other => Err(Error::invalid(
                "/mode",
                "unknown_mode",
                format!("mode is month, week or agenda, not {other:?}"),
            )),
        }
    }

    /// The days shown around `anchor`: whole weeks (Monday first) for a month, the week of
    /// `anchor`, or 30 days from it.
    pub fn range(self, anchor: NaiveDate) -> (NaiveDate, NaiveDate) {
        let monday =
            |day: NaiveDate| day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        match self {
            Self::Month => {
                let first = anchor.with_day(1).unwrap_or(anchor);
                let next_month = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first);
                let last = next_month.pred_opt().unwrap_or(first);
                (monday(first), monday(last) + Duration::days(6))
            }
            Self::Week => {
                let start = monday(anchor);
                (start, start + Duration::days(6))
            }
            Self::Agenda => (anchor, anchor + Duration::days(29)),
        }
    }
}

/// One record on a calendar.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The record.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// Its day in the workspace's time zone.
    pub date: NaiveDate,
    /// Its time of day there (none: a date field, all day).
    pub time: Option<NaiveTime>,
    /// The field's value as stored (`YYYY-MM-DD` or an RFC 3339 instant).
    pub start: String,
    /// Its owner.
    pub owner: Option<Uuid>,
    /// Its version (to reschedule it safely).
    pub version: i64,
}

/// The records of an entity in a span of days.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarView {
    /// The entity.
    pub entity: String,
    /// The date or datetime field.
    pub field: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The records, by day and time.
    pub events: Vec<Event>,
    /// Whether more than [`MAX_EVENTS`] matched (the rest are left out).
    pub more: bool,
}

/// Whose records a calendar shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// One owner's.
    pub owner: Option<Uuid>,
    /// The people of a team or department (and the units below).
    pub team: Option<Uuid>,
}

/// The first and last day a calendar reaches (dates beyond are typing mistakes, and keep the
/// date arithmetic far from its limits).
const FIRST_YEAR: i32 = 1900;
const LAST_YEAR: i32 = 2200;

/// Refuses a day outside the years a calendar reaches.
///
/// # Errors
/// `Error::Invalid` at `pointer`.
pub fn check_day(day: NaiveDate, pointer: &str) -> Result<NaiveDate> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&day.year()) {
        Ok(day)
    } else {
        Err(Error::invalid(
            pointer,
            "date",
            format!("a calendar day is in the years {FIRST_YEAR}–{LAST_YEAR}"),
        ))
    }
}

/// Reads an owner filter: `me` or an account id (empty: everyone's).
///
/// # Errors
/// `Error::Invalid` at `/owner`.
pub fn owner_of(text: Option<&str>, me: Uuid) -> Result<Option<Uuid>> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some("me") => Ok(Some(me)),
        Some(id) => Uuid::parse_str(id)
            .map(Some)
            .map_err(|_| Error::invalid("/owner", "owner", "owner is `me` or a member's id")),
    }
}

/// The date and datetime fields of an entity (those a calendar can use), in order.
pub fn date_fields(model: &EntityModel) -> Vec<String> {
    model
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::Date | FieldKind::DateTime) && !f.hidden)
        .map(|f| f.key.clone())
        .collect()
}

/// A field's value moved to `day`, keeping a datetime's time of day in `zone`.
///
/// # Errors
/// `Error::Invalid` when the field is not a date or datetime.
pub fn moved(
    kind: &FieldKind,
    old: Option<&Value>,
    day: NaiveDate,
    zone: chrono_tz::Tz,
) -> Result<Value> {
    match kind {
        FieldKind::Date => Ok(json!(day.format("%Y-%m-%d").to_string())),
        FieldKind::DateTime => {
            let time = old
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(), |t| {
                    t.with_timezone(&zone).time()
                });
            let local = day.and_time(time);
            let at = zone
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| {
                    zone.from_local_datetime(&(local + Duration::hours(1)))
                        .earliest()
                })
                .ok_or_else(|| Error::invalid("/date", "date", "that time does not exist there"))?;
            Ok(json!(
                at.with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
        }
        _ => Err(Error::invalid(
            "/field",
            "not_a_date",
            "only a date or datetime field can be rescheduled",
        )),
    }
}

/// The UTC instant where `day` starts in `zone`.
fn start_of(day: NaiveDate, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    zone.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(midnight + Duration::hours(1)))
                .earliest()
        })
        .map_or_else(
            || Utc.from_utc_datetime(&midnight),
            |t| t.with_timezone(&Utc),
        )
}

/// A member's feed as they see it (the address only when just made).
#[derive(Debug, Clone, Serialize)]
pub struct FeedView {
    /// The address calendar apps subscribe to (shown once, when made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// Last read by a calendar app.
    pub last_read_at: Option<DateTime<Utc>>,
}

/// Calendar use cases bound to the services.
#[derive(Debug, Clone, Copy)]
pub struct Schedule<'a> {
    /// Records.
    pub records: Records<'a>,
    /// Members' access (a feed is read with its owner's).
    pub access: &'a AccessCache,
    /// Where feed addresses and event links point.
    pub public_url: &'a str,
}

impl Schedule<'_> {
    /// The records of `entity` whose `field` falls on a day in `from..=to` (workspace time),
    /// as the caller may see them, filtered by owner or team.
    ///
    /// # Errors
    /// `Error::NotFound` (entity), `Error::Forbidden`, `Error::Invalid` (`/field` not a date,
    /// `/to` before `/from` or too long a span, `/team` unknown).
    #[allow(clippy::too_many_arguments)]
    pub async fn events(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        field: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
        filter: Filter,
    ) -> Result<CalendarView> {
        let shape = self.records.shape(ctx, entity).await?;
        let model = shape.model.clone();
        let fields = date_fields(&model);
        let field = match field {
            Some(field) => field.to_owned(),
            None => calendar_field(&shape.snapshot, entity)
                .or_else(|| fields.first().cloned())
                .ok_or_else(|| {
                    Error::invalid(
                        "/field",
                        "not_a_date",
                        format!("{entity} has no date field"),
                    )
                })?,
        };
        let kind = model
            .field(&field)
            .map(|f| f.kind.clone())
            .filter(|_| fields.contains(&field))
            .ok_or_else(|| {
                Error::invalid(
                    "/field",
                    "not_a_date",
                    format!("{field:?} is not a date or datetime field of {entity}"),
                )
            })?;
        check_day(from, "/from")?;
        check_day(to, "/to")?;
        if to < from || (to - from).num_days() >= MAX_DAYS {
            return Err(Error::invalid(
                "/to",
                "range",
                format!("to is on or after from, at most {MAX_DAYS} days later"),
            ));
        }
        let zone = ctx.time_zone;
        let bounds = match kind {
            FieldKind::DateTime => json!([
                start_of(from, zone).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                (start_of(to + Duration::days(1), zone) - Duration::seconds(1))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ]),
            _ => json!([
                from.format("%Y-%m-%d").to_string(),
                to.format("%Y-%m-%d").to_string()
            ]),
        };
        let mut conditions = vec![json!({"field": field, "op": "between", "value": bounds})];
        if let Some(owner) = filter.owner {
            conditions.push(json!({"field": "owner", "op": "eq", "value": owner.to_string()}));
        }
        if let Some(team) = filter.team {
            let directory =
                crate::workspaces::directory(self.records.db, self.access, access.workspace.id)
                    .await?;
            if directory.org.unit(team).is_none() {
                return Err(Error::invalid(
                    "/team",
                    "unknown_team",
                    "no such team or department",
                ));
            }
            let people: Vec<String> = directory
                .org
                .people_under(team)
                .iter()
                .map(Uuid::to_string)
                .collect();
            conditions.push(json!({"field": "owner", "op": "in", "value": people}));
        }
        let query = json!({"filter": {"and": conditions}, "sort": [field], "limit": MAX_EVENTS});
        let page = self.records.list(ctx, entity, &query).await?;
        let more = page.next_cursor.is_some();
        let events = page
            .records
            .iter()
            .filter_map(|record| event(&model, record, &field, zone))
            .collect();
        Ok(CalendarView {
            entity: entity.to_owned(),
            field,
            from,
            to,
            events,
            more,
        })
    }

    /// Moves a record to another day: an update of its date field (a datetime keeps its time
    /// of day), with the version the caller saw.
    ///
    /// # Errors
    /// As `Records::update`; `Error::Invalid` for a field that is not a date.
    pub async fn reschedule(
        &self,
        ctx: &Context,
        entity: &str,
        id: &str,
        field: &str,
        day: NaiveDate,
        version: Option<i64>,
    ) -> Result<RecordView> {
        check_day(day, "/date")?;
        let shape = self.records.shape(ctx, entity).await?;
        if !date_fields(&shape.model).iter().any(|f| f == field) {
            return Err(Error::invalid(
                "/field",
                "not_a_date",
                format!("{field:?} is not a date or datetime field of {entity}"),
            ));
        }
        let record = self.records.get(ctx, entity, id, false).await?;
        let kind = shape
            .model
            .field(field)
            .map(|f| f.kind.clone())
            .unwrap_or(FieldKind::Date);
        let mut patch = Map::new();
        patch.insert(
            field.to_owned(),
            moved(&kind, record.fields.get(field), day, ctx.time_zone)?,
        );
        self.records
            .update(ctx, entity, id, &patch, None, version)
            .await
    }

    /// The caller's feed, if they have one.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn feed_state(&self, access: &Access) -> Result<Option<FeedView>> {
        Ok(feeds::live_of(
            self.records.db.conn(),
            access.workspace.id,
            access.account_id,
        )
        .await?
        .map(|row| FeedView {
            url: None,
            created_at: row.created_at,
            last_read_at: row.last_read_at,
        }))
    }

    /// Makes the caller a new feed address (the old one stops working); the address is shown
    /// only now.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn create_feed(&self, access: &Access) -> Result<FeedView> {
        let secret = crate::auth::random_secret();
        let now = self.records.clock.now();
        let tx = self.records.db.write(Sharing::Alone).await?;
        feeds::revoke(&tx, access.workspace.id, access.account_id, now).await?;
        feeds::insert(
            &tx,
            FeedRow {
                id: crate::domain::new_id(),
                workspace_id: access.workspace.id,
                account_id: access.account_id,
                secret_hash: crate::auth::hash_secret(&secret),
                created_at: now,
                revoked_at: None,
                last_read_at: None,
            },
        )
        .await?;
        committed(tx.commit().await?)?;
        Ok(FeedView {
            url: Some(format!(
                "{}/feeds/{secret}.ics",
                self.public_url.trim_end_matches('/')
            )),
            created_at: now,
            last_read_at: None,
        })
    }

    /// Revokes the caller's feed address; returns whether there was one.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn revoke_feed(&self, access: &Access) -> Result<bool> {
        let now = self.records.clock.now();
        let tx = self.records.db.write(Sharing::Alone).await?;
        let revoked = feeds::revoke(&tx, access.workspace.id, access.account_id, now).await?;
        committed(tx.commit().await?)?;
        Ok(revoked > 0)
    }

    /// The iCalendar text of the feed with this secret: its member's own records on the
    /// workspace's calendar views, a month back to half a year ahead, read with their access
    /// now (a member who left, or a revoked or unknown secret: not found).
    ///
    /// # Errors
    /// `Error::NotFound`.
    pub async fn feed(&self, secret: &str) -> Result<String> {
        let not_found = || Error::not_found("calendar feed");
        let conn = self.records.db.conn();
        let row = feeds::by_hash(conn, &crate::auth::hash_secret(secret))
            .await?
            .filter(|r| r.revoked_at.is_none())
            .ok_or_else(not_found)?;
        let access = crate::workspaces::access_of(
            self.records.db,
            self.access,
            row.workspace_id,
            row.account_id,
        )
        .await?
        .ok_or_else(not_found)?;
        let ctx = Context::for_member(&access, Channel::Api);
        let now = self.records.clock.now();
        let today = now.with_timezone(&ctx.time_zone).date_naive();
        let snapshot = self
            .records
            .registry
            .snapshot(
                self.records.db,
                access.workspace.id,
                access.workspace.definitions_generation,
            )
            .await?;
        let locale = crate::store::accounts::find(conn, access.account_id)
            .await?
            .map_or(crate::render::i18n::Locale::En, |a| {
                crate::store::accounts::language_of(&a)
            });
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut events = Vec::new();
        for view in calendar_views(&snapshot) {
            let (entity, field) = (view.entity, view.field);
            let pair = (entity.to_owned(), field.to_owned());
            if seen.contains(&pair) {
                continue;
            }
            seen.push(pair);
            let Some(model) = snapshot.entity(entity) else {
                continue;
            };
            let label = locale
                .label(model.document.get("x-label"), entity)
                .to_owned();
            let mine = Filter {
                owner: Some(access.account_id),
                team: None,
            };
            // A view the member cannot read (or whose field they cannot see) adds nothing.
            let mut from = today - Duration::days(FEED_BACK_DAYS);
            let end = today + Duration::days(FEED_AHEAD_DAYS);
            while from <= end {
                let to = (from + Duration::days(MAX_DAYS - 1)).min(end);
                let Ok(found) = self
                    .events(&ctx, &access, entity, Some(field), from, to, mine)
                    .await
                else {
                    break;
                };
                for event in found.events {
                    events.push(ics::IcsEvent {
                        uid: format!("{}-{field}@formwork", event.id),
                        summary: event.title,
                        description: label.clone(),
                        url: Some(format!(
                            "{}/w/{}/e/{entity}/{}",
                            self.public_url.trim_end_matches('/'),
                            access.workspace.slug,
                            event.id
                        )),
                        start: match (event.time, DateTime::parse_from_rfc3339(&event.start)) {
                            (Some(_), Ok(at)) => ics::Start::At(at.with_timezone(&Utc)),
                            _ => ics::Start::Day(event.date),
                        },
                        modified: now,
                    });
                }
                from = to + Duration::days(1);
            }
        }
        let name = format!("Formwork · {}", access.workspace.name);
        feeds::touch(conn, row.id, now).await?;
        Ok(ics::render(&name, &events, now))
    }
}

/// A calendar view of the workspace: its entity, date field and whole document.
#[derive(Debug, Clone, Copy)]
pub struct CalendarViewDef<'s> {
    /// The entity.
    pub entity: &'s str,
    /// The date or datetime field.
    pub field: &'s str,
    /// The view's document (its `filter`, `agenda`…).
    pub document: &'s Value,
}

/// The workspace's calendar views (`layout: calendar` with an entity and a date field).
pub fn calendar_views(snapshot: &crate::definitions::Snapshot) -> Vec<CalendarViewDef<'_>> {
    snapshot
        .of_kind(Kind::View)
        .into_iter()
        .filter_map(|(_, view)| {
            let doc = &view.document;
            if doc.get("layout").and_then(Value::as_str) != Some("calendar") {
                return None;
            }
            Some(CalendarViewDef {
                entity: doc.get("entity").and_then(Value::as_str)?,
                field: doc.get("date_field").and_then(Value::as_str)?,
                document: doc,
            })
        })
        .collect()
}

/// The date field of the entity's first calendar view, if it has one.
fn calendar_field(snapshot: &crate::definitions::Snapshot, entity: &str) -> Option<String> {
    calendar_views(snapshot)
        .into_iter()
        .find(|v| v.entity == entity)
        .map(|v| v.field.to_owned())
}

fn event(
    model: &EntityModel,
    record: &RecordView,
    field: &str,
    zone: chrono_tz::Tz,
) -> Option<Event> {
    let start = record.fields.get(field)?.as_str()?.to_owned();
    let (date, time) = match DateTime::parse_from_rfc3339(&start) {
        Ok(at) => {
            let local = at.with_timezone(&zone);
            (local.date_naive(), Some(local.time()))
        }
        Err(_) => (
            NaiveDate::parse_from_str(start.get(..10)?, "%Y-%m-%d").ok()?,
            None,
        ),
    };
    Some(Event {
        id: record.id,
        title: crate::records::title_of(model, &record.fields, record.id),
        date,
        time,
        start,
        owner: record.owner,
        version: record.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("day")
    }

    #[test]
    fn ranges_cover_whole_weeks_from_monday() {
        // December 2026 starts on a Tuesday and ends on a Thursday.
        assert_eq!(
            Mode::Month.range(day("2026-12-17")),
            (day("2026-11-30"), day("2027-01-03"))
        );
        assert_eq!(
            Mode::Week.range(day("2026-12-06")),
            (day("2026-11-30"), day("2026-12-06"))
        );
        assert_eq!(
            Mode::Agenda.range(day("2026-12-06")),
            (day("2026-12-06"), day("2027-01-04"))
        );
        assert!(Mode::parse("year").is_err());
    }

    #[test]
    fn a_datetime_moves_to_another_day_at_the_same_local_time() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // 09:30 in Shanghai on Dec 6 → Dec 9, still 09:30 there.
        assert_eq!(
            moved(
                &FieldKind::DateTime,
                Some(&json!("2026-12-06T01:30:00Z")),
                day("2026-12-09"),
                shanghai
            )
            .expect("moved"),
            json!("2026-12-09T01:30:00Z")
        );
        assert_eq!(
            moved(
                &FieldKind::Date,
                Some(&json!("2026-12-06")),
                day("2026-12-09"),
                shanghai
            )
            .expect("moved"),
            json!("2026-12-09")
        );
        assert!(moved(&FieldKind::Text, None, day("2026-12-09"), shanghai).is_err());
        // New York leaves 02:00–03:00 out on 2027-03-14: the moved time is an hour later.
        let new_york = chrono_tz::America::New_York;
        assert_eq!(
            moved(
                &FieldKind::DateTime,
                Some(&json!("2026-12-06T07:30:00Z")),
                day("2027-03-14"),
                new_york
            )
            .expect("moved"),
            json!("2027-03-14T07:30:00Z")
        );
    }
}
