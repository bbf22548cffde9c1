/**
 * Where the external conformance material is: `../shared/conformance` next
 * to the repository (the layout of the development machines), else
 * $WARDMAIL_CONFORMANCE, else /work/shared/conformance. A clone placed
 * elsewhere (a CI checkout in /tmp, say) still finds it. Missing
 * everywhere is an error, not a skip: the suites are part of the proof.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export function conformanceDir(): string {
  const candidates = [join(ROOT, "..", "shared", "conformance"), process.env.WARDMAIL_CONFORMANCE, "/work/shared/conformance"];
  for (const c of candidates) if (c !== undefined && c !== "" && existsSync(c)) return c;
  throw new Error(`external conformance material not found (looked in ${candidates.filter(Boolean).join(", ")}); set WARDMAIL_CONFORMANCE`);
}

/** A file under the conformance directory. */
export function conformanceFile(...parts: string[]): string {
  return join(conformanceDir(), ...parts);
}
