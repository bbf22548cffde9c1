// Reading what a server appended to its log file during a bench run: the
// size before the run, then everything written after that offset.
import { open, stat } from "node:fs/promises";

/** The file's size in bytes; 0 if it does not exist (yet). */
export async function fileSize(p: string): Promise<number> {
  try {
    return (await stat(p)).size;
  } catch {
    return 0;
  }
}

/**
 * The file from byte `offset` to its end, as latin1 text. A file that cannot
 * be opened throws, or with `missingOk` reads as "".
 */
export async function readFrom(p: string, offset: number, { missingOk = false } = {}): Promise<string> {
  let fh;
  try {
    fh = await open(p, "r");
  } catch (e) {
    if (missingOk) return "";
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString("latin1");
  } finally {
    await fh.close();
  }
}
