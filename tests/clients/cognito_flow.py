"""The Cognito user pool driven by real clients: boto3 (botocore's JSON protocol and SigV4
signer), PyJWT verifying tokens through the published JWKS, and pyotp computing TOTP codes.

Usage: python cognito_flow.py path/to/stratus
"""

import email
import email.policy
import sys
import time
import urllib.request
import json

import boto3
import botocore.exceptions
import jwt
import pyotp

from stratus_server import StratusServer, run_checks

OPERATOR_KEY = "AKIASTRATUSTEST0001"
OPERATOR_SECRET = "stratus-real-client-operator-secret"
PASSWORD = "Correct-Horse-9"
NEW_PASSWORD = "Battery-Staple-7"


def code_from_outbox(server, address, seen):
    """The 6-digit code of the newest unseen message to `address`, parsed as MIME."""
    for path in sorted(server.outbox().glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        if path.name in seen:
            continue
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] != address:
            continue
        seen.add(path.name)
        text = message.get_body(preferencelist=("plain",)).get_content()
        for line in text.splitlines():
            if len(line.strip()) == 6 and line.strip().isdigit():
                return line.strip()
    raise AssertionError(f"no code mailed to {address}")


def expect_error(name, call):
    try:
        call()
    except botocore.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == name, error.response
        return error
    raise AssertionError(f"expected {name}")


def signed_in_identity(server, idp, identity, name, seen):
    """A new user-pool user signed up, confirmed and signed in, and their identity in the default
    identity pool with its temporary credentials: (identity id, tokens, credentials)."""
    address = f"{name}@example.com"
    idp.sign_up(ClientId=server.client_id, Username=name, Password=PASSWORD,
                UserAttributes=[{"Name": "email", "Value": address}])
    idp.confirm_sign_up(ClientId=server.client_id, Username=name,
                        ConfirmationCode=code_from_outbox(server, address, seen))
    tokens = idp.initiate_auth(ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": name, "PASSWORD": PASSWORD})["AuthenticationResult"]
    logins = {f"cognito-idp.us-east-1.amazonaws.com/{server.pool_id}": tokens["IdToken"]}
    identity_id = identity.get_id(IdentityPoolId=server.identity_pool_id, Logins=logins)["IdentityId"]
    credentials = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]
    return identity_id, tokens, credentials


def operator_server(binary, args=()):
    """`stratus serve` with known operator credentials, so botocore can sign Admin* calls."""
    return StratusServer(
        binary,
        env={
            "STRATUS_IDENTITY__OPERATOR_ACCESS_KEY_ID": OPERATOR_KEY,
            "STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY": OPERATOR_SECRET,
        },
        args=args,
    )


