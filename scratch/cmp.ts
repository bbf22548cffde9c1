import { startWardmail } from "../bench/wardmail.ts";
import { runLoad } from "../bench/load.ts";
import { treeCpuSeconds } from "../test/peers/procs.ts";
const variants: Record<string, string> = {
  off: "[attachments]\nenabled = false\n[antivirus]\nenabled = false\n",
  attachments: "[antivirus]\nenabled = false\n",
};
for (let round = 0; round < 2; round++) for (const [name, extra] of Object.entries(variants)) {
  const wm = await startWardmail({ delivery: "discard", extra });
  const spec = { port: wm.paths.smtpPort, sessions: 20, messages: 600, perConnection: 10, perConnectionMode: "exact" as const, size: 10240, from: "s@bench.test", to: "sink@bench.test", helo: "c.bench.test", timeoutMs: 120000 };
  await runLoad({ ...spec, messages: 100 });
  const c0 = treeCpuSeconds(wm.pid);
  const r = await runLoad(spec);
  const cpu = treeCpuSeconds(wm.pid) - c0;
  console.log(name, r.ok, Math.round(spec.messages / (r.wallMs / 1000)), "msg/s", (cpu * 1000 / spec.messages).toFixed(2), "ms CPU/msg");
  await wm.stop();
}
