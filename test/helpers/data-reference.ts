/**
 * The DATA receiver of src/protocol/data.ts as it was before its fast path
 * (byte at a time, commit c827fcf), kept unchanged as the reference model
 * for the differential test in src/protocol/data.test.ts: the fast path must
 * give the same content, problem, 8-bit flag and consumed count for any
 * input, however it is split into reads.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from("\r\n");
const DOT_BUF = Buffer.from(".");
const DOT_CRLF = Buffer.from(".\r\n");

export type ReferenceProblem = "size" | "header" | "bare-line-ending" | "nul";

export interface ReferenceResult {
  readonly problem?: ReferenceProblem;
  readonly content: Buffer;
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
  problem: ReferenceProblem | undefined;
  eightBit = false;
  private readonly maxSize: number;
  private readonly maxHeader: number;
  /** Bytes of "\r\n\r\n" matched at the end of the output; the content start counts as after a CRLF. */
  private headerEnd = 2;
  private inHeader = true;

  constructor(maxSize: number, maxHeader: number) {
    this.maxSize = maxSize;
    this.maxHeader = maxHeader;
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
          this.block = Buffer.allocUnsafe(this.parts.length === 0 ? Math.min(BLOCK, Math.max(b.length - off, FIRST_BLOCK)) : BLOCK);
          this.used = 0;
        }
      }
      const n = b.copy(this.block as Buffer, this.used, off);
      this.used += n;
      off += n;
    }
  }

  fail(p: ReferenceProblem): void {
    if (this.problem !== undefined) return;
    this.problem = p;
    this.parts.length = 0;
    this.block = undefined;
  }

  result(): ReferenceResult {
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
export class ReferenceDataReceiver {
  private state = S_START;
  private readonly sink: Sink;
  private readonly normalize: boolean;
  done = false;

  /** maxHeader: the longest header section (its fields, without the empty line that ends it). */
  constructor(maxSize: number, policy: "reject" | "normalize", maxHeader: number) {
    this.sink = new Sink(maxSize, maxHeader);
    this.normalize = policy === "normalize";
  }

  /** Consumes input from buf[start..]; returns the index after the last consumed byte. */
  push(buf: Buffer, start: number): number {
    const sink = this.sink;
    const n = buf.length;
    let span = start; // start of bytes to copy verbatim
    let state = this.state;
    let i = start;
    for (; i < n; i++) {
      const b = buf[i] as number;
      switch (state) {
        case S_LINE:
          if (b === CR) {
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
          } else if (b === 0) {
            sink.fail("nul");
          } else if (b >= 0x80) {
            sink.eightBit = true;
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

  result(): ReferenceResult {
    return this.sink.result();
  }
}
