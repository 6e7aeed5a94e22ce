//! The daily digest: once a day, at the hour a member chose (workspace time), one email listing
//! the notifications they have not read since the last digest. The `notifications.digest` job
//! runs hourly with the housekeeping; each digest moves the member's mark in the transaction
//! that queues its email, so two workers or a retried job send it once.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::Settings;
use crate::error::Result;
use crate::jobs::{Handler, JobContext, JobFailure};
use crate::render::i18n::Locale;
use crate::store::jobs::JobRow;
use crate::store::notifications::{self as rows, SettingsRow};
use crate::store::workflows::NotificationRow;
use crate::store::write::Sharing;

/// The job kind.
pub const DIGEST_JOB: &str = "notifications.digest";
/// Most notifications one digest lists (the rest are counted).
const LISTED: u64 = 50;

/// When the digest of the day `now` falls in was due (the chosen hour, workspace time).
fn due_at(now: DateTime<Utc>, zone: chrono_tz::Tz, hour: u8) -> DateTime<Utc> {
    let today = now.with_timezone(&zone).date_naive();
    let at = today
        .and_hms_opt(u32::from(hour.min(23)), 0, 0)
        .unwrap_or_default();
    // A time a clock change skipped is taken an hour later.
    zone.from_local_datetime(&at)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(at + Duration::hours(1)))
                .earliest()
        })
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// Whether a member's digest is due now, and the period it covers.
fn period(
    settings: &Settings,
    sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if !settings.digest.enabled {
        return None;
    }
    let due = due_at(now, zone, settings.digest.hour);
    if now < due || sent.is_some_and(|s| s >= due) {
        return None;
    }
    // Never more than a week back, however long the digest was off.
    let from = sent
        .unwrap_or(now - Duration::days(1))
        .max(now - Duration::days(7));
    Some((from, now))
}

/// The digest's subject and text in `locale`.
fn compose(
    locale: Locale,
    workspace: &str,
    total: i64,
    items: &[NotificationRow],
    link: &dyn Fn(&NotificationRow) -> String,
) -> (String, String) {
    let n = total.to_string();
    let subject = locale
        .text("digest.subject")
        .replace("{n}", &n)
        .replace("{workspace}", workspace);
    let mut text = locale
        .text("digest.intro")
        .replace("{n}", &n)
        .replace("{workspace}", workspace);
    text.push_str("\n\n");
    for item in items {
        text.push_str("• ");
        text.push_str(&item.title);
        text.push('\n');
        if !item.body.is_empty() {
            text.push_str("  ");
            text.push_str(&crate::comments::markup::excerpt(&item.body, 200).replace('\n', " "));
            text.push('\n');
        }
        text.push_str("  ");
        text.push_str(&link(item));
        text.push_str("\n\n");
    }
    let more = total - i64::try_from(items.len()).unwrap_or(total);
    if more > 0 {
        text.push_str(&locale.text("digest.more").replace("{n}", &more.to_string()));
        text.push_str("\n\n");
    }
    text.push_str(&locale.text("digest.settings"));
    text.push('\n');
    (subject, text)
}

/// `notifications.digest` (hourly): sends the digests that are due.
#[derive(Debug)]
pub struct SendDigests {
    /// Where links in emails point.
    pub public_url: String,
}

#[async_trait::async_trait]
impl Handler for SendDigests {
    fn kind(&self) -> &'static str {
        DIGEST_JOB
    }

    async fn run(&self, ctx: &JobContext, _job: &JobRow) -> Result<(), JobFailure> {
        let now = ctx.clock.now();
        for row in rows::all_settings(ctx.db.conn()).await? {
            self.send_one(ctx, &row, now).await?;
        }
        Ok(())
    }
}

