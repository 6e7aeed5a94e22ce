//! argon2id password hashing, run off the async threads because it is deliberately slow.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{Error, Result};

/// The minimum password length.
pub(crate) const MIN_PASSWORD_CHARS: usize = 10;

/// Rejects passwords too short or too long to be sensible.
///
/// # Errors
/// `Error::Invalid` at `/password`.
pub fn check_password_policy(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "/password",
            "weak",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(Error::invalid(
            "/password",
            "length",
            "a password has at most 1024 bytes",
        ));
    }
    Ok(())
}

/// Hashes with argon2id (OWASP-recommended defaults of the argon2 crate).
///
/// # Errors
/// `Error::Internal` if hashing fails.
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

/// A hash of a random password, verified against when the account does not exist, so that
/// unknown and known emails take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(super::random_secret().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Checks a password against a stored hash (or a decoy when there is none).
pub async fn verify_password(stored_hash: Option<String>, password: String) -> bool {
    let exists = stored_hash.is_some();
    tokio::task::spawn_blocking(move || {
        let hash_text = stored_hash.unwrap_or_else(|| decoy_hash().to_owned());
        let Ok(hash) = PasswordHash::new(&hash_text) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
            && exists
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let hash = hash_password("correct horse battery".to_owned())
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(Some(hash.clone()), "correct horse battery".to_owned()).await);
        assert!(!verify_password(Some(hash), "wrong horse battery".to_owned()).await);
        assert!(!verify_password(None, "anything at all".to_owned()).await);
    }

    #[test]
    fn policy() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("long enough!").is_ok());
    }
}
