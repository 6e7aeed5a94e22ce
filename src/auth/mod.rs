//! Accounts, passwords, browser sessions, API tokens and the login rate limit.
//!
//! Knows nothing of HTTP: the http layer hands it cookie and bearer secrets and gets principals.

pub mod cache;
mod limiter;
mod passwords;
mod secrets;
pub mod totp;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::{Email, display_name, new_id};
use crate::error::{Error, Result};
use crate::store::accounts::{self, AccountRow};
use crate::store::sessions::{self, SessionRow};
use crate::store::tokens::{self, TokenRow};
use crate::store::{Conn, Db};

pub use cache::{ACCESS_CACHE_TTL, EpochCache};
pub use limiter::{LoginLimiter, TokenLimiter};

/// What a credential resolved to, with what decides whether it still holds.
#[derive(Debug, Clone)]
pub struct CachedCredential {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
}

/// Credential (hash of its secret) → principal, see [`cache`].
pub type CredentialCache = EpochCache<String, CachedCredential>;
pub use passwords::{check_password_policy, hash_password, verify_password};
pub use secrets::{hash_secret, random_secret, same_secret};

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle: Duration,
    /// Ends this long after login regardless of activity.
    pub absolute: Duration,
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session; unsafe requests must echo its CSRF token.
    Session {
        /// Hash of the cookie secret (the session's key).
        id_hash: String,
        /// The CSRF token bound to the session.
        csrf_token: String,
    },
    /// An API token, valid only in its workspace.
    Token {
        /// The token's id.
        token_id: Uuid,
        /// The one workspace it may act in.
        workspace_id: Uuid,
        /// The role that narrows what it may do there (none: its account's role).
        role: Option<String>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account acting.
    pub account_id: Uuid,
    /// How it authenticated.
    pub credential: Credential,
}

/// An account as shown to its owner.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// Id.
    pub id: Uuid,
    /// Login email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the password was generated and should be changed.
    pub must_change_password: bool,
    /// Whether sign-in asks for a code from an authenticator app.
    pub two_factor: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<&AccountRow> for AccountView {
    fn from(row: &AccountRow) -> Self {
        Self {
            id: row.id,
            email: row.email.clone(),
            name: row.name.clone(),
            must_change_password: row.must_change_password,
            two_factor: row.totp_enabled_at.is_some(),
            created_at: row.created_at,
        }
    }
}

/// Creates an account with an argon2id password hash.
///
/// # Errors
/// `Error::Invalid` for a bad email, name or weak password; `Error::Conflict` for a taken email.
pub async fn create_account(
    conn: &impl Conn,
    clock: &SharedClock,
    email: &str,
    name: &str,
    password: &str,
    must_change_password: bool,
) -> Result<AccountRow> {
    let email = Email::parse(email)?;
    let name = display_name(name, "/name", 200)?;
    check_password_policy(password)?;
    let password_hash = hash_password(password.to_owned()).await?;
    let now = clock.now();
    accounts::insert(
        conn,
        AccountRow {
            id: new_id(),
            email: email.as_str().to_owned(),
            name,
            password_hash,
            is_active: true,
            must_change_password,
            created_at: now,
            updated_at: now,
            totp_secret: None,
            totp_enabled_at: None,
            totp_last_step: None,
            totp_recovery: None,
            locale: None,
            seen_locale: None,
        },
    )
    .await
}

/// A new session: the cookie secret (sent once, never stored) and its CSRF token.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value.
    pub secret: String,
    /// The CSRF token to send with unsafe requests.
    pub csrf_token: String,
    /// The account signed in.
    pub account: AccountRow,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// Checks an email and password and opens a session.
