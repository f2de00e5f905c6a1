//! The HTTP API (README.md, "HTTP API (v1)") behind API Gateway's HTTP API: routing, identity, input parsing into
//! domain types, and answers. Every failure goes through [`problem`]; a handler never returns
//! `Err` (which Lambda would count as a failed invocation) and never panics on input.

pub mod auth;
pub mod problem;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use crate::app::cancel::Canceller;
use crate::app::{App, AppError, reserve::ReserveInput};
use crate::domain::{CollectionId, CollectionSpec, OrderId, OrderKey, UserId};
use crate::ports::{CreateOutcome, Ledger, Queue, StockCache};
use problem::response;

/// One route of the API, with its path parameters still raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    PutCollection(&'a str),
    WarmUp(&'a str),
    GetCollection(&'a str),
    Reserve(&'a str),
    /// `(collectionId, orderId)`: the caller's own reservation.
    Status(&'a str, &'a str),
    Cancel(&'a str, &'a str),
    /// `(collectionId, orderId)`; the body names the buyer.
    Confirm(&'a str, &'a str),
}

/// Matches method and path. `Err(MethodNotAllowed)` for a known path with another method.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, AppError> {
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
        (None, true) => Err(AppError::MethodNotAllowed),
        (None, false) => Err(AppError::NoRoute(path.to_owned())),
    }
}

fn collection_id(raw: &str) -> Result<CollectionId, AppError> {
    CollectionId::parse(raw).map_err(|e| AppError::InvalidField { field: "collectionId", detail: e.to_string() })
}

fn order_id(raw: &str, field: &'static str) -> Result<OrderId, AppError> {
    OrderId::parse(raw).map_err(|e| AppError::InvalidField { field, detail: e.to_string() })
}

/// The reservation a path names, scoped to `user`.
fn order_key(collection: &str, order: &str, user: UserId) -> Result<OrderKey, AppError> {
    Ok(OrderKey::new(collection_id(collection)?, user, order_id(order, "orderId")?))
}

/// A required string field of the body.
fn str_field<'a>(m: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, AppError> {
    match m.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(AppError::InvalidField { field, detail: "must be a string".into() }),
        None => Err(AppError::InvalidField { field, detail: "is required".into() }),
    }
}

/// The body as a JSON object.
fn json_object(req: &Request) -> Result<Map<String, Value>, AppError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::MalformedBody("a JSON object is required".into()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AppError::MalformedBody("the body must be a JSON object".into())),
        Err(e) => Err(AppError::MalformedBody(e.to_string())),
    }
}

/// An optional integer field; present but not an integer is an error naming the field.
fn int_field(m: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, AppError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Some(i64::MAX)), // out of any range
        Some(_) => Err(AppError::InvalidField { field, detail: "must be an integer".into() }),
    }
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, AppError> {
    v.ok_or(AppError::InvalidField { field, detail: "is required".into() })
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
                tracing::warn!(path = %req.uri().path(), code = e.code(), error = %e, "request failed");
            }
            e.into_response()
        }
    }
}

async fn dispatch<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    req: &Request,
) -> Result<Response<Body>, AppError> {
    let path = req.uri().path().to_owned();
    let route = route(req.method(), &path)?;
    let who = auth::identity(req)?;
    let now = crate::now_ms();
    match route {
        Route::PutCollection(id) => {
            who.require("admin")?;
            let id = collection_id(id)?;
            let body = json_object(req)?;
            let spec = CollectionSpec::parse(
                int_field(&body, "quantity")?,
                int_field(&body, "perUserLimit")?,
                int_field(&body, "paymentWindowSeconds")?,
            )
            .map_err(|e| AppError::InvalidField { field: e.field, detail: e.rule.to_owned() })?;
            let status = match app.create_collection(&id, &spec, now).await? {
                CreateOutcome::Created => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            Ok(ok_json(status, &app.inspect(&id).await?))
        }
        Route::WarmUp(id) => {
            who.require("admin")?;
            let cached = app.warm_up(&collection_id(id)?).await?;
            Ok(ok_json(StatusCode::OK, &json!({ "cached": cached })))
        }
        Route::GetCollection(id) => {
            who.require("admin")?;
            Ok(ok_json(StatusCode::OK, &app.inspect(&collection_id(id)?).await?))
        }
        Route::Reserve(id) => {
            let collection = collection_id(id)?;
            let body = json_object(req)?;
            let order = order_id(str_field(&body, "orderId")?, "orderId")?;
            let quantity = required(int_field(&body, "quantity")?, "quantity")?;
            let input = ReserveInput { collection, order, user: who.user, quantity };
            Ok(ok_json(StatusCode::ACCEPTED, &app.reserve(input, now).await?))
        }
        Route::Status(c, o) => Ok(ok_json(StatusCode::OK, &app.status(&order_key(c, o, who.user)?).await?)),
        Route::Cancel(c, o) => {
            let key = order_key(c, o, who.user)?;
            Ok(ok_json(StatusCode::OK, &app.cancel(&key, Canceller::Buyer, now).await?.view))
        }
        Route::Confirm(c, o) => {
            who.require("service")?;
            let body = json_object(req)?;
            let buyer = UserId::parse(str_field(&body, "buyerId")?)
                .map_err(|e| AppError::InvalidField { field: "buyerId", detail: e.to_string() })?;
            Ok(ok_json(StatusCode::OK, &app.confirm(&order_key(c, o, buyer)?, now).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_contract() {
        assert_eq!(route(&Method::PUT, "/v1/admin/collections/c1"), Ok(Route::PutCollection("c1")));
        assert_eq!(route(&Method::GET, "/v1/admin/collections/c1/"), Ok(Route::GetCollection("c1")));
        assert_eq!(route(&Method::POST, "/v1/admin/collections/c1/warmup"), Ok(Route::WarmUp("c1")));
        assert_eq!(route(&Method::POST, "/v1/collections/c1/reservations"), Ok(Route::Reserve("c1")));
        let r = "/v1/collections/c1/reservations/o1";
        assert_eq!(route(&Method::GET, r), Ok(Route::Status("c1", "o1")));
        assert_eq!(route(&Method::POST, &format!("{r}/cancel")), Ok(Route::Cancel("c1", "o1")));
        assert_eq!(route(&Method::POST, &format!("{r}/confirm")), Ok(Route::Confirm("c1", "o1")));
        assert!(matches!(route(&Method::DELETE, r), Err(AppError::MethodNotAllowed)));
        assert!(matches!(route(&Method::GET, "/v1/reservations/o1"), Err(AppError::NoRoute(_))), "the old addressing");
        assert!(matches!(route(&Method::GET, "/v2/nothing"), Err(AppError::NoRoute(_))));
    }

    impl PartialEq for AppError {
        fn eq(&self, other: &Self) -> bool {
            self.code() == other.code()
        }
    }

    #[test]
    fn integer_fields_reject_other_types() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"a": 3, "b": "3", "c": 1.5, "d": null, "e": 1e30}"#).unwrap();
        assert_eq!(int_field(&m, "a").unwrap(), Some(3));
        assert!(int_field(&m, "b").is_err());
        assert!(int_field(&m, "c").is_err());
        assert_eq!(int_field(&m, "d").unwrap(), None);
        assert!(int_field(&m, "e").is_err());
        assert_eq!(int_field(&m, "missing").unwrap(), None);
    }
}
