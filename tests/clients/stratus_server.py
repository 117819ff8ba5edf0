"""Starts `stratus serve` on a free port with its own data directory, for real-client suites."""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import traceback
from pathlib import Path


class StratusServer:
    def __init__(self, binary, env=None, args=()):
        self.data_dir = tempfile.mkdtemp(prefix="stratus-clients-")
        environment = dict(os.environ, STRATUS_LOG__FORMAT="json", **(env or {}))
        self.environment = environment
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--stage", "test", "--data-dir", self.data_dir, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
            text=True,
        )
        self.banner = []
        for line in self.process.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.startswith("Stop with"):
                break
        # Keep draining stdout so the server never writes to a closed pipe.
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        text = "\n".join(self.banner)
        self.endpoint = re.search(r"Cognito-compatible endpoint: (\S+)", text).group(1)
        self.s3_endpoint = re.search(r"S3-compatible endpoint: (\S+)", text).group(1)
        # With `--tls`: the local CA to verify both endpoints with.
        ca = re.search(r"HTTPS with a local CA: trust (\S+)", text)
        self.ca = ca.group(1) if ca else None
        self.pool_id = re.search(r"pool `default`: id (\S+)", text).group(1)
        self.issuer = re.search(r"issuer (\S+)", text).group(1)
        self.client_id = re.search(r"app client `app`: (\S+)", text).group(1)
        self.identity_pool_id = re.search(r"identity pool `default`: id (\S+)", text).group(1)

    def outbox(self):
        return Path(self.data_dir) / "test" / "outbox"

    def stop(self):
        self.process.terminate()
        code = self.process.wait(timeout=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return code


def run_checks(server, checks):
    """Runs each (name, function) in order, reporting every failure and going on; then stops the
    server (which must exit cleanly) and returns the process exit code for the suite."""
    results = []

    def check(name, function):
        try:
            function()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as error:  # noqa: BLE001 - report every failure, then go on
            results.append((name, error))
            print(f"FAIL {name}: {error!r}")
            traceback.print_exc()

    def stopped_cleanly():
        code = server.stop()
        assert code == 0, f"exit code {code}"

    try:
        for name, function in checks:
            check(name, function)
    finally:
        check("stratus stops cleanly on SIGTERM", stopped_cleanly)
    failed = sum(1 for _, error in results if error is not None)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
