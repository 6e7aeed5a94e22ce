//! Comments on records: anyone who can read a record may comment on it, mentioning members
//! (`@[name](user:<id>)`) and teams (`@[name](team:<id>)`); the author edits or deletes their
//! comment (an admin may delete any), every earlier body kept as a revision. A mention tells
//! the person in their language through the channels they chose (`notifications`), in the
//! comment's own transaction. Nobody is told of a record they cannot read: naming such a
//! member is refused, and a team mention reaches only those of its people who can read it.

pub mod markup;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::notifications::{self, Kind, Notice};
use crate::records::{Channel, Context, Records};
use crate::store::comments::{self as rows, CommentRow, RevisionRow};
use crate::store::write::{Sharing, committed};
use crate::workspaces::{Access, AccessCache};
use markup::Mention;

/// The most people one team mention may reach (each is checked against the record).
pub const MAX_TEAM: usize = 200;

/// Comment use cases bound to the services.
#[derive(Debug, Clone, Copy)]
pub struct Comments<'a> {
    /// Records (reads, access checks, titles).
    pub records: Records<'a>,
    /// Members' access, to ask whether a mentioned person may read the record.
    pub access: &'a AccessCache,
    /// Whether email can be sent.
    pub mail_enabled: bool,
    /// Where links in emails point.
    pub public_url: &'a str,
}

/// A person as a comment shows them.
#[derive(Debug, Clone, Serialize)]
pub struct PersonRef {
    /// Account id.
    pub id: Uuid,
    /// Name.
    pub name: String,
}

/// A mention as stored and shown.
#[derive(Debug, Clone, Serialize)]
pub struct MentionView {
    /// `user` or `team`.
    pub kind: &'static str,
    /// The account or unit.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The people this mention told (a user mention: that person; a team: those who can read
    /// the record).
    pub notified: Vec<Uuid>,
}

/// A comment as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CommentView {
    /// Id.
    pub id: Uuid,
    /// The entity of the record.
    pub entity: String,
    /// The record.
    pub record_id: Uuid,
    /// Who wrote it.
    pub author: PersonRef,
    /// The text as written (markdown-lite with mention tokens; empty once deleted).
    pub body: String,
    /// The text drawn as safe HTML.
    pub html: String,
    /// Who it mentions.
    pub mentions: Vec<MentionView>,
    /// Bumped by each edit.
    pub version: i64,
    /// Written.
    pub created_at: DateTime<Utc>,
    /// Last edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// Deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Whether the caller may edit it.
    pub can_edit: bool,
    /// Whether the caller may delete it.
    pub can_delete: bool,
}

/// Someone the mention picker offers.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// `user` or `team`.
    pub kind: &'static str,
    /// The account or unit.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// A member's email; for a team, how many people it has.
    pub detail: String,
}

/// An earlier body of a comment.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionView {
    /// The body before the change.
    pub body: String,
    /// The body drawn as safe HTML.
    pub html: String,
    /// `edited` or `deleted`.
    pub change: String,
    /// Who changed it.
    pub changed_by: PersonRef,
    /// When.
    pub changed_at: DateTime<Utc>,
}

fn body_error(refusal: markup::Refusal) -> Error {
    Error::invalid("/body", refusal.code, refusal.message)
}

/// Names of the workspace's members and units, and who is active.
struct People {
    members: Vec<crate::workspaces::MemberView>,
    names: HashMap<Uuid, String>,
    active: HashMap<Uuid, bool>,
    directory: std::sync::Arc<crate::access::Directory>,
}

impl People {
    fn name(&self, id: Uuid) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string().chars().take(8).collect())
    }

    fn person(&self, id: Uuid) -> PersonRef {
        PersonRef {
            id,
            name: self.name(id),
        }
    }

    /// The active people placed in `unit` or any unit below it.
    fn under(&self, unit: Uuid) -> Vec<Uuid> {
        self.directory
            .org
            .people_under(unit)
            .into_iter()
            .filter(|p| self.active.get(p).copied().unwrap_or(false))
            .collect()
    }
}

