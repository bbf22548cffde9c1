/**
 * The walk of one message for the attachment policy: every MIME part
 * (streaming, @zone-eu/mailsplit), decoded; attached messages walked in
 * turn; zip archives opened (yauzl, from the decoded part in memory) entry by
 * entry, zips in zips too. Each file is handed to the detectors (detect.ts)
 * by name and by content.
 *
 * Bounded on hostile input: mailsplit refuses more than MAX_PARTS parts and
 * header blocks over MAX_HEAD; of each part or entry only its first HEAD
 * bytes and last TAIL bytes are kept, unless it is a container we must open
 * (zip, OLE2, an attached message), which is then at most the message's
 * size (a part) or counted against maxUnpacked (an entry); nesting past
 * maxDepth, more than maxArchiveEntries entries or more than maxUnpacked
 * unpacked bytes stop the walk with an "unscannable" finding. Every step is
 * linear in the bytes it reads; decompression runs in zlib's thread pool.
 * A parse error is a finding, never an exception.
 */
import { once } from "node:events";
import { Readable } from "node:stream";
import mailsplit from "@zone-eu/mailsplit";
import yauzl from "yauzl";
import { contentFindings, encryptedArchive, isOle2, isVbaProjectEntry, isZip, nameFindings, type Finding } from "./detect.ts";

/** Bytes kept from the start of every file: enough for every signature (ISO 9660 is at 32 KiB). */
export const HEAD = 64 * 1024;
/** Bytes kept from the end (VHD and DMG footers). */
export const TAIL = 512;
/** Most MIME parts in one message. */
export const MAX_PARTS = 1000;
/** Largest header block of one MIME part. */
export const MAX_HEAD = 64 * 1024;
/** Size of the slices fed to the MIME parser. */
const SLICE = 64 * 1024;

export interface WalkLimits {
  /** Deepest nesting of archives and attached messages. */
  readonly maxDepth: number;
  readonly maxArchiveEntries: number;
  readonly maxUnpacked: number;
}

interface State {
  readonly limits: WalkLimits;
  readonly findings: Finding[];
  entries: number;
  unpacked: number;
  /** Set once the walk must stop (a budget ran out). */
  stopped: boolean;
  readonly signal: AbortSignal | undefined;
}

interface Collected {
  readonly head: Buffer;
  readonly tail: Buffer;
  /** The whole file, when it was kept (containers). */
  readonly whole?: Buffer;
  readonly size: number;
}

/** A file's bytes as they come: its head, its tail, and all of it for containers. */
class Collector {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private tail = Buffer.alloc(0);
  size = 0;
  /** undefined until HEAD bytes are in (or forced). */
  private keepAll: boolean | undefined;

  constructor(forceWhole: boolean) {
    if (forceWhole) this.keepAll = true;
  }

  /** True once nothing more but the tail is needed. */
  get headOnly(): boolean {
    return this.keepAll === false;
  }

  add(b: Buffer): void {
    this.size += b.length;
    const t = b.length >= TAIL ? b.subarray(b.length - TAIL) : b;
    this.tail = Buffer.concat([this.tail, t]);
    if (this.tail.length > TAIL) this.tail = this.tail.subarray(this.tail.length - TAIL);
    if (this.keepAll === true) {
      this.chunks.push(b);
      this.kept += b.length;
      return;
    }
    if (this.keepAll === false) return;
    const room = HEAD - this.kept;
    const piece = b.length > room ? b.subarray(0, room) : b;
    this.chunks.push(piece);
    this.kept += piece.length;
    if (this.kept >= HEAD) {
      const head = Buffer.concat(this.chunks, this.kept);
      this.keepAll = isZip(head) || isOle2(head);
      this.chunks.length = 0;
      this.chunks.push(head);
      if (this.keepAll && piece.length < b.length) {
        this.chunks.push(b.subarray(piece.length));
        this.kept += b.length - piece.length;
      }
    }
  }

  result(): Collected {
    const all = Buffer.concat(this.chunks, this.kept);
    const head = all.length > HEAD ? all.subarray(0, HEAD) : all;
    const whole = this.keepAll === true || (this.keepAll === undefined && (isZip(all) || isOle2(all))) ? all : undefined;
    return { head, tail: this.tail, size: this.size, ...(whole ? { whole } : {}) };
  }
}

function stop(state: State, name: string, reason: string): void {
  if (!state.stopped) state.findings.push({ kind: "unscannable", name, reason });
  state.stopped = true;
}

