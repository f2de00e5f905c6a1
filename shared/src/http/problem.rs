//! The one place where errors become HTTP answers: every problem `code` the API can answer is
//! defined once here ([`Code`], listed by [`Code::ALL`]; docs/API.md's table is generated from
//! it), with its status and whether it is retryable; an error maps to its code, and becomes an
//! `application/problem+json` body (RFC 9457). Internal details are logged, never sent.

use http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use super::ApiError;
use crate::app::AppError;
use crate::domain::Refusal;

/// Every problem the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidField,
    MalformedBody,
    Unauthenticated,
    Forbidden,
    RouteNotFound,
    MethodNotAllowed,
    BodyTooLarge,
    RateLimited,
    CollectionNotFound,
    ReservationNotFound,
    SoldOut,
    InsufficientStock,
    LimitExceeded,
    IdempotencyMismatch,
    QuantityImmutable,
    SettingsImmutable,
    AlreadyConfirmed,
    AlreadyCancelled,
    NotYetReserved,
    OrderFailed,
    OrderCancelled,
    CacheNotReady,
    ReservationUnconfirmed,
    ServiceUnavailable,
    DependencyUnavailable,
}

impl Code {
    pub const ALL: [Code; 25] = [
        Code::InvalidField,
        Code::MalformedBody,
        Code::Unauthenticated,
        Code::Forbidden,
        Code::RouteNotFound,
        Code::MethodNotAllowed,
        Code::BodyTooLarge,
        Code::RateLimited,
        Code::CollectionNotFound,
        Code::ReservationNotFound,
        Code::SoldOut,
        Code::InsufficientStock,
        Code::LimitExceeded,
        Code::IdempotencyMismatch,
        Code::QuantityImmutable,
        Code::SettingsImmutable,
        Code::AlreadyConfirmed,
        Code::AlreadyCancelled,
        Code::NotYetReserved,
        Code::OrderFailed,
        Code::OrderCancelled,
        Code::CacheNotReady,
        Code::ReservationUnconfirmed,
        Code::ServiceUnavailable,
        Code::DependencyUnavailable,
    ];

