// The HTTPS listener's effective default: on (port 443 of acme.http_listen's
// hosts) when acme.directory is set and https.listen is not written; an
// explicit https.listen, even [], wins.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { loadConfig } from "./index.ts";

let dir = "";
const ENV = { WARDMAIL_HOME: "/var/lib/wardmail-test" };
const ACME = '[acme]\ndirectory = "https://acme.example/dir"\n';

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "wardmail-https-default-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function httpsListen(name: string, content: string): Promise<readonly { host: string; port: number }[]> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return (await loadConfig(file, ENV)).https.listen;
}

void test("without ACME the HTTPS listener stays off by default", async () => {
  assert.deepEqual(await httpsListen("none.toml", '[server]\nhostname = "mx.example.org"\n'), []);
  assert.deepEqual(await httpsListen("empty-dir.toml", '[acme]\ndirectory = ""\nhttp_listen = ["0.0.0.0:80"]\n'), []);
});

void test("with acme.directory set, https.listen defaults to port 443 of acme.http_listen's default host", async () => {
  assert.deepEqual(await httpsListen("acme.toml", ACME), [{ host: "0.0.0.0", port: 443 }]);
});

void test("each host of acme.http_listen gets port 443, once", async () => {
  const toml = `${ACME}http_listen = ["192.0.2.10:80", "[2001:db8::10]:80", "192.0.2.10:8080"]\n`;
  assert.deepEqual(await httpsListen("hosts.toml", toml), [
    { host: "192.0.2.10", port: 443 },
    { host: "2001:db8::10", port: 443 },
  ]);
});

void test("an explicit https.listen wins: [] keeps the listener off, addresses are used as written", async () => {
  assert.deepEqual(await httpsListen("off.toml", `${ACME}[https]\nlisten = []\n`), []);
  assert.deepEqual(await httpsListen("own.toml", `${ACME}[https]\nlisten = ["127.0.0.1:8443"]\n`), [{ host: "127.0.0.1", port: 8443 }]);
});

void test("a bad acme.http_listen is reported at its own key, with no HTTPS address made up from it", async () => {
  await writeFile(path.join(dir, "bad.toml"), `${ACME}http_listen = ["nowhere"]\n`);
  await assert.rejects(loadConfig(path.join(dir, "bad.toml"), ENV), (err: Error & { issues?: { key: string }[] }) => {
    assert.deepEqual(err.issues?.map((i) => i.key), ["acme.http_listen[0]"]);
    return true;
  });
});
