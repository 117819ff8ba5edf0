//! Password hashing (argon2id with OWASP's parameters, stored in PHC form so the parameters
//! travel with the hash) and Cognito's password policy.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::services::cognito::user_pool::PasswordPolicy;

/// 19 MiB, 2 passes, 1 lane: OWASP's minimum for argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Hashing failed; with valid parameters and a fresh salt it does not, so this is a bug or a
/// corrupt stored hash's parameters, never a wrong password.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).map_err(|e| PasswordError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password; CPU-heavy (tens of milliseconds), so callers run it on the blocking pool.
pub(crate) fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash =
        hasher()?.hash_password(password.as_bytes(), &salt).map_err(|e| PasswordError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Checks a password against a stored PHC hash, with the parameters stored in it. A stored
/// value that is no PHC hash matches nothing.
pub(crate) fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let Ok(parsed) = PasswordHash::new(stored) else { return Ok(false) };
    Ok(hasher()?.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Why a password does not meet the policy, in Cognito's words.
pub(crate) fn check_policy(policy: &PasswordPolicy, password: &str) -> Result<(), String> {
    let mut missing = Vec::new();
    if password.chars().count() < policy.minimum_length {
        missing.push(format!("Password not long enough (at least {} characters)", policy.minimum_length));
    }
    if policy.require_lowercase && !password.chars().any(char::is_lowercase) {
        missing.push("Password must have lowercase characters".into());
    }
    if policy.require_uppercase && !password.chars().any(char::is_uppercase) {
        missing.push("Password must have uppercase characters".into());
    }
    if policy.require_numbers && !password.chars().any(|c| c.is_ascii_digit()) {
        missing.push("Password must have numeric characters".into());
    }
    if policy.require_symbols && !password.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
        missing.push("Password must have symbol characters".into());
    }
    if password.len() > 256 {
        missing.push("Password is longer than 256 characters".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("Password did not conform with policy: {}", missing.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_carry_their_parameters_and_verify() {
        let stored = hash("Correct-horse-1").expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify("Correct-horse-1", &stored).expect("verify"));
        assert!(!verify("correct-horse-1", &stored).expect("verify"));
        assert!(!verify("anything", "not a hash").expect("verify"));
    }

    #[test]
    fn the_default_policy_is_cognitos() {
        let policy = PasswordPolicy::default();
        assert!(check_policy(&policy, "Passw0rd!").is_ok());
        for weak in ["alllowercase1!", "ALLUPPER1!", "NoNumbers!", "NoSymbols123"] {
            assert!(check_policy(&policy, weak).is_err(), "{weak}");
        }
        assert!(check_policy(&policy, "Sh0rt!").is_err());
    }
}