    /// The stable code, its status, whether retrying the same request may succeed, and when it is
    /// answered.
    pub fn describe(self) -> (&'static str, StatusCode, bool, &'static str) {
        use Code as C;
        use StatusCode as S;
        match self {
            C::InvalidField => {
                ("INVALID_FIELD", S::BAD_REQUEST, false, "a field is missing or out of its rules (`field` names it)")
            }
            C::MalformedBody => ("MALFORMED_BODY", S::BAD_REQUEST, false, "the body is not a JSON object"),
            C::Unauthenticated => ("UNAUTHENTICATED", S::UNAUTHORIZED, false, "no verified token, or no usable `sub`"),
            C::Forbidden => ("FORBIDDEN", S::FORBIDDEN, false, "the token lacks the route's scope"),
            C::RouteNotFound => ("ROUTE_NOT_FOUND", S::NOT_FOUND, false, "no such route"),
            C::MethodNotAllowed => {
                ("METHOD_NOT_ALLOWED", S::METHOD_NOT_ALLOWED, false, "the path exists with another method")
            }
            C::BodyTooLarge => {
                ("BODY_TOO_LARGE", S::PAYLOAD_TOO_LARGE, false, "a body above 4 KiB, refused before it is parsed")
            }
            C::RateLimited => (
                "RATE_LIMITED",
                S::TOO_MANY_REQUESTS,
                true,
                "the buyer's budget of Tries and cancels is spent (`retryAfterSeconds`)",
            ),
            C::CollectionNotFound => ("COLLECTION_NOT_FOUND", S::NOT_FOUND, false, "no such collection"),
            C::ReservationNotFound => {
                ("RESERVATION_NOT_FOUND", S::NOT_FOUND, false, "this buyer has no such order on the collection")
            }
            C::SoldOut => ("SOLD_OUT", S::CONFLICT, false, "nothing left"),
            C::InsufficientStock => ("INSUFFICIENT_STOCK", S::CONFLICT, false, "less left than asked (`available`)"),
            C::LimitExceeded => ("LIMIT_EXCEEDED", S::CONFLICT, false, "the per-user limit would be passed (`held`)"),
            C::IdempotencyMismatch => {
                ("IDEMPOTENCY_MISMATCH", S::CONFLICT, false, "this buyer reused an order id with another quantity")
            }
            C::QuantityImmutable => {
                ("QUANTITY_IMMUTABLE", S::CONFLICT, false, "a collection's quantity is fixed at creation")
            }
            C::SettingsImmutable => (
                "SETTINGS_IMMUTABLE",
                S::CONFLICT,
                false,
                "a collection's settings are fixed at creation (its cache shards are only raised)",
            ),
            C::AlreadyConfirmed => ("ALREADY_CONFIRMED", S::CONFLICT, false, "a cancel of a paid order"),
            C::AlreadyCancelled => ("ALREADY_CANCELLED", S::CONFLICT, false, "a confirm of a cancelled order"),
            C::NotYetReserved => ("NOT_YET_RESERVED", S::CONFLICT, true, "a confirm of an order not durable yet"),
            C::OrderFailed => ("ORDER_FAILED", S::CONFLICT, false, "the order failed: the stock was not available"),
            C::OrderCancelled => {
                ("ORDER_CANCELLED", S::CONFLICT, false, "a Try of an order id cancelled before it was persisted")
            }
            C::CacheNotReady => {
                ("CACHE_NOT_READY", S::SERVICE_UNAVAILABLE, true, "the collection is not warmed up; nothing was taken")
            }
            C::ReservationUnconfirmed => (
                "RESERVATION_UNCONFIRMED",
                S::SERVICE_UNAVAILABLE,
                true,
                "taken, but its message could not be confirmed queued: retry with the same `orderId`",
            ),
            C::ServiceUnavailable => (
                "SERVICE_UNAVAILABLE",
                S::SERVICE_UNAVAILABLE,
                true,
                "too much contention, or the collection's cache shards are being raised (`detail` says which)",
            ),
            C::DependencyUnavailable => {
                ("DEPENDENCY_UNAVAILABLE", S::SERVICE_UNAVAILABLE, true, "Redis, DynamoDB or SQS failed")
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        self.describe().0
    }
    pub fn status(self) -> StatusCode {
        self.describe().1
    }
    pub fn retryable(self) -> bool {
        self.describe().2
    }

    /// docs/API.md's table of problem codes.
    pub fn table() -> String {
        let mut out = String::from("| code | status | retryable | answered when |\n| --- | --- | --- | --- |\n");
        for c in Code::ALL {
            let (code, status, retryable, when) = c.describe();
            let r = if retryable { "yes" } else { "no" };
            out.push_str(&format!("| `{code}` | {} | {r} | {when} |\n", status.as_u16()));
        }
        out
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Refusal> for Code {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::AlreadyConfirmed => Code::AlreadyConfirmed,
            Refusal::AlreadyCancelled => Code::AlreadyCancelled,
            Refusal::NotYetReserved => Code::NotYetReserved,
            Refusal::OrderFailed => Code::OrderFailed,
            Refusal::Tombstoned => Code::OrderCancelled,
            Refusal::Unknown => Code::ReservationNotFound,
        }
    }
}

impl AppError {
    /// The use case's failure as the API's problem code.
    pub fn code(&self) -> Code {
        use AppError as E;
        match self {
            E::InvalidField { .. } => Code::InvalidField,
            E::RateLimited { .. } => Code::RateLimited,
            E::CollectionNotFound => Code::CollectionNotFound,
            E::ReservationNotFound => Code::ReservationNotFound,
            E::SoldOut => Code::SoldOut,
            E::InsufficientStock { .. } => Code::InsufficientStock,
            E::LimitExceeded { .. } => Code::LimitExceeded,
            E::IdempotencyMismatch => Code::IdempotencyMismatch,
            E::QuantityImmutable => Code::QuantityImmutable,
            E::SettingsImmutable => Code::SettingsImmutable,
            E::Refused(r) => Code::from(*r),
            E::CacheNotReady => Code::CacheNotReady,
            E::Unconfirmed => Code::ReservationUnconfirmed,
            E::Unavailable(_) => Code::ServiceUnavailable,
            E::Infra(e) if e.busy => Code::ServiceUnavailable,
            E::Infra(_) => Code::DependencyUnavailable,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }
}

impl ApiError {
    pub fn code(&self) -> Code {
        match self {
            ApiError::MalformedBody(_) => Code::MalformedBody,
            ApiError::Unauthenticated => Code::Unauthenticated,
            ApiError::Forbidden(_) => Code::Forbidden,
            ApiError::NoRoute(_) => Code::RouteNotFound,
            ApiError::MethodNotAllowed => Code::MethodNotAllowed,
            ApiError::BodyTooLarge { .. } => Code::BodyTooLarge,
            ApiError::App(e) => e.code(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// The problem+json response.
    pub fn into_response(self) -> Response<Body> {
        let code = self.code();
        let status = code.status();
        let detail = match &self {
            // Infrastructure detail stays in the logs (a store's refusal for now says why).
            ApiError::App(AppError::Infra(e)) if e.busy => e.message.clone(),
            ApiError::App(AppError::Infra(e)) => {
                tracing::error!(error = %e, "dependency failure");
                "a dependency is unavailable; retry shortly".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "type": format!("urn:flashstock:problem:{}", code.as_str().to_lowercase().replace('_', "-")),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "code": code.as_str(),
            "detail": detail,
            "retryable": code.retryable(),
        });
        let mut retry_after = 1;
        match &self {
            ApiError::App(AppError::InvalidField { field, .. }) => body["field"] = json!(field),
            ApiError::App(AppError::InsufficientStock { available }) => body["available"] = json!(available),
            ApiError::App(AppError::LimitExceeded { held }) => body["held"] = json!(held),
            ApiError::App(AppError::RateLimited { retry_after_s }) => {
                body["retryAfterSeconds"] = json!(retry_after_s);
                retry_after = *retry_after_s;
            }
            _ => {}
        }
        let mut resp = response(status, "application/problem+json", &body);
        if code.retryable()
            && let Ok(v) = http::HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A JSON response with the given content type.
pub fn response(status: StatusCode, content_type: &'static str, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response<Body>) -> Value {
        let Body::Text(t) = r.body() else { panic!("text body") };
        serde_json::from_str(t).unwrap()
    }

    #[test]
    fn problems_carry_status_code_and_field() {
        let r = ApiError::from(AppError::InvalidField { field: "quantity", detail: "must be 1..10".into() })
            .into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/problem+json");
        let v = body(&r);
        assert_eq!(v["code"], "INVALID_FIELD");
        assert_eq!(v["field"], "quantity");
        assert_eq!(v["status"], 400);
    }

    #[test]
    fn every_refusal_maps_to_its_code() {
        assert_eq!(AppError::Refused(Refusal::AlreadyConfirmed).status(), StatusCode::CONFLICT);
        assert_eq!(AppError::Refused(Refusal::AlreadyConfirmed).code().as_str(), "ALREADY_CONFIRMED");
        assert_eq!(AppError::Refused(Refusal::Tombstoned).code().as_str(), "ORDER_CANCELLED");
        assert_eq!(AppError::Refused(Refusal::Unknown).status(), StatusCode::NOT_FOUND);
        assert_eq!(AppError::CacheNotReady.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(AppError::Refused(Refusal::NotYetReserved).code().retryable());
        assert_eq!(AppError::Unconfirmed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(AppError::Unconfirmed.code().as_str(), "RESERVATION_UNCONFIRMED");
        assert!(AppError::Unconfirmed.code().retryable(), "the buyer retries with the same order id");
    }

    #[test]
    fn stock_refusals_say_what_is_left_or_held() {
        let v = body(&ApiError::from(AppError::InsufficientStock { available: 3 }).into_response());
        assert_eq!((v["code"].as_str(), v["available"].as_i64()), (Some("INSUFFICIENT_STOCK"), Some(3)));
        let v = body(&ApiError::from(AppError::LimitExceeded { held: 2 }).into_response());
        assert_eq!((v["code"].as_str(), v["held"].as_i64()), (Some("LIMIT_EXCEEDED"), Some(2)));
        assert_eq!(Code::SoldOut.to_string(), "SOLD_OUT");
    }

    #[test]
    fn codes_are_listed_once_each() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            let s = c.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{s}");
            assert!(c.status().is_client_error() || c.status().is_server_error(), "{s}");
            assert_eq!(
                c.retryable(),
                c.status().is_server_error() || matches!(c, Code::RateLimited | Code::NotYetReserved),
                "{s}"
            );
        }
    }

    #[test]
    fn a_rate_limited_buyer_is_told_when_to_come_back() {
        let r = ApiError::from(AppError::RateLimited { retry_after_s: 42 }).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "42");
        let v = body(&r);
        assert_eq!((v["code"].as_str(), v["retryAfterSeconds"].as_u64()), (Some("RATE_LIMITED"), Some(42)));
        assert_eq!(ApiError::BodyTooLarge { limit: 4096 }.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let r = ApiError::from(AppError::CacheNotReady).into_response();
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "1");
        assert!(ApiError::Unauthenticated.into_response().headers().get(http::header::RETRY_AFTER).is_none());
    }

    #[test]
    fn infra_details_are_not_sent() {
        let e = ApiError::from(AppError::Infra(crate::ports::InfraError::new("dynamodb", "secret-host:8000 refused")));
        let r = e.into_response();
        let Body::Text(t) = r.body() else { panic!("text body") };
        assert!(!t.contains("secret-host"));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_stores_refusal_for_now_says_why() {
        let busy =
            crate::ports::InfraError::busy("redis release.lua", "the collection's cache shards are being raised");
        let e = ApiError::from(AppError::Infra(busy));
        assert_eq!(e.code(), Code::ServiceUnavailable);
        let r = e.into_response();
        let Body::Text(t) = r.body() else { panic!("text body") };
        assert!(t.contains("being raised") && t.contains("SERVICE_UNAVAILABLE"), "{t}");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    /// docs/API.md lists exactly these codes (rewrite it with `FLASHSTOCK_UPDATE_DOCS=1`).
    #[test]
    fn the_api_doc_lists_every_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let want = crate::config::docs::splice(&doc, "problem codes", &Code::table()).expect("markers in docs/API.md");
        if std::env::var_os("FLASHSTOCK_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        } else {
            assert!(
                doc == want,
                "docs/API.md's problem codes differ: run FLASHSTOCK_UPDATE_DOCS=1 cargo test -p flashstock"
            );
        }
    }
}
