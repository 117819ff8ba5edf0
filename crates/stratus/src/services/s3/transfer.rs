//! Moving bytes: a request body onto disk in pieces (never more than one piece in memory, so a
//! 5 GiB upload costs a megabyte), and a stored object back out as a response body.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use object_store::{GetResult, MultipartUpload, PutPayload};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::checksums::{Digests, Expected, Verified};
use crate::ports::blobs::Staged;

/// What is gathered before each write: one blocking call per megabyte, not per network read.
const PIECE_BYTES: usize = 1024 * 1024;

/// Where received bytes go.
pub(super) trait Sink: Send {
    fn write(&mut self, piece: Bytes) -> impl Future<Output = object_store::Result<()>> + Send;

    /// Discards what was written.
    fn abort(&mut self) -> impl Future<Output = object_store::Result<()>> + Send;
}

impl Sink for Staged {
    fn write(&mut self, piece: Bytes) -> impl Future<Output = object_store::Result<()>> + Send {
        Staged::write(self, piece)
    }

    fn abort(&mut self) -> impl Future<Output = object_store::Result<()>> + Send {
        Staged::abort(self)
    }
}

/// A part of a multipart upload being written to its own file.
pub(super) struct PartFile(pub(super) Box<dyn MultipartUpload>);

impl Sink for PartFile {
    fn write(&mut self, piece: Bytes) -> impl Future<Output = object_store::Result<()>> + Send {
        self.0.put_part(PutPayload::from_bytes(piece))
    }

    fn abort(&mut self) -> impl Future<Output = object_store::Result<()>> + Send {
        self.0.abort()
    }
}

/// Receives `body` into `sink` and checks it against `expected` (with the aws-chunked
/// trailers, read once the body has been); more than `limit` bytes is `EntityTooLarge`. A
/// refused body leaves nothing: what the sink holds is discarded.
pub(super) async fn receive(
    body: Option<StreamingBlob>,
    limit: u64,
    expected: &Expected,
    trailers: Option<&s3s::TrailingHeaders>,
    sink: &mut impl Sink,
) -> S3Result<(u64, Verified)> {
    let mut digests = Digests::new(expected);
    let checked = match pour(body, limit, &mut digests, sink).await {
        Ok(size) => {
            let trailers = trailers.and_then(s3s::TrailingHeaders::take);
            digests.verify(expected, trailers.as_ref()).map(|verified| (size, verified))
        }
        Err(error) => Err(error),
    };
    if checked.is_err()
        && let Err(error) = sink.abort().await
    {
        tracing::warn!(error = %error, "cannot discard a refused upload");
    }
    checked
}

/// Writes `body` into `sink` a piece at a time, hashing it; returns the size.
async fn pour(
    body: Option<StreamingBlob>,
    limit: u64,
    digests: &mut Digests,
    sink: &mut impl Sink,
) -> S3Result<u64> {
    let Some(mut body) = body else { return Ok(0) };
    let mut size = 0u64;
    let mut piece = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| body_error(error.as_ref()))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooLarge,
                format!("Your proposed upload exceeds the maximum allowed size of {limit} bytes."),
            ));
        }
        digests.update(&chunk);
        piece.extend_from_slice(&chunk);
        if piece.len() >= PIECE_BYTES {
            sink.write(piece.split().freeze()).await.map_err(storage)?;
        }
    }
    if !piece.is_empty() {
        sink.write(piece.freeze()).await.map_err(storage)?;
    }
    Ok(size)
}

/// A failure reading the request body, as S3 names it. s3s's body errors (a chunk signature
/// that does not match, a payload whose SHA-256 differs from `x-amz-content-sha256`) are of
/// types it does not export, so they are told apart by their names.
fn body_error(error: &(dyn std::error::Error + 'static)) -> S3Error {
    let text = error.to_string();
    if text.contains("SignatureMismatch") {
        return s3_error!(SignatureDoesNotMatch, "The chunk signature does not match.");
    }
    if text.contains("Sha256Mismatch") {
        // s3s has no code of this name; S3 answers it with 400.
        let mut error = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        error.set_status_code(axum::http::StatusCode::BAD_REQUEST);
        return error;
    }
    if text.contains("FormatError") || text.contains("TooLarge") || text.contains("TooMany") {
        return S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!("malformed aws-chunked body: {text}"),
        );
    }
    S3Error::with_message(S3ErrorCode::IncompleteBody, "The request body ended before its declared length.")
}

#[expect(clippy::needless_pass_by_value, reason = "the shape `map_err` takes")]
pub(super) fn storage(error: object_store::Error) -> S3Error {
    tracing::error!(error = %crate::infra::telemetry::error_chain(&error), "S3 storage failure");
    S3Error::with_message(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
}

/// A stored object's bytes (the range asked for) as a response body.
pub(super) fn send(result: GetResult) -> StreamingBlob {
    StreamingBlob::wrap(sync_wrapper::SyncStream::new(crate::ports::blobs::read_stream(result)))
}
