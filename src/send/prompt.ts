/**
 * Secrets for `wardmail send`: from a file (first line; the file should be
 * 0600) or asked on the controlling terminal (/dev/tty, not standard input,
 * which carries the message body) without echo. Never printed or logged.
 */
import { openSync, closeSync } from "node:fs";
import tty from "node:tty";
import { readBounded } from "./keyring.ts";

export const MAX_SECRET = 1024;

export class PromptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PromptError";
  }
}

/** The first line of file (without its line end). */
export async function secretFromFile(file: string, what: string): Promise<string> {
  const text = (await readBounded(file, what)).toString("utf8");
  const line = text.split(/\r?\n/, 1)[0] ?? "";
  if (line === "") throw new PromptError(`${what} ${file} is empty`);
  if (Buffer.byteLength(line) > MAX_SECRET) throw new PromptError(`${what} in ${file} is longer than ${MAX_SECRET} bytes`);
  return line;
}

/** Asks on the terminal without echo. Throws PromptError when there is no terminal or the user interrupts. */
export function askHidden(prompt: string): Promise<string> {
  let fd: number;
  try {
    fd = openSync("/dev/tty", "r+");
  } catch {
    return Promise.reject(new PromptError(`no terminal to ask for the ${prompt.replace(/:\s*$/, "")}: give it in a file (see --help)`));
  }
  const input = new tty.ReadStream(fd);
  const output = new tty.WriteStream(openSync("/dev/tty", "w"));
  output.write(prompt);
  input.setRawMode(true);
  return new Promise<string>((resolve, reject) => {
    let value = "";
    const done = (err?: Error): void => {
      input.setRawMode(false);
      input.off("data", onData);
      input.destroy();
      output.write("\n");
      output.destroy();
      try {
        closeSync(fd);
      } catch {
        // already closed by the stream
      }
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003" || ch === "\u0004") return done(new PromptError("interrupted"));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (ch >= " ") value += ch;
        if (Buffer.byteLength(value) > MAX_SECRET) return done(new PromptError(`longer than ${MAX_SECRET} bytes`));
      }
    };
    input.on("data", onData);
  });
}
