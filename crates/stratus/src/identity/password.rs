//! Password hashing (argon2id with OWASP's parameters, stored in PHC form so the parameters
//! travel with the hash) and Cognito's password policy.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::identity::PasswordPolicy;

/// 19 MiB, 2 passes, 1 lane: OWASP's minimum for argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password; CPU-heavy (tens of milliseconds), so callers run it on the blocking pool.
pub(crate) fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    // Hashing only fails for parameters out of range, which ours are not.
    hasher().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string()).unwrap_or_default()
}

/// Checks a password against a stored PHC hash, with the parameters stored in it.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
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
        let stored = hash("Correct-horse-1");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify("Correct-horse-1", &stored));
        assert!(!verify("correct-horse-1", &stored));
        assert!(!verify("anything", "not a hash"));
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