/** A file found in a part or an archive: its content, then (for a zip) its entries. */
async function file(state: State, shown: string, c: Collected, depth: number, scripts: boolean): Promise<void> {
  state.findings.push(...contentFindings(shown, c.head, c.tail, c.whole, { scripts }));
  const encrypted = encryptedArchive(c.head, c.tail, c.size);
  if (encrypted !== undefined) state.findings.push({ kind: "encrypted_archive", name: shown, reason: `encrypted ${encrypted} archive` });
  if (c.whole !== undefined && isZip(c.head)) await zip(state, shown, c.whole, depth + 1);
}

/** Reads one entry: its head only, or all of it for a container; counts unpacked bytes. */
async function entryBytes(state: State, archive: yauzl.ZipFile, entry: yauzl.Entry, shown: string): Promise<Collected | undefined> {
  const stream = await archive.openReadStreamPromise(entry);
  const c = new Collector(false);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      state.unpacked += chunk.length;
      if (state.unpacked > state.limits.maxUnpacked) {
        stop(state, shown, `more than ${state.limits.maxUnpacked} bytes to unpack from archives (attachments.max_unpacked)`);
        return undefined;
      }
      c.add(chunk);
      if (c.headOnly) break;
    }
  } finally {
    stream.destroy();
  }
  return c.result();
}

async function zip(state: State, shown: string, bytes: Buffer, depth: number): Promise<void> {
  if (state.stopped) return;
  if (depth > state.limits.maxDepth) return stop(state, shown, `archives nested deeper than ${state.limits.maxDepth} (attachments.max_depth)`);
  let archive: yauzl.ZipFile;
  try {
    archive = await yauzl.fromBufferPromise(bytes, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false });
  } catch (err) {
    state.findings.push({ kind: "unscannable", name: shown, reason: `malformed zip archive (${(err as Error).message.slice(0, 100)})` });
    return;
  }
  try {
    for await (const entry of archive.eachEntry()) {
      if (state.stopped || state.signal?.aborted === true) return;
      if (++state.entries > state.limits.maxArchiveEntries) return stop(state, shown, `more than ${state.limits.maxArchiveEntries} archive entries (attachments.max_archive_entries)`);
      const path = `${shown}/${entry.fileName}`;
      if (isVbaProjectEntry(entry.fileName)) state.findings.push({ kind: "macro", name: shown, reason: `Office document with a VBA macro project (${entry.fileName})` });
      if (entry.fileName.endsWith("/")) continue;
      state.findings.push(...nameFindings(entry.fileName, path));
      if (entry.isEncrypted()) {
        state.findings.push({ kind: "encrypted_archive", name: shown, reason: `encrypted archive entry (${entry.fileName})` });
        continue;
      }
      if (!entry.canDecodeFileData()) {
        state.findings.push({ kind: "unscannable", name: path, reason: `archive entry with a compression method that cannot be unpacked (${entry.compressionMethod})` });
        continue;
      }
      if (entry.uncompressedSize === 0) continue;
      const c = await entryBytes(state, archive, entry, path);
      if (c === undefined) return;
      await file(state, path, c, depth, true);
    }
  } catch (err) {
    state.findings.push({ kind: "unscannable", name: shown, reason: `malformed zip archive (${(err as Error).message.slice(0, 100)})` });
  } finally {
    archive.close();
  }
}

function* slices(b: Buffer): Generator<Buffer> {
  for (let off = 0; off < b.length; off += SLICE) yield b.subarray(off, Math.min(off + SLICE, b.length));
}

/** Where the body starts: after the first empty line (CRLF or LF); the end when there is none. */
export function bodyStart(b: Buffer): number {
  if (b[0] === 0x0a) return 1;
  if (b[0] === 0x0d && b[1] === 0x0a) return 2;
  const crlf = b.indexOf("\n\r\n");
  const lf = b.indexOf("\n\n");
  const ends = [crlf >= 0 ? crlf + 3 : -1, lf >= 0 ? lf + 2 : -1].filter((x) => x >= 0);
  return ends.length > 0 ? Math.min(...ends) : b.length;
}

interface Leaf {
  readonly node: mailsplit.MimeNode;
  readonly decoder: NodeJS.ReadWriteStream;
  readonly collector: Collector;
  readonly ended: Promise<unknown>;
}

/** The name a finding shows for a part: its filename, else its type. */
function partName(node: mailsplit.MimeNode): string {
  if (node.filename !== false && node.filename !== "") return node.filename;
  return `(unnamed ${node.contentType !== false ? node.contentType : "text/plain"} part)`;
}

