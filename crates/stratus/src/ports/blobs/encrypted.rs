//! Encryption at rest for a bucket (S3's SSE-S3): every object is AES-256-GCM in 64 KiB
//! segments under a key derived for it alone (HKDF-SHA-256 of the stage key and a random salt
//! kept in the object's header), so the bytes on disk are never the plaintext and any change to
//! them — a flipped bit, a swapped, dropped or appended segment — fails the read instead of
//! returning wrong data. Readers through the port see plaintext: sizes, ranges and listings are
//! the plaintext's; a range read decrypts only the segments it covers.
//!
//! File format: `STRATUS-SSE1` (12 bytes), salt (32 bytes), then segments of up to 64 KiB of
//! plaintext plus a 16-byte tag. The nonce is the segment's number and whether it is the last:
//! there is always a last segment (empty for an empty object), so truncation is detected.

use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart,
};
use rand::RngCore as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};

const MAGIC: &[u8; 12] = b"STRATUS-SSE1";
const SALT_BYTES: usize = 32;
const HEADER_BYTES: u64 = (MAGIC.len() + SALT_BYTES) as u64;
const SEGMENT: u64 = 64 * 1024;
const TAG: u64 = 16;
const SEALED: u64 = SEGMENT + TAG;
const STORE: &str = "encrypted";
const INFO: &[u8] = b"stratus sse-s3 v1 object key";

fn failure(message: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: message.into().into() }
}

/// The stage's master key: 32 random bytes in a file readable by the owner only, created on
/// first use. Losing it loses every encrypted object.
#[derive(Clone)]
pub struct StageKey(Arc<[u8; 32]>);

impl fmt::Debug for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StageKey(..)")
    }
}

impl StageKey {
    pub fn open(path: &FsPath) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a 32-byte key", path.display()),
                    )
                })?;
                return Ok(Self(Arc::new(key)));
            }
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            Err(_) => {}
        }
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        crate::infra::files::write_private(path, &key)?;
        tracing::info!(path = %path.display(), "encryption key for buckets at rest created");
        Ok(Self(Arc::new(key)))
    }

    fn object_key(&self, salt: &[u8]) -> LessSafeKey {
        struct KeyLength;
        impl ring::hkdf::KeyType for KeyLength {
            fn len(&self) -> usize {
                AES_256_GCM.key_len()
            }
        }
        let mut bytes = [0u8; 32];
        // Fixed lengths on both sides: neither step can fail.
        if let Ok(okm) = Salt::new(HKDF_SHA256, salt).extract(self.0.as_slice()).expand(&[INFO], KeyLength) {
            let _ = okm.fill(&mut bytes);
        }
        #[allow(clippy::expect_used)]
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte AES-256 key"))
    }
}

fn nonce(segment: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[3..11].copy_from_slice(&segment.to_be_bytes());
    bytes[11] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

fn seal(key: &LessSafeKey, segment: u64, last: bool, plaintext: &[u8], out: &mut BytesMut) {
    let mut sealed = plaintext.to_vec();
    // AES-GCM sealing only fails for inputs beyond 64 GiB; segments are 64 KiB.
    if key.seal_in_place_append_tag(nonce(segment, last), Aad::empty(), &mut sealed).is_ok() {
        out.extend_from_slice(&sealed);
    }
}

/// Seals a whole plaintext as the segments of one object.
fn seal_whole(key: &LessSafeKey, plaintext: &[u8], out: &mut BytesMut) {
    let count = (plaintext.len() as u64).div_ceil(SEGMENT).max(1);
    for index in 0..count {
        let start = (index * SEGMENT) as usize;
        let chunk = &plaintext[start..plaintext.len().min(start + SEGMENT as usize)];
        seal(key, index, index + 1 == count, chunk, out);
    }
}

fn open(key: &LessSafeKey, segment: u64, last: bool, sealed: &[u8]) -> object_store::Result<Bytes> {
    let mut buffer = sealed.to_vec();
    let plain = key
        .open_in_place(nonce(segment, last), Aad::empty(), &mut buffer)
        .map_err(|_| failure(format!("segment {segment} of an encrypted object fails authentication")))?;
    Ok(Bytes::copy_from_slice(plain))
}

/// Segments of a stored object of `stored` bytes (at least one).
fn segments(stored: u64) -> u64 {
    stored.saturating_sub(HEADER_BYTES).div_ceil(SEALED).max(1)
}

/// The plaintext size of a stored object of `stored` bytes.
fn plain_size(stored: u64) -> u64 {
    stored.saturating_sub(HEADER_BYTES).saturating_sub(segments(stored) * TAG)
}

fn plain_meta(mut meta: ObjectMeta) -> ObjectMeta {
    meta.size = plain_size(meta.size);
    meta
}

/// A store whose objects are encrypted at rest under `key`.
#[derive(Debug)]
pub struct Encrypted<S> {
    inner: S,
    key: StageKey,
}

impl<S: fmt::Display> fmt::Display for Encrypted<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encrypted({})", self.inner)
    }
}

