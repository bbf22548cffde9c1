/**
 * Every fake end-of-data sequence of the external smuggling table
 * (../shared/conformance/smuggling/eod-payloads.json, used as is) fed to the
 * protocol core under both bare-line-ending policies. The same payloads go
 * over real sockets in test/smuggling.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { conformanceFile } from "../../test/helpers/conformance.ts";
import { transcript } from "../../test/helpers/transcript.ts";

const file = conformanceFile("smuggling", "eod-payloads.json");
const table = JSON.parse(readFileSync(file, "utf8")) as { payloads: { id: string; hex: string }[] };

export function smuggle(payloadHex: string): Buffer {
  const seq = Buffer.from(payloadHex.replace(/ /g, ""), "hex");
  return Buffer.concat([
    Buffer.from("EHLO attacker.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n"),
    Buffer.from("Subject: first\r\n\r\nhello"),
    seq,
    Buffer.from("mail FROM:<evil@forged.test>\r\nrcpt TO:<other@example.test>\r\ndata\r\nSubject: smuggled\r\n\r\nevil\r\n"),
    Buffer.from("\r\n.\r\nQUIT\r\n"),
  ]);
}

test("the payload table is there and complete", () => {
  assert.ok(table.payloads.length >= 16);
});

for (const policy of ["reject", "normalize"] as const) {
  for (const p of table.payloads) {
    test(`smuggling ${p.id} (${policy}): never a second transaction, never a bare line ending stored`, () => {
      const input = smuggle(p.hex);
      // Whole, and split at every position around the payload.
      const splits = [[input], [...input].map((b) => Buffer.from([b]))];
      for (const writes of splits) {
        const r = transcript(writes, { bareLineEndings: policy });
        assert.ok(r.messages.length <= 1, `${r.messages.length} messages`);
        for (const m of r.messages) {
          assert.deepEqual(m.envelope.recipients.map((x) => x.address), ["user@example.test"]);
          assert.equal(m.envelope.mailFrom, "a@sender.test");
          const text = m.content.toString("latin1");
          assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n|\0/, "stored content must be clean CRLF");
        }
        // The smuggled MAIL must never have been accepted as a command.
        const accepted = r.lines.filter((l) => l.startsWith("250 2.1.0")).length;
        assert.equal(accepted, 1, r.output);
      }
    });
  }
}
