//! Checking what a client sent against what it said it sent: `Content-MD5`, and one of S3's
//! checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256) given as a header, a presigned query
//! parameter or an aws-chunked trailer. s3s verifies signatures, not these; a mismatch is
//! `BadDigest` and the write is discarded. The MD5 is computed for every write: it is the ETag.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub(super) const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub(super) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|algorithm| algorithm.name().eq_ignore_ascii_case(name))
    }

    /// `x-amz-checksum-crc32`, …: the header (and trailer) that carries it.
    pub(super) fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub(super) fn hasher(self) -> Hasher {
        match self {
            Self::Crc32 => Hasher::Crc32(Crc32::new()),
            Self::Crc32c => Hasher::Crc32c(Crc32c::new()),
            Self::Crc64Nvme => Hasher::Crc64Nvme(Crc64Nvme::new()),
            Self::Sha1 => Hasher::Sha1(Sha1::new()),
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }
}

pub(super) enum Hasher {
    Crc32(Crc32),
    Crc32c(Crc32c),
    Crc64Nvme(Crc64Nvme),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    pub(super) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(hasher) => hasher.update(data),
            Self::Crc32c(hasher) => hasher.update(data),
            Self::Crc64Nvme(hasher) => hasher.update(data),
            Self::Sha1(hasher) => hasher.update(data),
            Self::Sha256(hasher) => hasher.update(data),
        }
    }

    /// The digest, base64-encoded as S3 sends it.
    pub(super) fn finish(self) -> String {
        match self {
            Self::Crc32(hasher) => STANDARD.encode(hasher.finalize()),
            Self::Crc32c(hasher) => STANDARD.encode(hasher.finalize()),
            Self::Crc64Nvme(hasher) => STANDARD.encode(hasher.finalize()),
            Self::Sha1(hasher) => STANDARD.encode(hasher.finalize()),
            Self::Sha256(hasher) => STANDARD.encode(hasher.finalize()),
        }
    }
}

/// Where a write's checksum comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claimed {
    /// No checksum: only the MD5 is computed.
    Nothing,
    /// Computed and kept, nothing to compare with (`x-amz-sdk-checksum-algorithm` alone).
    Compute(Algorithm),
    /// Compared with this value.
    Value(Algorithm, String),
    /// Compared with the aws-chunked trailer of that name, once the body has been read.
    Trailer(Algorithm),
}

/// What a write's body must match.
#[derive(Debug, Clone)]
pub(super) struct Expected {
    pub(super) content_md5: Option<String>,
    pub(super) checksum: Claimed,
}

impl Expected {
    /// From the request: the checksum headers (a presigned URL carries them as query
    /// parameters), `x-amz-trailer`, and the algorithm the SDK named.
    pub(super) fn from_request(
        headers: &axum::http::HeaderMap,
        query: Option<&str>,
        content_md5: Option<String>,
    ) -> S3Result<Self> {
        let query = super::access::Query::parse(query);
        let text =
            |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).or_else(|| query.get(name));
        let given: Vec<(Algorithm, &str)> = Algorithm::ALL
            .into_iter()
            .filter_map(|algorithm| text(algorithm.header()).map(|value| (algorithm, value)))
            .collect();
        let checksum = match given.as_slice() {
            [] => match text("x-amz-trailer").and_then(|trailer| {
                Algorithm::ALL
                    .into_iter()
                    .find(|algorithm| algorithm.header().eq_ignore_ascii_case(trailer.trim()))
            }) {
                Some(algorithm) => Claimed::Trailer(algorithm),
                None => {
                    match text("x-amz-sdk-checksum-algorithm").or_else(|| text("x-amz-checksum-algorithm")) {
                        Some(name) => Claimed::Compute(Algorithm::parse(name).ok_or_else(|| {
                            S3Error::with_message(
                                S3ErrorCode::InvalidArgument,
                                format!("unknown checksum algorithm `{name}`"),
                            )
                        })?),
                        None => Claimed::Nothing,
                    }
                }
            },
            [(algorithm, value)] => Claimed::Value(*algorithm, (*value).to_owned()),
            _ => return Err(s3_error!(InvalidRequest, "Expecting a single x-amz-checksum- header")),
        };
        if let Some(md5) = &content_md5
            && STANDARD.decode(md5).map_or(true, |digest| digest.len() != 16)
        {
            return Err(s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."));
        }
        Ok(Self { content_md5, checksum })
    }

    pub(super) fn algorithm(&self) -> Option<Algorithm> {
        match &self.checksum {
            Claimed::Nothing => None,
            Claimed::Compute(algorithm) | Claimed::Value(algorithm, _) | Claimed::Trailer(algorithm) => {
                Some(*algorithm)
            }
        }
    }
}

