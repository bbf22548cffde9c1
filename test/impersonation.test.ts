/**
 * Impersonation end to end on the MX: swaks sends mail whose From: is a
 * lookalike of our domain (tagged, the header in the Maildir copy), whose
 * display name is a local account's (quarantined to Junk by the operator's
 * table), and ordinary mail from outside (only the external-sender tag);
 * mail submitted by our own account gets no external tag. Forged copies of
 * our header fields are removed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { AccountStore } from "../src/accounts/index.ts";
import { startWardmail, type Wardmail } from "./helpers/wardmail.ts";
import { binaryMissing, peerSkip } from "./helpers/peers.ts";
import { mailWith, swaks } from "./peers/submission.ts";

const skip = peerSkip(binaryMissing("swaks", ["--version"], "swaks"));
const PW = "alice-password-1";
let w: Wardmail | undefined;

const need = (): Wardmail => w ?? assert.fail("set up in before()");
const token = (name: string): string => `${name}-${Math.random().toString(36).slice(2, 10)}`;
const QUEUED = /^<[-~] {2}250 2\.0\.0 Ok: queued/m;
const headersOf = (text: string): string => text.slice(0, text.indexOf("\r\n\r\n") + 2).replace(/\r\n[ \t]+/g, " ");

function mx(from: string, subject: string, extra: string[] = []) {
  return swaks(["--server", `127.0.0.1:${need().smtpPort}`, "--from", "bounce@sender.test", "--to", "user@example.test", "--header", `From: ${from}`, "--header", `Subject: ${subject}`, ...extra]);
}

describe("impersonation on the MX", { skip }, () => {
  before(async () => {
    w = await startWardmail({ workers: 1, extra: '[impersonation]\nexternal_tag = true\n[checks.actions]\n"impersonation.name" = "quarantine"\n' });
    const st = AccountStore.open(w.dataDir, { create: true, localDomains: ["example.test", "localhost"] });
    try {
      await st.addAccount("alice.martin@example.test", PW);
    } finally {
      st.close();
    }
  });
  after(async () => {
    await w?.stop().then(() => w?.cleanup());
  });

  test("a lookalike From: domain is tagged with a clear header; forged copies of our fields are gone", async () => {
    const t = token("lookalike");
    const r = await mx("Payroll <payroll@exarnple.test>", t, ["--add-header", "X-Wardmail-Impersonation: none", "--add-header", "X-Wardmail-External: no"]);
    assert.match(r.out, QUEUED, r.out);
    const h = headersOf(await mailWith(need(), "user@example.test", t));
    assert.match(h, /^X-Wardmail-Impersonation: domain exarnple\.test looks like example\.test \(skeleton\)\r$/m);
    assert.match(h, /^X-Wardmail-Verdict: impersonation\.domain \(tag\)\r$/m);
    assert.equal(h.match(/^X-Wardmail-Impersonation:/gm)?.length, 1, h);
    assert.equal(h.match(/^X-Wardmail-External:/gm)?.length, 1, h);
    assert.match(h, /^X-Wardmail-External: yes\r$/m);
  });

  test("a local account's name on an outside address goes to Junk (operator's table)", async () => {
    const t = token("name");
    const r = await mx('"Alice Martin" <alice.martin.ceo@freemail.test>', t);
    assert.match(r.out, QUEUED, r.out);
    const deadline = Date.now() + 10_000;
    let text = "";
    while (text === "" && Date.now() < deadline) {
      for (const f of await need().maildir("user@example.test", ".Junk")) {
        const s = (await readFile(f)).toString("latin1");
        if (s.includes(t)) text = s;
      }
      if (text === "") await new Promise((res) => setTimeout(res, 50));
    }
    const h = headersOf(text);
    assert.match(h, /^X-Wardmail-Impersonation: name "Alice Martin" is local alice\.martin@example\.test\r$/m, need().output().slice(-2000));
    assert.match(h, /^X-Wardmail-Verdict: impersonation\.name \(quarantine\)\r$/m);
  });

  test("ordinary outside mail gets only the external tag; our own account's mail none", async () => {
    const t = token("plain");
    assert.match((await mx("Carol <carol@freemail.test>", t)).out, QUEUED);
    const h = headersOf(await mailWith(need(), "user@example.test", t));
    assert.match(h, /^X-Wardmail-External: yes\r$/m);
    assert.doesNotMatch(h, /X-Wardmail-(Impersonation|Verdict)/);
    const t2 = token("own");
    const s = await swaks(["--server", `127.0.0.1:${need().submissionPort}`, "--tls", "--auth", "PLAIN", "--auth-user", "alice.martin@example.test", "--auth-password", PW,
      "--from", "alice.martin@example.test", "--to", "user@example.test", "--header", `Subject: ${t2}`]);
    assert.match(s.out, QUEUED, s.out);
    assert.doesNotMatch(headersOf(await mailWith(need(), "user@example.test", t2)), /X-Wardmail-(External|Impersonation)/);
  });
});
