/**
 * The command-line reader of the protocol core: finds the next line in the
 * input, honouring the bare line ending policy, and deals with over-long
 * lines by discarding them up to their end (so the stream never
 * desynchronises) and reporting them once.
 *
 * Line endings: CRLF only under "reject" (a bare CR or LF stays inside the
 * line, where the session refuses it); under "normalize" a bare CR or LF
 * also ends a line (a CR at the end of the input waits for the next byte).
 */
import { CR, LF } from "./bytes.ts";

export type LineEvent =
  /** A complete line (without its ending); go on at next. */
  | { readonly kind: "line"; readonly line: Buffer; readonly next: number }
  /** An over-long line ended here: reply "line too long"; go on at next. */
  | { readonly kind: "too-long"; readonly next: number }
  /**
   * Need more input. keep: the bytes from pos on are a partial line the
   * caller must keep and feed again; otherwise they were discarded.
   */
  | { readonly kind: "more"; readonly keep: boolean };

export class LineReader {
  private readonly normalize: boolean;
  /** Discarding the rest of an over-long line. */
  private discarding = false;
  private sawCr = false;

  constructor(normalize: boolean) {
    this.normalize = normalize;
  }

  /** Reads the next line from buf at pos; max counts the line with its CRLF. */
  read(buf: Buffer, pos: number, max: number): LineEvent {
    if (this.discarding) return this.skip(buf, pos);
    let end = -1; // index of first byte of the line ending
    let next = -1; // index after the line ending
    if (this.normalize) {
      for (let i = pos; i < buf.length; i++) {
        const b = buf[i];
        if (b === LF) {
          end = i;
          next = i + 1;
          break;
        }
        if (b === CR) {
          if (i + 1 >= buf.length) break; // need to see what follows the CR
          end = i;
          next = buf[i + 1] === LF ? i + 2 : i + 1;
          break;
        }
      }
    } else {
      const i = buf.indexOf("\r\n", pos, "latin1");
      if (i >= 0) {
        end = i;
        next = i + 2;
      }
    }
    if (end < 0) {
      if (buf.length - pos >= max) {
        // Over-long: drop what we have, discard up to the next line end, then report.
        this.discarding = true;
        this.sawCr = buf[buf.length - 1] === CR;
        return { kind: "more", keep: false };
      }
      return { kind: "more", keep: true };
    }
    if (end - pos + 2 > max) return { kind: "too-long", next };
    return { kind: "line", line: buf.subarray(pos, end), next };
  }

  /** Discards input until the end of an over-long line. */
  private skip(buf: Buffer, pos: number): LineEvent {
    for (let i = pos; i < buf.length; i++) {
      const b = buf[i];
      if (this.sawCr) {
        this.sawCr = false;
        if (b === LF) return this.ended(i + 1);
        if (this.normalize) return this.ended(i); // a bare CR ended it
      }
      if (b === CR) this.sawCr = true;
      else if (b === LF && this.normalize) return this.ended(i + 1);
    }
    return { kind: "more", keep: false };
  }

  private ended(next: number): LineEvent {
    this.discarding = false;
    this.sawCr = false;
    return { kind: "too-long", next };
  }
}
