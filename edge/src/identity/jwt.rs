//! JWTs (HS256): access tokens (15 minutes) and refresh tokens (30 days).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Lifetime of an access token, seconds.
pub const ACCESS_TTL_SECS: u64 = 15 * 60;
/// Lifetime of a refresh token, seconds.
pub const REFRESH_TTL_SECS: u64 = 30 * 24 * 3600;

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The claims Paddock puts in its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Account id.
    pub sub: String,
    pub typ: TokenKind,
    pub iat: u64,
    pub exp: u64,
    /// Token id (random).
    pub jti: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired: log in again or use POST /v1/auth/refresh")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("wrong token kind: expected an {expected:?} token")]
    WrongKind { expected: TokenKind },
}

/// Issues and checks tokens with one HS256 secret.
#[derive(Clone)]
pub struct Jwt {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl Jwt {
    /// A signer over `secret`.
    pub fn new(secret: &[u8]) -> Jwt {
        Jwt {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    /// Issues a token of `kind` for `account_id`, valid from `now`.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] when signing fails.
    pub fn issue(&self, account_id: &str, kind: TokenKind, now: u64) -> Result<String, TokenError> {
        let ttl = match kind {
            TokenKind::Access => ACCESS_TTL_SECS,
            TokenKind::Refresh => REFRESH_TTL_SECS,
        };
        let claims = Claims {
            sub: account_id.to_owned(),
            typ: kind,
            iat: now,
            exp: now + ttl,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Checks signature, expiry and kind.
    ///
    /// # Errors
    /// [`TokenError`] naming what is wrong.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.dec, &v).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })?;
        if data.claims.typ != kind {
            return Err(TokenError::WrongKind { expected: kind });
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> u64 {
        crate::store::now()
    }

    #[test]
    fn issue_and_verify() {
        let j = Jwt::new(b"secret-secret-secret-secret-0123");
        let t = j.issue("acc1", TokenKind::Access, now()).unwrap();
        let c = j.verify(&t, TokenKind::Access).unwrap();
        assert_eq!(c.sub, "acc1");
        assert_eq!(c.exp - c.iat, ACCESS_TTL_SECS);
        assert_eq!(
            j.verify(&t, TokenKind::Refresh),
            Err(TokenError::WrongKind {
                expected: TokenKind::Refresh
            })
        );
        let other = Jwt::new(b"another-secret-another-secret-01");
        assert!(matches!(
            other.verify(&t, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let j = Jwt::new(b"secret-secret-secret-secret-0123");
        let t = j
            .issue("acc1", TokenKind::Access, now() - ACCESS_TTL_SECS - 10)
            .unwrap();
        assert_eq!(j.verify(&t, TokenKind::Access), Err(TokenError::Expired));
    }
}
