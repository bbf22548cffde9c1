/**
 * Test samples for the attachment policy and antivirus, built at test time
 * (never committed): a small zip writer (stored or deflated entries, the
 * "encrypted" flag settable), file signatures (PE, ELF, Mach-O, ISO 9660,
 * OLE2 with a VBA project, OOXML with vbaProject.bin, PDF, PNG) and MIME
 * messages with base64 attachments.
 */
import { crc32, deflateRawSync } from "node:zlib";

export { eicar } from "../peers/clamd.ts";

export interface ZipEntry {
  readonly name: string;
  readonly data: Buffer;
  /** Deflate (default) or store. */
  readonly store?: boolean;
  /** Set general purpose bit 0 (the entry claims to be encrypted). */
  readonly encrypted?: boolean;
}

/** A zip archive (PKWARE APPNOTE: local headers, central directory, end record). */
export function zip(entries: readonly ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const packed = e.store === true ? e.data : deflateRawSync(e.data);
    // Traditional PKWARE encryption puts a 12-byte header before the data (here not really encrypted: only the flag and the layout).
    const body = e.encrypted === true ? Buffer.concat([Buffer.alloc(12, 0x5a), packed]) : packed;
    const method = e.store === true ? 0 : 8;
    const flags = (e.encrypted === true ? 1 : 0) | 0x800;
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(e.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A minimal PE file: "MZ" header whose e_lfanew points at "PE\0\0". */
export function peFile(): Buffer {
  const b = Buffer.alloc(512);
  b.write("MZ", 0, "latin1");
  b.writeUInt32LE(0x80, 0x3c);
  b.write("PE\0\0", 0x80, "latin1");
  return b;
}

export function elfFile(): Buffer {
  const b = Buffer.alloc(256);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(b);
  return b;
}

export function machoFile(): Buffer {
  const b = Buffer.alloc(256);
  b.writeUInt32BE(0xcffaedfe, 0);
  return b;
}

/** An ISO 9660 image's start: 16 empty sectors, then the primary volume descriptor "\x01CD001". */
export function isoImage(): Buffer {
  const b = Buffer.alloc(40 * 1024);
  b[0x8000] = 1;
  b.write("CD001", 0x8001, "latin1");
  return b;
}

/** An OLE2 compound file holding a "_VBA_PROJECT" stream name (as a .doc with macros does). */
export function oleWithMacro(): Buffer {
  const b = Buffer.alloc(4096);
  Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]).copy(b);
  Buffer.from("_VBA_PROJECT", "utf16le").copy(b, 2048);
  return b;
}

/** An OOXML package (a zip) with or without word/vbaProject.bin. */
export function ooxml(withMacro: boolean): Buffer {
  const entries: ZipEntry[] = [
    { name: "[Content_Types].xml", data: Buffer.from('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>') },
    { name: "word/document.xml", data: Buffer.from("<w:document/>") },
  ];
  if (withMacro) entries.push({ name: "word/vbaProject.bin", data: oleWithMacro() });
  return zip(entries);
}

export function pdfFile(): Buffer {
  return Buffer.from("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n", "latin1");
}

export function pngFile(): Buffer {
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 7)]);
}

export interface Attachment {
  readonly name: string;
  readonly data: Buffer;
  readonly type?: string;
}

/** A multipart/mixed message (CRLF) with a text part and base64 attachments. */
export function mimeMessage(opts: { from?: string; to?: string; subject?: string; text?: string; attachments?: readonly Attachment[] }): Buffer {
  const boundary = "=_wardmail_test_boundary";
  const lines = [
    `From: ${opts.from ?? "sender@example.net"}`,
    `To: ${opts.to ?? "user@example.org"}`,
    `Subject: ${opts.subject ?? "test"}`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "",
    opts.text ?? "Hello, see the attachment.",
  ];
  for (const a of opts.attachments ?? []) {
    const b64 = a.data.toString("base64").replace(/.{76}/g, "$&\r\n");
    const name = /[^\x20-\x7e]/.test(a.name) ? `=?utf-8?B?${Buffer.from(a.name).toString("base64")}?=` : a.name;
    lines.push(`--${boundary}`, `Content-Type: ${a.type ?? "application/octet-stream"}; name="${name}"`, "Content-Transfer-Encoding: base64", `Content-Disposition: attachment; filename="${name}"`, "", b64);
  }
  lines.push(`--${boundary}--`, "");
  return Buffer.from(lines.join("\r\n"), "utf8");
}

/** One RAR5 header block: CRC32 (not checked by Wardmail), size, data. */
function rar5Block(data: number[]): Buffer {
  return Buffer.concat([Buffer.from(crc32(Buffer.from(data)).toString(16).padStart(8, "0"), "hex"), Buffer.from([data.length]), Buffer.from(data)]);
}

/** A RAR5 archive's first blocks (format per rarlab's technote): main header, then a file header, plain or with an encryption record; or an archive encryption header (encrypted headers). */
export function rar5(kind: "plain" | "file" | "headers"): Buffer {
  const sig = Buffer.from("Rar!\x1a\x07\x01\x00", "latin1");
  if (kind === "headers") return Buffer.concat([sig, rar5Block([4, 0, 0, 0, 15, ...Array<number>(16).fill(7)]), Buffer.alloc(64, 9)]);
  const main = rar5Block([1, 0, 0]);
  const name = [...Buffer.from("a.txt")];
  const fields = [0, 5, 0x20, 0, 0, name.length, ...name];
  const extra = kind === "file" ? [3, 1, 0, 0] : [];
  const data = [2, extra.length > 0 ? 3 : 2, ...(extra.length > 0 ? [extra.length] : []), 5, ...fields, ...extra];
  return Buffer.concat([sig, main, rar5Block(data), Buffer.from("hello"), rar5Block([5, 0, 0])]);
}

/** A RAR 4 archive: marker, main header, one file header with or without the password flag. */
export function rar4(encrypted: boolean): Buffer {
  const marker = Buffer.from("Rar!\x1a\x07\x00", "latin1");
  const main = Buffer.from([0, 0, 0x73, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0]);
  const name = Buffer.from("a.txt");
  const file = Buffer.alloc(32 + name.length);
  file[2] = 0x74;
  file.writeUInt16LE(0x8000 | (encrypted ? 0x0004 : 0), 3);
  file.writeUInt16LE(file.length, 5);
  file.writeUInt32LE(5, 7);
  file.writeUInt16LE(name.length, 26);
  name.copy(file, 32);
  return Buffer.concat([marker, main, file, Buffer.from("hello"), Buffer.from([0, 0, 0x7b, 0, 0x40, 7, 0])]);
}

/** A 7z archive: signature header pointing at a small end header, with or without the AES coder id (06 F1 07 01). */
export function sevenZip(encrypted: boolean): Buffer {
  const packed = Buffer.alloc(100, 0x33);
  const header = Buffer.from(encrypted ? [0x17, 0x06, 0x01, 0x09, 0x40, 0x07, 0x0b, 0x01, 0x00, 0x02, 0x24, 0x06, 0xf1, 0x07, 0x01, 0x00, 0x00] : [0x17, 0x06, 0x01, 0x09, 0x40, 0x07, 0x0b, 0x01, 0x00, 0x01, 0x23, 0x03, 0x01, 0x01, 0x05, 0x5d, 0x00]);
  const start = Buffer.alloc(32);
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]).copy(start);
  start.writeBigUInt64LE(BigInt(packed.length), 12);
  start.writeBigUInt64LE(BigInt(header.length), 20);
  return Buffer.concat([start, packed, header]);
}
