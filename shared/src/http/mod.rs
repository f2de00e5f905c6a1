//! The HTTP API (docs/API.md, "HTTP API (v1)") behind API Gateway's HTTP API: routing, identity, input parsing into
//! domain types, and answers. Every failure goes through [`problem`]; a handler never returns
//! `Err` (which Lambda would count as a failed invocation) and never panics on input.

pub mod auth;
pub mod bodies;
mod error;
pub mod problem;

pub use error::ApiError;

use http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};

use crate::app::cancel::Canceller;
use crate::app::{App, reserve::ReserveInput};
use crate::domain::{CollectionId, CollectionSpec, OrderId, OrderKey, UserId};
use crate::ports::{CreateOutcome, Ledger, Queue, StockCache};
use bodies::{CollectionBody, ConfirmBody, Field, Int, RaiseBody, TryBody, parse};
use problem::response;

/// Largest request body a handler reads (its bodies are a few small fields). API Gateway passes
/// up to 10 MB; anything above this is 413 before a byte of it is parsed.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The function a route is deployed to (`template.yaml`'s events; the local front door follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Api,
    Cancel,
}

/// One route of the API, with its path parameters still raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    PutCollection(&'a str),
    WarmUp(&'a str),
    /// A raise of the collection's cache shards.
    RaiseCacheShards(&'a str),
    GetCollection(&'a str),
    Reserve(&'a str),
    /// `(collectionId, orderId)`: the caller's own reservation.
    Status(&'a str, &'a str),
    Cancel(&'a str, &'a str),
    /// `(collectionId, orderId)`; the body names the buyer.
    Confirm(&'a str, &'a str),
}

impl Route<'_> {
    /// Every route, once (with placeholder parameters): the table the template test and the local
    /// front door check themselves against.
    pub const ALL: [Route<'static>; 8] = [
        Route::PutCollection(""),
        Route::GetCollection(""),
        Route::WarmUp(""),
        Route::RaiseCacheShards(""),
        Route::Reserve(""),
        Route::Status("", ""),
        Route::Cancel("", ""),
        Route::Confirm("", ""),
    ];

    /// The route key API Gateway matches and hands the function (`routeKey`).
    pub fn key(&self) -> &'static str {
        match self {
            Route::PutCollection(_) => "PUT /v1/admin/collections/{collectionId}",
            Route::GetCollection(_) => "GET /v1/admin/collections/{collectionId}",
            Route::WarmUp(_) => "POST /v1/admin/collections/{collectionId}/warmup",
            Route::RaiseCacheShards(_) => "POST /v1/admin/collections/{collectionId}/cache-shards",
            Route::Reserve(_) => "POST /v1/collections/{collectionId}/reservations",
            Route::Status(..) => "GET /v1/collections/{collectionId}/reservations/{orderId}",
            Route::Cancel(..) => "POST /v1/collections/{collectionId}/reservations/{orderId}/cancel",
            Route::Confirm(..) => "POST /v1/collections/{collectionId}/reservations/{orderId}/confirm",
        }
    }

    /// The OAuth scope the route needs, besides a valid token (the buyer routes need none: any
    /// signed-in buyer acts on their own orders).
    pub fn scope(&self) -> Option<&'static str> {
        match self {
            Route::PutCollection(_) | Route::GetCollection(_) | Route::WarmUp(_) | Route::RaiseCacheShards(_) => {
                Some(auth::ADMIN_SCOPE)
            }
            Route::Confirm(..) => Some(auth::CONFIRM_SCOPE),
            Route::Reserve(_) | Route::Status(..) | Route::Cancel(..) => None,
        }
    }

    pub fn function(&self) -> Function {
        if matches!(self, Route::Cancel(..)) { Function::Cancel } else { Function::Api }
    }

    /// The path parameters, by the names the route key gives them.
    pub fn params(&self) -> Vec<(&'static str, &str)> {
        match self {
            Route::PutCollection(c)
            | Route::GetCollection(c)
            | Route::WarmUp(c)
            | Route::RaiseCacheShards(c)
            | Route::Reserve(c) => vec![("collectionId", c)],
            Route::Status(c, o) | Route::Cancel(c, o) | Route::Confirm(c, o) => {
                vec![("collectionId", c), ("orderId", o)]
            }
        }
    }
}

/// The route API Gateway matched, from its route key and path parameters: the raw path may carry
/// a stage name (`/prod/v1/...`) and is not looked at.
pub fn route_by_key<'a>(key: &str, param: impl Fn(&str) -> Option<&'a str>) -> Result<Route<'a>, ApiError> {
    let template = Route::ALL.iter().find(|r| r.key() == key).ok_or_else(|| ApiError::NoRoute(key.to_owned()))?;
    let p = |name: &'static str| param(name).ok_or_else(|| ApiError::field(name, "is required"));
    Ok(match template {
        Route::PutCollection(_) => Route::PutCollection(p("collectionId")?),
        Route::GetCollection(_) => Route::GetCollection(p("collectionId")?),
        Route::WarmUp(_) => Route::WarmUp(p("collectionId")?),
        Route::RaiseCacheShards(_) => Route::RaiseCacheShards(p("collectionId")?),
        Route::Reserve(_) => Route::Reserve(p("collectionId")?),
        Route::Status(..) => Route::Status(p("collectionId")?, p("orderId")?),
        Route::Cancel(..) => Route::Cancel(p("collectionId")?, p("orderId")?),
        Route::Confirm(..) => Route::Confirm(p("collectionId")?, p("orderId")?),
    })
}

