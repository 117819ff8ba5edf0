//! What each S3 operation asks IAM, as AWS documents it: the action, the resource's ARN and the
//! condition keys the request sets. Operations not named here ask for `s3:<Operation>`, which
//! is AWS's name for most bucket-configuration calls; DeleteObjects asks nothing as a whole,
//! since AWS checks `s3:DeleteObject` once per key (the operation does), and a copy's source is
//! checked by the gate.

use s3s::path::S3Path;

use super::access::Query;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Asked {
    pub(super) action: &'static str,
    pub(super) resource: String,
    pub(super) context: Vec<(&'static str, String)>,
}

pub(super) fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

fn resource(path: &S3Path) -> String {
    match path {
        S3Path::Root => "*".to_owned(),
        S3Path::Bucket { bucket } => format!("arn:aws:s3:::{bucket}"),
        S3Path::Object { bucket, key } => object_arn(bucket, key),
    }
}

/// The action `operation` on `path` needs; none for DeleteObjects (asked per key).
pub(super) fn asked(operation: &str, path: &S3Path, query: &Query) -> Option<Asked> {
    let versioned = query.get("versionId").is_some();
    let action: &'static str = match operation {
        "DeleteObjects" => return None,
        "GetObject" | "HeadObject" if versioned => "s3:GetObjectVersion",
        "GetObject" | "HeadObject" => "s3:GetObject",
        "DeleteObject" if versioned => "s3:DeleteObjectVersion",
        "DeleteObject" => "s3:DeleteObject",
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "CreateBucket" => "s3:CreateBucket",
        "DeleteBucket" => "s3:DeleteBucket",
        "GetObjectAttributes" => "s3:GetObjectAttributes",
        // Anything else is refused unless a policy names it: the operations above are the ones
        // the endpoint implements.
        _ => "s3:Unsupported",
    };
    let mut context = Vec::new();
    if matches!(operation, "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "ListMultipartUploads") {
        for (key, parameter) in
            [("s3:prefix", "prefix"), ("s3:delimiter", "delimiter"), ("s3:max-keys", "max-keys")]
        {
            if let Some(value) = query.get(parameter) {
                context.push((key, value.to_owned()));
            }
        }
    }
    if let Some(version) = query.get("versionId") {
        context.push(("s3:VersionId", version.to_owned()));
    }
    Some(Asked { action, resource: resource(path), context })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> S3Path {
        S3Path::Object { bucket: "user-files".into(), key: key.into() }
    }

    #[test]
    fn operations_ask_for_the_actions_aws_names() {
        let none = Query::default();
        let put = asked("UploadPart", &object("a/b"), &none).unwrap();
        assert_eq!(put.action, "s3:PutObject");
        assert_eq!(put.resource, "arn:aws:s3:::user-files/a/b");
        let version = Query::parse(Some("versionId=3"));
        assert_eq!(asked("GetObject", &object("k"), &version).unwrap().action, "s3:GetObjectVersion");
        assert_eq!(asked("ListBuckets", &S3Path::Root, &none).unwrap().resource, "*");
        assert!(asked("DeleteObjects", &S3Path::Bucket { bucket: "user-files".into() }, &none).is_none());
    }

    #[test]
    fn listings_carry_their_prefix_delimiter_and_max_keys() {
        let query = Query::parse(Some("list-type=2&prefix=us-east-1%3Aabc%2F&delimiter=%2F&max-keys=5"));
        let list = asked("ListObjectsV2", &S3Path::Bucket { bucket: "user-files".into() }, &query).unwrap();
        assert_eq!(list.action, "s3:ListBucket");
        assert_eq!(list.resource, "arn:aws:s3:::user-files");
        assert_eq!(
            list.context,
            vec![
                ("s3:prefix", "us-east-1:abc/".to_owned()),
                ("s3:delimiter", "/".into()),
                ("s3:max-keys", "5".into())
            ]
        );
        // No prefix: no `s3:prefix` key, so a policy conditioned on it does not match.
        let bare = asked("ListObjectsV2", &S3Path::Bucket { bucket: "user-files".into() }, &Query::default());
        assert!(bare.unwrap().context.is_empty());
    }
}
