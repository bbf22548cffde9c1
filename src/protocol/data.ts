/**
 * Message content receivers: DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT
 * (RFC 3030). Pure byte machines: bytes in, clean content out.
 *
 * Guarantees (the SMTP smuggling defence, CVE-2023-51764/5/6):
 * - DATA ends only on CR LF "." CR LF, where the CR LF before the dot is a
 *   real one (or the start of the content). A bare LF or bare CR never starts
 *   a line that could end the message, under either policy.
 * - Bare CR or LF: policy "reject" marks the message bad and discards the rest
 *   up to the real end; policy "normalize" turns it into CRLF in the output.
 * - NUL is always refused (RFC 5321 §4.5.2 text; no BINARYMIME here).
 * - The output has clean CRLF line endings and is dot-unstuffed.
 * - Past the size limit the rest is read and discarded, so the stream stays
 *   in sync, and the result says "size"; a header section (up to the first
 *   empty line) longer than its limit likewise gives "header" (Postfix's
 *   header_size_limit): no parser downstream ever sees an unbounded header.
 * Memory: the output is copied into 64 KB blocks (the first starts at 8 KB,
 * or at the content bytes already read when more, and doubles, so a small
 * message takes one buffer of about its size and no concat), so what is
 * held is the content itself plus one block, whatever the line structure
 * (dot-led lines, 1-byte lines, one huge line); capped by the size limit.
 * CPU: one pass over each byte.
 */
import { isAscii } from "node:buffer";
import type { BareLineEndingPolicy } from "./session-types.ts";
import { CR, LF, DOT, CRLF, DOT_BUF, DOT_CRLF } from "./bytes.ts";

export type ContentProblem = "size" | "header" | "bare-line-ending" | "nul";

/** The outcome of a finished DATA or BDAT transfer. */
export interface ContentResult {
  /** Problem that makes the message unacceptable; undefined when fine. */
  readonly problem?: ContentProblem;
  /** Content with CRLF endings (empty when there is a problem). */
  readonly content: Buffer;
  /** True when a byte >= 0x80 was seen. */
  readonly eightBit: boolean;
}

/** Output is copied into blocks of this size: the count of blocks stays small whatever the line structure. */
const BLOCK = 64 * 1024;
/** The first block's smallest size; it doubles up to BLOCK while the content is in one block. */
const FIRST_BLOCK = 8 * 1024;

/**
 * Collects the output, counts bytes, watches the header section, and turns
 * to discarding on a problem. Output is copied into blocks (never kept as
 * views of the input: a view per dot-led line costs ~30 times the line, and
 * a view keeps the whole socket read buffer it points into alive), so the
 * memory held is the content plus at most one block.
 */
class Sink {
  private readonly parts: Buffer[] = [];
  private block: Buffer | undefined;
  private used = 0;
  private size = 0;
  problem: ContentProblem | undefined;
  eightBit = false;
  private readonly maxSize: number;
  private readonly maxHeader: number;
  /**
   * Input bytes in hand (the rest of the read) when the first block is made:
   * sized to them, a message that came in one read takes one buffer of about
   * its size instead of 8 KB and a grown copy (a 11 KB message: 8 + 16 KB).
   * Only bytes already read count, so a client cannot make us allocate
   * ahead of what it sent; capped by BLOCK and the size limit.
   */
  private inHand = 0;
  /** Bytes of "\r\n\r\n" matched at the end of the output; the content start counts as after a CRLF. */
  private headerEnd = 2;
  private inHeader = true;

  constructor(maxSize: number, maxHeader: number) {
    this.maxSize = maxSize;
    this.maxHeader = maxHeader;
  }

  /** Notes the input bytes in hand before a push (see inHand); used only for the first block. */
  expect(bytes: number): void {
    if (this.block === undefined) this.inHand = bytes;
  }

  push(b: Buffer): void {
    if (this.problem !== undefined || b.length === 0) return;
    if (this.inHeader) this.watchHeader(b);
    this.size += b.length;
    if (this.size > this.maxSize) this.fail("size");
    if (this.problem !== undefined) return;
    this.copy(b);
  }

  /** Finds the empty line that ends the header section; fails "header" when the section passes maxHeader. */
  private watchHeader(b: Buffer): void {
    let m = this.headerEnd;
    for (let i = 0; i < b.length; i++) {
      const c = b[i];
      m = c === (m === 0 || m === 2 ? CR : LF) ? m + 1 : c === CR ? 1 : 0;
      if (m === 4) {
        this.inHeader = false;
        return;
      }
      // A byte at or past the limit that is not the CR of the empty line.
      if (m !== 3 && this.size + i >= this.maxHeader) {
        this.fail("header");
        return;
      }
    }
    this.headerEnd = m;
  }

