//! Listings and buckets: ListObjectsV2 and ListObjects (prefix, delimiter, continuation,
//! start-after, max-keys, URL encoding), ListBuckets, HeadBucket, GetBucketLocation,
//! CreateBucket.
//!
//! A listing reads the folder that holds the prefix (`a/b/c` reads `a/b/`), keeps the keys that
//! start with it and sorts them, so it costs the objects under that folder, not the bucket; the
//! catalog adds S3's ETags in one query.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt as _;
use object_store::{ObjectMeta, ObjectStore as _};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::{
    Bucket, CommonPrefix, CreateBucketInput, CreateBucketOutput, GetBucketLocationInput,
    GetBucketLocationOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput, ListBucketsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object, Owner,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::transfer::storage;
use super::{Endpoint, etag, internal, timestamp};
use crate::ports::blobs::{EventedStore, parse_key};

const MAX_KEYS: usize = 1000;

/// What `encoding-type=url` leaves alone: RFC 3986's unreserved characters and `/`.
const KEY_ENCODING: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// A page of a listing, before encoding.
#[derive(Debug, Default)]
struct Page {
    contents: Vec<ObjectMeta>,
    common_prefixes: Vec<String>,
    /// The last key or common prefix returned, when more follow.
    next: Option<String>,
}

/// Sorted `entries` (all starting with `prefix`) from after `after`, grouped at `delimiter`.
fn paginate(
    entries: Vec<ObjectMeta>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page {
    let mut page = Page::default();
    let mut last: Option<String> = None;
    let mut count = 0;
    for meta in entries {
        let key = meta.location.as_ref();
        if after.is_some_and(|after| key <= after) {
            continue;
        }
        let group = delimiter.filter(|delimiter| !delimiter.is_empty()).and_then(|delimiter| {
            key[prefix.len()..]
                .find(delimiter)
                .map(|at| key[..prefix.len() + at + delimiter.len()].to_owned())
        });
        if let Some(group) = &group
            && (last.as_ref() == Some(group) || after.is_some_and(|after| group.as_str() <= after))
        {
            continue;
        }
        if count == max {
            page.next = last;
            return page;
        }
        count += 1;
        match group {
            Some(group) => {
                page.common_prefixes.push(group.clone());
                last = Some(group);
            }
            None => {
                last = Some(key.to_owned());
                page.contents.push(meta);
            }
        }
    }
    page
}

fn encoder(encode: bool) -> impl Fn(String) -> String {
    move |text| if encode { utf8_percent_encode(&text, KEY_ENCODING).to_string() } else { text }
}

fn common_prefixes(prefixes: Vec<String>, encode: &impl Fn(String) -> String) -> Vec<CommonPrefix> {
    prefixes.into_iter().map(|prefix| CommonPrefix { prefix: Some(encode(prefix)) }).collect()
}

fn owner() -> Owner {
    Owner { display_name: Some("stratus".into()), id: Some("stratus".into()) }
}

impl Endpoint {
    /// The bucket's objects whose keys start with `prefix`, sorted by key.
    pub(super) async fn keys_under(&self, store: &EventedStore, prefix: &str) -> S3Result<Vec<ObjectMeta>> {
        let folder = match prefix.rsplit_once('/') {
            Some((folder, _)) => match parse_key(folder) {
                Ok(folder) => Some(folder),
                // No object can have a key under an invalid folder.
                Err(_) => return Ok(Vec::new()),
            },
            None => None,
        };
        let listed: Vec<ObjectMeta> = match store.list(folder.as_ref()).try_collect().await {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(error) => return Err(storage(error)),
        };
        let mut listed: Vec<ObjectMeta> =
            listed.into_iter().filter(|meta| meta.location.as_ref().starts_with(prefix)).collect();
        listed.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        Ok(listed)
    }

    /// A page's objects as S3 lists them, with the ETags and sizes the catalog has for them.
    pub(super) fn objects(
        &self,
        bucket: &str,
        prefix: &str,
        contents: Vec<ObjectMeta>,
        encode: &impl Fn(String) -> String,
    ) -> S3Result<Vec<Object>> {
        let rows = self.catalog.objects_under(bucket, prefix)?;
        Ok(contents
            .into_iter()
            .map(|meta| {
                let key = meta.location.as_ref().to_owned();
                let row = rows.get(&key).filter(|row| Some(&row.file_tag) == meta.e_tag.as_ref());
                let (tag, size, modified) = match row {
                    Some(row) => (row.etag.clone(), row.size, row.last_modified),
                    None => (
                        meta.e_tag.clone().unwrap_or_default(),
                        meta.size,
                        meta.last_modified.timestamp_millis(),
                    ),
                };
                Object {
                    key: Some(encode(key)),
                    e_tag: Some(etag(&tag)),
                    size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                    last_modified: Some(timestamp(modified)),
                    storage_class: Some("STANDARD".to_owned().into()),
                    ..Default::default()
                }
            })
            .collect())
    }

    async fn page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: Option<i32>,
    ) -> S3Result<Page> {
        let store = self.store(bucket)?;
        let max = match max_keys {
            None => MAX_KEYS,
            Some(max) => usize::try_from(max)
                .map_err(|_| s3_error!(InvalidArgument, "max-keys must not be negative"))?
                .min(MAX_KEYS),
        };
        let entries = self.keys_under(&store, prefix).await?;
        Ok(paginate(entries, prefix, delimiter, after, max))
    }

    pub(super) async fn list_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = request.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match &input.continuation_token {
            Some(token) => Some(
                URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        s3_error!(InvalidArgument, "The continuation token provided is incorrect")
                    })?,
            ),
            None => input.start_after.clone(),
        };
        let page = self
            .page(&input.bucket, &prefix, input.delimiter.as_deref(), after.as_deref(), input.max_keys)
            .await?;
        let encode_keys = input.encoding_type.as_ref().is_some_and(|encoding| encoding.as_str() == "url");
        let encode = encoder(encode_keys);
        let key_count = page.contents.len() + page.common_prefixes.len();
        let contents = self.objects(&input.bucket, &prefix, page.contents, &encode)?;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(prefix)),
            delimiter: input.delimiter.map(&encode),
            start_after: input.start_after.map(&encode),
            continuation_token: input.continuation_token,
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS as i32)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next.map(|next| URL_SAFE_NO_PAD.encode(next)),
            common_prefixes: Some(common_prefixes(page.common_prefixes, &encode)),
            contents: Some(contents),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_v1(
        &self,
        request: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = request.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .page(&input.bucket, &prefix, input.delimiter.as_deref(), input.marker.as_deref(), input.max_keys)
            .await?;
        let encode_keys = input.encoding_type.as_ref().is_some_and(|encoding| encoding.as_str() == "url");
        let encode = encoder(encode_keys);
        let contents = self.objects(&input.bucket, &prefix, page.contents, &encode)?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(prefix)),
            delimiter: input.delimiter.clone().map(&encode),
            marker: input.marker.map(&encode),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS as i32)),
            is_truncated: Some(page.next.is_some()),
            // S3 sends NextMarker only with a delimiter; clients use the last key otherwise.
            next_marker: page.next.filter(|_| input.delimiter.is_some()).map(&encode),
            common_prefixes: Some(common_prefixes(page.common_prefixes, &encode)),
            contents: Some(contents),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) fn list_buckets(
        &self,
        _request: &S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self.buckets.list().map_err(|error| internal(&error))?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|(name, created)| Bucket {
                        name: Some(name),
                        creation_date: Some(created.into()),
                        bucket_region: Some(self.region.clone()),
                    })
                    .collect(),
            ),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    pub(super) fn head_bucket(
        &self,
        request: &S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store(&request.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) fn bucket_location(
        &self,
        request: &S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store(&request.input.bucket)?;
        // us-east-1 is S3's empty location constraint.
        let location = (self.region != "us-east-1").then(|| self.region.clone().into());
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    pub(super) fn create_bucket(
        &self,
        request: &S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = &request.input.bucket;
        if self
            .buckets
            .existing(name)
            .map_err(|_| s3_error!(InvalidBucketName, "The specified bucket is not valid."))?
            .is_some()
        {
            return Err(S3Error::with_message(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it.",
            ));
        }
        self.buckets.bucket(name).map_err(|error| internal(&error))?;
        tracing::info!(bucket = %name, "bucket created");
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(keys: &[&str]) -> Vec<ObjectMeta> {
        keys.iter()
            .map(|key| ObjectMeta {
                location: object_store::path::Path::from(*key),
                last_modified: Default::default(),
                size: 1,
                e_tag: None,
                version: None,
            })
            .collect()
    }

    fn keys(page: &Page) -> Vec<&str> {
        page.contents.iter().map(|meta| meta.location.as_ref()).collect()
    }

    #[test]
    fn a_delimiter_groups_keys_into_common_prefixes_counted_once() {
        let all = entries(&["a/1", "a/2", "b", "c/x/1", "c/y"]);
        let page = paginate(all, "", Some("/"), None, 1000);
        assert_eq!(keys(&page), ["b"]);
        assert_eq!(page.common_prefixes, ["a/", "c/"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn pages_continue_after_the_last_key_or_prefix_returned() {
        let all = || entries(&["a/1", "a/2", "b", "c/x/1", "c/y"]);
        let first = paginate(all(), "", Some("/"), None, 2);
        assert_eq!(first.common_prefixes, ["a/"]);
        assert_eq!(keys(&first), ["b"]);
        assert_eq!(first.next.as_deref(), Some("b"));
        let second = paginate(all(), "", Some("/"), first.next.as_deref(), 2);
        assert_eq!(second.common_prefixes, ["c/"]);
        assert_eq!(second.next, None);
        // Continuing after a common prefix skips every key under it.
        let after_prefix = paginate(all(), "", Some("/"), Some("a/"), 1000);
        assert_eq!(keys(&after_prefix), ["b"]);
        // The entries of a prefix are those starting with it (`keys_under` keeps only those).
        let flat = paginate(entries(&["c/x/1", "c/y"]), "c/", None, None, 1);
        assert_eq!(keys(&flat), ["c/x/1"]);
        assert_eq!(flat.next.as_deref(), Some("c/x/1"));
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        assert_eq!(encoder(true)("a b/ü+c~.txt".into()), "a%20b/%C3%BC%2Bc~.txt");
        assert_eq!(encoder(false)("a b".into()), "a b");
    }
}
