//! A small W3C WebDriver client for the browser tests: headless Chromium (Debian's `chromium`)
//! driven through ChromeDriver (Debian's `chromium-driver`). `.ci/test` starts one ChromeDriver
//! and hands its address over in `FORMWORK_TEST_WEBDRIVER`; without it a test starts its own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver this test started (stopped when dropped).
struct OwnDriver(Child);

impl Drop for OwnDriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One browser window in its own profile.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Option<OwnDriver>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Opens a headless Chromium whose UI language is `lang` (`en`, `zh-CN`).
    pub async fn open(lang: &str) -> Browser {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let (base, driver) = match std::env::var("FORMWORK_TEST_WEBDRIVER") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let port = free_port();
                let binary = std::env::var("FORMWORK_TEST_CHROMEDRIVER")
                    .unwrap_or_else(|_| "chromedriver".to_owned());
                let child = Command::new(&binary)
                    .arg(format!("--port={port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!("ChromeDriver is required for the browser tests ({binary}): {e}")
                    });
                (format!("http://127.0.0.1:{port}"), Some(OwnDriver(child)))
            }
        };
        let chromium = std::env::var("FORMWORK_TEST_CHROMIUM")
            .unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--lang={lang}"), "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-sync",
                         "--disable-component-update"],
                "prefs": {"intl.accept_languages": lang},
            }
        }}});
        // A ChromeDriver just started needs a moment before it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        let session = loop {
            match http
                .post(format!("{base}/session"))
                .json(&capabilities)
                .send()
                .await
            {
                Ok(response) => {
                    let body: Value = response.json().await.expect("session json");
                    let id = body["value"]["sessionId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("ChromeDriver refused a session: {body}"));
                    break format!("{base}/session/{id}");
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("ChromeDriver at {base} does not answer: {e}"),
            }
        };
        Browser {
            http,
            session,
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("webdriver request");
        let status = response.status();
        let body: Value = response.json().await.expect("webdriver json");
        if status.is_success() {
            Ok(body["value"].clone())
        } else {
            Err(format!("webdriver {path}: {status} {body}"))
        }
    }

    /// Loads `url` and waits for the page.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's HTML now.
    pub async fn html(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let request = self
            .http
            .post(format!("{}/element", self.session))
            .json(&json!({"using": "css selector", "value": css}));
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        body["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// The element `css` selects, waiting up to 10 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}:\n{}",
                self.url().await,
                self.html().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether an element `css` is on the page now.
    pub async fn has(&self, css: &str) -> bool {
        self.try_find(css).await.is_some()
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Replaces the text of the input `css` selects with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Chooses the local file `path` in the file input `css` selects.
    pub async fn upload(&self, css: &str, path: &std::path::Path) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": path.to_string_lossy()})),
        )
        .await;
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` in the page (`arguments` are `args`) and returns its result; a returned
    /// Promise is awaited.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.try_run(script, args)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// As [`Browser::run`], answering WebDriver's refusal (a page unloading under the script
    /// ends it with "script timeout") instead of failing.
    pub async fn try_run(&self, script: &str, args: Value) -> Result<Value, String> {
        self.try_call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({
                "script": format!(
                    "const done = arguments[arguments.length - 1];\
                     Promise.resolve((function () {{ {script} }}).apply(null, Array.from(arguments).slice(0, -1)))\
                       .then(done, e => done('error: ' + e));"
                ),
                "args": args,
            })),
        )
        .await
    }

    /// Waits up to 10 s for `script` (a JS expression) to be true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A navigation in progress may end the check itself: it is simply asked again.
            let seen = self
                .try_run(&format!("return !!({script});"), json!([]))
                .await;
            if seen == Ok(json!(true)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {}:\n{}",
                self.url().await,
                self.html().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the window.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64_decode(data.as_str().unwrap_or_default());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, bytes).expect("write screenshot");
    }

    /// Resizes the window (a phone: 390×844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|b| *b == byte) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}
