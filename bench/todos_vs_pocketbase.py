"""The todos API against PocketBase with the same data, measured with wrk on loopback in the
same run: 20 todos per user, authenticated requests, GET one todo and GET the list of 20.
PocketBase's `todos` collection restricts every record to its owner with API rules (the
equivalent of Stratus's per-user partition); both log nothing per request.

Stratus is measured on three paths: the gateway's response cache (hit), the function over the
table's read cache (response cache off), and the function over SQLite (both caches off); and
once more with a usage plan's API key on the cache-off path, for the gateway's overhead.

The blog's list of 20 published posts (~4 KB of Markdown each) is measured on the miss path
too, against a PocketBase `posts` collection with the same posts, listed publicly with the same
fields (`perPage=20&skipTotal=1`, newest first).

Usage: python todos_vs_pocketbase.py path/to/stratus path/to/pocketbase
Environment: THREADS, CONNECTIONS, DURATION (wrk's), as in the other benches. The stage throttle is
raised for the run: its default (10,000 requests/s, as on API Gateway) would cap the figures.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "clients"))
import boto3  # noqa: E402

from cognito_flow import OPERATOR_KEY, OPERATOR_SECRET, PASSWORD, code_from_outbox  # noqa: E402
from stratus_server import StratusServer  # noqa: E402

THREADS = os.environ.get("THREADS", "2")
CONNECTIONS = os.environ.get("CONNECTIONS", "32")
DURATION = os.environ.get("DURATION", "10s")
TODOS = 20
POSTS = 20
PARAGRAPH = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
             "labore et dolore magna aliqua. ") * 4


def post(i):
    return {"slug": f"post-{i}", "title": f"Post number {i}", "summary": PARAGRAPH[:200],
            "body": f"# Post {i}\n\n" + "\n\n".join(PARAGRAPH for _ in range(8)),
            "tags": ["travel", "photos", f"t{i % 3}"], "publish_date": f"2026-11-{i + 1:02d}T10:00:00Z"}


def request(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {url}: {error.code} {error.read().decode(errors='replace')}") from None


def wrk(url, headers):
    arguments = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency"]
    for name, value in headers.items():
        arguments += ["-H", f"{name}: {value}"]
    output = subprocess.run([*arguments, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise AssertionError(f"{url}: {errors.group(1)} failed responses\n{output}")
    return rate, float(p99.group(1)) * scale


def stratus(binary, env):
    server = StratusServer(binary, env={
        "STRATUS_IDENTITY__OPERATOR_ACCESS_KEY_ID": OPERATOR_KEY,
        "STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY": OPERATOR_SECRET,
        "STRATUS_LOG__FILTER": "off",
        # wrk's connections all come from 127.0.0.1.
        "STRATUS_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "4096",
        # The stage throttle's default (API Gateway's 10,000 requests/s) would cap the figures.
        "STRATUS_GATEWAY__RATE": "10000000",
        "STRATUS_GATEWAY__BURST": "10000000",
        **env,
    })
    cognito = boto3.client("cognito-idp", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=OPERATOR_SECRET)
    cognito.sign_up(ClientId=server.client_id, Username="bench", Password=PASSWORD,
                    UserAttributes=[{"Name": "email", "Value": "bench@example.com"}])
    code = code_from_outbox(server, "bench@example.com", set())
    cognito.confirm_sign_up(ClientId=server.client_id, Username="bench", ConfirmationCode=code)
    token = cognito.initiate_auth(ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                  AuthParameters={"USERNAME": "bench", "PASSWORD": PASSWORD})["AuthenticationResult"]["AccessToken"]
    return server, {"Authorization": f"Bearer {token}"}


def measure_stratus(binary, label, env, with_key=False, floor=None):
    server, headers = stratus(binary, env)
    try:
        if with_key:
            key = subprocess.run([binary, "api-keys", "create", "--plan", "bench", "--name", "bench",
                                  "--stage", "test", "--data-dir", server.data_dir],
                                 capture_output=True, text=True, check=True, env=server.environment).stdout.strip()
            headers["x-api-key"] = key
        ids = [request("POST", f"{server.endpoint}/v1/todos", {"title": f"todo {i}", "position": i}, headers)["id"]
               for i in range(TODOS)]
        page = request("GET", f"{server.endpoint}/v1/todos?limit={TODOS}", headers=headers)
        assert len(page["items"]) == TODOS, page
        one = wrk(f"{server.endpoint}/v1/todos/{ids[7]}", headers)
        listed = wrk(f"{server.endpoint}/v1/todos?limit={TODOS}", headers)
        if floor is not None:
            # What the listener answers at for a route that does nothing: no cached response can
            # be served faster on this machine.
            floor.append(wrk(f"{server.endpoint}/healthz", {}))
        return label, one, listed
    finally:
        server.stop()


def measure_stratus_blog(binary):
    env = {"STRATUS_GATEWAY__CACHE_TTL": "0s", "STRATUS_TABLE__CACHE_TTL": "0s"}
    server, _ = stratus(binary, env)
    try:
        cognito = boto3.client("cognito-idp", endpoint_url=server.endpoint, region_name="us-east-1",
                               aws_access_key_id=OPERATOR_KEY, aws_secret_access_key=OPERATOR_SECRET)
        cognito.create_group(UserPoolId=server.pool_id, GroupName="authors")
        cognito.admin_add_user_to_group(UserPoolId=server.pool_id, Username="bench", GroupName="authors")
        token = cognito.initiate_auth(ClientId=server.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                      AuthParameters={"USERNAME": "bench", "PASSWORD": PASSWORD})
        author = {"Authorization": f"Bearer {token['AuthenticationResult']['AccessToken']}"}
        for i in range(POSTS):
            request("POST", f"{server.endpoint}/v1/posts", {**post(i), "status": "published"}, author)
        listing = f"{server.endpoint}/v1/posts?limit={POSTS}"
        assert len(request("GET", listing)["items"]) == POSTS
        return wrk(listing, {})
    finally:
        server.stop()


def pocketbase_posts(request_as_admin, base):
    """The blog's posts in PocketBase: a public `posts` collection, listed newest first with the
    fields Stratus's listing shows."""
    request_as_admin("POST", f"{base}/api/collections", {
        "name": "posts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "slug", "type": "text", "required": True},
            {"name": "title", "type": "text", "required": True},
            {"name": "summary", "type": "text"},
            {"name": "body", "type": "text", "max": 100000},
            {"name": "tags", "type": "json"},
            {"name": "cover", "type": "text"},
            {"name": "publish_date", "type": "date"},
        ],
        "indexes": ["CREATE INDEX idx_posts_date ON posts (publish_date)"],
    })
    for i in range(POSTS):
        request_as_admin("POST", f"{base}/api/collections/posts/records", post(i))
    listing = (f"{base}/api/collections/posts/records?perPage={POSTS}&skipTotal=1&sort=-publish_date"
               "&fields=slug,title,summary,tags,cover,publish_date")
    assert len(request("GET", listing)["items"]) == POSTS
    return wrk(listing, {})


