//! Dev tokens: HS256 JWTs signed with `FLASHSTOCK_DEV_JWT_SECRET` (default [`DEFAULT_SECRET`]),
//! verified by the front door as API Gateway's JWT authorizer verifies real ones: signature,
//! expiry, issuer and audience; the OAuth scopes travel in the standard `scope` claim.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

pub const SECRET_ENV: &str = "FLASHSTOCK_DEV_JWT_SECRET";
pub const DEFAULT_SECRET: &str = "flashstock-local-dev-secret";
/// The local stack's issuer (`iss`) and audience (`aud`), as `JwtIssuer`/`JwtAudience` in the template.
pub const ISSUER: &str = "https://flashstock.local/issuer";
pub const AUDIENCE: &str = "flashstock-storefront";

pub fn secret_from_env() -> String {
    std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_SECRET.to_owned())
}

/// A token for `sub` with these OAuth `scopes`, valid for an hour.
pub fn mint(secret: &str, sub: &str, scopes: &[&str]) -> String {
    let mut claims = json!({ "sub": sub, "exp": flashstock::now_ms() / 1000 + 3600, "iss": ISSUER, "aud": AUDIENCE });
    if !scopes.is_empty() {
        claims["scope"] = json!(scopes.join(" "));
    }
    sign(secret, &claims)
}

/// A token with exactly these claims (tests craft expired, foreign and odd tokens with it).
pub fn sign(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap_or_default()
}

/// Verifies a token and returns its claims flattened as API Gateway passes them to Lambda
/// (strings as they are, arrays as `[a b]`, other values as JSON text).
pub fn verify(secret: &str, token: &str) -> Option<HashMap<String, String>> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.leeway = 0;
    let data =
        jsonwebtoken::decode::<HashMap<String, Value>>(token, &DecodingKey::from_secret(secret.as_bytes()), &v).ok()?;
    Some(
        data.claims
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    Value::Array(a) => {
                        let items: Vec<String> =
                            a.iter().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect();
                        format!("[{}]", items.join(" "))
                    }
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let t = mint("s", "auth0|5f3c", &["flashstock/confirm", "flashstock/admin"]);
        let c = verify("s", &t).unwrap();
        assert_eq!(c["sub"], "auth0|5f3c");
        assert_eq!(c["scope"], "flashstock/confirm flashstock/admin");
        assert!(verify("other", &t).is_none());
        assert!(verify("s", "not-a-token").is_none());
        assert!(!verify("s", &mint("s", "buyer", &[])).unwrap().contains_key("scope"));
    }

    #[test]
    fn issuer_audience_and_expiry_are_checked() {
        let now = flashstock::now_ms() / 1000;
        let good = json!({ "sub": "u", "exp": now + 60, "iss": ISSUER, "aud": AUDIENCE });
        assert!(verify("s", &sign("s", &good)).is_some());
        for (k, v) in [("iss", json!("https://evil")), ("aud", json!("other-app")), ("exp", json!(now - 1))] {
            let mut bad = good.clone();
            bad[k] = v;
            assert!(verify("s", &sign("s", &bad)).is_none(), "{k}");
        }
    }
}