/// Matches method and path, for an event without a route key (a `$default` route, a direct
/// invocation, the local front door before it fills one in). `Err(MethodNotAllowed)` for a known
/// path with another method.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (route, allowed) = match segs.as_slice() {
        ["v1", "admin", "collections", id] => match *method {
            Method::PUT => (Some(Route::PutCollection(id)), true),
            Method::GET => (Some(Route::GetCollection(id)), true),
            _ => (None, true),
        },
        ["v1", "admin", "collections", id, "warmup"] => {
            (Some(Route::WarmUp(id)).filter(|_| method == Method::POST), true)
        }
        ["v1", "admin", "collections", id, "cache-shards"] => {
            (Some(Route::RaiseCacheShards(id)).filter(|_| method == Method::POST), true)
        }
        ["v1", "collections", id, "reservations"] => {
            (Some(Route::Reserve(id)).filter(|_| method == Method::POST), true)
        }
        ["v1", "collections", c, "reservations", o] => {
            (Some(Route::Status(c, o)).filter(|_| method == Method::GET), true)
        }
        ["v1", "collections", c, "reservations", o, "cancel"] => {
            (Some(Route::Cancel(c, o)).filter(|_| method == Method::POST), true)
        }
        ["v1", "collections", c, "reservations", o, "confirm"] => {
            (Some(Route::Confirm(c, o)).filter(|_| method == Method::POST), true)
        }
        _ => (None, false),
    };
    match (route, allowed) {
        (Some(r), _) => Ok(r),
        (None, true) => Err(ApiError::MethodNotAllowed),
        (None, false) => Err(ApiError::NoRoute(path.to_owned())),
    }
}

/// The route key of an API Gateway event, unless it is the catch-all `$default`.
fn route_key(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone().filter(|k| k != "$default"),
        _ => None,
    }
}

fn collection_id(raw: &str) -> Result<CollectionId, ApiError> {
    CollectionId::parse(raw).map_err(|e| ApiError::field("collectionId", e.to_string()))
}

fn order_id(raw: &str, field: &'static str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|e| ApiError::field(field, e.to_string()))
}

/// The reservation a path names, scoped to `user`.
fn order_key(collection: &str, order: &str, user: UserId) -> Result<OrderKey, ApiError> {
    Ok(OrderKey::new(collection_id(collection)?, user, order_id(order, "orderId")?))
}

fn ok_json(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    response(status, "application/json", &serde_json::to_value(v).unwrap_or(Value::Null))
}

/// The API function's handler: every route, every answer.
pub async fn handle<C: StockCache, L: Ledger, Q: Queue>(app: &App<C, L, Q>, req: Request) -> Response<Body> {
    match dispatch(app, &req).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(path = %req.uri().path(), code = e.code().as_str(), error = %e, "request failed");
            }
            e.into_response()
        }
    }
}

