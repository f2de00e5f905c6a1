//! Redis credentials from Secrets Manager, read once when a function starts: the deployed functions
//! get a secret's ARN and the cache's endpoint in their environment, never the password itself.
//! The secret is JSON: `{"username", "password"}` (the template generates one for the cache it
//! creates) or `{"url"}` (a whole `rediss://` URL, for an existing Redis).

use aws_sdk_secretsmanager::Client;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::config::{Secret, insecure_redis_url};
use crate::ports::InfraError;

#[derive(Deserialize)]
struct RedisSecret {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Characters kept as they are in a URL's user information (RFC 3986 unreserved).
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The Redis URL a secret's JSON gives for `endpoint` (`host:port`). Refuses what the
/// production config refuses (plaintext, unverified TLS) unless `allow_insecure`.
///
/// # Errors
/// A message naming what is wrong with the secret (never its content).
pub fn redis_url_from_secret(json: &str, endpoint: &str, allow_insecure: bool) -> Result<Secret, String> {
    let s: RedisSecret = serde_json::from_str(json).map_err(|_| "the secret is not a JSON object".to_owned())?;
    let url = match (s.url, s.username, s.password) {
        (Some(url), _, _) => url,
        (None, _, Some(_)) if endpoint.is_empty() => {
            return Err("the secret holds credentials but FLASHSTOCK_REDIS_ENDPOINT is not set".to_owned());
        }
        (None, user, Some(password)) => {
            let user = user.unwrap_or_default();
            let enc = |v: &str| utf8_percent_encode(v, USERINFO).to_string();
            format!("rediss://{}:{}@{endpoint}", enc(&user), enc(&password))
        }
        (None, _, None) => return Err("the secret has neither `url` nor `password`".to_owned()),
    };
    if let Some(why) = insecure_redis_url(&url).filter(|_| !allow_insecure) {
        return Err(format!("the secret's Redis URL is refused: {why}"));
    }
    Ok(Secret::new(url))
}

/// Reads the secret and builds the Redis URL from it.
///
/// # Errors
/// Secrets Manager unreachable or the secret unusable.
pub async fn redis_url(client: &Client, arn: &str, endpoint: &str, allow_insecure: bool) -> Result<Secret, InfraError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| InfraError::new("secretsmanager", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?;
    let json =
        out.secret_string().ok_or_else(|| InfraError::new("secretsmanager", "the secret has no string value"))?;
    redis_url_from_secret(json, endpoint, allow_insecure).map_err(|e| InfraError::new("secretsmanager", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_a_tls_url_with_escaped_user_info() {
        let url = redis_url_from_secret(r#"{"username":"app","password":"p@ss:w/rd"}"#, "cache:6379", false).unwrap();
        assert_eq!(url.expose(), "rediss://app:p%40ss%3Aw%2Frd@cache:6379");
        let url = redis_url_from_secret(r#"{"url":"rediss://u:p@h:6379"}"#, "ignored", false).unwrap();
        assert_eq!(url.expose(), "rediss://u:p@h:6379");
    }

    #[test]
    fn unusable_or_insecure_secrets_are_refused_without_echoing_them() {
        let e = redis_url_from_secret("hunter2", "h:1", false).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(redis_url_from_secret(r#"{"username":"u"}"#, "h:1", false).is_err());
        assert!(redis_url_from_secret(r#"{"username":"u","password":"p"}"#, "", false).is_err(), "no endpoint");
        assert!(redis_url_from_secret(r#"{"url":"redis://h:1"}"#, "h:1", false).is_err());
        assert!(redis_url_from_secret(r#"{"url":"rediss://h:1/#insecure"}"#, "h:1", false).is_err());
        assert!(redis_url_from_secret(r#"{"url":"rediss://h:1/#insecure"}"#, "h:1", true).is_ok());
    }
}
