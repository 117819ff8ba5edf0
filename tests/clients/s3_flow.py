"""The S3-compatible endpoint driven by boto3 over HTTPS (`serve --tls`, its local CA trusted)
with a user's temporary credentials from the identity pool — so boto3 sends what it sends to
AWS: aws-chunked bodies with CRC32 trailers and no Content-Length: the user's own folder works as on S3 (metadata, ranges, copies, multipart,
presigned URLs used with plain urllib), and the policy matrix holds — another user's folder,
dot-segment keys, a prefix of the folder name and the whole bucket are refused, and nothing of
the other user changes (read back as the operator). Bad credentials, signatures and checksums
are refused as S3 refuses them, storing nothing.

Usage: python s3_flow.py path/to/stratus
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import io
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from unittest import mock

import boto3
import botocore
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from cognito_flow import OPERATOR_KEY, OPERATOR_SECRET, expect_error, operator_server, signed_in_identity
from stratus_server import run_checks

BUCKET = "user-files"
V4 = Config(signature_version="s3v4", retries={"max_attempts": 1})


def main(binary):
    server = operator_server(binary, args=["--tls"])
    assert server.endpoint.startswith("https://") and server.s3_endpoint.startswith("https://"), server.banner
    tls = ssl.create_default_context(cafile=server.ca)
    cognito = lambda service: boto3.client(  # noqa: E731
        service, endpoint_url=server.endpoint, region_name="us-east-1", verify=server.ca,
        aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=OPERATOR_SECRET)
    idp, identity = cognito("cognito-idp"), cognito("cognito-identity")
    operator = boto3.client("s3", endpoint_url=server.s3_endpoint, region_name="us-east-1", config=V4, verify=server.ca,
                            aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=OPERATOR_SECRET)
    seen, users = set(), {}

    def s3_for(credentials, **overrides):
        keys = {"aws_access_key_id": credentials["AccessKeyId"], "aws_secret_access_key": credentials["SecretKey"],
                "aws_session_token": credentials["SessionToken"], **overrides}
        return boto3.client("s3", endpoint_url=server.s3_endpoint, region_name="us-east-1", config=V4,
                            verify=server.ca, **keys)

    def user(name):
        identity_id, tokens, credentials = signed_in_identity(server, idp, identity, name, seen)
        users[name] = {"id": identity_id, "tokens": tokens, "credentials": credentials, "s3": s3_for(credentials)}

    def own_folder_works_as_on_s3():
        user("ada")
        user("bob")
        ada, s3 = users["ada"]["id"], users["ada"]["s3"]
        sent = []
        s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
        body = b"hello from ada\n" * 100
        put = s3.put_object(Bucket=BUCKET, Key=f"{ada}/notes/hello.txt", Body=body, ContentType="text/plain",
                            Metadata={"origin": "phone"})
        assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', put["ETag"]
        # What boto3 sends to AWS over HTTPS: an aws-chunked body, its CRC32 in a trailer.
        headers = {name.lower(): value for name, value in sent[0].items()}
        assert headers["x-amz-content-sha256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers
        assert headers["x-amz-trailer"] == b"x-amz-checksum-crc32" and "content-length" not in headers, headers
        crc32 = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        assert put["ChecksumCRC32"] == crc32, put
        # SSE-S3: the user bucket is encrypted at rest, and says so; the file is not the text.
        assert put["ServerSideEncryption"] == "AES256", put
        on_disk = (Path(server.data_dir) / "test" / "buckets" / BUCKET / ada / "notes" / "hello.txt").read_bytes()
        assert body[:32] not in on_disk and len(on_disk) > len(body), len(on_disk)
        got = s3.get_object(Bucket=BUCKET, Key=f"{ada}/notes/hello.txt")
        assert got["Body"].read() == body and got["ServerSideEncryption"] == "AES256"
        assert got["ContentType"] == "text/plain" and got["Metadata"] == {"origin": "phone"}, got
        ranged = s3.get_object(Bucket=BUCKET, Key=f"{ada}/notes/hello.txt", Range="bytes=6-9")
        assert ranged["Body"].read() == b"from" and ranged["ContentRange"] == f"bytes 6-9/{len(body)}"
        expect_error("304", lambda: s3.get_object(Bucket=BUCKET, Key=f"{ada}/notes/hello.txt", IfNoneMatch=put["ETag"]))
        expect_error("PreconditionFailed", lambda: s3.get_object(
            Bucket=BUCKET, Key=f"{ada}/notes/hello.txt", IfMatch='"0000"'))
        head = s3.head_object(Bucket=BUCKET, Key=f"{ada}/notes/hello.txt")
        assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
        s3.copy_object(Bucket=BUCKET, Key=f"{ada}/notes/copy.txt",
                       CopySource={"Bucket": BUCKET, "Key": f"{ada}/notes/hello.txt"})
        assert s3.head_object(Bucket=BUCKET, Key=f"{ada}/notes/copy.txt")["Metadata"] == {"origin": "phone"}
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{ada}/", Delimiter="/")
        assert [p["Prefix"] for p in listed["CommonPrefixes"]] == [f"{ada}/notes/"], listed
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{ada}/notes/", MaxKeys=1)
        assert [o["Key"] for o in listed["Contents"]] == [f"{ada}/notes/copy.txt"] and listed["IsTruncated"]
        rest = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{ada}/notes/", ContinuationToken=listed["NextContinuationToken"])
        assert [o["Key"] for o in rest["Contents"]] == [f"{ada}/notes/hello.txt"] and not rest["IsTruncated"]
        s3.delete_object(Bucket=BUCKET, Key=f"{ada}/notes/copy.txt")
        expect_error("404", lambda: s3.head_object(Bucket=BUCKET, Key=f"{ada}/notes/copy.txt"))

    def multipart_uploads_complete_and_abort():
        ada, s3 = users["ada"]["id"], users["ada"]["s3"]
        data = bytes(range(256)) * (20 * 1024 * 1024 // 256)
        transfer = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * 1024 * 1024,
                                                    multipart_chunksize=8 * 1024 * 1024)
        s3.upload_fileobj(io.BytesIO(data), BUCKET, f"{ada}/big.bin", Config=transfer)
        head = s3.head_object(Bucket=BUCKET, Key=f"{ada}/big.bin")
        assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"'), head
        assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=f"{ada}/big.bin")["Body"].read()).digest() == \
            hashlib.sha256(data).digest()
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key=f"{ada}/abandoned.bin")["UploadId"]
        s3.upload_part(Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
        assert [p["PartNumber"] for p in s3.list_parts(Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload)["Parts"]] == [1]
        # A small part that is not the last is refused at completion.
        s3.upload_part(Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload, PartNumber=2, Body=b"y")
        parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]}
                 for p in s3.list_parts(Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload)["Parts"]]
        expect_error("EntityTooSmall", lambda: s3.complete_multipart_upload(
            Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload, MultipartUpload={"Parts": parts}))
        s3.abort_multipart_upload(Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload)
        expect_error("NoSuchUpload", lambda: s3.list_parts(Bucket=BUCKET, Key=f"{ada}/abandoned.bin", UploadId=upload))
        expect_error("404", lambda: s3.head_object(Bucket=BUCKET, Key=f"{ada}/abandoned.bin"))

    def presigned_urls_work_with_plain_urllib():
        ada, s3 = users["ada"]["id"], users["ada"]["s3"]
        put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": f"{ada}/presigned.txt"},
                                            ExpiresIn=300)
        urllib.request.urlopen(urllib.request.Request(put_url, data=b"via a link", method="PUT"), context=tls).read()
        get_url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"{ada}/presigned.txt"})
        assert urllib.request.urlopen(get_url, context=tls).read() == b"via a link"
        tampered = get_url.replace("presigned.txt", "presigned.txu")
        status = http_error(tampered, tls)
        assert status == 403, status
        # A checksum signed into a presigned URL (boto3 signs it as a header the uploader sends).
        def presigned_put(key, body, crc32):
            url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key, "ChecksumCRC32": crc32})
            assert "x-amz-checksum-crc32" in url.lower(), url
            request = urllib.request.Request(url, data=body, method="PUT", headers={"x-amz-checksum-crc32": crc32})
            try:
                urllib.request.urlopen(request, context=tls).read()
                return 200, ""
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        crc32 = base64.b64encode(zlib.crc32(b"checked").to_bytes(4, "big")).decode()
        assert presigned_put(f"{ada}/checked.txt", b"checked", crc32)[0] == 200
        status, text = presigned_put(f"{ada}/unchecked.txt", b"checked", "AAAAAA==")
        assert status == 400 and "<Code>BadDigest</Code>" in text, (status, text)
        expect_error("404", lambda: s3.head_object(Bucket=BUCKET, Key=f"{ada}/unchecked.txt"))
        too_long = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"{ada}/presigned.txt"},
                                             ExpiresIn=8 * 24 * 3600)
        assert http_error(too_long, tls) == 400

    def the_policy_matrix_holds():
        ada, bob = users["ada"]["id"], users["bob"]["id"]
        s3 = users["ada"]["s3"]
        users["bob"]["s3"].put_object(Bucket=BUCKET, Key=f"{bob}/x", Body=b"bob's")
        users["bob"]["s3"].put_object(Bucket=BUCKET, Key=f"{bob}/y", Body=b"bob's too")
        s3.put_object(Bucket=BUCKET, Key=f"{ada}/x", Body=b"ada's")
        foreign = [f"{bob}/x", f"{bob}/new", f"{ada}x/y", "x", f"{ada}"]
        invalid = [f"{ada}/../{bob}/x", f"{ada}/%2e%2e/{bob}/x", f"{ada}/./x", f"{bob}/../{ada}/x"]
        for key in foreign:
            expect_error("AccessDenied", lambda: s3.get_object(Bucket=BUCKET, Key=key))
            expect_error("AccessDenied", lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"ada was here"))
            expect_error("AccessDenied", lambda: s3.delete_object(Bucket=BUCKET, Key=key))
            expect_error("AccessDenied", lambda: s3.create_multipart_upload(Bucket=BUCKET, Key=key))
            expect_error("AccessDenied", lambda: s3.copy_object(
                Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": f"{ada}/x"}))
            expect_error("AccessDenied", lambda: s3.copy_object(
                Bucket=BUCKET, Key=f"{ada}/stolen", CopySource={"Bucket": BUCKET, "Key": key}))
        # Keys with dot segments name no object: refused before any policy is asked, whoever
        # asks, so they can neither reach nor probe another folder.
        for key in invalid:
            expect_error("InvalidArgument", lambda: s3.get_object(Bucket=BUCKET, Key=key))
            expect_error("InvalidArgument", lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"ada was here"))
        for prefix in [f"{bob}/", ada, "", f"{ada}x/"]:
            expect_error("AccessDenied", lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix))
        expect_error("AccessDenied", lambda: s3.list_objects_v2(Bucket=BUCKET))
        deleted = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": f"{ada}/x"}, {"Key": f"{bob}/y"}]})
        assert [d["Key"] for d in deleted["Deleted"]] == [f"{ada}/x"], deleted
        assert [(e["Key"], e["Code"]) for e in deleted["Errors"]] == [(f"{bob}/y", "AccessDenied")], deleted
        bob_upload = users["bob"]["s3"].create_multipart_upload(Bucket=BUCKET, Key=f"{bob}/upload")["UploadId"]
        expect_error("AccessDenied", lambda: s3.upload_part(
            Bucket=BUCKET, Key=f"{bob}/upload", UploadId=bob_upload, PartNumber=1, Body=b"z"))
        expect_error("AccessDenied", lambda: s3.abort_multipart_upload(Bucket=BUCKET, Key=f"{bob}/upload", UploadId=bob_upload))
        expect_error("AccessDenied", lambda: s3.list_parts(Bucket=BUCKET, Key=f"{bob}/upload", UploadId=bob_upload))
        # Nothing of Bob's changed, nothing appeared.
        assert operator.get_object(Bucket=BUCKET, Key=f"{bob}/x")["Body"].read() == b"bob's"
        assert operator.get_object(Bucket=BUCKET, Key=f"{bob}/y")["Body"].read() == b"bob's too"
        everything = [o["Key"] for o in operator.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert not [key for key in everything if not key.startswith((f"{ada}/", f"{bob}/"))], everything
        assert f"{bob}/new" not in everything and f"{ada}/stolen" not in everything
        assert operator.list_parts(Bucket=BUCKET, Key=f"{bob}/upload", UploadId=bob_upload).get("Parts", []) == []
        # The site's bucket is the edge's: refused to users, open to the operator.
        expect_error("AccessDenied", lambda: s3.get_object(Bucket="site", Key="index.html"))
        expect_error("AccessDenied", lambda: s3.put_object(Bucket="site", Key="index.html", Body=b"defaced"))
        expect_error("AccessDenied", lambda: s3.list_buckets())
        assert "site" in [b["Name"] for b in operator.list_buckets()["Buckets"]]

    def bad_credentials_signatures_and_checksums_are_refused():
        ada, credentials = users["ada"]["id"], users["ada"]["credentials"]
        key = f"{ada}/refused.txt"
        wrong_token = s3_for(credentials, aws_session_token=credentials["SessionToken"][:-4] + "AAAA")
        expect_error("InvalidToken", lambda: wrong_token.put_object(Bucket=BUCKET, Key=key, Body=b"no"))
        no_token = s3_for(credentials, aws_session_token=None)
        expect_error("InvalidToken", lambda: no_token.put_object(Bucket=BUCKET, Key=key, Body=b"no"))
        unknown = s3_for(credentials, aws_access_key_id="ASIAUNKNOWNUNKNOWN00")
        expect_error("InvalidAccessKeyId", lambda: unknown.put_object(Bucket=BUCKET, Key=key, Body=b"no"))
        wrong_secret = s3_for(credentials, aws_secret_access_key="not-the-secret")
        expect_error("SignatureDoesNotMatch", lambda: wrong_secret.put_object(Bucket=BUCKET, Key=key, Body=b"no"))
        s3 = users["ada"]["s3"]
        expect_error("BadDigest", lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"no", ChecksumCRC32="AAAAAA=="))
        expect_error("BadDigest", lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"no",
                                                        ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="))
        expect_error("InvalidArgument", lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"no",
                                                              ServerSideEncryption="aws:kms"))
        expect_error("InvalidArgument", lambda: operator.put_object(Bucket="media", Key="refused.txt", Body=b"no",
                                                                    ServerSideEncryption="AES256"))
        skewed = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
            expect_error("RequestTimeTooSkewed", lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"no"))
        expect_error("404", lambda: operator.head_object(Bucket=BUCKET, Key=key))

    def aws_chunked_bodies_are_verified_chunk_by_chunk_and_by_trailer():
        ada, credentials = users["ada"]["id"], users["ada"]["credentials"]
        key = f"{ada}/chunked.txt"

        def chunked_put(payload, body, extra):
            request = AWSRequest(method="PUT", url=f"{server.s3_endpoint}/{BUCKET}/{key}", data=body, headers={
                "Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "11",
                "Content-Length": str(len(body)), **extra})
            signer = FixedPayloadAuth(payload, Credentials(credentials["AccessKeyId"], credentials["SecretKey"],
                                                           credentials["SessionToken"]), "s3", "us-east-1")
            signer.add_auth(request)
            prepared = request.prepare()
            urllib_request = urllib.request.Request(prepared.url, data=body, method="PUT", headers=dict(prepared.headers))
            try:
                urllib.request.urlopen(urllib_request, context=tls).read()
                return 200, ""
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        def trailer_body(crc32):
            return b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:" + crc32 + b"\r\n\r\n"

        trailer = {"X-Amz-Trailer": "x-amz-checksum-crc32"}
        status, text = chunked_put("STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer_body(b"DUoRhQ=="), trailer)
        assert status == 200, text
        status, text = chunked_put("STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer_body(b"AAAAAA=="), trailer)
        assert status == 400 and "<Code>BadDigest</Code>" in text, (status, text)

        def signed_chunks(tamper):
            # The seed signature is the header's; each chunk signs the one before it.
            request_time = datetime.datetime.now(datetime.timezone.utc)
            with mock.patch("botocore.auth.get_current_datetime", return_value=request_time):
                request = AWSRequest(method="PUT", url=f"{server.s3_endpoint}/{BUCKET}/{key}", data=b"", headers={
                    "Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "11"})
                signer = FixedPayloadAuth("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", Credentials(
                    credentials["AccessKeyId"], credentials["SecretKey"], credentials["SessionToken"]), "s3", "us-east-1")
                signer.add_auth(request)
            seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
            stamp, date = request.headers["X-Amz-Date"], request.headers["X-Amz-Date"][:8]
            scope = f"{date}/us-east-1/s3/aws4_request"
            signing_key = b"AWS4" + credentials["SecretKey"].encode()
            for part in (date, "us-east-1", "s3", "aws4_request"):
                signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
            body, previous = b"", seed
            for chunk in (b"hello world", b""):
                to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", stamp, scope, previous,
                                     hashlib.sha256(b"").hexdigest(), hashlib.sha256(chunk).hexdigest()])
                signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
                if tamper and chunk:
                    signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
                body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
                previous = signature
            headers = dict(request.headers)
            headers["Content-Length"] = str(len(body))
            try:
                urllib.request.urlopen(urllib.request.Request(request.url, data=body, method="PUT", headers=headers),
                                       context=tls).read()
                return 200, ""
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        status, text = signed_chunks(tamper=False)
        assert status == 200, text
        assert operator.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"hello world"
        operator.delete_object(Bucket=BUCKET, Key=key)
        status, text = signed_chunks(tamper=True)
        assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text, (status, text)
        expect_error("404", lambda: operator.head_object(Bucket=BUCKET, Key=key))

    def plain_http_is_redirected_and_https_sends_hsts():
        plain = server.endpoint.replace("https://", "http://") + "/healthz"
        connection = http.client.HTTPConnection(plain.split("/")[2])
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 308 and response.getheader("Location") == server.endpoint + "/healthz", \
            (response.status, response.getheaders())
        secure = urllib.request.urlopen(server.endpoint + "/healthz", context=tls)
        assert secure.headers["Strict-Transport-Security"].startswith("max-age="), dict(secure.headers)

    def the_aws_cli_copies_lists_syncs_and_presigns():
        ada, credentials = users["ada"]["id"], users["ada"]["credentials"]
        aws = str(Path(sys.executable).with_name("aws"))
        local = tempfile.TemporaryDirectory()
        # SigV4 for presigned URLs too (the CLI's v1 default is SigV2, which Stratus refuses).
        config = Path(local.name) / "config"
        config.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
        environment = dict(os.environ, AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
                           AWS_SECRET_ACCESS_KEY=credentials["SecretKey"], AWS_SESSION_TOKEN=credentials["SessionToken"],
                           AWS_DEFAULT_REGION="us-east-1", AWS_CA_BUNDLE=server.ca, AWS_CONFIG_FILE=str(config),
                           AWS_SHARED_CREDENTIALS_FILE="/dev/null")

        def cli(*args, check=True):
            return subprocess.run([aws, *args, "--endpoint-url", server.s3_endpoint], capture_output=True, text=True,
                                  check=check, env=environment)

        with local:
            folder = Path(local.name) / "album"
            (folder / "2026").mkdir(parents=True)
            (folder / "a.txt").write_text("alpha")
            (folder / "2026" / "b.bin").write_bytes(bytes(range(256)) * 4096)
            cli("s3", "cp", str(folder / "a.txt"), f"s3://{BUCKET}/{ada}/cli/a.txt")
            listed = cli("s3", "ls", f"s3://{BUCKET}/{ada}/cli/").stdout
            assert "a.txt" in listed, listed
            cli("s3", "sync", str(folder), f"s3://{BUCKET}/{ada}/album/")
            recursive = cli("s3", "ls", "--recursive", f"s3://{BUCKET}/{ada}/album/").stdout
            assert f"{ada}/album/a.txt" in recursive and f"{ada}/album/2026/b.bin" in recursive, recursive
            again = cli("s3", "sync", str(folder), f"s3://{BUCKET}/{ada}/album/").stdout
            assert again.strip() == "", f"a second sync uploads nothing: {again}"
            back = Path(local.name) / "back"
            cli("s3", "sync", f"s3://{BUCKET}/{ada}/album/", str(back))
            assert (back / "2026" / "b.bin").read_bytes() == (folder / "2026" / "b.bin").read_bytes()
            url = cli("s3", "presign", f"s3://{BUCKET}/{ada}/cli/a.txt", "--expires-in", "60").stdout.strip()
            assert urllib.request.urlopen(url, context=tls).read() == b"alpha"
            config.write_text("[default]\n")
            sigv2 = cli("s3", "presign", f"s3://{BUCKET}/{ada}/cli/a.txt").stdout.strip()
            assert "AWSAccessKeyId=" in sigv2 and http_error(sigv2, tls) == 400, sigv2
            denied = cli("s3", "cp", str(folder / "a.txt"), f"s3://{BUCKET}/{users['bob']['id']}/a.txt", check=False)
            assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr

    def versioning_keeps_overwritten_and_deleted_objects():
        ada, s3 = users["ada"]["id"], users["ada"]["s3"]
        key = f"{ada}/versioned.txt"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"before versioning")
        expect_error("AccessDenied", lambda: s3.put_bucket_versioning(
            Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}))
        operator.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        assert operator.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
        assert s3.head_object(Bucket=BUCKET, Key=key)["VersionId"] == "null"
        first = s3.put_object(Bucket=BUCKET, Key=key, Body=b"first")["VersionId"]
        second = s3.put_object(Bucket=BUCKET, Key=key, Body=b"second")["VersionId"]
        assert first != second and "null" not in (first, second), (first, second)
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"second"
        old = s3.get_object(Bucket=BUCKET, Key=key, VersionId=first)
        assert old["Body"].read() == b"first" and old["VersionId"] == first
        assert s3.get_object(Bucket=BUCKET, Key=key, VersionId="null")["Body"].read() == b"before versioning"
        listed = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == \
            [(second, True), (first, False), ("null", False)], listed["Versions"]
        folders = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{ada}/", Delimiter="/")
        assert f"{ada}/notes/" in [p["Prefix"] for p in folders["CommonPrefixes"]], folders
        assert {v["Key"] for v in folders["Versions"]} >= {key} and all(
            "/" not in v["Key"][len(ada) + 1:] for v in folders["Versions"]), folders["Versions"]
        deleted = s3.delete_object(Bucket=BUCKET, Key=key)
        assert deleted["DeleteMarker"] is True, deleted
        expect_error("NoSuchKey", lambda: s3.get_object(Bucket=BUCKET, Key=key))
        listed = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(deleted["VersionId"], True)]
        assert s3.get_object(Bucket=BUCKET, Key=key, VersionId=second)["Body"].read() == b"second"
        # Removing versions for good is not the user's to do; the operator may.
        expect_error("AccessDenied", lambda: s3.delete_object(Bucket=BUCKET, Key=key, VersionId=first))
        operator.delete_object(Bucket=BUCKET, Key=key, VersionId=deleted["VersionId"])
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"second", "the marker's removal restores it"
        operator.delete_object(Bucket=BUCKET, Key=key, VersionId=second)
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first", "the previous version is current"
        expect_error("NoSuchVersion", lambda: operator.get_object(Bucket=BUCKET, Key=key, VersionId=second))
        # Noncurrent versions stay encrypted at rest like the objects.
        archived = list((Path(server.data_dir) / "test" / "versions" / BUCKET).iterdir())
        assert archived and all(b"before versioning" not in path.read_bytes() for path in archived), archived
        operator.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
        assert s3.put_object(Bucket=BUCKET, Key=key, Body=b"suspended").get("VersionId") in (None, "null")
        assert s3.get_object(Bucket=BUCKET, Key=key, VersionId=first)["Body"].read() == b"first"

    def revoked_and_signed_out_credentials_stop_working():
        ada = users["ada"]
        ada["s3"].put_object(Bucket=BUCKET, Key=f"{ada['id']}/before", Body=b"ok")
        link = ada["s3"].generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"{ada['id']}/before"})
        assert urllib.request.urlopen(link, context=tls).read() == b"ok"
        idp.global_sign_out(AccessToken=ada["tokens"]["AccessToken"])
        expect_error("InvalidToken", lambda: ada["s3"].get_object(Bucket=BUCKET, Key=f"{ada['id']}/before"))
        # A presigned URL dies with the credentials that signed it.
        assert http_error(link, tls) == 400
        user("cy")
        cy = users["cy"]
        cy["s3"].put_object(Bucket=BUCKET, Key=f"{cy['id']}/mine", Body=b"cy's")
        idp.admin_disable_user(UserPoolId=server.pool_id, Username="cy")
        expect_error("InvalidToken", lambda: cy["s3"].get_object(Bucket=BUCKET, Key=f"{cy['id']}/mine"))
        bob = users["bob"]
        subprocess.run([binary, "credentials", "revoke", bob["id"], "--stage", "test", "--data-dir", server.data_dir],
                       capture_output=True, text=True, check=True, env=server.environment)
        expect_error("InvalidToken", lambda: bob["s3"].get_object(Bucket=BUCKET, Key=f"{bob['id']}/x"))

    return run_checks(server, [
        ("the own folder: put/get/range/conditional/head/copy/list/delete as on S3", own_folder_works_as_on_s3),
        ("multipart: a 20 MB upload completes with an S3 ETag; an abandoned one aborts", multipart_uploads_complete_and_abort),
        ("presigned PUT and GET with urllib; tampered and over-a-week URLs refused", presigned_urls_work_with_plain_urllib),
        ("the policy matrix: only the own folder, nothing of the other user changes", the_policy_matrix_holds),
        ("bad credentials, signatures, checksums and clocks refused, nothing stored", bad_credentials_signatures_and_checksums_are_refused),
        ("aws-chunked: trailer checksums and chunk signatures verified; tampered ones store nothing",
         aws_chunked_bodies_are_verified_chunk_by_chunk_and_by_trailer),
        ("plain HTTP is redirected to HTTPS, which sends HSTS", plain_http_is_redirected_and_https_sends_hsts),
        ("the AWS CLI: s3 cp, ls, sync both ways, presign; another folder refused", the_aws_cli_copies_lists_syncs_and_presigns),
        ("versioning: old versions readable by id, delete markers, versions restored", versioning_keeps_overwritten_and_deleted_objects),
        ("credentials of signed-out, disabled and revoked identities stop working, and their presigned URLs",
         revoked_and_signed_out_credentials_stop_working),
    ])


class FixedPayloadAuth(S3SigV4Auth):
    """SigV4 over a payload hash given as is: the streaming forms botocore writes itself."""

    def __init__(self, payload, *args):
        super().__init__(*args)
        self.fixed_payload = payload

    def payload(self, request):
        return self.fixed_payload

    def _modify_request_before_signing(self, request):
        super()._modify_request_before_signing(request)
        request.headers.replace_header("X-Amz-Content-SHA256", self.fixed_payload)


def http_error(url, context):
    try:
        urllib.request.urlopen(url, context=context).read()
    except urllib.error.HTTPError as error:
        return error.code
    raise AssertionError(f"{url} was served")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