  private copy(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      const block = this.block;
      if (block === undefined || this.used === block.length) {
        if (block !== undefined && this.parts.length === 0 && block.length < BLOCK) {
          // The first block grows (doubling, up to BLOCK) instead of starting a second: a message under BLOCK ends in one buffer, returned without a concat.
          const grown = Buffer.allocUnsafe(Math.min(BLOCK, Math.max(2 * block.length, this.used + b.length - off)));
          block.copy(grown, 0, 0, this.used);
          this.block = grown;
        } else {
          if (block !== undefined) this.parts.push(block);
          this.block = Buffer.allocUnsafe(this.parts.length === 0 ? Math.min(BLOCK, this.maxSize, Math.max(b.length - off, FIRST_BLOCK, this.inHand)) : BLOCK);
          this.used = 0;
        }
      }
      const n = b.copy(this.block as Buffer, this.used, off);
      this.used += n;
      off += n;
    }
  }

  fail(p: ContentProblem): void {
    if (this.problem !== undefined) return;
    this.problem = p;
    this.parts.length = 0;
    this.block = undefined;
  }

  result(): ContentResult {
    if (this.problem !== undefined) return { problem: this.problem, content: Buffer.alloc(0), eightBit: this.eightBit };
    const last = this.block === undefined ? [] : [this.block.subarray(0, this.used)];
    const all = [...this.parts, ...last];
    const content = all.length === 1 ? (all[0] as Buffer) : Buffer.concat(all, this.size);
    this.parts.length = 0;
    this.block = undefined;
    return { content, eightBit: this.eightBit };
  }
}

// DATA states.
const S_LINE = 0; // inside a line
const S_START = 1; // at the start of a line after a real CRLF (or at content start)
const S_SOFT = 2; // at the start of a line after a normalised bare CR/LF
const S_CR = 3; // saw CR (not yet emitted), want LF
const S_DOT = 4; // at a real line start, saw "." (not emitted)
const S_DOT_CR = 5; // saw "." CR at a real line start
const S_SOFT_DOT = 6; // at a soft line start, saw "." (not emitted)

/**
 * DATA receiver. Feed it input with push(); it returns how many bytes it
 * consumed, and `done` once the terminating CRLF.CRLF was read. Bytes after
 * the terminator are not consumed: they are the next commands.
 */
export class DataReceiver {
  private state = S_START;
  private readonly sink: Sink;
  private readonly normalize: boolean;
  done = false;

  /** maxHeader: the longest header section (its fields, without the empty line that ends it). */
  constructor(maxSize: number, policy: BareLineEndingPolicy, maxHeader: number) {
    this.sink = new Sink(maxSize, maxHeader);
    this.normalize = policy === "normalize";
  }

  /**
   * Consumes input from buf[start..]; returns the index after the last consumed byte.
   * `following`: bytes of the same socket read after buf (the adapter feeds a
   * read in slices), so the first block can take the whole message in hand.
   *
   * CPU: inside a line only CR, LF and NUL matter to the state machine: a
   * line's other bytes are skipped by a tight loop, and 8-bit bytes are
   * found afterwards in one pass over what was consumed (isAscii). A NUL
   * stops the loop and is handled at its place, so the message fails there
   * among the other problems, as in a byte-at-a-time machine (data.test.ts
   * compares the two on random input).
   */
  push(buf: Buffer, start: number, following = 0): number {
    this.sink.expect(buf.length - start + following);
    const end = this.scan(buf, start);
    // Bytes >= 0x80 among those consumed (the line loop did not look at them one by one).
    if (!this.sink.eightBit && end > start && !isAscii(buf.subarray(start, end))) this.sink.eightBit = true;
    return end;
  }

