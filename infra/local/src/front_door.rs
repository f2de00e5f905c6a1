//! The local HTTP front door: plays API Gateway's HTTP API with its JWT authorizer. It checks a
//! request's bearer token (signature, expiry, issuer, audience) and the route's OAuth scope, as
//! the template's authorizer and `AuthorizationScopes` do; a request that passes becomes a
//! payload 2.0 event (claims in `requestContext.authorizer.jwt`, the matched route key and path
//! parameters, the stage) for the function the route belongs to, and the function's payload 2.0
//! response becomes the HTTP response. With a stage name, paths start with `/<stage>` as on a
//! named API Gateway stage.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as EventBody;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use flashstock::app::LiveApp;
use flashstock::http::{Function, Route};
use flashstock::lambda::{cancel_event, http_request, http_response};
use http::{HeaderValue, StatusCode};

use crate::jwt;

/// Largest request body accepted (API Gateway's own limit is 10 MB; ours are tiny).
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct Door {
    app: Arc<LiveApp>,
    secret: Arc<str>,
    stage: Option<Arc<str>>,
}

/// Binds `addr` and serves until the task is dropped (under `/<stage>` when one is named).
/// Returns the bound address.
pub async fn serve(
    app: Arc<LiveApp>,
    secret: String,
    addr: SocketAddr,
    stage: Option<String>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let door = Door { app, secret: secret.into(), stage: stage.map(Into::into) };
    let router = axum::Router::new().fallback(handle).with_state(door);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "front door stopped");
        }
    });
    Ok((bound, task))
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:flashstock:problem:{}", code.to_lowercase().replace('_', "-")),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(), "code": code, "detail": detail, "retryable": false,
    });
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

/// The payload 2.0 event API Gateway would send for this request, matched to `route` (None: the
/// catch-all `$default` route) on `stage`.
pub fn to_event(
    parts: &http::request::Parts,
    body: &Bytes,
    claims: HashMap<String, String>,
    route: Option<&Route<'_>>,
    stage: Option<&str>,
) -> ApiGatewayV2httpRequest {
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut h = ApiGatewayV2httpRequestContextHttpDescription::default();
    h.method = parts.method.clone();
    h.path = Some(parts.uri.path().to_owned());
    h.protocol = Some("HTTP/1.1".to_owned());
    h.source_ip = Some("127.0.0.1".to_owned());
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.http = h;
    ctx.authorizer = Some(authorizer);
    let route_key = route.map_or("$default", Route::key).to_owned();
    ctx.route_key = Some(route_key.clone());
    ctx.stage = Some(stage.unwrap_or("$default").to_owned());
    ctx.request_id = Some(ulid::Ulid::new().to_string());
    ctx.time_epoch = flashstock::now_ms();
    let mut ev = ApiGatewayV2httpRequest::default();
    ev.version = Some("2.0".to_owned());
    ev.route_key = Some(route_key);
    ev.path_parameters =
        route.map(|r| r.params().into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()).unwrap_or_default();
    ev.raw_path = Some(parts.uri.path().to_owned());
    ev.raw_query_string = Some(parts.uri.query().unwrap_or("").to_owned());
    ev.headers = parts.headers.clone();
    ev.request_context = ctx;
    ev.body = (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned());
    ev.is_base64_encoded = false;
    ev
}

fn from_event_response(r: ApiGatewayV2httpResponse) -> Response {
    let body = match r.body {
        Some(EventBody::Text(t)) => Body::from(t),
        Some(EventBody::Binary(b)) => Body::from(b),
        _ => Body::empty(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(r.status_code as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    *resp.headers_mut() = r.headers;
    resp
}

async fn handle(State(door): State<Door>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE", "request bodies are limited to 64 KiB");
    };
    let full = parts.uri.path().to_owned();
    let path = match &door.stage {
        None => Some(full.as_str()),
        Some(stage) => full.strip_prefix(&format!("/{stage}")).filter(|p| p.starts_with('/')),
    };
    let Some(path) = path else {
        return problem(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", "no such stage");
    };
    let token = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(claims) = token.and_then(|t| jwt::verify(&door.secret, t)) else {
        return problem(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "a valid bearer token is required");
    };
    let route = flashstock::http::route(&parts.method, path).ok();
    // The route's AuthorizationScopes: the token's `scope` claim must hold it.
    if let Some(scope) = route.as_ref().and_then(Route::scope) {
        let granted = claims.get("scope").map(|s| flashstock::http::auth::scopes(s)).unwrap_or_default();
        if !granted.iter().any(|g| g == scope) {
            return problem(StatusCode::FORBIDDEN, "FORBIDDEN", &format!("this route needs the {scope} scope"));
        }
    }
    let event = to_event(&parts, &body, claims, route.as_ref(), door.stage.as_deref());
    if route.as_ref().map(Route::function) == Some(Function::Cancel) {
        // The cancel function receives the event as JSON, exactly as Lambda delivers it.
        let out = match serde_json::to_value(&event) {
            Ok(v) => cancel_event(&door.app, v).await,
            Err(e) => Err(e.into()),
        };
        match out.and_then(|v| serde_json::from_value::<ApiGatewayV2httpResponse>(v).map_err(Into::into)) {
            Ok(r) => from_event_response(r),
            Err(e) => {
                tracing::error!(error = %e, "cancel function invocation failed");
                problem(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "the function failed")
            }
        }
    } else {
        from_event_response(http_response(flashstock::http::handle(&door.app, http_request(event)).await))
    }
}
