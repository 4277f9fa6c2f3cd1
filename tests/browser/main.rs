//! Our pages in a real browser: the local runner started by the README's run command, Debian's
//! `chromium` (headless; `scripts/start-services.sh` installs it).
//!
//! - `/docs`: every operation of the OpenAPI document, the order form's body and the schemas
//!   must be in the rendered DOM. A screenshot of the page is saved next to the runner logs
//!   (`.local/test-logs/docs-page-*.png`, its path printed), with the DOM beside it. The DOM is
//!   read after the page's scripts ran: Swagger UI builds everything from `/openapi.json` in the
//!   browser, so a bundle that fails to load, a script the page's Content-Security-Policy
//!   blocks, or a document Swagger UI cannot read all leave an empty page here. Swagger UI's
//!   markup is that of the pinned version (`SWAGGER_UI_VERSION`).
//! - `/live`: the live order page, driven over the Chrome DevTools Protocol (a WebSocket to the
//!   browser, `--remote-debugging-port`), because the test must act between the page's steps:
//!   the page connects with the runner's key, the test then places an order through the API,
//!   and the page must show it `placed` (or filled further) without a reload; after its socket
//!   is closed under it, it must resume and show an order placed meanwhile, each update once;
//!   revoking the key must then stop it with the revocation message, and the page given that
//!   key again must say that it is not accepted. Screenshot and DOM:
//!   `.local/test-logs/live-page-*.{png,html}`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use system_tests::LIMIT_ORDER;
use system_tests::local_runner::{LocalRunner, log_dir};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// The browser binary: Debian's package, unless `CHROMIUM` names another.
fn chromium_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// Runs headless chromium on `url` with `extra` arguments; returns its standard output.
async fn chromium(url: &str, extra: &[String]) -> String {
    let profile = std::env::temp_dir().join(format!("docs-browser-{}", Uuid::new_v4().simple()));
    let mut command = tokio::process::Command::new(chromium_binary());
    command
        .arg("--headless")
        // Root (CI, this machine) cannot use chromium's sandbox; the page is our own, on loopback.
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.display()))
        // Virtual time runs until the page is idle (its fetch of /openapi.json included), or
        // for at most this long: enough for Swagger UI to render, without a fixed sleep.
        .arg("--virtual-time-budget=20000")
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(120), command.output()).await;
    let _ = std::fs::remove_dir_all(&profile);
    let output = run
        .expect("chromium finished within 120 s")
        .unwrap_or_else(|e| {
            panic!(
                "could not start `{}` ({e}): scripts/start-services.sh installs Debian's \
                 chromium (or set CHROMIUM to a Chromium binary)",
                chromium_binary()
            )
        });
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("chromium writes UTF-8")
}