impl<S: ObjectStore> Encrypted<S> {
    pub fn new(inner: S, key: StageKey) -> Self {
        Self { inner, key }
    }

    /// A new object's header and key.
    fn begin(&self) -> (BytesMut, LessSafeKey) {
        let mut salt = [0u8; SALT_BYTES];
        rand::thread_rng().fill_bytes(&mut salt);
        let mut header = BytesMut::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&salt);
        (header, self.key.object_key(&salt))
    }

    async fn object_key(&self, location: &Path, e_tag: Option<String>) -> object_store::Result<LessSafeKey> {
        let options = GetOptions {
            if_match: e_tag,
            range: Some(GetRange::Bounded(0..HEADER_BYTES)),
            ..Default::default()
        };
        let header = self.inner.get_opts(location, options).await?.bytes().await?;
        if header.len() as u64 != HEADER_BYTES || &header[..MAGIC.len()] != MAGIC {
            return Err(failure(format!("{location} is not an encrypted object")));
        }
        Ok(self.key.object_key(&header[MAGIC.len()..]))
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Encrypted<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let (mut out, key) = self.begin();
        let plaintext: Vec<u8> = payload.iter().flat_map(|piece| piece.iter().copied()).collect();
        seal_whole(&key, &plaintext, &mut out);
        self.inner.put_opts(location, PutPayload::from_bytes(out.freeze()), opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let (header, key) = self.begin();
        Ok(Box::new(EncryptingUpload { inner, key, pending: header, plain: BytesMut::new(), segment: 0 }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let stored = self.inner.head(location).await?;
        let stored_size = stored.size;
        let meta = plain_meta(stored.clone());
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(range) => range.as_range(meta.size).map_err(|error| failure(error.to_string()))?,
            None => 0..meta.size,
        };
        let empty = || GetResult {
            payload: GetResultPayload::Stream(stream::empty().boxed()),
            meta: meta.clone(),
            range: range.clone(),
            attributes: Default::default(),
            extensions: Default::default(),
        };
        if options.head {
            return Ok(empty());
        }
        let key = self.object_key(location, stored.e_tag.clone()).await?;
        let total = segments(stored_size);
        let first = range.start / SEGMENT;
        let last = if range.is_empty() { first } else { (range.end - 1) / SEGMENT };
        let sealed = HEADER_BYTES + first * SEALED..(HEADER_BYTES + (last + 1) * SEALED).min(stored_size);
        let inner = super::read_stream(
            self.inner
                .get_opts(
                    location,
                    GetOptions {
                        if_match: stored.e_tag,
                        range: Some(GetRange::Bounded(sealed)),
                        ..Default::default()
                    },
                )
                .await?,
        );
        let decrypting = Decrypting {
            inner,
            key,
            buffer: BytesMut::new(),
            segment: first,
            total,
            skip: range.start - first * SEGMENT,
            left: range.end - range.start,
        };
        Ok(GetResult { payload: GetResultPayload::Stream(decrypting.into_stream()), ..empty() })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let mut read = Vec::with_capacity(ranges.len());
        for range in ranges {
            read.push(self.get_range(location, range.clone()).await?);
        }
        Ok(read)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix).map_ok(plain_meta).boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset).map_ok(plain_meta).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects = listed.objects.into_iter().map(plain_meta).collect();
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        // The salt travels with the object, so its copy decrypts under the same stage key.
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// Decrypts the sealed segments of a range as they arrive, keeping what the range covers.
struct Decrypting {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    key: LessSafeKey,
    buffer: BytesMut,
    segment: u64,
    total: u64,
    skip: u64,
    left: u64,
}

impl Decrypting {
    fn into_stream(self) -> BoxStream<'static, object_store::Result<Bytes>> {
        stream::try_unfold((self, false), |(mut state, finished)| async move {
            if finished {
                return Ok(None);
            }
            loop {
                while (state.buffer.len() as u64) < SEALED {
                    match state.inner.next().await {
                        Some(piece) => state.buffer.extend_from_slice(&piece?),
                        None => break,
                    }
                }
                if state.buffer.is_empty() {
                    return Err(failure("an encrypted object ends before its last segment"));
                }
                let take = (state.buffer.len() as u64).min(SEALED) as usize;
                let sealed = state.buffer.split_to(take);
                let last = state.segment + 1 == state.total;
                let plain = open(&state.key, state.segment, last, &sealed)?;
                state.segment += 1;
                let from = state.skip.min(plain.len() as u64);
                state.skip = 0;
                let to = (from + state.left).min(plain.len() as u64);
                state.left -= to - from;
                let done = state.left == 0;
                if to > from {
                    let piece = plain.slice(from as usize..to as usize);
                    return Ok(Some((piece, (state, done))));
                }
                if done {
                    return Ok(None);
                }
            }
        })
        .boxed()
    }
}

