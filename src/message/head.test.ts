// The header section and the author (From:) read once per message and
// shared: MessageHead parses the author on first use and keeps it; the DMARC
// check (src/mailauth), the impersonation check and sender ownership
// (src/submission) take it from the check input / the caller instead of
// parsing From: again, and read their own only for other content.
import { test } from "node:test";
import assert from "node:assert/strict";
import { authorOf, headerFields, headOf, MessageHead, type Author } from "./index.ts";
import { SenderAuthCheck } from "../mailauth/index.ts";
import { ImpersonationCheck } from "../impersonation/index.ts";
import { checkFromHeader } from "../submission/index.ts";
import { TransactionState, type CheckInput } from "../policy/index.ts";

const content = Buffer.from("Received: x\r\nFrom: \"Alice Martin\" <alice@examp1e.org>\r\nSubject: s\r\n\r\nbody\r\n");

/** A head that counts how often its author is asked for. */
class CountingHead extends MessageHead {
  asked = 0;
  override get author(): Author {
    this.asked++;
    return super.author;
  }
}

test("MessageHead: fields read once, the author parsed on first use and kept; headOf reuses a head only for its own content", () => {
  const head = new MessageHead(content);
  assert.deepEqual(head.fields, headerFields(content));
  const a = head.author;
  assert.equal(head.author, a, "the same parsed author, not a second parse");
  assert.deepEqual(a, authorOf(content));
  assert.equal(headOf(content, head), head);
  const other = Buffer.from(content);
  assert.notEqual(headOf(other, head), head, "another buffer gets its own head");
  assert.deepEqual(headOf(other, head).author, a);
});

async function noDns(name: string): Promise<unknown> {
  return Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: "ENOTFOUND" }));
}

test("the DMARC / From: check, the impersonation check and sender ownership take the author from the shared head", async () => {
  const head = new CountingHead(content);
  const input: CheckInput = { clientIp: "192.0.2.1", helo: "h.test", mailFrom: "x@examp1e.org", recipients: ["bob@example.org"], content, head, state: new TransactionState(), signal: new AbortController().signal };
  const auth = new SenderAuthCheck({ resolver: noDns, authservId: "mx.test", checks: { trustedArcSealers: [], dmarcOverrides: {} }, localDomains: ["example.org"] });
  const imp = new ImpersonationCheck({ localDomains: ["example.org"], enabled: true, externalTag: false, localAddresses: () => ["alice.martin@example.org"] });
  try {
    const d = await auth.data(input);
    assert.ok(d.verdicts.includes("dmarc.none"), String(d.verdicts));
    assert.ok(head.asked >= 1, "the DMARC check used the shared author");
    const before = head.asked;
    const i = imp.data(input);
    assert.deepEqual(i.verdicts, ["impersonation.domain", "impersonation.name"]);
    assert.ok(head.asked > before, "the impersonation check used the shared author");
    const owned = head.asked;
    assert.equal(checkFromHeader(content, (a) => a === "alice@examp1e.org", head), undefined);
    assert.ok(head.asked > owned, "sender ownership used the shared author");
  } finally {
    auth.close();
  }
});