def main(binary):
    server = operator_server(binary)
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=OPERATOR_KEY,
        aws_secret_access_key=OPERATOR_SECRET,
    )
    state = {"seen": set()}
    address = "ada@example.com"

    def sign_up_and_confirm():
        response = cognito.sign_up(
            ClientId=server.client_id,
            Username="ada",
            Password=PASSWORD,
            UserAttributes=[{"Name": "email", "Value": address}],
        )
        assert response["UserConfirmed"] is False
        state["sub"] = response["UserSub"]
        expect_error("UsernameExistsException", lambda: cognito.sign_up(
            ClientId=server.client_id, Username="ada", Password=PASSWORD,
            UserAttributes=[{"Name": "email", "Value": address}]))
        code = code_from_outbox(server, address, state["seen"])
        cognito.confirm_sign_up(ClientId=server.client_id, Username="ada", ConfirmationCode=code)

    def sign_in():
        response = cognito.initiate_auth(
            ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "ada", "PASSWORD": PASSWORD},
        )
        state["tokens"] = response["AuthenticationResult"]
        assert state["tokens"]["TokenType"] == "Bearer"

    def verify_tokens_through_jwks():
        discovery_url = f"{server.issuer}/.well-known/openid-configuration"
        discovery = json.load(urllib.request.urlopen(discovery_url))
        assert discovery["issuer"] == server.issuer
        jwks = jwt.PyJWKClient(discovery["jwks_uri"])
        tokens = state["tokens"]
        id_key = jwks.get_signing_key_from_jwt(tokens["IdToken"]).key
        id_claims = jwt.decode(tokens["IdToken"], id_key, algorithms=["RS256"],
                               audience=server.client_id, issuer=server.issuer)
        assert id_claims["token_use"] == "id" and id_claims["email"] == address
        assert id_claims["cognito:username"] == "ada" and id_claims["sub"] == state["sub"]
        access_key = jwks.get_signing_key_from_jwt(tokens["AccessToken"]).key
        access_claims = jwt.decode(tokens["AccessToken"], access_key, algorithms=["RS256"],
                                   issuer=server.issuer, options={"verify_aud": False})
        assert access_claims["token_use"] == "access" and access_claims["client_id"] == server.client_id

    def refresh():
        response = cognito.initiate_auth(
            ClientId=server.client_id, AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": state["tokens"]["RefreshToken"]},
        )
        result = response["AuthenticationResult"]
        assert result["RefreshToken"] != state["tokens"]["RefreshToken"], "refresh tokens rotate"
        state["tokens"] = result

    def enable_totp():
        access = state["tokens"]["AccessToken"]
        secret = cognito.associate_software_token(AccessToken=access)["SecretCode"]
        state["totp"] = pyotp.TOTP(secret)
        status = cognito.verify_software_token(AccessToken=access, UserCode=state["totp"].now())["Status"]
        assert status == "SUCCESS"
        cognito.set_user_mfa_preference(
            AccessToken=access, SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True})

    def sign_in_with_totp():
        challenge = cognito.initiate_auth(
            ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "ada", "PASSWORD": PASSWORD},
        )
        assert challenge["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
        # The current code was spent on verification; the next step's code is within the skew.
        code = state["totp"].at(time.time() + 30)
        response = cognito.respond_to_auth_challenge(
            ClientId=server.client_id, ChallengeName="SOFTWARE_TOKEN_MFA", Session=challenge["Session"],
            ChallengeResponses={"USERNAME": "ada", "SOFTWARE_TOKEN_MFA_CODE": code},
        )
        state["tokens"] = response["AuthenticationResult"]

    def change_password():
        tokens = state["tokens"]
        cognito.change_password(AccessToken=tokens["AccessToken"], PreviousPassword=PASSWORD,
                                ProposedPassword=NEW_PASSWORD)
        expect_error("NotAuthorizedException", lambda: cognito.initiate_auth(
            ClientId=server.client_id, AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]}))
        # As in Cognito, the current access token lives on until it expires or the user signs out.
        assert cognito.get_user(AccessToken=tokens["AccessToken"])["Username"] == "ada"

    def global_sign_out():
        tokens = state["tokens"]
        cognito.global_sign_out(AccessToken=tokens["AccessToken"])
        expect_error("NotAuthorizedException", lambda: cognito.initiate_auth(
            ClientId=server.client_id, AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]}))
        expect_error("NotAuthorizedException", lambda: cognito.get_user(AccessToken=tokens["AccessToken"]))

    def no_user_enumeration():
        def attempt(username):
            return expect_error("NotAuthorizedException", lambda: cognito.initiate_auth(
                ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": "Wrong-Pass-1"})).response["Error"]["Message"]
        assert attempt("ada") == attempt("nobody-at-all")

    def admin_calls_signed_by_botocore():
        cognito.admin_create_user(
            UserPoolId=server.pool_id, Username="author", TemporaryPassword="Temp-Pass-1",
            UserAttributes=[{"Name": "email", "Value": "author@example.com"}], MessageAction="SUPPRESS")
        cognito.create_group(UserPoolId=server.pool_id, GroupName="authors")
        cognito.admin_add_user_to_group(UserPoolId=server.pool_id, Username="author", GroupName="authors")
        users = cognito.list_users(UserPoolId=server.pool_id, Filter='email = "author@example.com"')["Users"]
        assert [user["Username"] for user in users] == ["author"]
        assert cognito.admin_get_user(UserPoolId=server.pool_id, Username="author")["UserStatus"] == "FORCE_CHANGE_PASSWORD"
        cognito.admin_delete_user(UserPoolId=server.pool_id, Username="author")
        intruder = boto3.client("cognito-idp", endpoint_url=server.endpoint, region_name="us-east-1",
                                aws_access_key_id=OPERATOR_KEY, aws_secret_access_key="not-the-secret")
        expect_error("InvalidSignatureException", lambda: intruder.list_users(UserPoolId=server.pool_id))

    return run_checks(server, [
        ("sign-up, code from the outbox, confirm", sign_up_and_confirm),
        ("sign in (USER_PASSWORD_AUTH)", sign_in),
        ("both tokens verify with PyJWT through the discovery document's JWKS", verify_tokens_through_jwks),
        ("refresh (REFRESH_TOKEN_AUTH) rotates the refresh token", refresh),
        ("associate and verify TOTP, enable MFA", enable_totp),
        ("sign in answering the SOFTWARE_TOKEN_MFA challenge", sign_in_with_totp),
        ("change password revokes the refresh token", change_password),
        ("global sign-out: the refresh token fails with NotAuthorizedException", global_sign_out),
        ("unknown user and wrong password look the same", no_user_enumeration),
        ("Admin* calls signed by botocore (SigV4)", admin_calls_signed_by_botocore),
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
