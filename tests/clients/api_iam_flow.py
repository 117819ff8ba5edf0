"""The todos API behind the gateway's IAM authorizer, called as a mobile app on AWS calls an
`AWS_IAM` API: boto3 trades a user-pool sign-in for the identity pool's temporary credentials,
and botocore's own SigV4 signer signs each request for `execute-api`. The user reads and writes
their own todos, another user's are not found, and unsigned, tampered and wrongly scoped calls
are refused as API Gateway refuses them, writing nothing.

Usage: python api_iam_flow.py path/to/stratus
"""

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cognito_flow import OPERATOR_KEY, OPERATOR_SECRET, signed_in_identity
from stratus_server import StratusServer, run_checks

CONFIG = """
[gateway.authorization]
"ANY /v1/todos" = "iam"
"ANY /v1/todos/{id}" = "iam"
"""


def main(binary):
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(CONFIG)
    config.close()
    server = StratusServer(binary, env={
        "STRATUS_CONFIG": config.name,
        "STRATUS_IDENTITY__OPERATOR_ACCESS_KEY_ID": OPERATOR_KEY,
        "STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY": OPERATOR_SECRET,
    })
    os.unlink(config.name)
    client = lambda service: boto3.client(  # noqa: E731
        service, endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=OPERATOR_SECRET)
    idp, identity = client("cognito-idp"), client("cognito-identity")
    api = server.endpoint.rstrip("/")
    seen, users = set(), {}

    def credentials_of(name):
        _, _, issued = signed_in_identity(server, idp, identity, name, seen)
        return Credentials(issued["AccessKeyId"], issued["SecretKey"], issued["SessionToken"])

    def send(method, path, body=None, credentials=None, service="execute-api", headers=None, sent_body=None):
        """The request signed by botocore (when credentials are given), sent with urllib."""
        data = None if body is None else json.dumps(body).encode()
        request = AWSRequest(method=method, url=api + path, data=data,
                             headers={"Content-Type": "application/json", **(headers or {})} if data else dict(headers or {}))
        if credentials is not None:
            SigV4Auth(credentials, service, "us-east-1").add_auth(request)
        prepared = request.prepare()
        sent = prepared.body if sent_body is None else json.dumps(sent_body).encode()
        outgoing = urllib.request.Request(prepared.url, data=sent, method=method, headers=dict(prepared.headers))
        try:
            with urllib.request.urlopen(outgoing) as response:
                text = response.read()
                return response.status, json.loads(text) if text else None, response.headers
        except urllib.error.HTTPError as error:
            text = error.read()
            return error.code, json.loads(text) if text else None, error.headers

    def a_user_reads_and_writes_their_todos_with_signed_requests():
        users["ada"], users["bob"] = credentials_of("ada"), credentials_of("bob")
        status, todo, created = send("POST", "/v1/todos", {"title": "buy film", "tags": ["errands"]}, users["ada"])
        assert status == 201 and created["etag"] == f'"v{todo["version"]}"', (status, todo, created)
        users["todo"] = todo
        status, page, _ = send("GET", "/v1/todos?done=false&tag=errands&limit=5", credentials=users["ada"])
        assert status == 200 and [t["title"] for t in page["items"]] == ["buy film"], (status, page)
        status, edited, headers = send("PATCH", f"/v1/todos/{todo['id']}", {"done": True}, users["ada"],
                                       headers={"If-Match": created["etag"]})
        assert status == 200 and edited["done"] is True, (status, edited)
        status, one, _ = send("GET", f"/v1/todos/{todo['id']}", credentials=users["ada"])
        assert status == 200 and one["done"] is True, (status, one)

    def another_users_credentials_do_not_reach_it():
        status, _, _ = send("GET", f"/v1/todos/{users['todo']['id']}", credentials=users["bob"])
        assert status == 404, status
        status, page, _ = send("GET", "/v1/todos", credentials=users["bob"])
        assert status == 200 and page["items"] == [], page

    def an_encoded_path_is_signed_as_botocore_signs_it():
        status, body, _ = send("GET", "/v1/todos/not%20an%20id", credentials=users["ada"])
        assert status in (400, 404), (status, body)

    def unsigned_tampered_and_misscoped_calls_are_refused_and_write_nothing():
        status, body, headers = send("GET", "/v1/todos")
        assert (status, body) == (403, {"message": "Missing Authentication Token"}), (status, body)
        status, _, headers = send("POST", "/v1/todos", {"title": "signed"}, users["ada"], sent_body={"title": "SIGNED"})
        assert status == 403 and headers.get("x-amzn-errortype") == "InvalidSignatureException", (status, headers)
        status, body, _ = send("POST", "/v1/todos", {"title": "for s3"}, users["ada"], service="s3")
        assert status == 403 and "execute-api" in body["message"], (status, body)
        forged = Credentials(users["ada"].access_key, "not-the-secret", users["ada"].token)
        status, _, headers = send("POST", "/v1/todos", {"title": "forged"}, forged)
        assert status == 403 and headers.get("x-amzn-errortype") == "InvalidSignatureException", (status, headers)
        status, page, _ = send("GET", "/v1/todos", credentials=users["ada"])
        assert [t["title"] for t in page["items"]] == ["buy film"], page

    def the_owner_deletes_it():
        status, _, _ = send("DELETE", f"/v1/todos/{users['todo']['id']}", credentials=users["ada"])
        assert status == 204, status
        status, _, _ = send("GET", f"/v1/todos/{users['todo']['id']}", credentials=users["ada"])
        assert status == 404, status

    return run_checks(server, [
        ("a user reads and writes their todos with SigV4-signed requests",
         a_user_reads_and_writes_their_todos_with_signed_requests),
        ("another user's credentials do not reach them", another_users_credentials_do_not_reach_it),
        ("an encoded path is signed as botocore signs it", an_encoded_path_is_signed_as_botocore_signs_it),
        ("unsigned, tampered and misscoped calls are refused and write nothing",
         unsigned_tampered_and_misscoped_calls_are_refused_and_write_nothing),
        ("the owner deletes one", the_owner_deletes_it),
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
