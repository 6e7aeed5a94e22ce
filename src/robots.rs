//! Chat robots: the WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书) group robots a
//! workspace's workflows post to (a notify step's channel `robot:<key>`). Admins register a
//! robot by its webhook address and, for DingTalk and Feishu, the signing secret. A post is an
//! `outbox.robot` job enqueued in the step's transaction (at least once, retried with backoff
//! while the service refuses or cannot be reached), built in the service's own message format
//! and signed at send time:
//! - WeCom: `{"msgtype": "markdown", "markdown": {"content"}}` to `…/webhook/send?key=…`; no
//!   signature (the key in the address is the secret);
//! - DingTalk: `{"msgtype": "markdown", "markdown": {"title", "text"}}`; with a secret (加签),
//!   `&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256(secret, "<ms>\n<secret>")>` is added to
//!   the address;
//! - Feishu: `{"msg_type": "post", "content": {"post": {"zh_cn": {"title", "content"}}}}`;
//!   with a secret, `"timestamp": "<s>"` and `"sign": base64 HMAC-SHA256 keyed with
//!   "<s>\n<secret>" over nothing`, in the body.
//!
//! A service answers 200 with its own error code when it refuses (`errcode` / `code` not 0):
//! that is a failed attempt too.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::jobs::{Handler, JobContext, JobFailure, NewJob};
use crate::store::jobs::JobRow;
use crate::store::robots::{self as rows, RobotRow};
use crate::store::write::{Sharing, committed};
use crate::store::{Conn, Db};
use crate::workspaces::Access;

/// The job kind that posts one message.
pub const ROBOT_JOB: &str = "outbox.robot";
/// The services a robot may belong to.
pub const KINDS: &[&str] = &["wecom", "dingtalk", "feishu"];
/// Longest message text posted (the services cut at about 4–20 KB).
const MAX_TEXT: usize = 3_000;

/// A robot as the API shows it: its address with the token hidden, never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct RobotView {
    /// Id.
    pub id: Uuid,
    /// What workflows name it by (`robot:<key>`).
    pub key: String,
    /// `wecom`, `dingtalk` or `feishu`.
    pub kind: String,
    /// The webhook address, its token shortened to its last 4 characters.
    pub url: String,
    /// Whether posts are signed.
    pub signed: bool,
    /// What it is for.
    pub description: String,
    /// Whether it posts.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A robot to register, or the changes to one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotInput {
    /// Its key (new robots only).
    pub key: Option<String>,
    /// The service.
    pub kind: Option<String>,
    /// The group robot's webhook address.
    pub url: Option<String>,
    /// The signing secret (empty: none).
    pub secret: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Whether it posts (default true).
    pub enabled: Option<bool>,
}

/// The address with the token (the last path segment's or a query value's tail) hidden.
fn masked(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "…".to_owned();
    };
    let hide = |value: &str| {
        let tail: String = value
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    };
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), hide(&v)))
        .collect();
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let path = parsed.path().to_owned();
    if let Some((head, last)) = path.rsplit_once('/')
        && last.len() > 8
    {
        parsed.set_path(&format!("{head}/{}", hide(last)));
    }
    parsed.to_string()
}