/// The digests of a body being received.
pub(super) struct Digests {
    md5: Md5,
    checksum: Option<(Algorithm, Hasher)>,
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digests")
            .field("checksum", &self.checksum.as_ref().map(|(algorithm, _)| algorithm))
            .finish()
    }
}

/// A body's digests, once it matched what was claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verified {
    pub(super) md5: [u8; 16],
    pub(super) checksum: Option<(Algorithm, String)>,
}

impl Verified {
    pub(super) fn etag(&self) -> String {
        hex::encode(self.md5)
    }
}

impl Digests {
    pub(super) fn new(expected: &Expected) -> Self {
        Self {
            md5: Md5::new(),
            checksum: expected.algorithm().map(|algorithm| (algorithm, algorithm.hasher())),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some((_, hasher)) = &mut self.checksum {
            hasher.update(data);
        }
    }

    /// Compares with what was claimed; `trailers` are the aws-chunked trailers, if any.
    pub(super) fn verify(
        self,
        expected: &Expected,
        trailers: Option<&axum::http::HeaderMap>,
    ) -> S3Result<Verified> {
        let md5: [u8; 16] = self.md5.finalize();
        if let Some(claimed) = &expected.content_md5
            && STANDARD.decode(claimed).ok().as_deref() != Some(md5.as_slice())
        {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            ));
        }
        let checksum = self.checksum.map(|(algorithm, hasher)| (algorithm, hasher.finish()));
        let claimed = match &expected.checksum {
            Claimed::Nothing | Claimed::Compute(_) => None,
            Claimed::Value(algorithm, value) => Some((*algorithm, value.clone())),
            Claimed::Trailer(algorithm) => {
                let value = trailers
                    .and_then(|trailers| trailers.get(algorithm.header()))
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| {
                        S3Error::with_message(
                            S3ErrorCode::InvalidRequest,
                            format!(
                                "the trailer {} announced by x-amz-trailer is missing",
                                algorithm.header()
                            ),
                        )
                    })?;
                Some((*algorithm, value.to_owned()))
            }
        };
        if let (Some((algorithm, claimed)), Some((_, computed))) = (&claimed, &checksum)
            && claimed.trim() != computed
        {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!("The {} you specified did not match the calculated checksum.", algorithm.name()),
            ));
        }
        Ok(Verified { md5, checksum })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(
        body: &[u8],
        expected: &Expected,
        trailers: Option<&axum::http::HeaderMap>,
    ) -> S3Result<Verified> {
        let mut digests = Digests::new(expected);
        digests.update(&body[..3]);
        digests.update(&body[3..]);
        digests.verify(expected, trailers)
    }

    #[test]
    fn the_md5_is_the_etag_and_content_md5_is_checked() {
        let nothing = Expected { content_md5: None, checksum: Claimed::Nothing };
        assert_eq!(
            verify(b"hello world", &nothing, None).unwrap().etag(),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
        let right =
            Expected { content_md5: Some("XrY7u+Ae7tCTyyK7j1rNww==".into()), checksum: Claimed::Nothing };
        assert!(verify(b"hello world", &right, None).is_ok());
        let wrong =
            Expected { content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()), checksum: Claimed::Nothing };
        assert_eq!(verify(b"hello world", &wrong, None).unwrap_err().code(), &S3ErrorCode::BadDigest);
    }

    #[test]
    fn checksums_are_compared_from_a_header_or_a_trailer() {
        // CRC32 of "hello world" is 0x0d4a1185.
        let header =
            Expected { content_md5: None, checksum: Claimed::Value(Algorithm::Crc32, "DUoRhQ==".into()) };
        let verified = verify(b"hello world", &header, None).unwrap();
        assert_eq!(verified.checksum, Some((Algorithm::Crc32, "DUoRhQ==".into())));
        let tampered =
            Expected { content_md5: None, checksum: Claimed::Value(Algorithm::Crc32, "DUoRhA==".into()) };
        assert_eq!(verify(b"hello world", &tampered, None).unwrap_err().code(), &S3ErrorCode::BadDigest);

        let trailer = Expected { content_md5: None, checksum: Claimed::Trailer(Algorithm::Crc32) };
        let mut trailers = axum::http::HeaderMap::new();
        trailers.insert("x-amz-checksum-crc32", "DUoRhQ==".parse().unwrap());
        assert!(verify(b"hello world", &trailer, Some(&trailers)).is_ok());
        assert_eq!(verify(b"hello world", &trailer, None).unwrap_err().code(), &S3ErrorCode::InvalidRequest);
        trailers.insert("x-amz-checksum-crc32", "AAAAAA==".parse().unwrap());
        assert_eq!(
            verify(b"hello world", &trailer, Some(&trailers)).unwrap_err().code(),
            &S3ErrorCode::BadDigest
        );
    }
}