fn save(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Each of `expected` (what, text) that `dom` lacks.
fn missing_from(dom: &str, expected: &[(String, String)]) -> Vec<String> {
    expected
        .iter()
        .filter(|(_, text)| !dom.contains(text.as_str()))
        .map(|(what, text)| format!("{what}: `{text}`"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_renders_every_operation_and_the_order_schema_in_chromium() {
    let runner = LocalRunner::start(&[]).await;
    // Both open to anyone: no key on these requests, nor in the browser.
    let anonymous = reqwest::Client::new();
    let page = anonymous
        .get(format!("{}/docs", runner.base_url))
        .send()
        .await
        .expect("GET /docs");
    assert_eq!(page.status(), 200, "GET /docs without a key");
    let document: Value = anonymous
        .get(format!("{}/openapi.json", runner.base_url))
        .send()
        .await
        .expect("GET /openapi.json")
        .error_for_status()
        .expect("GET /openapi.json without a key")
        .json()
        .await
        .expect("the document is JSON");

    // Deep link to POST /orders: Swagger UI opens it, so its request body is rendered too.
    let url = format!("{}/docs#/orders/create_order", runner.base_url);
    let dom = chromium(&url, &["--dump-dom".to_owned()]).await;
    let stem = format!("docs-page-{}", Uuid::new_v4().simple());
    let dom_path = log_dir().join(format!("{stem}.html"));
    save(&dom_path, dom.as_bytes());

    // What Swagger UI must have made of the document: each operation as a block with the id
    // `operations-<tag>-<operationId>` and its path, ...
    let mut expected = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let tag = operation["tags"][0].as_str().expect("a tag");
            let id = operation["operationId"].as_str().expect("an operationId");
            expected.push((
                format!("{} {path}", method.to_uppercase()),
                format!("id=\"operations-{tag}-{id}\""),
            ));
            expected.push((
                format!("{} {path}: its path", method.to_uppercase()),
                format!("data-path=\"{path}\""),
            ));
        }
    }
    assert!(
        expected.len() >= 12,
        "the document has the api's operations"
    );
    // ... POST /orders open, with its request body (an example order) and the Authorize button
    // of the bearer scheme, ...
    for (what, text) in [
        (
            "POST /orders opened by the deep link",
            r#"class="opblock opblock-post is-open" id="operations-orders-create_order""#,
        ),
        (
            "its request body",
            r#"<h4 class="opblock-title parameter__name required">Request body</h4>"#,
        ),
        (
            "its example order",
            r#"<span class="hljs-attr">"instrument"</span>"#,
        ),
        (
            "the bearer key's Authorize button",
            r#"<span>Authorize</span>"#,
        ),
    ] {
        expected.push((what.to_owned(), text.to_owned()));
    }
    // ... and every schema of the document, the order request's among them.
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in ["MarketOrderRequest", "LimitOrderRequest", "OrderView"] {
        assert!(schemas.contains_key(name), "the document defines {name}");
    }
    for name in schemas.keys() {
        expected.push((
            format!("schema {name}"),
            format!(r#"<strong class="json-schema-2020-12__title">{name}</strong>"#),
        ));
    }
    let missing = missing_from(&dom, &expected);
    assert!(
        missing.is_empty(),
        "the page at {url} did not render (DOM saved to {}):\n{}",
        dom_path.display(),
        missing.join("\n")
    );

    let screenshot: PathBuf = log_dir().join(format!("{stem}.png"));
    chromium(
        &url,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,2200".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 20_000,
        "more than a blank page: {} bytes",
        png.len()
    );
    println!(
        "docs page screenshot: {} (DOM: {})",
        screenshot.display(),
        dom_path.display()
    );
}

/// A headless chromium with the DevTools Protocol on a free port (chromium picks it and writes
/// it to `DevToolsActivePort` in its profile); killed and its profile removed on drop.
struct Browser {
    child: tokio::process::Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let profile =
            std::env::temp_dir().join(format!("live-browser-{}", Uuid::new_v4().simple()));
        let child = tokio::process::Command::new(chromium_binary())
            .arg("--headless")
            // As for /docs: root cannot use chromium's sandbox; the page is our own, on loopback.
            .arg("--no-sandbox")
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .arg("--no-first-run")
            .arg("--window-size=1280,900")
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start `{}` ({e}): scripts/start-services.sh installs Debian's \
                     chromium (or set CHROMIUM to a Chromium binary)",
                    chromium_binary()
                )
            });
        Self { child, profile }
    }

    /// The DevTools connection to the browser's one page.
    async fn page(&mut self) -> DevTools {
        let port_file = self.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(status) = self.child.try_wait().expect("chromium's status") {
                panic!("chromium exited ({status}) before it opened its DevTools port");
            }
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            if let Some(port) = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no DevToolsActivePort within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .expect("GET /json/list")
            .json()
            .await
            .expect("targets as JSON");
        let page = targets
            .as_array()
            .expect("a list")
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap_or_else(|| panic!("no page target in {targets}"));
        let url = page["webSocketDebuggerUrl"]
            .as_str()
            .expect("a debugger URL");
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the DevTools WebSocket");
        DevTools { socket, next_id: 0 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Just enough of the DevTools Protocol: a command and its answer (events are skipped).
struct DevTools {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl DevTools {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .expect("a DevTools command sent");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let message: Value = serde_json::from_str(&text).expect("DevTools JSON");
                        if message["id"] == id {
                            return message;
                        }
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("the DevTools connection ended: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"));
        assert!(answer["error"].is_null(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The value of a JavaScript expression in the page.
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "`{expression}` threw: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is `true`; otherwise fails with `what` and the page's
    /// connection line.
    async fn wait_until(&mut self, what: &str, expression: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.evaluate(expression).await != Value::Bool(true) {
            if Instant::now() > deadline {
                let state = self
                    .evaluate(
                        "document.body.dataset.state + ': ' + \
                         document.getElementById('connection').textContent",
                    )
                    .await;
                panic!("{what}: not within {within:?} (page: {state})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Closes every WebSocket the page holds (found by prototype, wherever the script keeps
    /// them), as a dropped connection would; returns how many there were.
    async fn close_websockets(&mut self) -> u64 {
        let prototype = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": "WebSocket.prototype" }),
            )
            .await;
        let sockets = self
            .call(
                "Runtime.queryObjects",
                json!({ "prototypeObjectId": prototype["result"]["objectId"] }),
            )
            .await;
        let closed = self
            .call(
                "Runtime.callFunctionOn",
                json!({
                    "objectId": sockets["objects"]["objectId"],
                    "functionDeclaration":
                        "function () { this.forEach(s => s.close(3000, 'test')); return this.length; }",
                    "returnByValue": true,
                }),
            )
            .await;
        closed["result"]["value"].as_u64().expect("a count")
    }

    async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64_decode(shot["data"].as_str().expect("image data"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        save(path, &png);
    }
}

/// Standard base64 (the DevTools Protocol's binary data), without a crate for one call.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
        let produced = chunk.len() * 6 / 8;
        bytes.extend_from_slice(&bits.to_be_bytes()[1..=produced]);
    }
    bytes
}

/// Places the test's limit order through the API with the runner's key; returns its id.
async fn place_order(runner: &LocalRunner) -> String {
    let response = runner
        .client()
        .post(format!("{}/orders", runner.base_url))
        .header("content-type", "application/json")
        .body(LIMIT_ORDER)
        .send()
        .await
        .expect("POST /orders");
    assert_eq!(response.status(), 201, "log:\n{}", runner.log());
    let order: Value = response.json().await.unwrap();
    order["id"].as_str().expect("an order id").to_owned()
}

/// The event ids of the page's log, in its order.
fn logged_event_ids(log: &str) -> Vec<i64> {
    log.lines()
        .filter_map(|line| line.strip_prefix('#')?.split(' ').next()?.parse().ok())
        .collect()
}

/// The page's row of an order, as the test reads it.
fn row_status(order_id: &str) -> String {
    format!(
        "document.querySelector('#orders-body tr[data-order-id=\"{order_id}\"]')?.dataset.status \
         ?? null"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_an_order_placed_through_the_api_without_a_reload() {
    let runner = LocalRunner::start(&[]).await;
    let key = runner.api_key.expose();

    // The page is open to anyone; its CSP lets it connect to this origin and the updates port.
    let page = reqwest::get(format!("{}/live", runner.base_url))
        .await
        .expect("GET /live");
    assert_eq!(page.status(), 200, "GET /live without a key");
    let updates_origin = runner
        .updates_url
        .strip_suffix("/updates")
        .expect("ws://host:port/updates");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains(&format!("connect-src 'self' {updates_origin};")),
        "{policy}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            r#"<meta name="updates-url" content="{}">"#,
            runner.updates_url
        )),
        "the page names the runner's updates endpoint"
    );

    let mut browser = Browser::start().await;
    let mut tab = browser.page().await;
    tab.call("Page.enable", json!({})).await;
    // The key in the fragment: never sent to the server, removed by the page at once.
    tab.call(
        "Page.navigate",
        json!({ "url": format!("{}/live#key={key}", runner.base_url) }),
    )
    .await;
    tab.wait_until(
        "the page connected with the key",
        "document.body?.dataset.state === 'live'",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        tab.evaluate("location.href").await,
        Value::String(format!("{}/live", runner.base_url)),
        "the key left the address bar"
    );
    assert_eq!(
        tab.evaluate(&format!(
            "document.documentElement.outerHTML.includes('{key}')"
        ))
        .await,
        Value::Bool(false),
        "the key is not in the page"
    );
    // Gone if the page were loaded again.
    tab.evaluate("window.loadedOnce = 'yes'").await;

    let id = place_order(&runner).await;
    tab.wait_until(
        "the new order's row shows it placed",
        &format!(
            "['placed', 'partially_filled', 'filled'].includes({})",
            row_status(&id)
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        tab.evaluate("window.loadedOnce").await,
        "yes",
        "the page was not reloaded"
    );
    let row = tab
        .evaluate(&format!(
            "Array.from(document.querySelector('#orders-body tr[data-order-id=\"{id}\"]').cells, \
             c => c.textContent)"
        ))
        .await;
    assert_eq!(row[0], id.as_str());
    assert_eq!(row[1], "US0378331005", "instrument: {row}");
    assert_eq!(row[2], "buy", "side: {row}");
    assert_eq!(row[3], "10", "quantity: {row}");
    assert_eq!(
        tab.evaluate("document.querySelector('#orders-body tr').dataset.orderId")
            .await,
        id.as_str(),
        "the new order is at the top"
    );
    let log = tab
        .evaluate("document.getElementById('log').innerText")
        .await;
    let log = log.as_str().expect("the log's text");
    for step in ["new → pending", "→ placed"] {
        assert!(
            log.lines().any(|l| l.contains(&id) && l.contains(step)),
            "the log shows `{step}` for {id}:\n{log}"
        );
    }

    // A dropped connection: the page reconnects with ?after=<its last event id>, so an order
    // placed meanwhile arrives from the catch-up, and nothing is shown twice.
    assert!(
        tab.close_websockets().await >= 1,
        "the page holds its socket"
    );
    let second = place_order(&runner).await;
    tab.wait_until(
        "the page reconnected",
        "document.body.dataset.connections === '2' && document.body.dataset.state === 'live'",
        Duration::from_secs(60),
    )
    .await;
    tab.wait_until(
        "the order placed while disconnected shows placed",
        &format!(
            "['placed', 'partially_filled', 'filled'].includes({})",
            row_status(&second)
        ),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        tab.evaluate("document.querySelector('#orders-body tr').dataset.orderId")
            .await,
        second.as_str(),
        "the newest order is at the top"
    );
    let log = tab
        .evaluate("document.getElementById('log').innerText")
        .await;
    let log = log.as_str().expect("the log's text");
    for step in ["new → pending", "→ placed"] {
        assert!(
            log.lines().any(|l| l.contains(&second) && l.contains(step)),
            "the log shows `{step}` for {second}:\n{log}"
        );
    }
    let ids = logged_event_ids(log);
    assert!(
        ids.len() >= 6 && ids.windows(2).all(|w| w[0] < w[1]),
        "each update once, in order:\n{log}"
    );
    assert_eq!(tab.evaluate("window.loadedOnce").await, "yes", "no reload");

    let stem = format!("live-page-{}", Uuid::new_v4().simple());
    let screenshot = log_dir().join(format!("{stem}.png"));
    tab.screenshot(&screenshot).await;
    let dom_path = log_dir().join(format!("{stem}.html"));
    let dom = tab.evaluate("document.documentElement.outerHTML").await;
    save(&dom_path, dom.as_str().expect("the DOM").as_bytes());

    // Revoking the key closes the page's socket with 4401: it says so and stops.
    let key_id = runner.api_key.id().to_string();
    runner.orders_admin(&["keys", "revoke", &key_id]);
    tab.wait_until(
        "the page says the key was revoked",
        "document.body.dataset.state === 'revoked' && \
         document.getElementById('connection').textContent.includes('revoked')",
        Duration::from_secs(30),
    )
    .await;
    // Given that key again (in the fragment), the page is refused (the upgrade's 401 shows in
    // the browser only as a close; the page asks the API) and says so instead of retrying.
    tab.call(
        "Page.navigate",
        json!({ "url": format!("{}/live#key={key}", runner.base_url) }),
    )
    .await;
    tab.wait_until(
        "the page says the key is not accepted",
        "document.body?.dataset.state === 'refused'",
        Duration::from_secs(30),
    )
    .await;
    println!(
        "live page screenshot: {} (DOM: {})",
        screenshot.display(),
        dom_path.display()
    );
}
