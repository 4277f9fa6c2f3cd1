//! The API reference page in a real browser: the local runner started by the README's run
//! command, Debian's `chromium` (headless; `scripts/start-services.sh` installs it) loads
//! `/docs`, and every operation of the OpenAPI document, the order form's body and the schemas
//! must be in the rendered DOM. A screenshot of the page is saved next to the runner logs
//! (`.local/test-logs/docs-page-*.png`, its path printed), with the DOM beside it.
//!
//! The DOM is read after the page's scripts ran: Swagger UI builds everything from
//! `/openapi.json` in the browser, so a bundle that fails to load, a script the page's
//! Content-Security-Policy blocks, or a document Swagger UI cannot read all leave an empty page
//! here. Swagger UI's markup is that of the pinned version (`SWAGGER_UI_VERSION`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use system_tests::local_runner::{LocalRunner, log_dir};
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