impl SendDigests {
    async fn send_one(
        &self,
        ctx: &JobContext,
        row: &SettingsRow,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let settings: Settings = serde_json::from_value(row.settings.clone()).unwrap_or_default();
        if !settings.digest.enabled {
            return Ok(());
        }
        let conn = ctx.db.conn();
        let Some(workspace) = crate::store::workspaces::find(conn, row.workspace_id).await? else {
            return Ok(());
        };
        let zone = crate::workspaces::zone_of(&workspace);
        let Some((from, to)) = period(&settings, row.digest_sent_at, now, zone) else {
            return Ok(());
        };
        let Some(account) = crate::store::accounts::find(conn, row.account_id).await? else {
            return Ok(());
        };
        // Someone who left the workspace gets nothing more from it.
        if crate::store::workspaces::find_with_role(conn, &workspace.slug, row.account_id)
            .await?
            .is_none()
        {
            return Ok(());
        }
        let items =
            rows::unread_between(conn, row.workspace_id, row.account_id, from, to, LISTED).await?;
        let total =
            rows::count_unread_between(conn, row.workspace_id, row.account_id, from, to).await?;
        let base = self.public_url.trim_end_matches('/');
        let slug = workspace.slug.clone();
        let link = |n: &NotificationRow| match (&n.entity, n.record_id) {
            (Some(entity), Some(id)) => format!("{base}/w/{slug}/e/{entity}/{id}"),
            _ => format!("{base}/w/{slug}/notifications"),
        };
        let locale = crate::store::accounts::language_of(&account);
        let tx = ctx.db.write(Sharing::Alone).await?;
        if !rows::advance_digest(
            &tx,
            row.workspace_id,
            row.account_id,
            row.digest_sent_at,
            to,
        )
        .await?
        {
            // Another worker sent it.
            return Ok(());
        }
        if !items.is_empty() {
            let (subject, text) = compose(locale, &workspace.name, total, &items, &link);
            crate::mail::queue_once(
                &tx,
                &ctx.clock,
                &crate::mail::Email {
                    to: account.email.clone(),
                    subject,
                    text,
                    html: None,
                    ..Default::default()
                },
                row.workspace_id,
                // Keyed by the period's end: the mark makes it once, a changed hour loses none.
                format!(
                    "digest:{}:{}:{}",
                    row.workspace_id,
                    row.account_id,
                    to.timestamp()
                ),
            )
            .await?;
        }
        crate::store::write::committed(tx.commit().await?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("instant")
    }

    #[test]
    fn a_digest_is_due_once_a_day_after_its_hour_in_workspace_time() {
        let shanghai = chrono_tz::Asia::Shanghai;
        let mut settings = Settings::default();
        settings.digest.enabled = true;
        settings.digest.hour = 8;
        // 07:30 in Shanghai: not yet.
        assert_eq!(
            period(&settings, None, at("2026-12-06T23:30:00Z"), shanghai),
            None
        );
        // 08:10: due, covering the day before when nothing was sent yet.
        let now = at("2026-12-07T00:10:00Z");
        assert_eq!(
            period(&settings, None, now, shanghai),
            Some((now - Duration::days(1), now))
        );
        // Sent at 08:10: not again that day, due the next morning from that mark.
        assert_eq!(
            period(&settings, Some(now), at("2026-12-07T09:00:00Z"), shanghai),
            None
        );
        let next = at("2026-12-08T00:05:00Z");
        assert_eq!(
            period(&settings, Some(now), next, shanghai),
            Some((now, next))
        );
        // Off: never.
        settings.digest.enabled = false;
        assert_eq!(period(&settings, None, next, shanghai), None);
    }

    #[test]
    fn a_long_pause_reaches_back_a_week_at_most() {
        let mut settings = Settings::default();
        settings.digest.enabled = true;
        let now = at("2026-12-20T10:00:00Z");
        let (from, _) = period(
            &settings,
            Some(at("2026-11-01T08:00:00Z")),
            now,
            chrono_tz::UTC,
        )
        .expect("due");
        assert_eq!(from, now - Duration::days(7));
    }
}