def measure_pocketbase(binary):
    workspace = tempfile.mkdtemp(prefix="pocketbase-bench-")
    # Its data and migrations inside the run's own directory: PocketBase writes migrations
    # beside its data directory, where a later run would find them.
    where = ["--dir", f"{workspace}/pb_data", "--migrationsDir", f"{workspace}/pb_migrations", "--automigrate=false"]
    port = 18090 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    subprocess.run([binary, "superuser", "upsert", "admin@example.com", "bench-password-1", *where],
                   check=True, capture_output=True)
    process = subprocess.Popen([binary, "serve", "--http", f"127.0.0.1:{port}", *where],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/api/health")
                break
            except OSError:
                time.sleep(0.1)
        admin = request("POST", f"{base}/api/collections/_superusers/auth-with-password",
                        {"identity": "admin@example.com", "password": "bench-password-1"})["token"]
        as_admin = {"Authorization": admin}
        # No request logs, as Stratus runs with its log off.
        request("PATCH", f"{base}/api/settings", {"logs": {"maxDays": 0}}, as_admin)
        owner_only = "owner = @request.auth.id"
        request("POST", f"{base}/api/collections", {
            "name": "todos", "type": "base",
            "listRule": owner_only, "viewRule": owner_only, "createRule": "@request.auth.id != ''",
            "updateRule": owner_only, "deleteRule": owner_only,
            "fields": [
                {"name": "title", "type": "text", "required": True},
                {"name": "notes", "type": "text"},
                {"name": "done", "type": "bool"},
                {"name": "priority", "type": "number"},
                {"name": "position", "type": "number"},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "required": True},
            ],
        }, as_admin)
        request("POST", f"{base}/api/collections/users/records",
                {"email": "bench@example.com", "password": "bench-password-1", "passwordConfirm": "bench-password-1"})
        auth = request("POST", f"{base}/api/collections/users/auth-with-password",
                       {"identity": "bench@example.com", "password": "bench-password-1"})
        headers = {"Authorization": auth["token"]}
        ids = [request("POST", f"{base}/api/collections/todos/records",
                       {"title": f"todo {i}", "position": i, "owner": auth["record"]["id"]}, headers)["id"]
               for i in range(TODOS)]
        listing = f"{base}/api/collections/todos/records?perPage={TODOS}&skipTotal=1&sort=position"
        assert len(request("GET", listing, headers=headers)["items"]) == TODOS
        one = wrk(f"{base}/api/collections/todos/records/{ids[7]}", headers)
        listed = wrk(listing, headers)
        posts = pocketbase_posts(lambda method, url, body: request(method, url, body, as_admin), base)
        return ("PocketBase 0.40 (API rules: owner only)", one, listed), posts
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workspace, ignore_errors=True)