async fn dispatch<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let params = req.path_parameters();
    let route = match route_key(req) {
        Some(key) => route_by_key(&key, |name| params.first(name))?,
        None => route(req.method(), &path)?,
    };
    if req.body().len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge { limit: MAX_BODY_BYTES });
    }
    let who = auth::identity(req)?;
    if let Some(scope) = route.scope() {
        who.require(scope)?;
    }
    let now = app.clock.now_ms();
    match route {
        Route::PutCollection(id) => {
            let id = collection_id(id)?;
            let body: CollectionBody = parse(req.body().as_ref())?;
            let int = |f: Field<Int>, name| f.optional(name).map(|v| v.map(|i| i.0));
            // A collection created without a per-user limit gets the deployment's default.
            let limit =
                int(body.per_user_limit, "perUserLimit")?.or(app.settings.default_per_user_limit.map(i64::from));
            let spec = CollectionSpec::parse(
                int(body.quantity, "quantity")?,
                limit,
                int(body.payment_window_seconds, "paymentWindowSeconds")?,
                int(body.buckets, "buckets")?,
                int(body.cache_shards, "cacheShards")?,
            )
            .map_err(|e| ApiError::field(e.field, e.rule))?;
            let status = match app.create_collection(&id, &spec, now).await? {
                CreateOutcome::Created => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            Ok(ok_json(status, &app.inspect(&id).await?))
        }
        Route::WarmUp(id) => {
            let cached = app.warm_up(&collection_id(id)?).await?;
            Ok(ok_json(StatusCode::OK, &json!({ "cached": cached })))
        }
        Route::RaiseCacheShards(id) => {
            let id = collection_id(id)?;
            let body: RaiseBody = parse(req.body().as_ref())?;
            let to = body.cache_shards.required("cacheShards")?.0;
            Ok(ok_json(StatusCode::OK, &app.raise_cache_shards(&id, to, now).await?))
        }
        Route::GetCollection(id) => Ok(ok_json(StatusCode::OK, &app.inspect(&collection_id(id)?).await?)),
        Route::Reserve(id) => {
            let collection = collection_id(id)?;
            let body: TryBody = parse(req.body().as_ref())?;
            let order = order_id(&body.order_id.required("orderId")?, "orderId")?;
            let quantity = body.quantity.required("quantity")?.0;
            let input = ReserveInput { collection, order, user: who.user, quantity };
            Ok(ok_json(StatusCode::ACCEPTED, &app.reserve(input, now).await?))
        }
        Route::Status(c, o) => Ok(ok_json(StatusCode::OK, &app.status(&order_key(c, o, who.user)?).await?)),
        Route::Cancel(c, o) => {
            let key = order_key(c, o, who.user)?;
            app.spend_budget(&key, now).await?;
            Ok(ok_json(StatusCode::OK, &app.cancel(&key, Canceller::Buyer, now).await?.view))
        }
        Route::Confirm(c, o) => {
            let body: ConfirmBody = parse(req.body().as_ref())?;
            let buyer = UserId::parse(&body.buyer_id.required("buyerId")?)
                .map_err(|e| ApiError::field("buyerId", e.to_string()))?;
            Ok(ok_json(StatusCode::OK, &app.confirm(&order_key(c, o, buyer)?, now).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl PartialEq for ApiError {
        fn eq(&self, other: &Self) -> bool {
            self.code() == other.code()
        }
    }

    #[test]
    fn routes_match_the_contract() {
        assert_eq!(route(&Method::PUT, "/v1/admin/collections/c1"), Ok(Route::PutCollection("c1")));
        assert_eq!(route(&Method::GET, "/v1/admin/collections/c1/"), Ok(Route::GetCollection("c1")));
        assert_eq!(route(&Method::POST, "/v1/admin/collections/c1/warmup"), Ok(Route::WarmUp("c1")));
        assert_eq!(route(&Method::POST, "/v1/admin/collections/c1/cache-shards"), Ok(Route::RaiseCacheShards("c1")));
        assert_eq!(route(&Method::GET, "/v1/admin/collections/c1/cache-shards"), Err(ApiError::MethodNotAllowed));
        assert_eq!(route(&Method::POST, "/v1/collections/c1/reservations"), Ok(Route::Reserve("c1")));
        let r = "/v1/collections/c1/reservations/o1";
        assert_eq!(route(&Method::GET, r), Ok(Route::Status("c1", "o1")));
        assert_eq!(route(&Method::POST, &format!("{r}/cancel")), Ok(Route::Cancel("c1", "o1")));
        assert_eq!(route(&Method::POST, &format!("{r}/confirm")), Ok(Route::Confirm("c1", "o1")));
        assert!(matches!(route(&Method::DELETE, r), Err(ApiError::MethodNotAllowed)));
        assert!(matches!(route(&Method::GET, "/v1/reservations/o1"), Err(ApiError::NoRoute(_))), "the old addressing");
        assert!(matches!(route(&Method::GET, "/v2/nothing"), Err(ApiError::NoRoute(_))));
    }

    #[test]
    fn route_keys_round_trip_and_ignore_the_stage() {
        for r in Route::ALL {
            let (method, path) = r.key().split_once(' ').unwrap();
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let path = path.replace("{collectionId}", "c1").replace("{orderId}", "o1");
            let by_path = route(&method, &path).unwrap();
            let params = by_path.params();
            let by_key = route_by_key(r.key(), |n| params.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)).unwrap();
            assert_eq!(by_key, by_path);
            assert_eq!(by_key.key(), r.key());
        }
        assert!(matches!(route_by_key("GET /v1/nothing", |_| None), Err(ApiError::NoRoute(_))));
        assert!(matches!(
            route_by_key("POST /v1/collections/{collectionId}/reservations", |_| None),
            Err(ApiError::App(crate::app::AppError::InvalidField { field: "collectionId", .. }))
        ));
    }

    #[test]
    fn scopes_guard_exactly_the_privileged_routes() {
        let guarded: Vec<_> = Route::ALL.iter().filter_map(|r| r.scope().map(|s| (r.key(), s))).collect();
        assert_eq!(guarded.len(), 5);
        assert_eq!(Route::Confirm("c", "o").scope(), Some(auth::CONFIRM_SCOPE));
        assert_eq!(Route::WarmUp("c").scope(), Some(auth::ADMIN_SCOPE));
        assert_eq!(Route::RaiseCacheShards("c").scope(), Some(auth::ADMIN_SCOPE));
        assert_eq!(Route::Reserve("c").scope(), None);
    }
}
