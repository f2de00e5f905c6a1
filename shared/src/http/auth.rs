//! Identity comes only from the authorizer: the JWT authorizer's claims in the API Gateway
//! request context (`sub` = user id, `roles` = granted roles). Nothing in a body or header counts.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::app::AppError;
use crate::domain::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub roles: Vec<String>,
}

impl Identity {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// # Errors
    /// `Forbidden` unless the identity holds `role` (or `admin`, which holds every role).
    pub fn require(&self, role: &'static str) -> Result<(), AppError> {
        if self.has_role(role) || self.has_role("admin") { Ok(()) } else { Err(AppError::Forbidden(role)) }
    }
}

/// API Gateway hands array claims to Lambda flattened into one string, e.g. `[service admin]`;
/// accept that, JSON arrays, and comma- or space-separated lists.
pub fn parse_roles(raw: &str) -> Vec<String> {
    if let Ok(v) = serde_json::from_str::<Vec<String>>(raw) {
        return v;
    }
    raw.trim_matches(|c| c == '[' || c == ']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|s| s.trim_matches('"'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// # Errors
/// `Unauthenticated` without authorizer claims or with an unusable `sub`.
pub fn identity(req: &Request) -> Result<Identity, AppError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
        }
        _ => None,
    }
    .ok_or(AppError::Unauthenticated)?;
    let user = claims.get("sub").and_then(|s| UserId::parse(s).ok()).ok_or(AppError::Unauthenticated)?;
    let roles = claims.get("roles").map(|r| parse_roles(r)).unwrap_or_default();
    Ok(Identity { user, roles })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_in_every_shape_api_gateway_sends() {
        assert_eq!(parse_roles("[service admin]"), vec!["service", "admin"]);
        assert_eq!(parse_roles(r#"["service","admin"]"#), vec!["service", "admin"]);
        assert_eq!(parse_roles("service,admin"), vec!["service", "admin"]);
        assert_eq!(parse_roles("admin"), vec!["admin"]);
        assert!(parse_roles("[]").is_empty());
    }

    #[test]
    fn admin_holds_every_role() {
        let id = Identity { user: UserId::parse("u").unwrap(), roles: vec!["admin".into()] };
        assert!(id.require("service").is_ok());
        let buyer = Identity { user: UserId::parse("u").unwrap(), roles: vec![] };
        assert!(matches!(buyer.require("admin"), Err(AppError::Forbidden("admin"))));
    }
}
