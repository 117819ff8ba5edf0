//! Verification of AWS Signature Version 4 on incoming requests, so that real AWS SDKs and CLIs
//! can call Stratus's AWS-compatible endpoints with ordinary credentials. (The AWS SDK's signer
//! only signs; verification on the server side is ours to write.)

use std::time::{Duration, SystemTime};

use ring::hmac;
use sha2::{Digest, Sha256};

/// How far a request's `X-Amz-Date` may be from the server's clock (AWS allows 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Request is missing Authentication Token")]
    Missing,
    #[error("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'")]
    Malformed,
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error("Signature expired or not yet valid: the request time is too far from the server time")]
    Skewed,
    #[error("The request signature we calculated does not match the signature you provided.")]
    Mismatch,
}

/// The parts of a request that its signature covers.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as sent (already percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    /// Header names and values as received.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    /// The signed parts of an HTTP request: its method, path and query as sent, the headers
    /// that are text (a signature can only cover those) and the body.
    pub fn of(
        method: &'a axum::http::Method,
        uri: &'a axum::http::Uri,
        headers: &axum::http::HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Self {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or_default(),
            headers: headers
                .iter()
                .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
                .collect(),
            body,
        }
    }
}

/// Parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(header: &str) -> Result<Authorization, SignatureError> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ").ok_or(SignatureError::Malformed)?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(SignatureError::Malformed);
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(SignatureError::Malformed);
    };
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

/// Verifies a header-signed request with `secret`, the secret of `expected_access_key_id`.
pub fn verify(
    request: &SignedRequest<'_>,
    expected_access_key_id: &str,
    secret: &str,
    now: SystemTime,
) -> Result<(), SignatureError> {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let authorization = parse_authorization(header("authorization").ok_or(SignatureError::Missing)?)?;
    if authorization.access_key_id != expected_access_key_id {
        return Err(SignatureError::UnknownAccessKey);
    }
    let amz_date = header("x-amz-date").ok_or(SignatureError::Malformed)?;
    let signed_at = parse_amz_date(amz_date).ok_or(SignatureError::Malformed)?;
    let skew = now.duration_since(signed_at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(SignatureError::Skewed);
    }
    if !amz_date.starts_with(&authorization.date)
        || !authorization.signed_headers.iter().any(|name| name == "host")
    {
        return Err(SignatureError::Malformed);
    }
    let string_to_sign = string_to_sign(request, &authorization, amz_date);
    let provided = hex::decode(&authorization.signature).map_err(|_| SignatureError::Mismatch)?;
    // Constant-time comparison of the expected and provided signatures.
    hmac::verify(&signing_key(secret, &authorization), string_to_sign.as_bytes(), &provided)
        .map_err(|_| SignatureError::Mismatch)
}

fn string_to_sign(request: &SignedRequest<'_>, authorization: &Authorization, amz_date: &str) -> String {
    let canonical_headers: String = authorization
        .signed_headers
        .iter()
        .map(|name| {
            let value = request
                .headers
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(",");
            format!("{name}:{value}\n")
        })
        .collect();
    let declared = request
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("x-amz-content-sha256"))
        .map(|(_, value)| value.as_str());
    let payload_hash = match declared {
        Some("UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
        _ => hex::encode(Sha256::digest(request.body)),
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.path),
        canonical_query(request.query),
        canonical_headers,
        authorization.signed_headers.join(";"),
        payload_hash
    );
    let scope =
        format!("{}/{}/{}/aws4_request", authorization.date, authorization.region, authorization.service);
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The `Authorization` header for a request whose headers (including `host` and `x-amz-date`)
/// are all signed. For Stratus's own tools and tests; AWS SDKs sign for themselves.
pub fn authorization_header(
    request: &SignedRequest<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
) -> Option<String> {
    let amz_date = request.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case("x-amz-date"))?.1.clone();
    let mut signed_headers: Vec<String> =
        request.headers.iter().map(|(key, _)| key.to_ascii_lowercase()).collect();
    signed_headers.sort();
    signed_headers.dedup();
    let authorization = Authorization {
        access_key_id: access_key_id.to_owned(),
        date: amz_date.get(..8)?.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: String::new(),
    };
    let string_to_sign = string_to_sign(request, &authorization, &amz_date);
    let signature = hmac::sign(&signing_key(secret, &authorization), string_to_sign.as_bytes());
    Some(format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={}",
        authorization.date,
        authorization.signed_headers.join(";"),
        hex::encode(signature.as_ref())
    ))
}

/// `X-Amz-Date` for a time: `20261128T153000Z`.
pub fn amz_date(time: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.replace(['-', ':'], "")
}

/// The key derived for the credential scope: date → region → service → `aws4_request`.
fn signing_key(secret: &str, authorization: &Authorization) -> hmac::Key {
    let sign = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let date = sign(format!("AWS4{secret}").as_bytes(), &authorization.date);
    let region = sign(date.as_ref(), &authorization.region);
    let service = sign(region.as_ref(), &authorization.service);
    let signing = sign(service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, signing.as_ref())
}

/// Characters SigV4 leaves as they are in the canonical URI.
const PATH_KEEP: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// The path as sent, URI-encoded once more: every service but S3 signs the path encoded twice
/// (`/a%20b` is signed as `/a%2520b`).
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    percent_encoding::utf8_percent_encode(path, PATH_KEEP).to_string()
}

/// Query parameters sorted by name then value, each already in its sent (encoded) form.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    pairs.sort_unstable();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

/// `20261128T153000Z` → a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    if text.len() != 16 || text.as_bytes()[8] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let iso = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?
    );
    humantime::parse_rfc3339(&iso).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example ("get-vanilla" of the SigV4 test suite), secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`.
    #[test]
    fn the_aws_test_suite_example_verifies() {
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: vec![
                ("Host".into(), "example.amazonaws.com".into()),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
                (
                    "Authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders=host;x-amz-date, \
                     Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                        .into(),
                ),
            ],
            body: b"",
        };
        let at = parse_amz_date("20150830T123600Z").unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(verify(&request, "AKIDEXAMPLE", secret, at), Ok(()));
        assert_eq!(verify(&request, "AKIDEXAMPLE", "wrong secret", at), Err(SignatureError::Mismatch));
        assert_eq!(verify(&request, "OTHER", secret, at), Err(SignatureError::UnknownAccessKey));
        assert_eq!(
            verify(&request, "AKIDEXAMPLE", secret, at + Duration::from_secs(3600)),
            Err(SignatureError::Skewed)
        );
    }
}
