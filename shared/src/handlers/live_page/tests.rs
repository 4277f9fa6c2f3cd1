use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::{UpdatesEndpoint, UpdatesEndpointError, router};

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

async fn get(updates: Option<&str>, uri: &str) -> Reply {
    let endpoint = updates.map(|url| url.parse::<UpdatesEndpoint>().unwrap());
    let response = router(endpoint)
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("a text body"),
    }
}

/// The `src`/`href` values of a page.
fn references(page: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .into_iter()
        .flat_map(|attribute| page.split(attribute).skip(1))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .filter(|url| !url.starts_with("data:"))
        .collect()
}

#[tokio::test]
async fn the_page_names_its_updates_endpoint_and_may_connect_only_there_and_to_its_origin() {
    let page = get(
        Some("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"),
        "/live",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header(header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(page.header(header::CACHE_CONTROL), "no-cache");
    assert!(page.body.contains(
        r#"<meta name="updates-url" content="wss://abc123.execute-api.eu-west-1.amazonaws.com/prod">"#
    ));
    assert_eq!(
        page.header(header::CONTENT_SECURITY_POLICY),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; \
         connect-src 'self' wss://abc123.execute-api.eu-west-1.amazonaws.com; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(page.header(header::REFERRER_POLICY), "no-referrer");

    let local = get(Some("ws://127.0.0.1:3001/updates"), "/live").await;
    assert!(
        local
            .header(header::CONTENT_SECURITY_POLICY)
            .contains("connect-src 'self' ws://127.0.0.1:3001;")
    );
}

#[tokio::test]
async fn without_an_endpoint_the_page_says_so_and_connects_to_its_origin_only() {
    let page = get(None, "/live").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"<meta name="updates-url" content="">"#)
    );
    assert!(
        page.header(header::CONTENT_SECURITY_POLICY)
            .contains("connect-src 'self';")
    );
}

#[tokio::test]
async fn the_page_loads_only_its_own_script_and_stylesheet() {
    let page = get(None, "/live").await;
    let urls = references(&page.body);
    assert_eq!(urls, ["live/live.js", "live/live.css"]);
    for (url, content_type) in [
        ("live/live.js", "text/javascript; charset=utf-8"),
        ("live/live.css", "text/css; charset=utf-8"),
    ] {
        // Relative to `/live`, as the browser resolves them.
        let reply = get(None, &format!("/{url}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{url}");
        assert_eq!(reply.header(header::CONTENT_TYPE), content_type, "{url}");
        assert_eq!(reply.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(!reply.body.contains("http://") && !reply.body.contains("https://"));
    }
    let slash = get(None, "/live/").await;
    assert_eq!(slash.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(slash.header(header::LOCATION), "../live");
    assert_eq!(
        get(None, "/live/other.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_script_keeps_the_key_out_of_urls_and_storage() {
    let script = get(None, "/live/live.js").await.body;
    assert!(script.contains(r#"new WebSocket(url, ["bearer", key])"#));
    assert!(script.contains("?after="));
    assert!(script.contains("4401"));
    for forbidden in [
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "innerHTML",
        "eval(",
    ] {
        assert!(!script.contains(forbidden), "the script uses {forbidden}");
    }
    // The fragment's key leaves the address bar at once.
    assert!(script.contains("history.replaceState"));
}

#[test]
fn an_updates_url_must_be_a_plain_websocket_url() {
    let endpoint: UpdatesEndpoint = "ws://[::1]:3001/updates".parse().unwrap();
    assert_eq!(endpoint.origin(), "ws://[::1]:3001");
    assert_eq!(endpoint.url(), "ws://[::1]:3001/updates");
    let bare: UpdatesEndpoint = " wss://updates.example.com ".parse().unwrap();
    assert_eq!(bare.origin(), "wss://updates.example.com");
    assert_eq!(bare.url(), "wss://updates.example.com");
    for (text, error) in [
        (
            "http://127.0.0.1:3001/updates",
            UpdatesEndpointError::Scheme,
        ),
        ("127.0.0.1:3001", UpdatesEndpointError::Scheme),
        ("ws://", UpdatesEndpointError::NoHost),
        ("ws:///updates", UpdatesEndpointError::NoHost),
        ("ws://h/updates?after=1", UpdatesEndpointError::Extra),
        ("ws://user@h/updates", UpdatesEndpointError::Extra),
        ("ws://h/x\"><script>", UpdatesEndpointError::Character('"')),
        ("ws://h/a b", UpdatesEndpointError::Character(' ')),
        ("ws://h/;script-src *", UpdatesEndpointError::Character(';')),
    ] {
        assert_eq!(text.parse::<UpdatesEndpoint>(), Err(error), "{text}");
    }
}