///
/// Wrong email and wrong password are indistinguishable to the caller, and take the same time.
///
/// # Errors
/// `Error::RateLimited` after too many failures for this email; `Error::Unauthenticated` for
/// bad credentials, a wrong two-factor code or a deactivated account; `Error::Invalid` at
/// `/totp` when the account has two-factor sign-in and no code was given.
pub async fn login(
    db: &Db,
    clock: &SharedClock,
    limiter: &LoginLimiter,
    policy: SessionPolicy,
    email: &str,
    password: &str,
    totp_code: Option<&str>,
) -> Result<NewSession> {
    let key = email.trim().to_lowercase();
    let now = clock.now();
    let event = |kind: &'static str, account_id: Option<Uuid>| crate::audit::Event {
        workspace_id: None,
        account_id,
        kind,
        detail: serde_json::json!({"email": key.chars().take(254).collect::<String>()}),
    };
    if let Err(refused) = limiter.check(&key, now) {
        let id = if key.contains('\0') || key.len() > 254 {
            None
        } else {
            accounts::find_by_email(db.conn(), &key)
                .await?
                .map(|a| a.id)
        };
        crate::audit::record(db, now, event("auth.locked", id)).await;
        return Err(refused);
    }
    if key.contains('\0') || password.contains('\0') || key.len() > 254 || password.len() > 1024 {
        return Err(Error::Unauthenticated);
    }
    let account = accounts::find_by_email(db.conn(), &key).await?;
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    let verified = verify_password(hash, password.to_owned()).await;
    let account = match account {
        Some(account) if verified && account.is_active => account,
        other => {
            let id = other.map(|a| a.id);
            crate::audit::record(db, now, event("auth.login_failed", id)).await;
            return Err(Error::Unauthenticated);
        }
    };
    if let (Some(secret), Some(_)) = (&account.totp_secret, account.totp_enabled_at) {
        let Some(code) = totp_code else {
            return Err(Error::invalid(
                "/totp",
                "totp_required",
                "enter the 6-digit code from your authenticator app",
            ));
        };
        let step = totp::verify(secret, code, now.timestamp(), account.totp_last_step);
        let fresh = match step {
            Some(step) => accounts::use_totp_step(db.conn(), account.id, step).await?,
            None => use_recovery_code(db, now, &account, code).await?,
        };
        if !fresh {
            crate::audit::record(db, now, event("auth.totp_failed", Some(account.id))).await;
            return Err(Error::Unauthenticated);
        }
    }
    limiter.record_success(&key);
    crate::audit::record(db, now, event("auth.login", Some(account.id))).await;
    let secret = random_secret();
    let csrf_token = random_secret();
    let expires_at = now + policy.absolute;
    sessions::insert(
        db.conn(),
        SessionRow {
            id_hash: hash_secret(&secret),
            account_id: account.id,
            csrf_token: csrf_token.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at,
        },
    )
    .await?;
    Ok(NewSession {
        secret,
        csrf_token,
        account,
        expires_at,
    })
}

/// Resolves a session cookie secret; `None` when unknown, expired or idle too long.
///
/// # Errors
/// `Error::Db`.
pub async fn authenticate_session(
    db: &Db,
    clock: &SharedClock,
    cache: &CredentialCache,
    policy: SessionPolicy,
    secret: &str,
) -> Result<Option<Principal>> {
    let id_hash = hash_secret(secret);
    let now = clock.now();
    let cached = match cache.get(&id_hash) {
        Some(cached) => cached,
        None => {
            let epoch = crate::store::access_epoch();
            let Some(session) = sessions::find_of_active_account(db.conn(), &id_hash).await? else {
                return Ok(None);
            };
            let cached = CachedCredential {
                principal: Principal {
                    account_id: session.account_id,
                    credential: Credential::Session {
                        id_hash: id_hash.clone(),
                        csrf_token: session.csrf_token,
                    },
                },
                expires_at: Some(session.expires_at),
                last_seen_at: Some(session.last_seen_at),
            };
            cache.insert(id_hash.clone(), cached.clone(), epoch);
            cached
        }
    };
    let last_seen_at = cached.last_seen_at.unwrap_or(now);
    if cached.expires_at.is_some_and(|at| at <= now) || last_seen_at + policy.idle <= now {
        sessions::delete(db.conn(), &id_hash).await?;
        return Ok(None);
    }
    // Writing on every request would make reads pay for a write; a minute's precision suffices.
    if now - last_seen_at > Duration::seconds(60) {
        sessions::touch(db.conn(), &id_hash, now).await?;
        cache.update(&id_hash, |entry| entry.last_seen_at = Some(now));
    }
    Ok(Some(cached.principal))
}

