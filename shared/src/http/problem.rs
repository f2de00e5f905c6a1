//! The one place where errors become HTTP answers: status, stable `code`, and an
//! `application/problem+json` body (RFC 9457). Internal details are logged, never sent.

use http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use crate::app::AppError;
use crate::domain::Refusal;

impl AppError {
    pub fn status(&self) -> StatusCode {
        use AppError as E;
        match self {
            E::InvalidField { .. } | E::MalformedBody(_) => StatusCode::BAD_REQUEST,
            E::Unauthenticated => StatusCode::UNAUTHORIZED,
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::NoRoute(_) | E::CollectionNotFound | E::ReservationNotFound => StatusCode::NOT_FOUND,
            E::Refused(Refusal::Unknown) => StatusCode::NOT_FOUND,
            E::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            E::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::SoldOut
            | E::InsufficientStock { .. }
            | E::LimitExceeded { .. }
            | E::IdempotencyMismatch
            | E::QuantityImmutable
            | E::SettingsImmutable
            | E::Refused(_) => StatusCode::CONFLICT,
            E::CacheNotReady | E::Unconfirmed | E::Unavailable(_) | E::Infra(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable, documented problem code.
    pub fn code(&self) -> &'static str {
        use AppError as E;
        match self {
            E::InvalidField { .. } => "INVALID_FIELD",
            E::MalformedBody(_) => "MALFORMED_BODY",
            E::Unauthenticated => "UNAUTHENTICATED",
            E::Forbidden(_) => "FORBIDDEN",
            E::NoRoute(_) => "ROUTE_NOT_FOUND",
            E::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            E::BodyTooLarge { .. } => "BODY_TOO_LARGE",
            E::RateLimited { .. } => "RATE_LIMITED",
            E::CollectionNotFound => "COLLECTION_NOT_FOUND",
            E::ReservationNotFound => "RESERVATION_NOT_FOUND",
            E::SoldOut => "SOLD_OUT",
            E::InsufficientStock { .. } => "INSUFFICIENT_STOCK",
            E::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            E::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            E::QuantityImmutable => "QUANTITY_IMMUTABLE",
            E::SettingsImmutable => "SETTINGS_IMMUTABLE",
            E::Refused(r) => r.code(),
            E::CacheNotReady => "CACHE_NOT_READY",
            E::Unconfirmed => "RESERVATION_UNCONFIRMED",
            E::Unavailable(_) => "SERVICE_UNAVAILABLE",
            E::Infra(_) => "DEPENDENCY_UNAVAILABLE",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            AppError::CacheNotReady
                | AppError::Unconfirmed
                | AppError::Unavailable(_)
                | AppError::Infra(_)
                | AppError::RateLimited { .. }
        ) || matches!(self, AppError::Refused(Refusal::NotYetReserved))
    }

    /// The problem+json response.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let detail = match &self {
            // Infrastructure detail stays in the logs.
            AppError::Infra(e) => {
                tracing::error!(error = %e, "dependency failure");
                "a dependency is unavailable; retry shortly".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "type": format!("urn:flashstock:problem:{}", self.code().to_lowercase().replace('_', "-")),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "code": self.code(),
            "detail": detail,
            "retryable": self.retryable(),
        });
        match &self {
            AppError::InvalidField { field, .. } => body["field"] = json!(field),
            AppError::InsufficientStock { available } => body["available"] = json!(available),
            AppError::LimitExceeded { held } => body["held"] = json!(held),
            _ => {}
        }
        let retry_after = match &self {
            AppError::RateLimited { retry_after_s } => *retry_after_s,
            _ => 1,
        };
        if let AppError::RateLimited { retry_after_s } = &self {
            body["retryAfterSeconds"] = json!(retry_after_s);
        }
        let mut resp = response(status, "application/problem+json", &body);
        if self.retryable()
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

    #[test]
    fn problems_carry_status_code_and_field() {
        let r = AppError::InvalidField { field: "quantity", detail: "must be 1..10".into() }.into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/problem+json");
        let Body::Text(t) = r.body() else { panic!("text body") };
        let v: Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["code"], "INVALID_FIELD");
        assert_eq!(v["field"], "quantity");
        assert_eq!(v["status"], 400);
    }

    #[test]
    fn every_refusal_maps_to_its_code() {
        assert_eq!(AppError::Refused(Refusal::AlreadyConfirmed).status(), StatusCode::CONFLICT);
        assert_eq!(AppError::Refused(Refusal::AlreadyConfirmed).code(), "ALREADY_CONFIRMED");
        assert_eq!(AppError::Refused(Refusal::Tombstoned).code(), "ORDER_CANCELLED");
        assert_eq!(AppError::Refused(Refusal::Unknown).status(), StatusCode::NOT_FOUND);
        assert_eq!(AppError::CacheNotReady.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(AppError::Refused(Refusal::NotYetReserved).retryable());
        assert_eq!(AppError::Unconfirmed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(AppError::Unconfirmed.code(), "RESERVATION_UNCONFIRMED");
        assert!(AppError::Unconfirmed.retryable(), "the buyer retries with the same order id");
    }

    #[test]
    fn a_rate_limited_buyer_is_told_when_to_come_back() {
        let r = AppError::RateLimited { retry_after_s: 42 }.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "42");
        let Body::Text(t) = r.body() else { panic!("text body") };
        let v: Value = serde_json::from_str(t).unwrap();
        assert_eq!((v["code"].as_str(), v["retryAfterSeconds"].as_u64()), (Some("RATE_LIMITED"), Some(42)));
        assert_eq!(AppError::BodyTooLarge { limit: 4096 }.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn infra_details_are_not_sent() {
        let e = AppError::Infra(crate::ports::InfraError::new("dynamodb", "secret-host:8000 refused"));
        let r = e.into_response();
        let Body::Text(t) = r.body() else { panic!("text body") };
        assert!(!t.contains("secret-host"));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