/// A multipart write that seals each full segment as it fills, and the rest as the last.
struct EncryptingUpload {
    inner: Box<dyn MultipartUpload>,
    key: LessSafeKey,
    /// Sealed bytes (and the header) not yet handed to the inner upload.
    pending: BytesMut,
    /// Plaintext not yet sealed: up to a segment, kept until it is known whether it is the last.
    plain: BytesMut,
    segment: u64,
}

impl fmt::Debug for EncryptingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingUpload").field("segment", &self.segment).finish_non_exhaustive()
    }
}

#[async_trait]
impl MultipartUpload for EncryptingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        for piece in data.iter() {
            self.plain.extend_from_slice(piece);
        }
        while self.plain.len() as u64 > SEGMENT {
            let segment = self.plain.split_to(SEGMENT as usize);
            seal(&self.key, self.segment, false, &segment, &mut self.pending);
            self.segment += 1;
        }
        if self.pending.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        self.inner.put_part(PutPayload::from_bytes(self.pending.split().freeze()))
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let rest = self.plain.split();
        seal(&self.key, self.segment, true, &rest, &mut self.pending);
        self.segment += 1;
        self.inner.put_part(PutPayload::from_bytes(self.pending.split().freeze())).await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// Encrypts, in place, every file under `dir` written before its bucket was encrypted (files
/// without the header); staging files of uploads in progress are left alone. Returns how many.
pub(super) fn encrypt_plaintext_files(dir: &FsPath, key: &StageKey) -> std::io::Result<usize> {
    use std::io::{Read as _, Write as _};
    let mut encrypted = 0;
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                folders.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name
                .rsplit_once('#')
                .is_some_and(|(_, suffix)| suffix.bytes().all(|byte| byte.is_ascii_digit()))
            {
                continue;
            }
            let mut file = std::fs::File::open(&path)?;
            let mut start = [0u8; MAGIC.len()];
            let read = file.read(&mut start)?;
            if read == MAGIC.len() && &start == MAGIC {
                continue;
            }
            let mut plaintext = start[..read].to_vec();
            file.read_to_end(&mut plaintext)?;
            let mut salt = [0u8; SALT_BYTES];
            rand::thread_rng().fill_bytes(&mut salt);
            let object_key = key.object_key(&salt);
            let mut sealed = BytesMut::new();
            sealed.extend_from_slice(MAGIC);
            sealed.extend_from_slice(&salt);
            seal_whole(&object_key, &plaintext, &mut sealed);
            let temporary = path.with_file_name(format!("{name}.encrypting"));
            let mut out = std::fs::File::create(&temporary)?;
            out.write_all(&sealed)?;
            out.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            encrypted += 1;
        }
    }
    Ok(encrypted)
}

/// Where the stage key of `stage_dir` lives.
pub fn stage_key_path(stage_dir: &FsPath) -> PathBuf {
    stage_dir.join("sse-s3.key")
}

#[cfg(test)]
mod tests {
    use object_store::local::LocalFileSystem;