impl Comments<'_> {
    async fn people(&self, access: &Access) -> Result<People> {
        let members = crate::workspaces::members(self.records.db, access).await?;
        let directory =
            crate::workspaces::directory(self.records.db, self.access, access.workspace.id).await?;
        let mut names: HashMap<Uuid, String> = members
            .iter()
            .map(|m| (m.account_id, m.name.clone()))
            .collect();
        for unit in directory.org.units() {
            names.insert(unit.id, unit.name.clone());
        }
        Ok(People {
            active: members.iter().map(|m| (m.account_id, m.active)).collect(),
            members,
            names,
            directory,
        })
    }

    /// Whether `account` may read the record (as a member of the workspace).
    async fn may_read(
        &self,
        access: &Access,
        account: Uuid,
        entity: &str,
        record: Uuid,
    ) -> Result<bool> {
        let Some(theirs) = crate::workspaces::access_of(
            self.records.db,
            self.access,
            access.workspace.id,
            account,
        )
        .await?
        else {
            return Ok(false);
        };
        let ctx = Context::for_member(&theirs, Channel::Ui);
        self.records.can_read(&ctx, entity, record).await
    }

    /// The mentions resolved: each one's people who will be told (the author left out).
    async fn resolve(
        &self,
        access: &Access,
        people: &People,
        entity: &str,
        record: Uuid,
        mentions: &[Mention],
    ) -> Result<Vec<MentionView>> {
        let mut resolved = Vec::new();
        for mention in mentions {
            match *mention {
                Mention::User(id) => {
                    if !people.active.get(&id).copied().unwrap_or(false) {
                        return Err(Error::invalid(
                            "/body",
                            "unknown_mention",
                            format!("{id} is not an active member of this workspace"),
                        ));
                    }
                    if !self.may_read(access, id, entity, record).await? {
                        return Err(Error::invalid(
                            "/body",
                            "mention_cannot_see",
                            format!(
                                "{} cannot see this record, so they cannot be mentioned on it; \
                                 share it with them first",
                                people.name(id)
                            ),
                        ));
                    }
                    resolved.push(MentionView {
                        kind: "user",
                        id,
                        name: people.name(id),
                        notified: if id == access.account_id {
                            Vec::new()
                        } else {
                            vec![id]
                        },
                    });
                }
                Mention::Team(id) => {
                    if people.directory.org.unit(id).is_none() {
                        return Err(Error::invalid(
                            "/body",
                            "unknown_mention",
                            format!("{id} is not a team or department of this workspace"),
                        ));
                    }
                    let members = people.under(id);
                    if members.len() > MAX_TEAM {
                        return Err(Error::invalid(
                            "/body",
                            "team_too_large",
                            format!(
                                "{} has {} people; a comment may mention a team of at most \
                                 {MAX_TEAM} (mention a smaller team)",
                                people.name(id),
                                members.len()
                            ),
                        ));
                    }
                    let mut notified = Vec::new();
                    let mut anyone = false;
                    for person in members {
                        if self.may_read(access, person, entity, record).await? {
                            anyone = true;
                            if person != access.account_id {
                                notified.push(person);
                            }
                        }
                    }
                    if !anyone {
                        return Err(Error::invalid(
                            "/body",
                            "mention_cannot_see",
                            format!(
                                "nobody in {} can see this record, so the team cannot be \
                                 mentioned on it",
                                people.name(id)
                            ),
                        ));
                    }
                    resolved.push(MentionView {
                        kind: "team",
                        id,
                        name: people.name(id),
                        notified,
                    });
                }
            }
        }
        Ok(resolved)
    }

    fn view(&self, access: &Access, people: &People, row: CommentRow) -> CommentView {
        let mentions: Vec<MentionView> = row
            .mentions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let kind = if m.get("user").is_some() {
                    "user"
                } else {
                    "team"
                };
                let id: Uuid = m.get(kind)?.as_str()?.parse().ok()?;
                Some(MentionView {
                    kind,
                    id,
                    name: people.name(id),
                    notified: m
                        .get("notified")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str()?.parse().ok())
                        .collect(),
                })
            })
            .collect();
        let live = row.deleted_at.is_none();
        let mine = row.author_id == access.account_id;
        CommentView {
            id: row.id,
            html: markup::to_html(&row.body),
            entity: row.entity,
            record_id: row.record_id,
            author: people.person(row.author_id),
            body: row.body,
            mentions,
            version: row.version,
            created_at: row.created_at,
            edited_at: row.edited_at,
            deleted_at: row.deleted_at,
            can_edit: live && mine,
            can_delete: live && (mine || access.is_admin()),
        }
    }

    /// The members and teams a comment on the record may mention whose name or email
    /// contains `query` (case-insensitive), people first, at most `limit` (the mention
    /// picker): only those who can read the record, so the picker never offers a refusal.
    ///
    /// # Errors
    /// `Error::NotFound` for a record the caller cannot read.
    pub async fn mentionable(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        id: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let record = self.records.get(ctx, entity, id, false).await?;
        let needle = query.trim().to_lowercase();
        let people = self.people(access).await?;
        let mut found = Vec::new();
        let mut candidates: Vec<_> = people
            .members
            .iter()
            .filter(|m| m.active && m.account_id != access.account_id)
            .filter(|m| {
                m.name.to_lowercase().contains(&needle) || m.email.to_lowercase().contains(&needle)
            })
            .collect();
        candidates.sort_by(|a, b| a.name.cmp(&b.name));
        // Each candidate costs an access check: a few beyond the limit, not the whole company.
        for member in candidates.into_iter().take(limit * 4) {
            if found.len() >= limit {
                break;
            }
            if self
                .may_read(access, member.account_id, entity, record.id)
                .await?
            {
                found.push(Candidate {
                    kind: "user",
                    id: member.account_id,
                    name: member.name.clone(),
                    detail: member.email.clone(),
                });
            }
        }
        let mut units: Vec<_> = people
            .directory
            .org
            .units()
            .filter(|u| u.name.to_lowercase().contains(&needle))
            .collect();
        units.sort_by(|a, b| a.name.cmp(&b.name));
        for unit in units.into_iter().take(limit) {
            if found.len() >= limit {
                break;
            }
            let members = people.under(unit.id);
            if members.len() > MAX_TEAM {
                continue;
            }
            // Offered when someone in it can read the record (the first one found will do).
            let mut reachable = false;
            for person in members.iter().take(50) {
                if self.may_read(access, *person, entity, record.id).await? {
                    reachable = true;
                    break;
                }
            }
            if reachable {
                found.push(Candidate {
                    kind: "team",
                    id: unit.id,
                    name: unit.name.clone(),
                    detail: members.len().to_string(),
                });
            }
        }
        Ok(found)
    }

    /// The comments on a record the caller can read, oldest first (deleted ones as empty
    /// placeholders, so replies keep their sense).
    ///
    /// # Errors
    /// `Error::NotFound` for a record the caller cannot read.
    pub async fn list(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        id: &str,
    ) -> Result<Vec<CommentView>> {
        let record = self.records.get(ctx, entity, id, true).await?;
        let people = self.people(access).await?;
        Ok(rows::of_record(
            self.records.db.conn(),
            access.workspace.id,
            entity,
            record.id,
        )
        .await?
        .into_iter()
        .map(|row| self.view(access, &people, row))
        .collect())
    }

    /// Writes a comment on a live record the caller can read, telling whoever it mentions.
    ///
    /// # Errors
    /// `Error::NotFound` (record), `Error::Invalid` at `/body` (see [`markup::check`];
    /// `unknown_mention`, `mention_cannot_see`).
    pub async fn create(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        id: &str,
        body: &str,
    ) -> Result<CommentView> {
        let record = self.records.get(ctx, entity, id, false).await?;
        let mentions = markup::check(body).map_err(body_error)?;
        let people = self.people(access).await?;
        let resolved = self
            .resolve(access, &people, entity, record.id, &mentions)
            .await?;
        let now = self.records.clock.now();
        let row = CommentRow {
            id: new_id(),
            workspace_id: access.workspace.id,
            entity: entity.to_owned(),
            record_id: record.id,
            author_id: access.account_id,
            body: markup::with_names(body.trim_end(), |m| {
                Some(people.name(match m {
                    Mention::User(id) | Mention::Team(id) => id,
                }))
            }),
            mentions: stored_mentions(&resolved),
            version: 1,
            created_at: now,
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
        };
        let notices = self
            .notices(access, &people, &row, &told(&resolved), &[])
            .await?;
        let tx = self.records.db.write(Sharing::Alone).await?;
        rows::insert(&tx, row.clone()).await?;
        self.tell(&tx, &notices).await?;
        committed(tx.commit().await?)?;
        Ok(self.view(access, &people, row))
    }

    /// Changes the caller's own comment, keeping the earlier body; people mentioned for the
    /// first time are told.
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden` (not the author), `Error::Conflict` (deleted, or
    /// `version` is not the current one), `Error::Invalid` as [`Comments::create`].
    pub async fn edit(
        &self,
        ctx: &Context,
        access: &Access,
        comment: &str,
        body: &str,
        version: Option<i64>,
    ) -> Result<CommentView> {
        let current = self.find(ctx, access, comment).await?;
        if current.deleted_at.is_some() {
            return Err(Error::conflict(
                "",
                "deleted",
                "this comment was deleted and can no longer be edited",
            ));
        }
        // Like new comments, edits need the record live (restore it first).
        self.records
            .get(ctx, &current.entity, &current.record_id.to_string(), false)
            .await
            .map_err(|error| match error {
                Error::NotFound(_) => Error::conflict(
                    "",
                    "record_deleted",
                    "the record is in the recycle bin; restore it to change its comments",
                ),
                other => other,
            })?;
        if current.author_id != access.account_id {
            return Err(Error::forbidden("only its author may edit a comment"));
        }
        if let Some(version) = version
            && version != current.version
        {
            return Err(Error::conflict(
                "/version",
                "stale_version",
                format!(
                    "the comment changed since you read it (version {} now, not {version})",
                    current.version
                ),
            ));
        }
        let mentions = markup::check(body).map_err(body_error)?;
        let people = self.people(access).await?;
        let resolved = self
            .resolve(
                access,
                &people,
                &current.entity,
                current.record_id,
                &mentions,
            )
            .await?;
        let now = self.records.clock.now();
        let already: Vec<Uuid> = stored_told(&current.mentions);
        let mut row = current.clone();
        row.body = markup::with_names(body.trim_end(), |m| {
            Some(people.name(match m {
                Mention::User(id) | Mention::Team(id) => id,
            }))
        });
        row.mentions = stored_mentions(&resolved);
        row.version = current.version + 1;
        row.edited_at = Some(now);
        let notices = self
            .notices(access, &people, &row, &told(&resolved), &already)
            .await?;
        let tx = self.records.db.write(Sharing::Alone).await?;
        let revision = revision(&current, "edited", access.account_id, now);
        if !rows::replace(&tx, row.clone(), current.version, revision).await? {
            return Err(Error::conflict(
                "/version",
                "stale_version",
                "the comment changed while you edited it; load it again",
            ));
        }
        self.tell(&tx, &notices).await?;
        committed(tx.commit().await?)?;
        Ok(self.view(access, &people, row))
    }

    /// Deletes a comment (its author, or an admin); the body is kept as a revision. Deleting a
    /// deleted comment changes nothing.
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`.
    pub async fn delete(&self, ctx: &Context, access: &Access, comment: &str) -> Result<()> {
        let current = self.find(ctx, access, comment).await?;
        if current.deleted_at.is_some() {
            return Ok(());
        }
        if current.author_id != access.account_id && !access.is_admin() {
            return Err(Error::forbidden(
                "only its author or an admin may delete a comment",
            ));
        }
        let now = self.records.clock.now();
        let mut row = current.clone();
        row.body = String::new();
        row.mentions = json!([]);
        row.version = current.version + 1;
        row.deleted_at = Some(now);
        row.deleted_by = Some(access.account_id);
        let tx = self.records.db.write(Sharing::Alone).await?;
        let revision = revision(&current, "deleted", access.account_id, now);
        if !rows::replace(&tx, row, current.version, revision).await? {
            return Err(Error::conflict(
                "",
                "stale_version",
                "the comment changed meanwhile; load it again",
            ));
        }
        // Its words leave the inboxes of those it mentioned.
        crate::store::notifications::delete_of_comment(&tx, access.workspace.id, current.id)
            .await?;
        committed(tx.commit().await?)?;
        Ok(())
    }

    /// A comment's earlier bodies, for its author and admins.
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`.
    pub async fn revisions(
        &self,
        ctx: &Context,
        access: &Access,
        comment: &str,
    ) -> Result<Vec<RevisionView>> {
        let current = self.find(ctx, access, comment).await?;
        if current.author_id != access.account_id && !access.is_admin() {
            return Err(Error::forbidden(
                "only its author and admins may read a comment's earlier versions",
            ));
        }
        let people = self.people(access).await?;
        Ok(rows::revisions(self.records.db.conn(), current.id)
            .await?
            .into_iter()
            .map(|r| RevisionView {
                html: markup::to_html(&r.body),
                body: r.body,
                change: r.change,
                changed_by: people.person(r.changed_by),
                changed_at: r.changed_at,
            })
            .collect())
    }

    /// A comment of the workspace on a record the caller can read (404 otherwise: its
    /// existence does not leak).
    async fn find(&self, ctx: &Context, access: &Access, comment: &str) -> Result<CommentRow> {
        let not_found = || Error::not_found(format!("comment {comment}"));
        let id = Uuid::parse_str(comment).map_err(|_| not_found())?;
        let row = rows::find(self.records.db.conn(), access.workspace.id, id)
            .await?
            .ok_or_else(not_found)?;
        match self
            .records
            .get(ctx, &row.entity, &row.record_id.to_string(), true)
            .await
        {
            Ok(_) => Ok(row),
            Err(Error::NotFound(_)) => Err(not_found()),
            Err(other) => Err(other),
        }
    }

    /// The notices telling each of `to` not in `already` of the comment, each in their
    /// language and with the record's title as they see it (made before the write
    /// transaction, which then only delivers them).
    async fn notices(
        &self,
        access: &Access,
        people: &People,
        row: &CommentRow,
        to: &[Uuid],
        already: &[Uuid],
    ) -> Result<Vec<(notifications::Settings, Notice)>> {
        let to: Vec<Uuid> = to
            .iter()
            .filter(|id| !already.contains(id))
            .copied()
            .collect();
        if to.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.records.db.conn();
        let settings = notifications::settings_of(conn, access.workspace.id, &to).await?;
        let snapshot = self
            .records
            .registry
            .snapshot(
                self.records.db,
                access.workspace.id,
                access.workspace.definitions_generation,
            )
            .await?;
        let label = snapshot
            .entity(&row.entity)
            .and_then(|m| m.document.get("x-label").cloned());
        let text = markup::excerpt(&markup::to_text(&row.body), 500);
        let author = people.name(row.author_id);
        let link = format!(
            "{}/w/{}/e/{}/{}#comment-{}",
            self.public_url.trim_end_matches('/'),
            access.workspace.slug,
            row.entity,
            row.record_id,
            row.id
        );
        let mut out = Vec::new();
        for person in to {
            let (Some(theirs), Some(account)) = (
                crate::workspaces::access_of(
                    self.records.db,
                    self.access,
                    access.workspace.id,
                    person,
                )
                .await?,
                crate::store::accounts::find(conn, person).await?,
            ) else {
                continue;
            };
            let ctx = Context::for_member(&theirs, Channel::Ui);
            let title = self
                .records
                .titles(&ctx, &row.entity, vec![row.record_id.to_string()])
                .await
                .remove(&row.record_id.to_string())
                .unwrap_or_else(|| row.record_id.to_string());
            let locale = crate::store::accounts::language_of(&account);
            let entity_label = locale.label(label.as_ref(), &row.entity).to_owned();
            let notice = Notice {
                workspace_id: access.workspace.id,
                account_id: person,
                kind: Kind::Mention,
                actor: Some(row.author_id),
                title: locale
                    .text("comments.mentioned_you")
                    .replace("{who}", &author)
                    .replace("{entity}", &entity_label)
                    .replace("{title}", &title),
                body: text.clone(),
                record: Some((row.entity.clone(), row.record_id)),
                link: Some(link.clone()),
                key: format!("mention:{}:{person}", row.id),
                at: row.edited_at.unwrap_or(row.created_at),
            };
            out.push((settings.get(&person).copied().unwrap_or_default(), notice));
        }
        Ok(out)
    }

    /// Delivers prepared notices inside the comment's transaction.
    async fn tell(
        &self,
        tx: &crate::store::write::Write,
        notices: &[(notifications::Settings, Notice)],
    ) -> Result<()> {
        for (settings, notice) in notices {
            notifications::deliver(tx, self.records.clock, self.mail_enabled, settings, notice)
                .await?;
        }
        Ok(())
    }
}

/// Everyone the mentions tell, each once.
fn told(resolved: &[MentionView]) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = Vec::new();
    for id in resolved.iter().flat_map(|m| m.notified.iter()) {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    out
}

fn stored_mentions(resolved: &[MentionView]) -> Value {
    Value::Array(
        resolved
            .iter()
            .map(|m| json!({m.kind: m.id, "notified": m.notified}))
            .collect(),
    )
}

fn stored_told(mentions: &Value) -> Vec<Uuid> {
    mentions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("notified")?.as_array())
        .flatten()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

fn revision(current: &CommentRow, change: &str, by: Uuid, at: DateTime<Utc>) -> RevisionRow {
    RevisionRow {
        id: new_id(),
        comment_id: current.id,
        body: current.body.clone(),
        change: change.to_owned(),
        changed_by: by,
        changed_at: at,
    }
}