fn view(row: &RobotRow) -> RobotView {
    RobotView {
        id: row.id,
        key: row.key.clone(),
        kind: row.kind.clone(),
        url: masked(&row.url),
        signed: row.secret.as_deref().is_some_and(|s| !s.is_empty()),
        description: row.description.clone(),
        enabled: row.enabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn not_found(key: &str) -> Error {
    Error::not_found(format!("chat robot {key:?}"))
}

/// Whether `key` may name a robot (`robot:<key>` in a workflow).
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks a robot as it will be stored.
fn check(row: &RobotRow) -> Result<()> {
    let mut problems = Vec::new();
    if !valid_key(&row.key) {
        problems.push(FieldError::new(
            "/key",
            "key",
            "a key is a lowercase letter, then letters, digits or _ (at most 63)",
        ));
    }
    if !KINDS.contains(&row.kind.as_str()) {
        problems.push(FieldError::new(
            "/kind",
            "unknown_kind",
            format!("kind is one of {}", KINDS.join(", ")),
        ));
    }
    match reqwest::Url::parse(&row.url) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.host_str().is_some() => {}
        _ => problems.push(FieldError::new(
            "/url",
            "url",
            "the robot's webhook address must be an http(s) URL (copy it from the group's robot settings)",
        )),
    }
    if row.url.len() > 2000 {
        problems.push(FieldError::new("/url", "too_long", "the URL is too long"));
    }
    if row.secret.as_deref().is_some_and(|s| s.len() > 500) {
        problems.push(FieldError::new(
            "/secret",
            "too_long",
            "the secret is too long",
        ));
    }
    if row.kind == "wecom" && row.secret.as_deref().is_some_and(|s| !s.is_empty()) {
        problems.push(FieldError::new(
            "/secret",
            "not_signed",
            "WeCom group robots do not sign messages; their key is in the address",
        ));
    }
    if row.description.chars().count() > 500 {
        problems.push(FieldError::new(
            "/description",
            "too_long",
            "at most 500 characters",
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_all("the chat robot is not valid", problems))
    }
}

/// The workspace's robots (admins).
///
/// # Errors
/// `Error::Forbidden`.
pub async fn list(db: &Db, access: &Access) -> Result<Vec<RobotView>> {
    access.require_admin()?;
    Ok(rows::of_workspace(db.conn(), access.workspace.id)
        .await?
        .iter()
        .map(view)
        .collect())
}

/// One robot (admins).
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`.
pub async fn get(db: &Db, access: &Access, key: &str) -> Result<RobotView> {
    access.require_admin()?;
    rows::by_key(db.conn(), access.workspace.id, key)
        .await?
        .map(|r| view(&r))
        .ok_or_else(|| not_found(key))
}

/// Registers a robot (admins).
///
/// # Errors
/// `Error::Forbidden`, `Error::Invalid` with pointers, `Error::Conflict` for a key in use.
pub async fn create(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    input: RobotInput,
) -> Result<RobotView> {
    access.require_admin()?;
    let now = clock.now();
    let row = RobotRow {
        id: new_id(),
        workspace_id: access.workspace.id,
        key: input.key.unwrap_or_default(),
        kind: input.kind.unwrap_or_default(),
        url: input.url.unwrap_or_default(),
        secret: input.secret.filter(|s| !s.is_empty()),
        description: input.description.unwrap_or_default(),
        enabled: input.enabled.unwrap_or(true),
        created_by: access.account_id,
        created_at: now,
        updated_at: now,
    };
    check(&row)?;
    let tx = db.write(Sharing::Alone).await?;
    if rows::by_key(&tx, access.workspace.id, &row.key)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "/key",
            "taken",
            format!("a chat robot named {:?} exists", row.key),
        ));
    }
    rows::insert(&tx, row.clone()).await?;
    committed(tx.commit().await?)?;
    Ok(view(&row))
}

/// Changes a robot (admins); its key stays.
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`, `Error::Invalid`.
pub async fn update(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    key: &str,
    input: RobotInput,
) -> Result<RobotView> {
    access.require_admin()?;
    let mut row = rows::by_key(db.conn(), access.workspace.id, key)
        .await?
        .ok_or_else(|| not_found(key))?;
    if input.key.as_deref().is_some_and(|k| k != key) {
        return Err(Error::invalid(
            "/key",
            "immutable",
            "a robot's key cannot change (workflows name it); register a new one",
        ));
    }
    if let Some(kind) = input.kind {
        row.kind = kind;
    }
    if let Some(url) = input.url {
        row.url = url;
    }
    if let Some(secret) = input.secret {
        row.secret = Some(secret).filter(|s| !s.is_empty());
    }
    if let Some(description) = input.description {
        row.description = description;
    }
    if let Some(enabled) = input.enabled {
        row.enabled = enabled;
    }
    row.updated_at = clock.now();
    check(&row)?;
    let tx = db.write(Sharing::Alone).await?;
    rows::update(&tx, row.clone()).await?;
    committed(tx.commit().await?)?;
    Ok(view(&row))
}

/// Removes a robot (admins); posts already queued for it are dropped when they come up.
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`.
pub async fn delete(db: &Db, access: &Access, key: &str) -> Result<()> {
    access.require_admin()?;
    let row = rows::by_key(db.conn(), access.workspace.id, key)
        .await?
        .ok_or_else(|| not_found(key))?;
    let tx = db.write(Sharing::Alone).await?;
    rows::delete(&tx, row.id).await?;
    committed(tx.commit().await?)?;
    Ok(())
}

/// One message for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// A link to open (the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    robot_id: Uuid,
    post: Post,
}

/// Queues a post to the workspace's robot `key` inside the caller's transaction, once per
/// `dedupe` key; `None` when there is no such robot or it is switched off.
///
/// # Errors
/// `Error::Db`.
pub async fn queue(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    key: &str,
    post: &Post,
    dedupe: String,
) -> Result<Option<Uuid>> {
    let Some(robot) = rows::by_key(conn, workspace_id, key)
        .await?
        .filter(|r| r.enabled)
    else {
        return Ok(None);
    };
    let payload = serde_json::to_value(Payload {
        robot_id: robot.id,
        post: post.clone(),
    })
    .map_err(Error::internal)?;
    let mut job = NewJob::new(ROBOT_JOB, payload);
    job.max_attempts = 10;
    job.workspace_id = Some(workspace_id);
    job.dedupe_key = Some(dedupe);
    crate::jobs::enqueue(conn, clock, job).await
}

/// Queues a test post to a robot now (admins), to check its address and secret.
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`, `Error::Conflict` (switched off).
pub async fn test(db: &Db, clock: &SharedClock, access: &Access, key: &str) -> Result<Uuid> {
    access.require_admin()?;
    let row = rows::by_key(db.conn(), access.workspace.id, key)
        .await?
        .ok_or_else(|| not_found(key))?;
    if !row.enabled {
        return Err(Error::conflict(
            "/enabled",
            "disabled",
            "the robot is switched off",
        ));
    }
    let post = Post {
        title: "Formwork".to_owned(),
        body: format!(
            "Test message from {} · 来自 {} 的测试消息",
            access.workspace.name, access.workspace.name
        ),
        link: None,
    };
    let tx = db.write(Sharing::Alone).await?;
    let job = queue(
        &tx,
        clock,
        access.workspace.id,
        key,
        &post,
        format!("robot-test:{}", new_id()),
    )
    .await?;
    committed(tx.commit().await?)?;
    job.ok_or_else(|| not_found(key))
}

fn cut(text: &str) -> String {
    crate::comments::markup::excerpt(text, MAX_TEXT)
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    use base64::Engine;
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk's 加签: base64 HMAC-SHA256 keyed with the secret over "<ms>\n<secret>".
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    hmac_base64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}

/// Feishu's signature: base64 HMAC-SHA256 keyed with "<s>\n<secret>" over an empty message.
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    hmac_base64(format!("{timestamp_s}\n{secret}").as_bytes(), b"")
}

/// The address and body of a post to a robot of `kind`, signed for `now` when a secret is set.
///
/// # Errors
/// `Error::Invalid` for an unknown kind or an address that is not a URL.
pub fn request(
    kind: &str,
    url: &str,
    secret: Option<&str>,
    post: &Post,
    now: DateTime<Utc>,
) -> Result<(String, Value)> {
    let link_md = post
        .link
        .as_deref()
        .map(|l| format!("\n\n[{}]({l})", "Open · 打开"))
        .unwrap_or_default();
    match kind {
        "wecom" => Ok((
            url.to_owned(),
            json!({"msgtype": "markdown", "markdown": {
                "content": cut(&format!("**{}**\n{}{link_md}", post.title, post.body))}}),
        )),
        "dingtalk" => {
            let mut address = reqwest::Url::parse(url)
                .map_err(|e| Error::invalid("/url", "url", e.to_string()))?;
            if let Some(secret) = secret {
                let timestamp = now.timestamp_millis();
                address
                    .query_pairs_mut()
                    .append_pair("timestamp", &timestamp.to_string())
                    .append_pair("sign", &dingtalk_sign(secret, timestamp));
            }
            Ok((
                address.to_string(),
                json!({"msgtype": "markdown", "markdown": {
                    "title": cut(&post.title),
                    "text": cut(&format!("#### {}\n\n{}{link_md}", post.title, post.body))}}),
            ))
        }
        "feishu" => {
            let mut lines: Vec<Value> = post
                .body
                .lines()
                .map(|line| json!([{"tag": "text", "text": cut(line)}]))
                .collect();
            if let Some(link) = &post.link {
                lines.push(json!([{"tag": "a", "text": "Open · 打开", "href": link}]));
            }
            let mut body = json!({"msg_type": "post", "content": {"post": {"zh_cn": {
                "title": cut(&post.title), "content": lines}}}});
            if let Some(secret) = secret {
                let timestamp = now.timestamp();
                body["timestamp"] = json!(timestamp.to_string());
                body["sign"] = json!(feishu_sign(secret, timestamp));
            }
            Ok((url.to_owned(), body))
        }
        other => Err(Error::invalid(
            "/kind",
            "unknown_kind",
            format!("{other:?} is not a chat robot kind"),
        )),
    }
}

/// The service's own verdict in a 200 answer: `Err` with its code and message when it refused.
fn verdict(answer: &Value) -> std::result::Result<(), String> {
    let code = answer
        .get("errcode")
        .or_else(|| answer.get("code"))
        .or_else(|| answer.get("StatusCode"))
        .and_then(Value::as_i64);
    match code {
        None | Some(0) => Ok(()),
        Some(code) => Err(format!(
            "the service refused the message: {code} {}",
            answer
                .get("errmsg")
                .or_else(|| answer.get("msg"))
                .or_else(|| answer.get("StatusMessage"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        )),
    }
}

/// `outbox.robot`: posts one message to a group robot (see the module).
#[derive(Debug, Clone)]
pub struct RobotDelivery {
    /// The webhook delivery's client (timeouts, no redirects, internal addresses refused).
    pub http: crate::jobs::WebhookDelivery,
}

#[async_trait::async_trait]
impl Handler for RobotDelivery {
    fn kind(&self) -> &'static str {
        ROBOT_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> std::result::Result<(), JobFailure> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed robot post: {e}")))?;
        // Removed or switched off meanwhile: nothing to post.
        let Some(robot) = rows::find(ctx.db.conn(), payload.robot_id)
            .await?
            .filter(|r| r.enabled)
        else {
            return Ok(());
        };
        let (url, body) = request(
            &robot.kind,
            &robot.url,
            robot.secret.as_deref(),
            &payload.post,
            ctx.clock.now(),
        )?;
        let client = self.http.client_for(&url).await?;
        let response = client
            .post(&url)
            .json(&body)
            .send()
            .await
            // The address holds the robot's token: errors name the host, never the URL.
            .map_err(|e| JobFailure::Retry(format!("posting failed: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(JobFailure::Retry(format!("the service answered {status}")));
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        verdict(&answer).map_err(JobFailure::Retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post() -> Post {
        Post {
            title: "新线索".to_owned(),
            body: "北京星辰科技\n预算 ¥50,000".to_owned(),
            link: Some("https://crm.example.com/w/demo/e/lead/1".to_owned()),
        }
    }

    #[test]
    fn signatures_follow_each_service() {
        // Reference values computed with Python's hmac, as the services' own samples do:
        // base64(hmac.new(secret, f"{ms}\n{secret}", sha256)) for DingTalk,
        // base64(hmac.new(f"{s}\n{secret}", b"", sha256)) for Feishu.
        assert_eq!(
            dingtalk_sign("SEC000", 1_700_000_000_000),
            "ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA="
        );
        assert_eq!(
            feishu_sign("s3cret", 1_700_000_000),
            "IX3eHI0/v/Td7jqJ0ynSEK3Dq5JY3HUZeoeMgVZeZGo="
        );
        assert_ne!(feishu_sign("s3cret", 1), feishu_sign("s3cret", 2));
    }

    #[test]
    fn each_service_gets_its_own_format() {
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().expect("instant");
        let (url, body) = request(
            "wecom",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            None,
            &post(),
            now,
        )
        .expect("wecom");
        assert!(url.ends_with("key=k"));
        assert_eq!(body["msgtype"], "markdown");
        assert!(
            body["markdown"]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("**新线索**\n北京星辰科技"))
        );
        let (url, body) = request(
            "dingtalk",
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            Some("SEC1"),
            &post(),
            now,
        )
        .expect("dingtalk");
        let ms = now.timestamp_millis().to_string();
        let query: Vec<(String, String)> = reqwest::Url::parse(&url)
            .expect("url")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let sign = dingtalk_sign("SEC1", now.timestamp_millis());
        assert_eq!(
            query,
            vec![
                ("access_token".to_owned(), "t".to_owned()),
                ("timestamp".to_owned(), ms),
                ("sign".to_owned(), sign)
            ]
        );
        assert_eq!(body["markdown"]["title"], "新线索");
        let (_, body) = request(
            "feishu",
            "https://open.feishu.cn/open-apis/bot/v2/hook/x",
            Some("S"),
            &post(),
            now,
        )
        .expect("feishu");
        assert_eq!(body["msg_type"], "post");
        assert_eq!(body["timestamp"], now.timestamp().to_string());
        assert_eq!(body["sign"], feishu_sign("S", now.timestamp()));
        assert_eq!(
            body["content"]["post"]["zh_cn"]["content"][2][0]["tag"],
            "a"
        );
        assert!(request("slack", "https://x", None, &post(), now).is_err());
    }

    #[test]
    fn refusals_in_a_200_answer_fail_the_attempt() {
        assert!(verdict(&json!({"errcode": 0, "errmsg": "ok"})).is_ok());
        assert!(verdict(&json!({"code": 0, "msg": "success"})).is_ok());
        assert!(verdict(&json!({"errcode": 310000, "errmsg": "sign not match"})).is_err());
        assert!(verdict(&json!({"code": 19021, "msg": "sign match fail"})).is_err());
    }

    #[test]
    fn tokens_are_hidden_in_addresses() {
        assert_eq!(
            masked("https://oapi.dingtalk.com/robot/send?access_token=abcdef123456"),
            "https://oapi.dingtalk.com/robot/send?access_token=%E2%80%A63456"
        );
        assert_eq!(
            masked("https://open.feishu.cn/open-apis/bot/v2/hook/0123456789abcdef"),
            "https://open.feishu.cn/open-apis/bot/v2/hook/%E2%80%A6cdef"
        );
        assert!(valid_key("sales_group"));
        assert!(!valid_key("Sales"));
        assert!(!valid_key("1x"));
    }
}
