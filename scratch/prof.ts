import { walkMessage } from "../src/attachments/index.ts";
import { mimeMessage, pdfFile } from "../test/helpers/samples.ts";
const L = { maxDepth: 5, maxArchiveEntries: 1000, maxUnpacked: 64 << 20 };
const plain = Buffer.concat([Buffer.from("From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\n"), Buffer.from("La de da de da 1.\r\n".repeat(540))]);
const multi = mimeMessage({ text: "hello\r\n".repeat(500), attachments: [{ name: "a.pdf", data: Buffer.concat([pdfFile(), Buffer.alloc(8000, 65)]) }] });
for (const [name, msg] of [["plain", plain], ["multi", multi]] as const) {
  for (let i = 0; i < 300; i++) await walkMessage(msg, L);
  const t0 = performance.now(); const c0 = process.cpuUsage();
  for (let i = 0; i < 2000; i++) await walkMessage(msg, L);
  const c = process.cpuUsage(c0);
  console.log(name, msg.length, "bytes", ((performance.now() - t0) / 2000).toFixed(3), "ms wall/msg", ((c.user + c.system) / 1000 / 2000).toFixed(3), "ms cpu/msg");
}
