//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, ±1 step of skew) with replay protection: a
//! code is accepted only for a time step later than the last one accepted.

use rand::RngCore as _;
use totp_rs::{Algorithm, Secret, TOTP};

const STEP_SECONDS: u64 = 30;

/// A new shared secret, base32 as authenticator apps expect it.
pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::Raw(bytes.to_vec()).to_encoded().to_string()
}

/// The time step `code` is valid for at `now` (within ±1 step), if it is valid.
pub(crate) fn matching_step(secret_base32: &str, code: &str, now_seconds: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = Secret::Encoded(secret_base32.to_owned()).to_bytes().ok()?;
    // Our secrets are 160 bits, as RFC 4226 recommends; `new_unchecked` skips only the size check.
    let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 1, STEP_SECONDS, bytes);
    let current = now_seconds / STEP_SECONDS;
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .find(|step| totp.generate(step * STEP_SECONDS) == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vector() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let secret = Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string();
        assert_eq!(matching_step(&secret, "287082", 59), Some(1));
        assert_eq!(matching_step(&secret, "287082", 59 + 30), Some(1), "one step of skew");
        assert_eq!(matching_step(&secret, "287082", 59 + 90), None);
        assert_eq!(matching_step(&secret, "28708", 59), None);
    }
}