/** Starts decoding a leaf part into a Collector. */
function openLeaf(node: mailsplit.MimeNode): Leaf {
  const decoder = node.getDecoder();
  const type = node.contentType !== false ? node.contentType.toLowerCase() : "";
  const collector = new Collector(type === "message/rfc822" || type === "message/global");
  decoder.on("data", (b: Buffer) => collector.add(b));
  const ended = once(decoder, "end");
  // Attach a catch now so an early decoder error is not unhandled; closeLeaf() awaits it.
  ended.catch(() => undefined);
  return { node, decoder, collector, ended };
}

/** Ends a leaf's decoding and looks at it: by name, by content, and an attached message in turn. */
async function closeLeaf(state: State, leaf: Leaf, depth: number): Promise<void> {
  const { node, decoder, collector, ended } = leaf;
  decoder.end();
  await ended;
  const name = partName(node);
  const type = node.contentType !== false ? node.contentType.toLowerCase() : "text/plain";
  const named = node.filename !== false && node.filename !== "";
  if (named) state.findings.push(...nameFindings(node.filename as string, name));
  if (/macroenabled/i.test(type)) state.findings.push({ kind: "macro", name, reason: `macro-enabled Office type (${type.slice(0, 80)})` });
  const c = collector.result();
  if (type === "message/rfc822" || type === "message/global") {
    if (depth + 1 > state.limits.maxDepth) return stop(state, name, `attached messages nested deeper than ${state.limits.maxDepth} (attachments.max_depth)`);
    await message(state, c.whole ?? c.head, depth + 1);
    return;
  }
  // A message's own text may quote a script; "#!" counts in files only.
  await file(state, name, c, depth, named || !type.startsWith("text/"));
}

/** The root node of a message, from its header section alone (the parser reads it to its end: no stream is cut short). */
async function rootNode(header: Buffer): Promise<mailsplit.MimeNode | undefined> {
  const splitter = new mailsplit.Splitter({ ignoreEmbedded: true, maxHeadSize: MAX_HEAD, maxChildNodes: MAX_PARTS });
  splitter.end(header);
  let root: mailsplit.MimeNode | undefined;
  for await (const chunk of splitter as AsyncIterable<mailsplit.SplitterChunk>) {
    if (chunk.type === "node" && root === undefined) root = chunk;
  }
  return root;
}

async function message(state: State, content: Buffer, depth: number): Promise<void> {
  try {
    // A single-part message has no boundary to look for: its body is decoded
    // straight from the buffer, not parsed line by line (which costs a second
    // for 25 MiB of short lines). Only a multipart one goes through the parser.
    const start = bodyStart(content);
    const root = await rootNode(content.subarray(0, start));
    if (root === undefined) return;
    if (root.multipart === false) {
      const leaf = openLeaf(root);
      for (const s of slices(content.subarray(start))) leaf.decoder.write(s);
      await closeLeaf(state, leaf, depth);
      return;
    }
    await parts(state, content, depth);
  } catch (err) {
    state.findings.push({ kind: "unscannable", name: "(message)", reason: `MIME structure that cannot be parsed (${(err as Error).message.slice(0, 100)})` });
  }
}

/** A multipart message, part by part through the streaming parser. */
async function parts(state: State, content: Buffer, depth: number): Promise<void> {
  const splitter = new mailsplit.Splitter({ ignoreEmbedded: true, maxHeadSize: MAX_HEAD, maxChildNodes: MAX_PARTS });
  Readable.from(slices(content)).pipe(splitter);
  let leaf: Leaf | undefined;
  try {
    for await (const chunk of splitter as AsyncIterable<mailsplit.SplitterChunk>) {
      if (state.stopped || state.signal?.aborted === true) break;
      if (chunk.type === "node") {
        if (leaf !== undefined) await closeLeaf(state, leaf, depth);
        leaf = chunk.multipart === false ? openLeaf(chunk) : undefined;
      } else if (chunk.type === "body" && leaf !== undefined) {
        leaf.decoder.write(chunk.value);
      }
    }
    if (leaf !== undefined) await closeLeaf(state, leaf, depth);
  } finally {
    splitter.destroy();
  }
}

/** Walks a message (CRLF, as received) and returns what the detectors found. */
export async function walkMessage(content: Buffer, limits: WalkLimits, signal?: AbortSignal): Promise<Finding[]> {
  const state: State = { limits, findings: [], entries: 0, unpacked: 0, stopped: false, signal };
  await message(state, content, 0);
  return state.findings;
}
