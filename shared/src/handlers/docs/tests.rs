use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;
use utoipa::OpenApi;

use super::{ASSETS, SWAGGER_UI_VERSION, router};
use crate::handlers::api::ApiDoc;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a text body")
    }
}

async fn get(uri: &str, accept_encoding: Option<&str>) -> Reply {
    let mut request = Request::get(uri);
    if let Some(value) = accept_encoding {
        request = request.header(header::ACCEPT_ENCODING, value);
    }
    let response = router(ApiDoc::openapi())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
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
async fn the_page_loads_only_our_own_versioned_assets_and_each_is_served_compressed() {
    let page = get("/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header(header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(page.header(header::CACHE_CONTROL), "no-cache");
    assert!(
        page.header(header::CONTENT_SECURITY_POLICY)
            .contains("script-src 'self'")
    );
    let urls = references(&page.text());
    assert_eq!(
        urls,
        [
            format!("docs/swagger-ui-{SWAGGER_UI_VERSION}/swagger-ui-bundle.js"),
            "docs/init.js".to_owned(),
            format!("docs/swagger-ui-{SWAGGER_UI_VERSION}/swagger-ui.css"),
        ]
    );
    for url in urls {
        // Relative to `/docs`, as the browser resolves them; nothing from another origin.
        let reply = get(&format!("/{url}"), Some("gzip, deflate, br")).await;
        assert_eq!(reply.status, StatusCode::OK, "{url}");
        if url.ends_with("init.js") {
            assert_eq!(reply.header(header::CACHE_CONTROL), "no-cache");
            continue;
        }
        assert_eq!(reply.header(header::CONTENT_ENCODING), "gzip", "{url}");
        assert_eq!(&reply.body[..2], [0x1f, 0x8b], "{url}: gzip bytes");
        assert!(
            reply.header(header::CACHE_CONTROL).contains("immutable"),
            "{url}"
        );
        assert_eq!(reply.header(header::VARY), "Accept-Encoding");
    }
}

#[tokio::test]
async fn the_initializer_reads_our_document_and_keeps_no_key() {
    let init = get("/docs/init.js", None).await.text();
    assert!(init.contains(r#"url: "openapi.json""#), "{init}");
    assert!(init.contains("persistAuthorization: false"), "{init}");
}

#[tokio::test]
async fn the_document_is_readable_without_a_key() {
    let reply = get("/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(header::CONTENT_TYPE), "application/json");
    let document: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        document,
        serde_json::to_value(ApiDoc::openapi()).unwrap(),
        "the api's own document"
    );
    assert!(document["paths"]["/orders"]["post"].is_object());
}

#[tokio::test]
async fn unknown_paths_old_versions_and_clients_without_gzip_get_no_asset() {
    for uri in [
        "/docs/swagger-ui-0.0.1/swagger-ui-bundle.js",
        "/docs/swagger-ui-bundle.js",
        &format!("/docs/swagger-ui-{SWAGGER_UI_VERSION}/package.json"),
        &format!("/docs/swagger-ui-{SWAGGER_UI_VERSION}/../swagger-ui.css"),
        "/orders",
    ] {
        assert_eq!(
            get(uri, Some("gzip")).await.status,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }
    let css = format!("/docs/swagger-ui-{SWAGGER_UI_VERSION}/swagger-ui.css");
    for refuses in [None, Some("identity"), Some("gzip;q=0, br")] {
        assert_eq!(
            get(&css, refuses).await.status,
            StatusCode::NOT_ACCEPTABLE,
            "{refuses:?}"
        );
    }
    assert_eq!(get(&css, Some("*")).await.status, StatusCode::OK);
    let slash = get("/docs/", None).await;
    assert_eq!(slash.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(slash.header(header::LOCATION), "../docs");
}

#[test]
fn the_version_named_in_code_is_the_vendored_one() {
    let vendored = include_str!("../../../assets/swagger-ui/VERSION");
    assert_eq!(vendored.trim(), SWAGGER_UI_VERSION);
    assert!(ASSETS.iter().all(|a| a.gzip.starts_with(&[0x1f, 0x8b])));
}
