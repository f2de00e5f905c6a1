//! Identity and permission come only from the authorizer: the JWT authorizer's verified claims in
//! the API Gateway request context. `sub` is the caller (a buyer, for the buyer routes); the
//! standard space-separated `scope` claim (RFC 6749 §3.3, as Cognito, Auth0 and Okta issue it in
//! access tokens) carries the OAuth scopes of privileged callers. No other claim is read (no
//! `roles`, no groups), no scope implies another, and nothing in a body or header counts.
//!
//! The gateway checks the same scopes per route (`AuthorizationScopes` in `template.yaml`); this
//! check is the second lock, so a route left without them in a deployment is still closed.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::ApiError;
use crate::domain::UserId;

/// Creating, warming and inspecting collections.
pub const ADMIN_SCOPE: &str = "flashstock/admin";
/// Confirming a buyer's reservation after payment (the payment service).
pub const CONFIRM_SCOPE: &str = "flashstock/confirm";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub scopes: Vec<String>,
}

impl Identity {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// # Errors
    /// `Forbidden` unless the token carries exactly this scope.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        if self.has_scope(scope) { Ok(()) } else { Err(ApiError::Forbidden(scope)) }
    }
}

/// The scopes of a `scope` claim: space-separated tokens, taken as they are.
pub fn scopes(claim: &str) -> Vec<String> {
    claim.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// # Errors
/// `Unauthenticated` without authorizer claims or with an unusable `sub`.
pub fn identity(req: &Request) -> Result<Identity, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
        }
        _ => None,
    }
    .ok_or(ApiError::Unauthenticated)?;
    let user = claims.get("sub").and_then(|s| UserId::parse(s).ok()).ok_or(ApiError::Unauthenticated)?;
    let scopes = claims.get("scope").map(|s| scopes(s)).unwrap_or_default();
    Ok(Identity { user, scopes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(scope: &str) -> Identity {
        Identity { user: UserId::parse("u").unwrap(), scopes: scopes(scope) }
    }

    #[test]
    fn the_scope_claim_is_space_separated() {
        assert_eq!(scopes("openid flashstock/admin  flashstock/confirm"), ["openid", ADMIN_SCOPE, CONFIRM_SCOPE]);
        assert!(scopes("").is_empty());
        // An array flattened by API Gateway is not a scope list: its brackets stay on the ends.
        assert_eq!(scopes("[flashstock/admin]"), ["[flashstock/admin]"]);
    }

    #[test]
    fn no_scope_implies_another_and_near_misses_grant_nothing() {
        assert!(matches!(who(ADMIN_SCOPE).require(CONFIRM_SCOPE), Err(ApiError::Forbidden(CONFIRM_SCOPE))));
        assert!(who(CONFIRM_SCOPE).require(ADMIN_SCOPE).is_err());
        for near in
            ["admin", "store admin", "flashstock/admin:read", "FLASHSTOCK/ADMIN", "[flashstock/admin]", "flashstock"]
        {
            assert!(who(near).require(ADMIN_SCOPE).is_err(), "{near}");
        }
        let both = who("flashstock/confirm flashstock/admin");
        assert!(both.require(ADMIN_SCOPE).is_ok() && both.require(CONFIRM_SCOPE).is_ok());
    }
}
