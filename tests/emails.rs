//! Email from records through the API, the pages and a real SMTP conversation, on both
//! databases: an email written from the Sales CRM's template reaches a customer's contact
//! through the outbox (a real SMTP listener), stays on the customer's timeline with its
//! delivery status, and the contact's reply sent to the workspace's inbound address (Formwork's
//! own SMTP server) is filed on the customer and on the contact; members' BCC copies and
//! strangers' mail are filed by address or kept unfiled; bad emails, bad templates and bad SMTP
//! sessions are refused and change nothing.

mod common;

use std::time::Duration;

use common::{
    ADMIN_EMAIL, Backend, Client, INBOUND_DOMAIN, Options, PageClient, SmtpSink, TestApp,
    assert_problem, deliver_inbound, join_member, publish_definition,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const W: &str = "/api/v1/w/demo";

async fn spawn(backend: Backend, smtp: Option<&SmtpSink>) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            smtp_url: smtp.map(|s| format!("smtp://127.0.0.1:{}", s.port)),
            inbound: true,
            configure: |config| config.inbound_max_bytes = 64 * 1024,
            ..Options::default()
        },
    )
    .await
}

async fn create(client: &Client, entity: &str, fields: Value) -> String {
    let (status, body) = client
        .post(
            &format!("{W}/entities/{entity}/records"),
            json!({ "fields": fields }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// A customer with one contact; returns (customer, contact).
async fn customer_with_contact(
    client: &Client,
    name: &str,
    person: &str,
    email: &str,
) -> (String, String) {
    let customer = create(
        client,
        "customer",
        json!({"name": name, "lifecycle_stage": "first_contact"}),
    )
    .await;
    let contact = create(
        client,
        "contact",
        json!({"name": person, "customer": customer, "email": email}),
    )
    .await;
    (customer, contact)
}

fn emails_of(entity: &str, id: &str) -> String {
    format!("{W}/entities/{entity}/records/{id}/emails")
}

async fn emails(client: &Client, entity: &str, id: &str) -> Vec<Value> {
    let (status, body) = client.get(&emails_of(entity, id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().expect("a list")
}

async fn inbound_address(client: &Client) -> String {
    let (status, body) = client.get(&format!("{W}/inbound-address")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], true, "{body}");
    body["address"].as_str().expect("address").to_owned()
}

async fn an_email_from_a_customer_reaches_its_contact_and_the_reply_comes_back(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, Some(&smtp)).await;
    let admin = app.admin().await;
    let (customer, contact) =
        customer_with_contact(&admin, "北京星辰科技", "Li Na", "Li.Na@Example.com").await;

    // The Sales CRM ships a follow-up template for customers.
    let (status, templates) = admin
        .get(&format!("{W}/entities/customer/email-templates?lang=zh-CN"))
        .await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    assert!(
        templates
            .as_array()
            .expect("list")
            .iter()
            .any(|t| t["key"] == "customer_follow_up" && t["label"] == "跟进邮件"),
        "{templates}"
    );
    // A draft from it greets the customer's contact, in the sender's language.
    let (status, draft) = admin
        .get(&format!(
            "{}/draft?template=customer_follow_up&lang=zh-CN",
            emails_of("customer", &customer)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    assert_eq!(draft["to"], json!(["li.na@example.com"]), "{draft}");
    assert_eq!(draft["suggestions"][0]["name"], "Li Na", "{draft}");
    assert!(
        draft["subject"]
            .as_str()
            .is_some_and(|s| s.contains("北京星辰科技")),
        "{draft}"
    );
    let body = draft["body"].as_str().expect("body");
    assert!(body.starts_with("Li Na，您好"), "{body}");

    // Sent as the template wrote it: queued at once, sent by the worker.
    let (status, sent) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"template": "customer_follow_up", "to": ["li.na@example.com"],
                   "cc": ["Wang Wei <wang@example.com>"], "lang": "zh-CN"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["status"], "queued");
    assert_eq!(sent["direction"], "out");
    assert_eq!(sent["subject"], draft["subject"]);
    let message_id = sent["message_id"].as_str().expect("message id").to_owned();
    assert!(
        message_id.ends_with(&format!("@{INBOUND_DOMAIN}")),
        "{sent}"
    );
    app.run_jobs_until_idle().await;
    let inbound = inbound_address(&admin).await;
    let delivered = smtp.messages();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let mail = &delivered[0];
    assert!(mail.contains("To: li.na@example.com"), "{mail}");
    assert!(
        mail.contains("Cc: \"Wang Wei\" <wang@example.com>"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{message_id}>")),
        "{mail}"
    );
    assert!(mail.contains(&inbound), "replies come back: {mail}");
    assert!(
        mail.contains(ADMIN_EMAIL),
        "replies reach the sender too: {mail}"
    );
    assert!(mail.contains("Li Na，您好"), "{mail}");
    let listed = emails(&admin, "customer", &customer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "sent", "{listed:?}");
    assert!(listed[0]["sent_at"].is_string());

    // The contact replies (to the inbound address): filed on the customer through the
    // thread, and on the contact through her address.
    let reply = format!(
        "From: Li Na <li.na@example.com>\nTo: {inbound}\nSubject: Re: 跟进\nMessage-ID: <reply-1@example.com>\nIn-Reply-To: <{message_id}>\nReferences: <{message_id}>\nContent-Type: text/plain; charset=utf-8\n\n好的，周四下午可以。\n"
    );
    deliver_inbound(&app, "li.na@example.com", &inbound, &reply).await;
    // The sending server tries again after a lost answer: still one message.
    deliver_inbound(&app, "li.na@example.com", &inbound, &reply).await;
    let on_customer = emails(&admin, "customer", &customer).await;
    assert_eq!(on_customer.len(), 2, "{on_customer:?}");
    let received = &on_customer[0];
    assert_eq!(received["direction"], "in");
    assert_eq!(received["status"], "received");
    assert_eq!(received["from_address"], "li.na@example.com");
    assert_eq!(received["replies_to"], sent["id"]);
    assert!(
        received["body"]
            .as_str()
            .is_some_and(|b| b.contains("周四下午")),
        "{received}"
    );
    let on_contact = emails(&admin, "contact", &contact).await;
    assert_eq!(on_contact.len(), 1, "{on_contact:?}");
    assert_eq!(on_contact[0]["id"], received["id"]);
    // The sender hears of the reply in the app (once), on the customer.
    let (_, inbox) = admin.get(&format!("{W}/notifications")).await;
    let replies: Vec<&Value> = inbox["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["kind"] == "reply")
        .collect();
    assert_eq!(replies.len(), 1, "{inbox}");
    assert_eq!(replies[0]["entity"], "customer");
    assert_eq!(replies[0]["record_id"], customer.as_str());
    assert!(
        replies[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Li Na") && t.contains("Re: 跟进")),
        "{inbox}"
    );
    // By default a reply is not emailed again (it reached the sender's mailbox already).
    assert_eq!(smtp.messages().len(), 1);

    // A member's BCC copy to their personal address is filed on the person it went to.
    let (_, wang) = customer_with_contact(&admin, "上海云帆", "Wang Wei", "wang@example.com").await;
    let (_, addresses) = admin.get(&format!("{W}/inbound-address")).await;
    let bcc = addresses["bcc_address"]
        .as_str()
        .expect("bcc address")
        .to_owned();
    assert!(
        bcc.starts_with(inbound.trim_end_matches(&format!("@{INBOUND_DOMAIN}"))),
        "{addresses}"
    );
    let copy = format!(
        "From: Admin <{ADMIN_EMAIL}>\nTo: wang@example.com\nBcc: {bcc}\nSubject: Contract draft\nMessage-ID: <bcc-1@example.com>\n\nPlease see the draft.\n"
    );
    deliver_inbound(&app, ADMIN_EMAIL, &bcc, &copy).await;
    let on_wang = emails(&admin, "contact", &wang).await;
    assert_eq!(on_wang.len(), 1, "{on_wang:?}");
    assert_eq!(on_wang[0]["direction"], "out");
    assert_eq!(on_wang[0]["subject"], "Contract draft");
    assert!(on_wang[0]["sent_by"].is_string(), "{on_wang:?}");
    // Someone posing as a member at the public address is only an outsider: nothing is filed
    // as sent by the member, nor on the records they name.
    let forged = format!(
        "From: Admin <{ADMIN_EMAIL}>\nTo: wang@example.com\nSubject: Forged\nMessage-ID: <forged-1@example.com>\n\nPay to this account.\n"
    );
    deliver_inbound(&app, ADMIN_EMAIL, &inbound, &forged).await;
    assert_eq!(emails(&admin, "contact", &wang).await.len(), 1);
    // A personal address with a code that is nobody's is refused.
    let mut session = SmtpSession::open(&app).await;
    session.expect("EHLO tester", "250").await;
    session.expect("MAIL FROM:<x@example.com>", "250").await;
    let wrong = inbound.replace('@', ".000000000000@");
    session.expect(&format!("RCPT TO:<{wrong}>"), "550").await;
    session.expect("QUIT", "221").await;

    // A stranger's mail matches nothing: kept unfiled for admins, who file it by hand.
    let stray = format!(
        "From: someone@elsewhere.org\nTo: {inbound}\nSubject: Partnership\nMessage-ID: <stray-1@elsewhere.org>\n\nHello there.\n"
    );
    deliver_inbound(&app, "someone@elsewhere.org", &inbound, &stray).await;
    let (status, unfiled) = admin.get(&format!("{W}/emails/unfiled")).await;
    assert_eq!(status, StatusCode::OK, "{unfiled}");
    assert_eq!(unfiled.as_array().map(Vec::len), Some(2), "{unfiled}");
    assert_eq!(unfiled[0]["subject"], "Partnership");
    assert_eq!(unfiled[1]["subject"], "Forged");
    assert_eq!(unfiled[1]["direction"], "in");
    assert!(unfiled[1]["sent_by"].is_null(), "{unfiled}");
    let stray_id = unfiled[0]["id"].as_str().expect("id").to_owned();
    let (rep, _) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let (status, body) = rep.get(&format!("{W}/emails/unfiled")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = rep
        .post(
            &format!("{W}/emails/{stray_id}/file"),
            json!({"entity": "customer", "record_id": customer}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .post(
            &format!("{W}/emails/{stray_id}/file"),
            json!({"entity": "customer", "record_id": "01a24bc2-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin
        .post(
            &format!("{W}/emails/{stray_id}/file"),
            json!({"entity": "customer", "record_id": customer}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(emails(&admin, "customer", &customer).await.len(), 3);
    let (_, unfiled) = admin.get(&format!("{W}/emails/unfiled")).await;
    assert_eq!(unfiled.as_array().map(Vec::len), Some(1), "{unfiled}");

    // A rotated address takes mail; the old one is refused at RCPT.
    let (status, rotated) = admin
        .post(&format!("{W}/inbound-address/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_address = rotated["address"].as_str().expect("address").to_owned();
    assert_ne!(new_address, inbound);
    let (status, body) = rep
        .post(&format!("{W}/inbound-address/rotate"), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let mut session = SmtpSession::open(&app).await;
    session.expect("EHLO tester", "250").await;
    session.expect("MAIL FROM:<li.na@example.com>", "250").await;
    session.expect(&format!("RCPT TO:<{inbound}>"), "550").await;
    session
        .expect(&format!("RCPT TO:<{new_address}>"), "250")
        .await;
    session.expect("QUIT", "221").await;

    // A rep who cannot read the customer learns nothing of its emails.
    let (status, body) = rep.get(&emails_of("customer", &customer)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = rep
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["x@example.com"], "subject": "s", "body": "b"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);

    // Purging the contact takes the mail filed only on it; the customer keeps its own.
    let (status, body) = admin
        .delete(&format!("{W}/entities/contact/records/{wang}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = admin
        .delete(&format!("{W}/entities/contact/records/{wang}?purge=true"))
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = admin.get(&emails_of("contact", &wang)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(emails(&admin, "customer", &customer).await.len(), 3);
    let (_, unfiled) = admin.get(&format!("{W}/emails/unfiled")).await;
    assert_eq!(
        unfiled.as_array().map(Vec::len),
        Some(1),
        "the copy went: {unfiled}"
    );

    // Erasing the contact takes her reply from every record it was filed on, and an email
    // still waiting in the outbox to her is never sent.
    let (status, waiting) = admin
        .post(
            &emails_of("contact", &contact),
            json!({"to": ["li.na@example.com"], "subject": "Waiting", "body": "Not yet sent"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{waiting}");
    let before = smtp.messages().len();
    let (status, body) = admin
        .post(
            &format!("{W}/entities/contact/records/{contact}/erase"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left = emails(&admin, "customer", &customer).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|e| e["id"] != received["id"]), "{left:?}");
    app.run_jobs_until_idle().await;
    assert_eq!(
        smtp.messages().len(),
        before,
        "the erased person's email was not sent"
    );
}

async fn bad_emails_and_templates_are_refused_and_change_nothing(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, Some(&smtp)).await;
    let admin = app.admin().await;
    let (customer, _) = customer_with_contact(&admin, "Acme", "Li Na", "li.na@example.com").await;
    let url = emails_of("customer", &customer);
    let cases = [
        (
            json!({"to": ["nope"], "subject": "s", "body": "b"}),
            "/to/0",
            "bad_address",
        ),
        (
            json!({"to": ["a@b.com\r\nBcc: x@y.com"], "subject": "s", "body": "b"}),
            "/to/0",
            "bad_address",
        ),
        (
            json!({"to": ["a@b.com"], "cc": ["", "c@d.com"], "subject": "s", "body": "b"}),
            "/cc/0",
            "bad_address",
        ),
        (
            json!({"to": [], "subject": "s", "body": "b"}),
            "/to",
            "required",
        ),
        (
            json!({"to": (0..11).map(|i| format!("p{i}@example.com")).collect::<Vec<_>>(), "subject": "s", "body": "b"}),
            "/to",
            "too_many",
        ),
        (
            json!({"to": ["a@b.com"], "subject": "one\r\nBcc: x@y.com", "body": "b"}),
            "/subject",
            "one_line",
        ),
        (
            json!({"to": ["a@b.com"], "subject": "   ", "body": "b"}),
            "/subject",
            "required",
        ),
        (
            json!({"to": ["a@b.com"], "subject": "x".repeat(301), "body": "b"}),
            "/subject",
            "too_long",
        ),
        (
            json!({"to": ["a@b.com"], "subject": "s", "body": " \n "}),
            "/body",
            "required",
        ),
        (
            json!({"to": ["a@b.com"], "subject": "s", "body": "x".repeat(100_001)}),
            "/body",
            "too_long",
        ),
        (
            json!({"to": ["a@b.com"], "template": "quote_email"}),
            "/template",
            "unknown_template",
        ),
        (
            json!({"to": ["a@b.com"], "template": "nope", "subject": "s", "body": "b"}),
            "/template",
            "unknown_template",
        ),
        (
            json!({"to": ["a@b.com"], "subject": "s", "body": "b", "lang": "fr"}),
            "/lang",
            "language",
        ),
    ];
    for (request, pointer, code) in cases {
        let (status, body) = admin.post(&url, request.clone()).await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(pointers.contains(&pointer.to_owned()), "{request}: {body}");
        assert!(
            body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .any(|e| e["code"] == code),
            "{request}: {body}"
        );
    }
    let (status, body) = admin.post(&url, json!({"to": "a@b.com"})).await;
    assert!(status.is_client_error(), "{status} {body}");

    // Templates that do not compile are refused with the line; those that fail or run away
    // at render time refuse the email, located.
    let (status, body) = publish_definition(
        &admin,
        "email_template",
        "broken",
        json!({"entity": "customer", "label": {"en": "Broken"}, "subject": "Hi", "body": "line one\n{% if %}"}),
    )
    .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pointers.iter().any(|p| p.ends_with("/body")), "{body}");
    assert!(body.to_string().contains("\"line\":2"), "{body}");
    let (status, body) = publish_definition(
        &admin,
        "email_template",
        "elsewhere",
        json!({"entity": "no_such_entity", "label": {"en": "x"}, "subject": "Hi", "body": "b"}),
    )
    .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    for (key, body_source, code) in [
        (
            "filter",
            "Hello\n{{ record.name | nope }}",
            "template_error",
        ),
        (
            "runaway",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "template_limit",
        ),
    ] {
        let (status, published) = publish_definition(
            &admin,
            "email_template",
            key,
            json!({"entity": "customer", "label": {"en": key}, "subject": "Hi {{ record.name }}", "body": body_source}),
        )
        .await;
        assert!(status.is_success(), "{published}");
        let (status, body) = admin.get(&format!("{url}/draft?template={key}")).await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(pointers, vec!["/template/body".to_owned()], "{body}");
        assert_eq!(body["errors"][0]["code"], code, "{body}");
        let (status, body) = admin
            .post(&url, json!({"to": ["a@b.com"], "template": key}))
            .await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Values are text in the email, never a template of their own.
    let sneaky = create(
        &admin,
        "customer",
        json!({"name": "{{ 7 * 7 }} <b>bold</b>", "lifecycle_stage": "first_contact"}),
    )
    .await;
    let (status, draft) = admin
        .get(&format!(
            "{}/draft?template=customer_follow_up",
            emails_of("customer", &sneaky)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    assert!(
        draft["subject"]
            .as_str()
            .is_some_and(|s| s.contains("{{ 7 * 7 }} <b>bold</b>")),
        "{draft}"
    );

    // Nothing was kept or queued.
    assert!(emails(&admin, "customer", &customer).await.is_empty());
    app.run_jobs_until_idle().await;
    assert!(smtp.messages().is_empty(), "{:?}", smtp.messages());

    // A server without SMTP says so, and keeps nothing.
    let quiet = spawn(backend, None).await;
    let admin = quiet.admin().await;
    let (customer, _) = customer_with_contact(&admin, "Acme", "Li", "li@example.com").await;
    let (status, body) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["li@example.com"], "subject": "s", "body": "b"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["errors"][0]["code"], "mail_disabled", "{body}");
    assert!(emails(&admin, "customer", &customer).await.is_empty());
}

/// A raw SMTP conversation with the app's inbound server.
struct SmtpSession {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl SmtpSession {
    async fn open(app: &TestApp) -> Self {
        let stream = tokio::net::TcpStream::connect(app.inbound.expect("inbound"))
            .await
            .expect("connect");
        let (read, writer) = stream.into_split();
        let mut session = Self {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = session.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        session
    }

    /// The next reply (the last line of a multi-line one).
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                    .await
                    .expect("an answer in time")
                    .expect("read");
            assert!(read > 0, "the server closed the connection");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    async fn send(&mut self, text: &str) {
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .await
            .expect("write");
    }

    async fn expect(&mut self, command: &str, code: &str) -> String {
        self.send(command).await;
        let reply = self.reply().await;
        assert!(
            reply.starts_with(code),
            "{command:?} got {reply:?}, not {code}"
        );
        reply
    }
}

async fn the_inbound_server_refuses_what_it_cannot_take(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    let inbound = inbound_address(&admin).await;
    let (customer, contact) =
        customer_with_contact(&admin, "Acme", "Li Na", "li.na@example.com").await;

    let mut s = SmtpSession::open(&app).await;
    s.expect("MAIL FROM:<li.na@example.com>", "503").await;
    s.expect("EHLO tester", "250").await;
    s.expect("RCPT TO:<x@y.com>", "503").await;
    s.expect("DATA", "503").await;
    s.expect("MAIL FROM:li.na@example.com", "501").await;
    s.expect("MAIL FROM:<li.na@example.com> SIZE=999999999", "552")
        .await;
    s.expect("MAIL FROM:<li.na@example.com>", "250").await;
    s.expect("MAIL FROM:<li.na@example.com>", "503").await;
    s.expect("RCPT TO:<somebody@elsewhere.com>", "550").await;
    s.expect(
        &format!("RCPT TO:<demo+wrongtoken@{INBOUND_DOMAIN}>"),
        "550",
    )
    .await;
    s.expect(&format!("RCPT TO:<{inbound}>"), "250").await;
    s.expect("HELP", "502").await;
    // A message over the size limit is read to its end, refused, and the session goes on.
    s.expect("DATA", "354").await;
    s.send("From: li.na@example.com\r\nSubject: big\r\n").await;
    let line = "x".repeat(1000);
    for _ in 0..100 {
        s.send(&line).await;
    }
    s.expect(".", "552").await;
    s.expect("NOOP", "250").await;
    // A bare LF never ends the data (no smuggled commands), and its message is refused.
    s.expect("MAIL FROM:<li.na@example.com>", "250").await;
    s.expect(&format!("RCPT TO:<{inbound}>"), "250").await;
    s.expect("DATA", "354").await;
    s.send("From: li.na@example.com\r\nSubject: smuggled\r\n\r\nhi\n.\nMAIL FROM:<x@y.z>\n.\r\nRCPT TO:<a@b.c>")
        .await;
    s.expect(".", "550").await;
    s.expect("RSET", "250").await;
    // A command line past the limit is refused.
    s.expect(&format!("NOOP {}", "y".repeat(5000)), "500").await;
    s.expect("QUIT", "221").await;
    assert!(emails(&admin, "customer", &customer).await.is_empty());
    assert!(emails(&admin, "contact", &contact).await.is_empty());

    // Too many mistakes end the session.
    let mut s = SmtpSession::open(&app).await;
    for _ in 0..10 {
        s.send("BOGUS").await;
        let reply = s.reply().await;
        assert!(reply.starts_with("502"), "{reply}");
    }
    s.send("NOOP").await;
    let reply = s.reply().await;
    assert!(reply.starts_with("421"), "{reply}");

    // A well-formed session files the message, dot-stuffed lines restored.
    let mut s = SmtpSession::open(&app).await;
    s.expect("HELO tester", "250").await;
    s.expect("MAIL FROM:<li.na@example.com>", "250").await;
    s.expect(&format!("RCPT TO:<{inbound}>"), "250").await;
    s.expect("DATA", "354").await;
    s.send("From: Li Na <li.na@example.com>\r\nSubject: Hello\r\nMessage-ID: <m1@example.com>\r\n\r\nfirst\r\n..dotted line\r\n").await;
    s.expect(".", "250").await;
    s.expect("QUIT", "221").await;
    let filed = emails(&admin, "contact", &contact).await;
    assert_eq!(filed.len(), 1, "{filed:?}");
    assert_eq!(filed[0]["body"], "first\n.dotted line");

    // A sender address no email field could hold is taken and kept unfiled, not bounced.
    deliver_inbound(
        &app,
        "root@localhost",
        &inbound,
        &format!("From: root@localhost\nTo: {inbound}\nSubject: cron\nMessage-ID: <cron-1@localhost>\n\nDone.\n"),
    )
    .await;
    let (_, unfiled) = admin.get(&format!("{W}/emails/unfiled")).await;
    assert_eq!(unfiled[0]["subject"], "cron", "{unfiled}");
}

async fn the_record_page_composes_sends_and_shows_emails(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, Some(&smtp)).await;
    let admin = app.admin().await;
    let (customer, _) =
        customer_with_contact(&admin, "北京星辰科技", "Li Na", "li.na@example.com").await;
    let page = PageClient::sign_in(&app, ADMIN_EMAIL, common::ADMIN_PASSWORD, "zh-CN").await;
    let record = format!("/w/demo/e/customer/{customer}");
    let (status, html) = page.get(&record).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("data-testid=\"compose-email\""),
        "the page offers email"
    );

    let (status, html) = page
        .get(&format!("{record}/email?template=customer_follow_up"))
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("value=\"li.na@example.com\""), "{html}");
    assert!(html.contains("Li Na，您好"), "{html}");
    assert!(
        html.contains(INBOUND_DOMAIN),
        "the composer names the inbound address"
    );

    // A refusal redraws the composer with what was written.
    let (status, _, html) = page
        .post(
            &format!("{record}/email"),
            &[
                ("to", "not-an-address"),
                ("subject", "周四见"),
                ("body", "我写的正文"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("data-testid=\"email-error\""), "{html}");
    assert!(
        html.contains("我写的正文") && html.contains("周四见"),
        "{html}"
    );
    assert!(emails(&admin, "customer", &customer).await.is_empty());

    let (status, location, _) = page
        .post(
            &format!("{record}/email"),
            &[
                ("template", "customer_follow_up"),
                ("to", "li.na@example.com; wang@example.com"),
                ("subject", "周四见"),
                ("body", "Li Na，您好：\n周四下午见。"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with(&format!("{record}#email-")),
        "{location}"
    );
    let listed = emails(&admin, "customer", &customer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["to"],
        json!(["li.na@example.com", "wang@example.com"])
    );
    assert_eq!(listed[0]["template"], "customer_follow_up");
    let (_, html) = page.get(&record).await;
    assert!(html.contains("data-testid=\"timeline-email\""), "{html}");
    assert!(html.contains("周四见") && html.contains("发送中"), "{html}");
    app.run_jobs_until_idle().await;
    let (_, html) = page.get(&record).await;
    assert!(html.contains("已发送"), "{html}");
    assert_eq!(smtp.messages().len(), 1);
}

async fn who_may_email_what_they_see_and_what_fails(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, Some(&smtp)).await;
    let admin = app.admin().await;
    let (customer, _) =
        customer_with_contact(&admin, "北京星辰科技", "Li Na", "li.na@example.com").await;
    let (status, sent) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["li.na@example.com"], "subject": "Hello", "body": "Hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");

    // A member who reads customers but may not change them reads the mail, with addresses
    // masked as their role masks contacts' emails, and may not write from the record.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/viewer"),
            json!({"name": "Viewer", "rights": {"entities": {
                "*": {"create": "none", "read": "all", "update": "none", "delete": "none"},
                "contact": {"fields": {"email": "masked"}}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (viewer, _) = join_member(&app, &admin, "viewer@example.com", "viewer").await;
    let seen = emails(&viewer, "customer", &customer).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["to"], json!(["l***@example.com"]), "{seen:?}");
    let (status, body) = viewer
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["li.na@example.com"], "subject": "s", "body": "b"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, draft) = viewer
        .get(&format!("{}/draft", emails_of("customer", &customer)))
        .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    assert_eq!(
        draft["to"],
        json!([]),
        "a masked address is not offered: {draft}"
    );
    let page = PageClient::sign_in(&app, "viewer@example.com", "user-password-123", "en").await;
    let (_, html) = page.get(&format!("/w/demo/e/customer/{customer}")).await;
    assert!(
        !html.contains("data-testid=\"compose-email\""),
        "no email button"
    );
    assert!(html.contains("l***@example.com"), "{html}");
    assert!(!html.contains("li.na@example.com"), "{html}");

    // A server refusing the recipient for good: failed after one try, with its answer.
    smtp.refuse("nobody@example.com");
    let (status, doomed) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["nobody@example.com"], "subject": "Hello", "body": "Hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{doomed}");
    app.run_jobs_until_idle().await;
    let listed = emails(&admin, "customer", &customer).await;
    let failed = listed
        .iter()
        .find(|e| e["id"] == doomed["id"])
        .expect("listed");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("550")),
        "{failed}"
    );
    assert!(
        listed
            .iter()
            .any(|e| e["id"] == sent["id"] && e["status"] == "sent")
    );

    // An email whose worker kept dying before it could report shows as failed, with why.
    let (status, orphan) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["li.na@example.com"], "subject": "Orphan", "body": "Hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{orphan}");
    let now = app.services.clock().now();
    for i in 0..10 {
        let at = now + chrono::Duration::seconds(i);
        let claimed = formwork::store::jobs::claim(
            app.services.db().conn(),
            "a-worker-that-dies",
            &["outbox.email"],
            1,
            at,
            at,
        )
        .await
        .expect("claim");
        assert_eq!(claimed.len(), 1);
    }
    app.advance(chrono::Duration::minutes(1));
    app.run_jobs_until_idle().await;
    let listed = emails(&admin, "customer", &customer).await;
    let given_up = listed
        .iter()
        .find(|e| e["id"] == orphan["id"])
        .expect("listed");
    assert_eq!(given_up["status"], "failed", "{given_up}");
    assert!(
        given_up["error"]
            .as_str()
            .is_some_and(|e| e.contains("no attempts left")),
        "{given_up}"
    );

    // A member sends at most 100 emails an hour from records.
    for i in 3..100 {
        let (status, body) = admin
            .post(
                &emails_of("customer", &customer),
                json!({"to": ["li.na@example.com"], "subject": format!("n{i}"), "body": "b"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {body}");
    }
    let (status, body) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["li.na@example.com"], "subject": "one more", "body": "b"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS);
    app.advance(chrono::Duration::minutes(61));
    let (status, body) = admin
        .post(
            &emails_of("customer", &customer),
            json!({"to": ["li.na@example.com"], "subject": "later", "body": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another workspace's reply naming this workspace's message stays in its own workspace.
    let (status, body) = admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, east) = admin.get("/api/v1/w/east/inbound-address").await;
    let east = east["address"].as_str().expect("address").to_owned();
    let message_id = sent["message_id"].as_str().expect("id");
    deliver_inbound(
        &app,
        "li.na@example.com",
        &east,
        &format!(
            "From: li.na@example.com\nTo: {east}\nSubject: Re: Hello\nMessage-ID: <east-1@example.com>\nIn-Reply-To: <{message_id}>\n\nWrong place.\n"
        ),
    )
    .await;
    let on_customer = emails(&admin, "customer", &customer).await;
    assert!(
        on_customer.iter().all(|e| e["direction"] == "out"),
        "{on_customer:?}"
    );
    let (_, east_unfiled) = admin.get("/api/v1/w/east/emails/unfiled").await;
    assert_eq!(
        east_unfiled.as_array().map(Vec::len),
        Some(1),
        "{east_unfiled}"
    );
    let (_, demo_unfiled) = admin.get(&format!("{W}/emails/unfiled")).await;
    assert_eq!(
        demo_unfiled.as_array().map(Vec::len),
        Some(0),
        "{demo_unfiled}"
    );
}

async fn admins_file_unmatched_mail_from_the_mail_page(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    let inbound = inbound_address(&admin).await;
    let customer = create(
        &admin,
        "customer",
        json!({"name": "Zhao Industries", "lifecycle_stage": "first_contact"}),
    )
    .await;
    deliver_inbound(
        &app,
        "zl@zhao-industries.cn",
        &inbound,
        &format!(
            "From: Zhao Lei <zl@zhao-industries.cn>\nTo: {inbound}\nSubject: Our order\nMessage-ID: <zl-1@zhao-industries.cn>\n\nWhen does it ship?\n"
        ),
    )
    .await;
    let page = PageClient::sign_in(&app, ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (status, html) = page.get("/w/demo/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("data-testid=\"nav-mail\""),
        "admins find the mail page"
    );
    let (status, html) = page.get("/w/demo/mail").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&inbound), "{html}");
    assert!(
        html.contains("data-testid=\"unfiled-email\"") && html.contains("Our order"),
        "{html}"
    );
    // The sender's name finds nothing; a search for the company offers the customer.
    let (status, html) = page.get("/w/demo/mail?email=x&q=ignored").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&format!("value=\"{customer}\"")), "{html}");
    let (_, unfiled) = admin.get(&format!("{W}/emails/unfiled")).await;
    let email = unfiled[0]["id"].as_str().expect("id").to_owned();
    let (_, html) = page
        .get(&format!("/w/demo/mail?email={email}&q=Zhao%20Industries"))
        .await;
    assert!(html.contains(&format!("value=\"{customer}\"")), "{html}");
    let (status, location, _) = page
        .post(
            &format!("/w/demo/mail/{email}/file"),
            &[("entity", "customer"), ("record_id", customer.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/w/demo/mail?filed=1");
    assert_eq!(emails(&admin, "customer", &customer).await.len(), 1);
    let (_, html) = page.get("/w/demo/mail?filed=1").await;
    assert!(html.contains("data-testid=\"filed\""), "{html}");
    assert!(!html.contains("data-testid=\"unfiled-email\""), "{html}");
    // New addresses from the page; the old one is refused from then on.
    let (status, _, _) = page.post("/w/demo/mail/rotate", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_ne!(inbound_address(&admin).await, inbound);
    // Members do not see the workspace's unmatched mail.
    join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let rep = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (status, _) = rep.get("/w/demo/mail").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, html) = rep.get("/w/demo/").await;
    assert!(!html.contains("data-testid=\"nav-mail\""));
}

both_databases!(
    admins_file_unmatched_mail_from_the_mail_page,
    who_may_email_what_they_see_and_what_fails,
    an_email_from_a_customer_reaches_its_contact_and_the_reply_comes_back,
    bad_emails_and_templates_are_refused_and_change_nothing,
    the_inbound_server_refuses_what_it_cannot_take,
    the_record_page_composes_sends_and_shows_emails,
);
