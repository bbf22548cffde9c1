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
