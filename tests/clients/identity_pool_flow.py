"""The Cognito identity pool driven by boto3: a user-pool user trades an ID token for an
identity (GetId) and that identity for temporary credentials (GetCredentialsForIdentity), or for
an OpenID token that STS (AssumeRoleWithWebIdentity) exchanges for them, as boto3's own
web-identity provider does; the operator manages pools through SigV4-signed calls. Each refusal
is the error Cognito or STS answers.

Usage: python identity_pool_flow.py path/to/stratus
"""

import datetime
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import boto3
import jwt

from cognito_flow import OPERATOR_KEY, OPERATOR_SECRET, PASSWORD, code_from_outbox, expect_error, operator_server
from stratus_server import run_checks

IDENTITY_ID = re.compile(r"^us-east-1:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def main(binary):
    server = operator_server(binary)
    client = lambda service, secret=OPERATOR_SECRET: boto3.client(  # noqa: E731
        service, endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=secret)
    idp, identity = client("cognito-idp"), client("cognito-identity")
    provider = f"cognito-idp.us-east-1.amazonaws.com/{server.pool_id}"
    bare_issuer = server.issuer.split("://", 1)[1]
    seen, users = set(), {}

    def signed_in_user(name):
        address = f"{name}@example.com"
        sub = idp.sign_up(ClientId=server.client_id, Username=name, Password=PASSWORD,
                          UserAttributes=[{"Name": "email", "Value": address}])["UserSub"]
        idp.confirm_sign_up(ClientId=server.client_id, Username=name,
                            ConfirmationCode=code_from_outbox(server, address, seen))
        tokens = idp.initiate_auth(ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": name, "PASSWORD": PASSWORD})["AuthenticationResult"]
        users[name] = {"sub": sub, "tokens": tokens}

    def get_id_is_stable_under_both_login_key_forms():
        signed_in_user("ada")
        signed_in_user("bob")
        token = users["ada"]["tokens"]["IdToken"]
        first = identity.get_id(IdentityPoolId=server.identity_pool_id, Logins={provider: token})["IdentityId"]
        assert IDENTITY_ID.match(first), first
        again = identity.get_id(IdentityPoolId=server.identity_pool_id, Logins={bare_issuer: token})["IdentityId"]
        assert again == first, (first, again)
        users["ada"]["identity"] = first
        bob_token = users["bob"]["tokens"]["IdToken"]
        users["bob"]["identity"] = identity.get_id(
            IdentityPoolId=server.identity_pool_id, Logins={provider: bob_token})["IdentityId"]
        assert users["bob"]["identity"] != first

    def credentials_for_the_identity():
        response = identity.get_credentials_for_identity(
            IdentityId=users["ada"]["identity"], Logins={provider: users["ada"]["tokens"]["IdToken"]})
        credentials = response["Credentials"]
        assert response["IdentityId"] == users["ada"]["identity"]
        assert credentials["AccessKeyId"].startswith("ASIA") and len(credentials["AccessKeyId"]) == 20
        assert credentials["SecretKey"] and len(credentials["SessionToken"]) > 100
        # botocore parsed a timestamp: Expiration came as epoch seconds, an hour from now.
        left = credentials["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(minutes=55) < left <= datetime.timedelta(minutes=61), left
        users["ada"]["access_key"] = credentials["AccessKeyId"]

    def the_cli_lists_and_revokes_credentials():
        ada = users["ada"]
        def cli(*args):
            return subprocess.run([binary, *args, "--stage", "test", "--data-dir", server.data_dir],
                                  capture_output=True, text=True, check=True, env=server.environment).stdout
        listed = cli("credentials", "list", "--identity", ada["identity"])
        assert ada["access_key"] in listed, listed
        assert ada["identity"] in cli("identity-pools", "identities", "default")
        assert ada["identity"] in cli("identity-pools", "of", ada["sub"])
        assert "revoked 1 credential(s)" in cli("credentials", "revoke", ada["identity"])
        assert ada["access_key"] not in cli("credentials", "list")

    def refusals_as_cognito_answers_them():
        pool = server.identity_pool_id
        ada, bob = users["ada"], users["bob"]
        expect_error("NotAuthorizedException", lambda: identity.get_id(IdentityPoolId=pool))
        expect_error("NotAuthorizedException", lambda: identity.get_id(
            IdentityPoolId=pool, Logins={provider: ada["tokens"]["AccessToken"]}))
        tampered = ada["tokens"]["IdToken"][:-4] + ("AAAA" if not ada["tokens"]["IdToken"].endswith("AAAA") else "BBBB")
        expect_error("NotAuthorizedException", lambda: identity.get_id(IdentityPoolId=pool, Logins={provider: tampered}))
        expect_error("NotAuthorizedException", lambda: identity.get_id(
            IdentityPoolId=pool, Logins={"accounts.google.com": ada["tokens"]["IdToken"]}))
        expect_error("ResourceNotFoundException", lambda: identity.get_id(
            IdentityPoolId="us-east-1:00000000-0000-0000-0000-000000000000", Logins={provider: ada["tokens"]["IdToken"]}))
        # Bob's token gets no credentials for Ada's identity, nor do no logins at all.
        expect_error("NotAuthorizedException", lambda: identity.get_credentials_for_identity(
            IdentityId=ada["identity"], Logins={provider: bob["tokens"]["IdToken"]}))
        expect_error("NotAuthorizedException", lambda: identity.get_credentials_for_identity(IdentityId=ada["identity"]))
        expect_error("ResourceNotFoundException", lambda: identity.get_credentials_for_identity(
            IdentityId="us-east-1:00000000-0000-0000-0000-000000000000", Logins={provider: ada["tokens"]["IdToken"]}))

    def operator_manages_pools_with_signed_calls():
        pool = server.identity_pool_id
        description = identity.describe_identity_pool(IdentityPoolId=pool)
        assert description["AllowUnauthenticatedIdentities"] is False
        assert description["CognitoIdentityProviders"][0]["ProviderName"] == provider
        assert identity.get_identity_pool_roles(IdentityPoolId=pool)["Roles"]["authenticated"].startswith("arn:aws:iam::")
        listed = identity.list_identities(IdentityPoolId=pool, MaxResults=60)["Identities"]
        ada_entry = next(entry for entry in listed if entry["IdentityId"] == users["ada"]["identity"])
        assert ada_entry["Logins"] == [provider]
        assert identity.describe_identity(IdentityId=users["ada"]["identity"])["Logins"] == [provider]
        created = identity.create_identity_pool(IdentityPoolName="mobile", AllowUnauthenticatedIdentities=False,
            CognitoIdentityProviders=[{"ProviderName": provider, "ClientId": server.client_id}])
        role = "arn:aws:iam::000000000000:role/Mobile_Auth"
        identity.set_identity_pool_roles(IdentityPoolId=created["IdentityPoolId"], Roles={"authenticated": role})
        assert identity.get_identity_pool_roles(IdentityPoolId=created["IdentityPoolId"])["Roles"] == {"authenticated": role}
        names = {entry["IdentityPoolName"] for entry in identity.list_identity_pools(MaxResults=60)["IdentityPools"]}
        assert {"default", "mobile"} <= names, names
        expect_error("ResourceConflictException", lambda: identity.create_identity_pool(
            IdentityPoolName="mobile", AllowUnauthenticatedIdentities=False))
        intruder = client("cognito-identity", secret="not-the-secret")
        expect_error("InvalidSignatureException", lambda: intruder.list_identity_pools(MaxResults=10))

    def open_id_token_and_sts():
        ada = users["ada"]
        response = identity.get_open_id_token(IdentityId=ada["identity"], Logins={provider: ada["tokens"]["IdToken"]})
        token = response["Token"]
        issuer = f"{server.endpoint}/cognito-identity"
        keys = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json")
        claims = jwt.decode(token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                            audience=server.identity_pool_id, issuer=issuer)
        assert claims["sub"] == ada["identity"] and claims["amr"][0] == "authenticated", claims
        role = identity.get_identity_pool_roles(IdentityPoolId=server.identity_pool_id)["Roles"]["authenticated"]
        sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="unused", aws_secret_access_key="unused")
        assumed = sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="ada-phone", WebIdentityToken=token)
        assert assumed["Credentials"]["AccessKeyId"].startswith("ASIA")
        assert assumed["SubjectFromWebIdentityToken"] == ada["identity"]
        assert assumed["AssumedRoleUser"]["Arn"].endswith("/ada-phone")
        expect_error("AccessDenied", lambda: sts.assume_role_with_web_identity(
            RoleArn="arn:aws:iam::000000000000:role/Admin", RoleSessionName="ada", WebIdentityToken=token))
        expect_error("InvalidIdentityToken", lambda: sts.assume_role_with_web_identity(
            RoleArn=role, RoleSessionName="ada", WebIdentityToken=ada["tokens"]["IdToken"]))
        # botocore refuses a short duration itself; a raw query-protocol request reaches STS.
        form = urllib.parse.urlencode({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                                       "RoleArn": role, "RoleSessionName": "ada", "WebIdentityToken": token,
                                       "DurationSeconds": "60"}).encode()
        request = urllib.request.Request(server.endpoint + "/", data=form,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            urllib.request.urlopen(request)
            raise AssertionError("a 60 s session was granted")
        except urllib.error.HTTPError as error:
            body = error.read().decode()
            assert error.code == 400 and "<Code>ValidationError</Code>" in body, body
        # boto3's own web-identity provider, as an app configured by environment would use it.
        with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as token_file:
            token_file.write(token)
        saved = dict(os.environ)
        try:
            os.environ.update({"AWS_WEB_IDENTITY_TOKEN_FILE": token_file.name, "AWS_ROLE_ARN": role,
                               "AWS_ROLE_SESSION_NAME": "from-env", "AWS_ENDPOINT_URL_STS": server.endpoint,
                               "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                               "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
                os.environ.pop(name, None)
            credentials = boto3.Session().get_credentials().get_frozen_credentials()
            assert credentials.access_key.startswith("ASIA") and credentials.token, credentials
        finally:
            os.environ.clear()
            os.environ.update(saved)
            os.unlink(token_file.name)
        users["ada"]["open_id_token"] = token
        users["ada"]["role"] = role

    def signed_out_users_get_no_credentials():
        ada = users["ada"]
        idp.global_sign_out(AccessToken=ada["tokens"]["AccessToken"])
        expect_error("NotAuthorizedException", lambda: identity.get_credentials_for_identity(
            IdentityId=ada["identity"], Logins={provider: ada["tokens"]["IdToken"]}))
        sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="unused", aws_secret_access_key="unused")
        expect_error("InvalidIdentityToken", lambda: sts.assume_role_with_web_identity(
            RoleArn=ada["role"], RoleSessionName="ada", WebIdentityToken=ada["open_id_token"]))
        idp.admin_disable_user(UserPoolId=server.pool_id, Username="bob")
        expect_error("NotAuthorizedException", lambda: identity.get_credentials_for_identity(
            IdentityId=users["bob"]["identity"], Logins={provider: users["bob"]["tokens"]["IdToken"]}))

    return run_checks(server, [
        ("GetId: one identity per user, under AWS's and Amplify's login keys", get_id_is_stable_under_both_login_key_forms),
        ("GetCredentialsForIdentity: ASIA keys, session token, epoch-seconds expiry", credentials_for_the_identity),
        ("the CLI lists identities and live credentials, and revokes an identity's", the_cli_lists_and_revokes_credentials),
        ("refusals: guests, access tokens, tampered or foreign tokens, another user's identity", refusals_as_cognito_answers_them),
        ("the operator manages pools and reads identities with SigV4-signed calls", operator_manages_pools_with_signed_calls),
        ("GetOpenIdToken verifies through its JWKS; STS AssumeRoleWithWebIdentity, also from boto3's provider", open_id_token_and_sts),
        ("signed-out and disabled users get no credentials", signed_out_users_get_no_credentials),
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