  private scan(buf: Buffer, start: number): number {
    const sink = this.sink;
    const n = buf.length;
    let span = start; // start of bytes to copy verbatim
    let state = this.state;
    let i = start;
    for (; i < n; i++) {
      const b = buf[i] as number;
      switch (state) {
        case S_LINE:
          if (b !== CR && b !== LF && b !== 0) {
            // To the line's next CR, LF or NUL; the next turn handles it.
            let j = i + 1;
            while (j < n) {
              const c = buf[j] as number;
              if (c === CR || c === LF || c === 0) break;
              j++;
            }
            i = j - 1;
          } else if (b === CR) {
            if (i + 1 < n) {
              if (buf[i + 1] === LF) {
                i++;
                state = S_START;
              } else {
                sink.push(buf.subarray(span, i));
                this.bare(sink);
                state = this.normalize ? S_SOFT : S_LINE;
                span = i + 1;
              }
            } else {
              sink.push(buf.subarray(span, i));
              state = S_CR;
              span = i + 1;
            }
          } else if (b === LF) {
            sink.push(buf.subarray(span, i));
            this.bare(sink);
            state = this.normalize ? S_SOFT : S_LINE;
            span = i + 1;
          } else {
            // NUL (every other byte went through the line loop above).
            sink.fail("nul");
          }
          break;
        case S_START:
          if (b === DOT) {
            sink.push(buf.subarray(span, i));
            state = S_DOT;
            span = i + 1;
          } else {
            state = S_LINE;
            i--;
          }
          break;
        case S_SOFT:
          if (b === DOT) {
            sink.push(buf.subarray(span, i));
            state = S_SOFT_DOT;
            span = i + 1;
          } else {
            state = S_LINE;
            i--;
          }
          break;
        case S_CR:
          // The CR was held back at the end of the previous input.
          if (b === LF) {
            sink.push(CRLF);
            state = S_START;
            span = i + 1;
          } else {
            this.bare(sink);
            state = this.normalize ? S_SOFT : S_LINE;
            span = i;
            i--;
          }
          break;
        case S_DOT:
          if (b === CR) {
            state = S_DOT_CR;
            span = i + 1;
          } else if (b === LF) {
            // "." then bare LF: never an end. The line is a lone dot.
            sink.push(DOT_BUF);
            state = S_LINE;
            span = i;
            i--;
          } else {
            // Dot-stuffing: the leading dot was dropped (RFC 5321 §4.5.2).
            state = S_LINE;
            span = i;
            i--;
          }
          break;
        case S_DOT_CR:
          if (b === LF) {
            this.done = true;
            this.state = S_START;
            return i + 1;
          }
          // "." then bare CR: a lone dot line ended by a bare CR.
          this.bare(sink);
          if (this.normalize) {
            sink.push(DOT_CRLF);
            state = S_SOFT;
          } else {
            state = S_LINE;
          }
          span = i;
          i--;
          break;
        case S_SOFT_DOT:
          if (b !== CR && b !== LF) {
            // A stuffed dot after a normalised line end.
            state = S_LINE;
            span = i;
            i--;
          } else {
            sink.push(DOT_BUF);
            state = S_LINE;
            span = i;
            i--;
          }
          break;
      }
    }
    if (state === S_LINE || state === S_START || state === S_SOFT) sink.push(buf.subarray(span, n));
    this.state = state;
    return n;
  }

  /** A bare CR or LF was seen: emit CRLF (normalize) or fail (reject). */
  private bare(sink: Sink): void {
    if (this.normalize) sink.push(CRLF);
    else sink.fail("bare-line-ending");
  }

  result(): ContentResult {
    return this.sink.result();
  }
}

/**
 * BDAT receiver: content is transparent (no dot-stuffing); chunk sizes are
 * given by the client. Line endings are still checked across chunk
 * boundaries so the stored content is clean CRLF.
 */
export class BdatReceiver {
  private readonly sink: Sink;
  private readonly normalize: boolean;
  /** A CR at the end of the previous chunk, not yet emitted. */
  private pendingCr = false;
  /** Bytes left in the current chunk. */
  remaining = 0;

  /** maxHeader: the longest header section (its fields, without the empty line that ends it). */
  constructor(maxSize: number, policy: BareLineEndingPolicy, maxHeader: number) {
    this.sink = new Sink(maxSize, maxHeader);
    this.normalize = policy === "normalize";
  }

  /** Starts a chunk of the given size. */
  startChunk(size: number): void {
    this.remaining = size;
  }

  /** Consumes up to `remaining` bytes from buf[start..]; returns the index after them. `following`: as DataReceiver.push. */
  push(buf: Buffer, start: number, following = 0): number {
    this.sink.expect(Math.min(this.remaining, buf.length - start + following));
    const end = Math.min(buf.length, start + this.remaining);
    this.remaining -= end - start;
    const sink = this.sink;
    let span = start;
    for (let i = start; i < end; i++) {
      const b = buf[i] as number;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (b === LF) {
          sink.push(CRLF);
          span = i + 1;
          continue;
        }
        this.bare(sink);
        span = i;
      }
      if (b === CR) {
        if (i + 1 < end) {
          if (buf[i + 1] === LF) {
            i++;
            continue;
          }
          sink.push(buf.subarray(span, i));
          this.bare(sink);
          span = i + 1;
        } else {
          sink.push(buf.subarray(span, i));
          this.pendingCr = true;
          span = i + 1;
        }
      } else if (b === LF) {
        sink.push(buf.subarray(span, i));
        this.bare(sink);
        span = i + 1;
      } else if (b === 0) {
        sink.fail("nul");
      } else if (b >= 0x80) {
        sink.eightBit = true;
      }
    }
    sink.push(buf.subarray(span, end));
    return end;
  }

  private bare(sink: Sink): void {
    if (this.normalize) sink.push(CRLF);
    else sink.fail("bare-line-ending");
  }

  /** Call after the LAST chunk: a CR left at the very end is a bare CR. */
  result(): ContentResult {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.bare(this.sink);
    }
    return this.sink.result();
  }

  /** True once a problem makes the message unacceptable (the rest is discarded). */
  get problem(): ContentProblem | undefined {
    return this.sink.problem;
  }
}