    use super::*;

    fn store(dir: &FsPath) -> Encrypted<LocalFileSystem> {
        let key = StageKey::open(&dir.join("key")).unwrap();
        std::fs::create_dir_all(dir.join("bucket")).unwrap();
        Encrypted::new(LocalFileSystem::new_with_prefix(dir.join("bucket")).unwrap(), key)
    }

    fn sample(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn objects_read_back_whole_and_by_range_in_plaintext() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = store(dir.path());
        for length in [0, 1, SEGMENT as usize, SEGMENT as usize + 1, 3 * SEGMENT as usize + 999] {
            let data = sample(length);
            let path = Path::from(format!("whole/{length}"));
            store.put(&path, PutPayload::from(data.clone())).await.unwrap();
            assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), data, "length {length}");
            assert_eq!(store.head(&path).await.unwrap().size, length as u64);
            // Written in odd pieces through a multipart upload: the same bytes.
            let streamed = Path::from(format!("streamed/{length}"));
            let mut upload = store.put_multipart(&streamed).await.unwrap();
            for piece in data.chunks(40_000) {
                upload.put_part(PutPayload::from(piece.to_vec())).await.unwrap();
            }
            upload.complete().await.unwrap();
            assert_eq!(store.get(&streamed).await.unwrap().bytes().await.unwrap(), data, "streamed {length}");
        }
        let data = sample(3 * SEGMENT as usize + 999);
        let path = Path::from(format!("whole/{}", data.len()));
        let end = data.len() as u64;
        for range in [0..1, 5..70_000, SEGMENT - 1..SEGMENT + 1, 2 * SEGMENT..3 * SEGMENT, end - 10..end] {
            let read = store.get_range(&path, range.clone()).await.unwrap();
            assert_eq!(read.as_ref(), &data[range.start as usize..range.end as usize], "{range:?}");
        }
        let sizes: Vec<u64> = store
            .list(Some(&Path::from("whole")))
            .map_ok(|meta| meta.size)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        assert_eq!(sizes.iter().sum::<u64>(), [0, 1, SEGMENT, SEGMENT + 1, end].iter().sum::<u64>());
    }

    #[tokio::test]
    async fn the_bytes_on_disk_are_never_the_plaintext_and_tampering_fails_the_read() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = store(dir.path());
        let secret = b"the quick brown fox jumps over the lazy dog ".repeat(5000);
        let path = Path::from("secret.txt");
        store.put(&path, PutPayload::from(secret.clone())).await.unwrap();
        let file = dir.path().join("bucket/secret.txt");
        let on_disk = std::fs::read(&file).unwrap();
        assert!(!on_disk.windows(16).any(|window| window == &secret[..16]), "plaintext found on disk");

        let mut flipped = on_disk.clone();
        flipped[HEADER_BYTES as usize + 70_000] ^= 1;
        std::fs::write(&file, &flipped).unwrap();
        assert!(store.get(&path).await.unwrap().bytes().await.is_err(), "a flipped bit must fail the read");
        // Dropping the last segment leaves a shorter object that must not read as complete.
        std::fs::write(&file, &on_disk[..(HEADER_BYTES + 2 * SEALED) as usize]).unwrap();
        assert!(
            store.get(&path).await.unwrap().bytes().await.is_err(),
            "a truncated object must fail the read"
        );
        std::fs::write(&file, &on_disk).unwrap();
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), secret);
    }

    #[tokio::test]
    async fn objects_written_before_the_bucket_was_encrypted_are_encrypted_in_place() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket/old")).unwrap();
        std::fs::write(dir.path().join("bucket/old/plain.txt"), b"written in the clear").unwrap();
        let store = store(dir.path());
        assert_eq!(encrypt_plaintext_files(&dir.path().join("bucket"), &store.key).unwrap(), 1);
        assert_eq!(encrypt_plaintext_files(&dir.path().join("bucket"), &store.key).unwrap(), 0, "idempotent");
        let on_disk = std::fs::read(dir.path().join("bucket/old/plain.txt")).unwrap();
        assert!(on_disk.starts_with(MAGIC));
        let read = store.get(&Path::from("old/plain.txt")).await.unwrap().bytes().await.unwrap();
        assert_eq!(read.as_ref(), b"written in the clear");
    }
}
