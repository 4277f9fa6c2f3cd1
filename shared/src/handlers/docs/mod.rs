//! `GET /docs`: an interactive reference of the api's OpenAPI document (Swagger UI), and
//! `GET /openapi.json`, the document itself; both open to anyone, like FastAPI's. Served by the
//! `docs` Lambda in AWS and in front of the api by the local runner.
//!
//! Everything the page loads is ours: Swagger UI's bundle and stylesheet are vendored from the
//! npm package `swagger-ui-dist` (pinned; `scripts/vendor-swagger-ui.sh`), gzip-compressed in
//! `shared/assets/swagger-ui/` and embedded in the binary, so the page works with no internet
//! and no CDN. They are sent as they are stored, with `Content-Encoding: gzip`, under a path that
//! names the version, so they can be cached for a year; the page and the document are revalidated
//! on every load. The document is taken as an argument (the function's `main` passes the api's
//! `ApiDoc`), so this handler imports no other.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The vendored `swagger-ui-dist` version (`shared/assets/swagger-ui/VERSION`; a unit test keeps
/// the two equal).
pub const SWAGGER_UI_VERSION: &str = "5.36.0";

/// Versioned asset paths never change content: a year, and no revalidation.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page, its initializer and the document change with each release: always revalidated.
const REVALIDATE: &str = "no-cache";
/// Only our own scripts, styles and the document; Swagger UI sets inline styles and draws with
/// `data:` images. "Try it out" calls this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("index.html");
const INIT_JS: &str = include_str!("init.js");

/// One embedded file: its name under `/docs/swagger-ui-<version>/`, its type, its gzip bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    gzip: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        gzip: include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js.gz"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        gzip: include_bytes!("../../../assets/swagger-ui/swagger-ui.css.gz"),
    },
    // Apache-2.0 asks that the licence travel with the code.
    Asset {
        name: "LICENSE",
        content_type: "text/plain; charset=utf-8",
        gzip: include_bytes!("../../../assets/swagger-ui/LICENSE.gz"),
    },
    Asset {
        name: "NOTICE",
        content_type: "text/plain; charset=utf-8",
        gzip: include_bytes!("../../../assets/swagger-ui/NOTICE.gz"),
    },
];

/// The page, its assets and the document: `GET /docs` (and `/docs/`), `GET /docs/{*path}`,
/// `GET /openapi.json` (HEAD too). No key is asked for and no state is needed.
pub fn router(document: utoipa::openapi::OpenApi) -> Router {
    let document =
        Bytes::from(serde_json::to_vec(&document).expect("an OpenAPI document always serializes"));
    let page = Bytes::from(INDEX_HTML.replace("{{VERSION}}", SWAGGER_UI_VERSION));
    Router::new()
        .route("/docs", get(move || async move { html(page) }))
        // The page's relative URLs need `/docs` itself; a relative redirect keeps a stage prefix.
        .route(
            "/docs/",
            get(|| async {
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, "../docs")],
                )
            }),
        )
        .route("/docs/{*path}", get(asset))
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, REVALIDATE),
                    ],
                    document,
                )
            }),
        )
}

fn html(page: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, REVALIDATE),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
        .into_response()
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path == "init.js" {
        return (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, REVALIDATE),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            INIT_JS,
        )
            .into_response();
    }
    let found = path
        .strip_prefix("swagger-ui-")
        .and_then(|rest| rest.strip_prefix(SWAGGER_UI_VERSION))
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|name| ASSETS.iter().find(|a| a.name == name));
    let Some(asset) = found else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"message":"Not found"}"#,
        )
            .into_response();
    };
    if !accepts_gzip(&headers) {
        // Every browser sends it; the assets exist only compressed (no inflater in the binary).
        return (
            StatusCode::NOT_ACCEPTABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"message":"This asset is served gzip-compressed only: send `Accept-Encoding: gzip`"}"#,
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (header::VARY, HeaderValue::from_static("Accept-Encoding")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.gzip,
    )
        .into_response()
}

/// Whether `Accept-Encoding` names gzip (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

#[cfg(test)]
mod tests;
