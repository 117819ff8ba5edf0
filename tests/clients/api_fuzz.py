"""The REST APIs fuzzed from their own OpenAPI document by schemathesis, with a real access token
(a user in the authors and admins groups): no response may be a 5xx, and every response must
be one the document lists, of its content type and schema. A bounded run; raise
`API_FUZZ_EXAMPLES` for a longer one.

Usage: python api_fuzz.py path/to/stratus
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3

from cognito_flow import PASSWORD, OPERATOR_KEY, OPERATOR_SECRET, code_from_outbox, operator_server
from stratus_server import run_checks

# The checks that say the server answers as its document says.
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def main(binary):
    server = operator_server(binary)
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=OPERATOR_KEY,
        aws_secret_access_key=OPERATOR_SECRET,
    )
    state = {}

    def sign_in_as_author_and_admin():
        address = "fuzz@example.com"
        cognito.sign_up(ClientId=server.client_id, Username="fuzz", Password=PASSWORD,
                        UserAttributes=[{"Name": "email", "Value": address}])
        code = code_from_outbox(server, address, set())
        cognito.confirm_sign_up(ClientId=server.client_id, Username="fuzz", ConfirmationCode=code)
        for group in ("authors", "admins"):
            cognito.create_group(UserPoolId=server.pool_id, GroupName=group)
            cognito.admin_add_user_to_group(UserPoolId=server.pool_id, Username="fuzz", GroupName=group)
        result = cognito.initiate_auth(ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                       AuthParameters={"USERNAME": "fuzz", "PASSWORD": PASSWORD})
        state["token"] = result["AuthenticationResult"]["AccessToken"]

    def fuzz_every_operation():
        schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        examples = os.environ.get("API_FUZZ_EXAMPLES", "20")
        command = [
            schemathesis, "run", f"{server.endpoint}/v1/openapi.json",
            "--header", f"Authorization: Bearer {state['token']}",
            "--checks", CHECKS, "--max-examples", examples,
            "--phases", "examples,coverage,fuzzing", "--workers", "2",
            # Uploads are random bytes as photos; the media suites test them.
            "--exclude-path-regex", "^/v1/photos",
            "--no-color",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        print(result.stdout[-6000:])
        assert result.returncode == 0, f"schemathesis found failures:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"

    return run_checks(server, [
        ("sign in as a user of the authors and admins groups", sign_in_as_author_and_admin),
        ("schemathesis: no 5xx, every response as the document says", fuzz_every_operation),
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
