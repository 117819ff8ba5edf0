// The AWS SDK for JavaScript v3 as a mobile or web app uses it, against `stratus serve --tls`:
// sign in through the user pool, trade the ID token for credentials with
// `fromCognitoIdentityPool`, and use S3 with them — the own folder works, another is refused.
//
// Usage: node tests/sdk-js/identity_pool_s3.mjs path/to/stratus

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  InitiateAuthCommand,
} from "@aws-sdk/client-cognito-identity-provider";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { fromCognitoIdentityPool } from "@aws-sdk/credential-providers";
import { NodeHttpHandler } from "@smithy/node-http-handler";

const OPERATOR = { accessKeyId: "AKIASTRATUSJSSDK0001", secretAccessKey: "stratus-js-sdk-operator-secret" };
const region = "us-east-1";

async function startServer(binary) {
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-js-sdk-"));
  const server = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--stage", "test", "--data-dir", dataDir, "--tls"], {
    env: {
      ...process.env,
      STRATUS_LOG__FORMAT: "json",
      STRATUS_IDENTITY__OPERATOR_ACCESS_KEY_ID: OPERATOR.accessKeyId,
      STRATUS_IDENTITY__OPERATOR_SECRET_ACCESS_KEY: OPERATOR.secretAccessKey,
    },
    stdio: ["ignore", "pipe", "ignore"],
  });
  const lines = [];
  for await (const line of createInterface({ input: server.stdout })) {
    lines.push(line);
    if (line.startsWith("Stop with")) break;
  }
  server.stdout.resume();
  const banner = lines.join("\n");
  const find = (pattern) => banner.match(pattern)?.[1] ?? assert.fail(`${pattern} not in the banner:\n${banner}`);
  return {
    server,
    dataDir,
    endpoint: find(/Cognito-compatible endpoint: (\S+)/),
    s3: find(/S3-compatible endpoint: (\S+)/),
    poolId: find(/pool `default`: id (\S+)/),
    clientId: find(/app client `app`: (\S+)/),
    identityPoolId: find(/identity pool `default`: id (\S+)/),
    ca: find(/trust (\S+)/),
  };
}

const assert = {
  ok(value, message) {
    if (!value) throw new Error(message);
  },
  fail(message) {
    throw new Error(message);
  },
};

async function main(binary) {
  const stratus = await startServer(binary);
  const requestHandler = new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(stratus.ca) }) });
  const results = [];
  const check = async (name, run) => {
    try {
      await run();
      results.push(true);
      console.log(`ok   ${name}`);
    } catch (error) {
      results.push(false);
      console.log(`FAIL ${name}: ${error.stack ?? error}`);
    }
  };
  const idp = new CognitoIdentityProviderClient({ region, endpoint: stratus.endpoint, requestHandler, credentials: OPERATOR });
  const provider = `cognito-idp.${region}.amazonaws.com/${stratus.poolId}`;
  const users = {};

  const signIn = async (name) => {
    const password = "Correct-Horse-9";
    await idp.send(new AdminCreateUserCommand({
      UserPoolId: stratus.poolId, Username: name, MessageAction: "SUPPRESS",
      UserAttributes: [{ Name: "email", Value: `${name}@example.com` }],
    }));
    await idp.send(new AdminSetUserPasswordCommand({
      UserPoolId: stratus.poolId, Username: name, Password: password, Permanent: true,
    }));
    const signedIn = await idp.send(new InitiateAuthCommand({
      ClientId: stratus.clientId, AuthFlow: "USER_PASSWORD_AUTH", AuthParameters: { USERNAME: name, PASSWORD: password },
    }));
    const credentials = fromCognitoIdentityPool({
      identityPoolId: stratus.identityPoolId,
      logins: { [provider]: signedIn.AuthenticationResult.IdToken },
      clientConfig: { region, endpoint: stratus.endpoint, requestHandler },
    });
    const resolved = await credentials();
    const s3 = new S3Client({ region, endpoint: stratus.s3, forcePathStyle: true, requestHandler, credentials });
    users[name] = { identityId: resolved.identityId, resolved, s3 };
  };

  await check("fromCognitoIdentityPool: temporary credentials for a signed-in user", async () => {
    await signIn("ada");
    await signIn("bob");
    const { resolved, identityId } = users.ada;
    assert.ok(resolved.accessKeyId.startsWith("ASIA") && resolved.sessionToken, JSON.stringify(resolved));
    assert.ok(/^us-east-1:[0-9a-f-]{36}$/.test(identityId), identityId);
    assert.ok(resolved.expiration > new Date(), `expires ${resolved.expiration}`);
  });

  await check("S3Client with them: the own folder works (put, get, list)", async () => {
    const { s3, identityId } = users.ada;
    const Key = `${identityId}/from-js.txt`;
    const put = await s3.send(new PutObjectCommand({ Bucket: "user-files", Key, Body: "written by the JS SDK" }));
    assert.ok(put.ETag && put.ServerSideEncryption === "AES256", JSON.stringify(put));
    const got = await s3.send(new GetObjectCommand({ Bucket: "user-files", Key }));
    assert.ok((await got.Body.transformToString()) === "written by the JS SDK", "body");
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: "user-files", Prefix: `${identityId}/` }));
    assert.ok(listed.Contents.map((object) => object.Key).includes(Key), JSON.stringify(listed.Contents));
  });

  await check("another user's folder and the whole bucket are refused", async () => {
    const { s3 } = users.ada;
    for (const send of [
      () => s3.send(new PutObjectCommand({ Bucket: "user-files", Key: `${users.bob.identityId}/x`, Body: "no" })),
      () => s3.send(new ListObjectsV2Command({ Bucket: "user-files" })),
      () => s3.send(new GetObjectCommand({ Bucket: "site", Key: "index.html" })),
    ]) {
      try {
        await send();
        assert.fail("was allowed");
      } catch (error) {
        assert.ok(error.name === "AccessDenied", `${error.name}: ${error.message}`);
      }
    }
  });

  stratus.server.kill("SIGTERM");
  const code = await new Promise((resolve) => stratus.server.on("exit", resolve));
  results.push(code === 0);
  console.log(`${code === 0 ? "ok  " : "FAIL"} stratus stops cleanly on SIGTERM (exit ${code})`);
  rmSync(stratus.dataDir, { recursive: true, force: true });
  const failed = results.filter((passed) => !passed).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main(process.argv[2]);
