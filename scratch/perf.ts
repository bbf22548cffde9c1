import { walkMessage } from "../src/attachments/index.ts";
import { mimeMessage, peFile } from "../test/helpers/samples.ts";
const L = { maxDepth: 5, maxArchiveEntries: 1000, maxUnpacked: 64 << 20 };
const MB = 25 * 1024 * 1024;
const cases: Record<string, Buffer> = {
  "empty lines": Buffer.concat([Buffer.from("From: a@b\r\n\r\n"), Buffer.alloc(MB, "\r\n")]),
  "1-byte lines": Buffer.concat([Buffer.from("From: a@b\r\n\r\n"), Buffer.alloc(MB, "x\r\n")]),
  "one huge line": Buffer.concat([Buffer.from("From: a@b\r\n\r\n"), Buffer.alloc(MB, "x"), Buffer.from("\r\n")]),
  "base64 attachment 18MB": mimeMessage({ attachments: [{ name: "big.bin", data: Buffer.alloc(18 * 1024 * 1024, 7) }] }),
  "boundaries": Buffer.concat([Buffer.from('From: a@b\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'), Buffer.alloc(MB, "--b\r\n\r\n")]),
  "small": mimeMessage({ attachments: [{ name: "a.pdf", data: peFile() }] }),
};
for (const [name, msg] of Object.entries(cases)) {
  let maxGap = 0; let last = performance.now();
  const iv = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; }, 1);
  const t0 = performance.now();
  const f = await walkMessage(msg, L);
  const ms = performance.now() - t0;
  clearInterval(iv);
  console.log(name, Math.round(ms), "ms; max loop gap", Math.round(maxGap), "ms;", f.length, "findings", f[0]?.reason ?? "");
}