def main(stratus_binary, pocketbase_binary):
    print(f"wrk: {THREADS} threads, {CONNECTIONS} connections, {DURATION} per figure; {TODOS} todos per user")
    peer, peer_posts = measure_pocketbase(pocketbase_binary)
    cache_off = {"STRATUS_GATEWAY__CACHE_TTL": "0s"}
    floor = []
    rows = [
        measure_stratus(stratus_binary, "Stratus: gateway cache hit", {}, floor=floor),
        measure_stratus(stratus_binary, "Stratus: function + table cache", cache_off),
        measure_stratus(stratus_binary, "Stratus: function + SQLite (miss)", {**cache_off, "STRATUS_TABLE__CACHE_TTL": "0s"}),
        measure_stratus(stratus_binary, "Stratus: + API key, plan, quota", {
            **cache_off, "STRATUS_GATEWAY__PLANS": '{bench={rate=1000000,burst=1000000,quota=1000000000,period="month"}}',
        }, with_key=True),
        peer,
    ]
    print(f"{'':38} {'GET one':>22} {'GET list of 20':>22}")
    for label, (one_rate, one_p99), (list_rate, list_p99) in rows:
        print(f"{label:38} {one_rate:>10.0f} req/s {one_p99:>6.2f} ms {list_rate:>10.0f} req/s {list_p99:>6.2f} ms  (p99)")
    _, (peer_one, _), (peer_list, _) = peer
    print("ratios to PocketBase (req/s; goal ≥ 10× on the hit path, ≥ 3× on the miss path):")
    for label, (one_rate, _), (list_rate, _) in rows[:-1]:
        print(f"  {label:36} GET one {one_rate / peer_one:5.1f}×   list {list_rate / peer_list:5.1f}×")
    (_, (bare_one, _), (bare_list, _)), (_, (keyed_one, _), (keyed_list, _)) = rows[1], rows[3]
    (floor_rate, floor_p99), = floor
    print(f"  HTTP floor (GET /healthz, no function) {floor_rate:.0f} req/s, p99 {floor_p99:.2f} ms: "
          f"{floor_rate / peer_one:.1f}× PocketBase's GET one — no answer can beat it here")
    posts = measure_stratus_blog(stratus_binary)
    print(f"blog list of {POSTS} posts, miss path: Stratus {posts[0]:.0f} req/s (p99 {posts[1]:.2f} ms), "
          f"PocketBase {peer_posts[0]:.0f} req/s (p99 {peer_posts[1]:.2f} ms): {posts[0] / peer_posts[0]:.1f}× (goal ≥ 3×)")
    print(f"gateway overhead of key + plan + quota on the cache-off path: GET one {100 * (1 - keyed_one / bare_one):+.1f} %, "
          f"list {100 * (1 - keyed_list / bare_list):+.1f} % (goal ≤ 10 %)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