/// Ends a session.
///
/// # Errors
/// `Error::Db`.
pub async fn logout(db: &Db, id_hash: &str) -> Result<()> {
    sessions::delete(db.conn(), id_hash).await
}

/// Changes a password after checking the current one; ends the account's other sessions.
///
/// # Errors
/// `Error::Invalid` at `/current_password` when it is wrong, or at `/new_password` when weak.
pub async fn change_password(
    db: &Db,
    clock: &SharedClock,
    account_id: Uuid,
    current_session: Option<&str>,
    current: &str,
    new: &str,
) -> Result<()> {
    let account = accounts::find(db.conn(), account_id)
        .await?
        .ok_or_else(|| Error::not_found("account"))?;
    if !verify_password(Some(account.password_hash), current.to_owned()).await {
        return Err(Error::invalid(
            "/current_password",
            "mismatch",
            "the current password is not correct",
        ));
    }
    check_password_policy(new).map_err(|_| {
        Error::invalid(
            "/new_password",
            "weak",
            "a password has at least 10 characters",
        )
    })?;
    let hash = hash_password(new.to_owned()).await?;
    let tx = db.begin().await?;
    accounts::set_password(&tx, account_id, hash, clock.now()).await?;
    sessions::delete_for_account(&tx, account_id, current_session).await?;
    crate::audit::record_in(
        &tx,
        clock.now(),
        crate::audit::Event::of_account(
            account_id,
            "auth.password_changed",
            serde_json::json!({"other_sessions_ended": true}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(())
}

/// The prefix every API token starts with, so leaked tokens are easy to recognise.
pub const TOKEN_PREFIX: &str = "fwt_";

/// A token as listed (never with its secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    /// Id.
    pub id: Uuid,
    /// Its owner's label.
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// The account it acts as.
    pub account_id: Uuid,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The role narrowing what it may do (none: its account's role).
    pub role: Option<String>,
}

impl From<&TokenRow> for TokenView {
    fn from(row: &TokenRow) -> Self {
        Self {
            id: row.id,
            name: row.name.clone(),
            prefix: row.prefix.clone(),
            account_id: row.account_id,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            role: row.role.clone(),
        }
    }
}

/// Creates a token for `account_id` in a workspace, narrowed to `role` when given (the caller
/// checks that the role exists); returns it with the secret (shown once).
///
/// # Errors
/// `Error::Invalid` for an empty name or an expiry in the past.
pub async fn create_token(
    db: &Db,
    clock: &SharedClock,
    workspace_id: Uuid,
    account_id: Uuid,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    role: Option<&str>,
) -> Result<(TokenView, String)> {
    let name = display_name(name, "/name", 100)?;
    let now = clock.now();
    if expires_at.is_some_and(|at| at <= now) {
        return Err(Error::invalid(
            "/expires_at",
            "past",
            "the expiry must be in the future",
        ));
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let row = tokens::insert(
        db.conn(),
        TokenRow {
            id: new_id(),
            workspace_id,
            account_id,
            name,
            prefix: secret.chars().take(12).collect(),
            secret_hash: hash_secret(&secret),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
            role: role.map(str::to_owned),
        },
    )
    .await?;
    crate::audit::record(
        db,
        now,
        crate::audit::Event {
            workspace_id: Some(workspace_id),
            account_id: Some(account_id),
            kind: "token.created",
            detail: serde_json::json!({"token": row.id, "name": row.name, "role": row.role}),
        },
    )
    .await;
    Ok((TokenView::from(&row), secret))
}

/// Resolves a bearer token; `None` when unknown, revoked, expired or its account is inactive.
///
/// # Errors
/// `Error::Db`.
pub async fn authenticate_token(
    db: &Db,
    clock: &SharedClock,
    cache: &CredentialCache,
    secret: &str,
) -> Result<Option<Principal>> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let secret_hash = hash_secret(secret);
    let now = clock.now();
    let cached = match cache.get(&secret_hash) {
        Some(cached) => cached,
        None => {
            let epoch = crate::store::access_epoch();
            let Some(token) =
                tokens::find_by_hash_of_active_account(db.conn(), &secret_hash).await?
            else {
                return Ok(None);
            };
            if token.revoked_at.is_some() {
                return Ok(None);
            }
            let cached = CachedCredential {
                principal: Principal {
                    account_id: token.account_id,
                    credential: Credential::Token {
                        token_id: token.id,
                        workspace_id: token.workspace_id,
                        role: token.role.clone(),
                    },
                },
                expires_at: token.expires_at,
                last_seen_at: token.last_used_at,
            };
            cache.insert(secret_hash.clone(), cached.clone(), epoch);
            cached
        }
    };
    if cached.expires_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    if cached
        .last_seen_at
        .is_none_or(|at| now - at > Duration::seconds(60))
        && let Credential::Token { token_id, .. } = &cached.principal.credential
    {
        tokens::touch(db.conn(), *token_id, now).await?;
        cache.update(&secret_hash, |entry| entry.last_seen_at = Some(now));
    }
    Ok(Some(cached.principal))
}

/// The tokens of a workspace visible to the caller: all for admins, else the caller's own.
///
/// # Errors
/// `Error::Db`.
pub async fn list_tokens(
    db: &Db,
    workspace_id: Uuid,
    account_id: Uuid,
    is_admin: bool,
) -> Result<Vec<TokenView>> {
    Ok(tokens::list(db.conn(), workspace_id)
        .await?
        .iter()
        .filter(|t| is_admin || t.account_id == account_id)
        .map(TokenView::from)
        .collect())
}

/// Revokes a token; admins may revoke any token of the workspace, others only their own.
///
/// # Errors
/// `Error::NotFound` when there is no such live token visible to the caller.
pub async fn revoke_token(
    db: &Db,
    clock: &SharedClock,
    workspace_id: Uuid,
    token_id: Uuid,
    account_id: Uuid,
    is_admin: bool,
) -> Result<()> {
    let visible = tokens::list(db.conn(), workspace_id)
        .await?
        .into_iter()
        .any(|t| t.id == token_id && (is_admin || t.account_id == account_id));
    if !visible || !tokens::revoke(db.conn(), workspace_id, token_id, clock.now()).await? {
        return Err(Error::not_found("token"));
    }
    crate::audit::record(
        db,
        clock.now(),
        crate::audit::Event {
            workspace_id: Some(workspace_id),
            account_id: Some(account_id),
            kind: "token.revoked",
            detail: serde_json::json!({"token": token_id}),
        },
    )
    .await;
    Ok(())
}

/// Deletes expired and idle sessions; the `sessions.purge` job calls it.
///
/// # Errors
/// `Error::Db`.
pub async fn purge_sessions(
    conn: &impl Conn,
    clock: &SharedClock,
    policy: SessionPolicy,
) -> Result<u64> {
    let now = clock.now();
    sessions::purge_expired(conn, now, now - policy.idle).await
}

/// What setting up two-factor sign-in shows once: the secret and the link an authenticator app
/// scans.
#[derive(Debug, Clone, Serialize)]
pub struct TotpSetup {
    /// Base32 secret (to type in by hand).
    pub secret: String,
    /// `otpauth://` link (to scan as a QR code).
    pub link: String,
}

/// Starts two-factor setup: a new secret, pending until confirmed with a code.
///
/// # Errors
/// `Error::Conflict` when two-factor sign-in is on already.
pub async fn setup_totp(db: &Db, account_id: Uuid) -> Result<TotpSetup> {
    let account = accounts::find(db.conn(), account_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    if account.totp_enabled_at.is_some() {
        return Err(Error::conflict(
            "",
            "two_factor_on",
            "two-factor sign-in is on; turn it off first to set up a new authenticator",
        ));
    }
    let secret = totp::new_secret();
    accounts::set_totp(db.conn(), account_id, Some(secret.clone()), None, None).await?;
    Ok(TotpSetup {
        link: totp::link(&secret, &account.email, "Formwork"),
        secret,
    })
}

/// How many recovery codes two-factor sign-in comes with.
const RECOVERY_CODES: usize = 10;

/// Normalises a recovery code as typed (case, dashes and spaces do not matter).
fn recovery_key(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// New recovery codes (`ABCD-EFGH`, 40 bits each) and the JSON array of their hashes.
fn new_recovery_codes() -> Result<(Vec<String>, String)> {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw = totp::new_secret();
            format!("{}-{}", &raw[..4], &raw[4..8])
        })
        .collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| hash_secret(&recovery_key(c)))
        .collect();
    Ok((
        codes,
        serde_json::to_string(&hashes).map_err(Error::internal)?,
    ))
}

/// Uses a recovery code in place of an authenticator code: true (and the code is spent) when it
/// is one of the account's unused codes.
async fn use_recovery_code(
    db: &Db,
    now: DateTime<Utc>,
    account: &AccountRow,
    code: &str,
) -> Result<bool> {
    let Some(stored) = &account.totp_recovery else {
        return Ok(false);
    };
    let key = recovery_key(code);
    if key.len() != 8 {
        return Ok(false);
    }
    let mut hashes: Vec<String> = serde_json::from_str(stored).unwrap_or_default();
    let wanted = hash_secret(&key);
    let Some(position) = hashes.iter().position(|h| same_secret(h, &wanted)) else {
        return Ok(false);
    };
    hashes.remove(position);
    let remaining = serde_json::to_string(&hashes).map_err(Error::internal)?;
    if !accounts::swap_recovery(db.conn(), account.id, stored, remaining).await? {
        return Ok(false);
    }
    crate::audit::record(
        db,
        now,
        crate::audit::Event::of_account(
            account.id,
            "auth.recovery_code_used",
            serde_json::json!({"remaining": hashes.len()}),
        ),
    )
    .await;
    Ok(true)
}

/// Turns two-factor sign-in on after a correct code from the pending secret; returns the
/// recovery codes (shown once), each usable once in place of an authenticator code.
///
/// # Errors
/// `Error::Conflict` (no setup pending), `Error::Invalid` at `/code` (wrong code).
pub async fn enable_totp(
    db: &Db,
    clock: &SharedClock,
    account_id: Uuid,
    code: &str,
) -> Result<Vec<String>> {
    let account = accounts::find(db.conn(), account_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let (Some(secret), None) = (&account.totp_secret, account.totp_enabled_at) else {
        return Err(Error::conflict(
            "",
            "no_setup",
            "start the setup first (POST /api/v1/account/two-factor/setup)",
        ));
    };
    let now = clock.now();
    let Some(step) = totp::verify(secret, code, now.timestamp(), None) else {
        return Err(Error::invalid(
            "/code",
            "wrong_code",
            "the code does not match; check the authenticator app's clock",
        ));
    };
    let (codes, hashes) = new_recovery_codes()?;
    let tx = db.begin().await?;
    accounts::set_totp(&tx, account_id, Some(secret.clone()), Some(now), Some(step)).await?;
    accounts::set_recovery(&tx, account_id, Some(hashes)).await?;
    crate::audit::record_in(
        &tx,
        now,
        crate::audit::Event::of_account(account_id, "auth.totp_enabled", serde_json::json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// Turns two-factor sign-in off, with the password and a current code.
///
/// # Errors
/// `Error::Invalid` at `/password` or `/code`; `Error::Conflict` when it is off.
pub async fn disable_totp(
    db: &Db,
    clock: &SharedClock,
    account_id: Uuid,
    password: &str,
    code: &str,
) -> Result<()> {
    let account = accounts::find(db.conn(), account_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let (Some(secret), Some(_)) = (&account.totp_secret, account.totp_enabled_at) else {
        return Err(Error::conflict(
            "",
            "two_factor_off",
            "two-factor sign-in is off",
        ));
    };
    if !verify_password(Some(account.password_hash.clone()), password.to_owned()).await {
        return Err(Error::invalid(
            "/password",
            "mismatch",
            "the password is not correct",
        ));
    }
    let now = clock.now();
    if totp::verify(secret, code, now.timestamp(), account.totp_last_step).is_none() {
        return Err(Error::invalid(
            "/code",
            "wrong_code",
            "the code does not match",
        ));
    }
    let tx = db.begin().await?;
    accounts::set_totp(&tx, account_id, None, None, None).await?;
    accounts::set_recovery(&tx, account_id, None).await?;
    crate::audit::record_in(
        &tx,
        now,
        crate::audit::Event::of_account(account_id, "auth.totp_disabled", serde_json::json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How long a password-reset link works.
pub const RESET_MINUTES: i64 = 30;
/// Most reset links sent to one account per hour.
const RESETS_PER_HOUR: u64 = 3;

/// Where reset links point and whether email can be sent.
#[derive(Debug, Clone, Copy)]
pub struct ResetMail<'a> {
    /// Whether an SMTP server is configured.
    pub enabled: bool,
    /// The public address of Formwork, for the link.
    pub public_url: &'a str,
}

/// The job that sends a password-reset link.
pub const RESET_JOB: &str = "auth.password_reset";

/// Asks for a password-reset link for this email. The answer, and the work done before it
/// (queueing one job), are the same whether or not an account exists, so neither the status nor
/// the time tells; the job then emails an active account a one-time link, at most three per
/// account and hour.
///
/// # Errors
/// `Error::Db`.
pub async fn request_password_reset(
    db: &Db,
    clock: &SharedClock,
    mail: ResetMail<'_>,
    email: &str,
) -> Result<()> {
    let key = email.trim().to_lowercase();
    if key.contains('\0') || key.len() > 254 {
        return Ok(());
    }
    if !mail.enabled {
        tracing::warn!(
            "a password reset was asked for, but no SMTP server is configured (FORMWORK_SMTP_URL)"
        );
        if let Some(account) = accounts::find_by_email(db.conn(), &key).await? {
            crate::audit::record(
                db,
                clock.now(),
                crate::audit::Event::of_account(
                    account.id,
                    "auth.reset_unsent",
                    serde_json::json!({}),
                ),
            )
            .await;
        }
        return Ok(());
    }
    let mut job = crate::jobs::NewJob::new(
        RESET_JOB,
        serde_json::json!({"email": key, "public_url": mail.public_url}),
    );
    job.max_attempts = 5;
    crate::jobs::enqueue(db.conn(), clock, job).await?;
    Ok(())
}

/// Emails a one-time password-reset link to the active account with this (normalised) email,
/// if there is one; the `auth.password_reset` job runs it.
///
/// # Errors
/// `Error::Db`.
pub async fn send_password_reset(
    db: &Db,
    clock: &SharedClock,
    public_url: &str,
    key: &str,
) -> Result<()> {
    let Some(account) = accounts::find_by_email(db.conn(), key)
        .await?
        .filter(|a| a.is_active)
    else {
        return Ok(());
    };
    let now = clock.now();
    let event = |kind: &'static str| crate::audit::Event {
        workspace_id: None,
        account_id: Some(account.id),
        kind,
        detail: serde_json::json!({}),
    };
    if accounts::count_resets_since(db.conn(), account.id, now - Duration::hours(1)).await?
        >= RESETS_PER_HOUR
    {
        crate::audit::record(db, now, event("auth.reset_throttled")).await;
        return Ok(());
    }
    let secret = random_secret();
    let link = format!(
        "{}/reset-password?token={secret}",
        public_url.trim_end_matches('/')
    );
    let tx = db.begin().await?;
    accounts::insert_reset(
        &tx,
        accounts::PasswordResetRow {
            id: new_id(),
            account_id: account.id,
            token_hash: hash_secret(&secret),
            created_at: now,
            expires_at: now + Duration::minutes(RESET_MINUTES),
            used_at: None,
        },
    )
    .await?;
    crate::mail::queue(
        &tx,
        clock,
        &crate::mail::Email {
            to: account.email.clone(),
            subject: "Reset your Formwork password / 重置 Formwork 密码".to_owned(),
            text: format!(
                "Someone asked to reset the password of {email} on Formwork.\n\
                 To choose a new password, open this link within {RESET_MINUTES} minutes:\n\n{link}\n\n\
                 If it was not you, ignore this email; your password stays as it is.\n\n\
                 有人申请重置 Formwork 账号 {email} 的密码。如是本人操作，请在 {RESET_MINUTES} 分钟内打开上面的链接设置新密码；否则请忽略本邮件。\n",
                email = account.email
            ),
            html: None,
            ..Default::default()
        },
    )
    .await?;
    crate::audit::record_in(&tx, now, event("auth.reset_requested")).await?;
    tx.commit().await?;
    Ok(())
}

/// `auth.password_reset`: looks the email up and, for an active account, emails the link.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendPasswordReset;

#[async_trait::async_trait]
impl crate::jobs::Handler for SendPasswordReset {
    fn kind(&self) -> &'static str {
        RESET_JOB
    }

    async fn run(
        &self,
        ctx: &crate::jobs::JobContext,
        job: &crate::store::jobs::JobRow,
    ) -> Result<(), crate::jobs::JobFailure> {
        let field = |name: &str| {
            job.payload
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| crate::jobs::JobFailure::Fatal(format!("no {name} in the payload")))
        };
        send_password_reset(&ctx.db, &ctx.clock, &field("public_url")?, &field("email")?).await?;
        Ok(())
    }
}

/// Sets a new password with a reset link's secret (single use); ends every session of the
/// account.
///
/// # Errors
/// `Error::Invalid` at `/token` (unknown, used or expired link) or `/new_password` (weak).
pub async fn reset_password(db: &Db, clock: &SharedClock, token: &str, new: &str) -> Result<()> {
    check_password_policy(new).map_err(|_| {
        Error::invalid(
            "/new_password",
            "weak",
            "a password has at least 10 characters",
        )
    })?;
    let gone = || {
        Error::invalid(
            "/token",
            "invalid_link",
            "this reset link is unknown, used or expired; ask for a new one",
        )
    };
    if token.len() > 200 || token.contains('\0') {
        return Err(gone());
    }
    let hash = hash_password(new.to_owned()).await?;
    let now = clock.now();
    let Some((reset_id, account_id)) =
        accounts::find_reset(db.conn(), &hash_secret(token), now).await?
    else {
        return Err(gone());
    };
    let tx = db.begin().await?;
    // Marking it used is the first statement: it takes the write lock and settles a race.
    if !accounts::mark_reset_used(&tx, reset_id, now).await? {
        return Err(gone());
    }
    accounts::set_password(&tx, account_id, hash, now).await?;
    sessions::delete_for_account(&tx, account_id, None).await?;
    crate::audit::record_in(
        &tx,
        now,
        crate::audit::Event::of_account(
            account_id,
            "auth.password_reset",
            serde_json::json!({"sessions_ended": true}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(())
}
