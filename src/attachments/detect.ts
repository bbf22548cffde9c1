/**
 * The detectors of the attachment policy, pure and linear: what a file name
 * says (extension, double extension, bidirectional control characters) and
 * what a file's first and last bytes say (executable and disk image
 * signatures, zip and OLE2 containers, VBA projects in OLE2 files).
 */

export type Kind = "executable" | "disk_image" | "macro" | "encrypted_archive" | "unscannable";

/** One thing the policy found: the kind (verdict "attachment.KIND"), the part's name, why. */
export interface Finding {
  readonly kind: Kind;
  /** The part's name (or path inside archives, "a.zip/b/c.exe"), as given; "" when it has none. */
  readonly name: string;
  readonly reason: string;
}

/** Extensions Windows, macOS or Linux desktops run (or hand to an interpreter) when opened. */
const EXECUTABLE_EXTENSIONS = new Set([
  "exe", "com", "scr", "pif", "bat", "cmd", "vbs", "vbe", "vb", "js", "jse", "wsf", "wsh", "wsc", "ws", "hta",
  "msi", "msp", "mst", "msc", "cpl", "dll", "ocx", "sys", "drv", "jar", "ps1", "ps1xml", "ps2", "psc1", "psm1",
  "lnk", "url", "scf", "reg", "inf", "sct", "shs", "shb", "gadget", "application", "appref-ms", "appx", "appxbundle",
  "msix", "msixbundle", "chm", "hlp", "iqy", "slk", "xll", "wll", "settingcontent-ms", "diagcab", "library-ms",
  "sh", "bash", "csh", "ksh", "command", "run", "elf", "app", "pkg", "deb", "rpm", "apk", "py", "pyw", "pl",
  "action", "workflow", "scpt", "applescript", "xbap", "vsto", "mde", "ade", "adp", "mda", "mdb", "mdz", "accde",
  "its", "ins", "isp", "nsh", "prf", "msh", "msh1", "msh2", "mshxml", "msh1xml", "msh2xml",
  "pcd", "plg", "vsmacros", "vsw", "website", "xnk", "hpj", "grp", "mcf", "jnlp", "desktop",
]);
const DISK_IMAGE_EXTENSIONS = new Set(["iso", "img", "vhd", "vhdx", "vmdk", "dmg", "udf"]);
const MACRO_EXTENSIONS = new Set(["docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "ppam", "sldm"]);

/** Bidirectional controls: a name "invoice\u202Efdp.exe" shows as "invoiceexe.pdf". */
const BIDI = /[\u200E\u200F\u061C\u202A-\u202E\u2066-\u2069]/;

/** The name Windows would see: trailing dots, spaces and NULs dropped (it strips them). */
function effectiveName(name: string): string {
  let end = name.length;
  while (end > 0 && /[.\s\0]/.test(name[end - 1] ?? "")) end--;
  return name.slice(0, end);
}

/** The last path segment of an archive entry or a MIME filename. */
export function baseName(name: string): string {
  const i = Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\"));
  return i >= 0 ? name.slice(i + 1) : name;
}

/** What a file name alone says. */
export function nameFindings(name: string, shownAs = name): Finding[] {
  const out: Finding[] = [];
  if (name === "") return out;
  const bidi = BIDI.exec(name);
  if (bidi) {
    const cp = (bidi[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
    out.push({ kind: "executable", name: shownAs, reason: `name hides its real extension with a bidirectional control character (U+${cp})` });
  }
  const base = effectiveName(baseName(name).replace(BIDI, "")).toLowerCase();
  const parts = base.split(".");
  if (parts.length < 2) return out;
  const ext = parts[parts.length - 1] ?? "";
  const before = parts.length > 2 ? (parts[parts.length - 2] ?? "").trim() : "";
  if (EXECUTABLE_EXTENSIONS.has(ext)) {
    const double = before !== "" && /^[a-z0-9]{1,5}$/.test(before) && !EXECUTABLE_EXTENSIONS.has(before);
    out.push({ kind: "executable", name: shownAs, reason: double ? `executable behind a double extension (.${before}.${ext})` : `executable by name (.${ext})` });
  } else if (DISK_IMAGE_EXTENSIONS.has(ext)) {
    out.push({ kind: "disk_image", name: shownAs, reason: `disk image by name (.${ext})` });
  } else if (MACRO_EXTENSIONS.has(ext)) {
    out.push({ kind: "macro", name: shownAs, reason: `macro-enabled Office file by name (.${ext})` });
  }
  return out;
}

const OLE2 = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
const VBA_PROJECT = Buffer.from("_VBA_PROJECT", "utf16le");

export function isZip(head: Buffer): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6) || (head[2] === 7 && head[3] === 8));
}

export function isOle2(head: Buffer): boolean {
  return head.length >= 8 && head.subarray(0, 8).equals(OLE2);
}

function at(b: Buffer, offset: number, text: string): boolean {
  return b.length >= offset + text.length && b.toString("latin1", offset, offset + text.length) === text;
}

/** A PE/NE/LE file: "MZ", and the new header's signature where e_lfanew points, when the head reaches it. */
function isMz(head: Buffer): boolean {
  if (!at(head, 0, "MZ") || head.length < 64) return false;
  const lfanew = head.readUInt32LE(0x3c);
  if (lfanew + 4 > head.length) return true;
  return ["PE\0\0", "NE", "LE", "LX"].some((sig) => at(head, lfanew, sig)) || lfanew < 64;
}

/**
 * What a file's content says. `head` is its first bytes (64 KiB are enough
 * for every signature here), `tail` its last 512 bytes (for VHD and DMG
 * footers; empty when unknown), `whole` the complete file when it is kept
 * (OLE2 files, for their VBA project). `scripts: false` skips the "#!"
 * rule (for a message's own text, which may quote a script).
 */
export function contentFindings(name: string, head: Buffer, tail: Buffer, whole?: Buffer, opts: { scripts?: boolean } = {}): Finding[] {
  const out: Finding[] = [];
  const exe = (reason: string): void => void out.push({ kind: "executable", name, reason });
  const disk = (reason: string): void => void out.push({ kind: "disk_image", name, reason });
  if (isMz(head)) exe("Windows executable by content (MZ)");
  else if (head.length >= 4 && head[0] === 0x7f && at(head, 1, "ELF")) exe("ELF executable by content");
  else if (head.length >= 4 && [0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe].includes(head.readUInt32BE(0))) exe("Mach-O executable by content");
  else if (head.length >= 8 && head.readUInt32BE(0) === 0xcafebabe) exe("Mach-O universal binary or Java class by content");
  else if (opts.scripts !== false && at(head, 0, "#!")) exe("script by content (#!)");
  if (at(head, 0, "vhdxfile")) disk("VHDX disk image by content");
  else if (at(head, 0, "conectix") || at(tail.subarray(Math.max(0, tail.length - 512)), 0, "conectix")) disk("VHD disk image by content");
  else if (at(head, 0, "KDMV") || at(head, 0, "# Disk DescriptorFile")) disk("VMDK disk image by content");
  else if ([0x8001, 0x8801, 0x9001].some((o) => ["CD001", "BEA01", "NSR02", "NSR03"].some((s) => at(head, o, s)))) disk("ISO 9660/UDF disk image by content");
  else if (tail.length >= 512 && at(tail, tail.length - 512, "koly")) disk("Apple disk image (DMG) by content");
  if (whole !== undefined && isOle2(whole) && whole.indexOf(VBA_PROJECT) >= 0) {
    out.push({ kind: "macro", name, reason: "Office document with a VBA macro project (OLE2)" });
  }
  return out;
}

/** An OOXML entry holding VBA macros ("word/vbaProject.bin", "xl/vbaProject.bin", ...). */
export function isVbaProjectEntry(path: string): boolean {
  return /(^|\/)vbaproject\.bin$/i.test(path) || /(^|\/)vbaprojectsignature\.bin$/i.test(path);
}

const RAR4 = Buffer.from("Rar!\x1a\x07\x00", "latin1");
const RAR5 = Buffer.from("Rar!\x1a\x07\x01\x00", "latin1");
const SEVEN_Z = Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]);
/** 7-Zip's AES-256 + SHA-256 coder id. */
const SEVEN_Z_AES = Buffer.from([0x06, 0xf1, 0x07, 0x01]);
/** Most archive headers looked at in the head of a RAR file. */
const MAX_RAR_HEADERS = 64;

/** A RAR5 variable-length integer at `at`: [value, next offset], or undefined past the end or over 2^53. */
function vint(b: Buffer, at: number): [number, number] | undefined {
  let value = 0;
  for (let i = 0; i < 8 && at + i < b.length; i++) {
    const byte = b[at + i] ?? 0;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return [value, at + i + 1];
  }
  return undefined;
}

/** RAR5: an archive encryption header (encrypted headers), or a file header with an encryption record. */
function rar5Encrypted(b: Buffer): boolean {
  let at = RAR5.length;
  for (let n = 0; n < MAX_RAR_HEADERS && at + 4 < b.length; n++) {
    const size = vint(b, at + 4);
    if (!size) return false;
    const start = size[1];
    const end = start + size[0];
    if (size[0] === 0 || end > b.length) return false;
    const type = vint(b, start);
    const flags = type && vint(b, type[1]);
    if (!type || !flags) return false;
    if (type[0] === 4) return true;
    let p = flags[1];
    let extra = 0;
    let data = 0;
    if ((flags[0] & 1) !== 0) {
      const e = vint(b, p);
      if (!e) return false;
      extra = e[0];
      p = e[1];
    }
    if ((flags[0] & 2) !== 0) {
      const d = vint(b, p);
      if (!d) return false;
      data = d[0];
    }
    if ((type[0] === 2 || type[0] === 3) && extra > 0 && extra <= end - start) {
      // Extra area records: size, type (1: encryption), data.
      let r = end - extra;
      while (r < end) {
        const rs = vint(b, r);
        const rt = rs && vint(b, rs[1]);
        if (!rs || !rt || rs[0] === 0) break;
        if (rt[0] === 1) return true;
        r = rs[1] + rs[0];
      }
    }
    if (type[0] === 5) return false; // end of archive
    at = end + data;
  }
  return false;
}

/** RAR 1.5-4.x: the main header's "encrypted headers" flag, or a file header's "password" flag. */
function rar4Encrypted(b: Buffer): boolean {
  let at = RAR4.length;
  for (let n = 0; n < MAX_RAR_HEADERS && at + 7 <= b.length; n++) {
    const type = b[at + 2];
    const flags = b.readUInt16LE(at + 3);
    const size = b.readUInt16LE(at + 5);
    if (size < 7) return false;
    if (type === 0x73 && (flags & 0x0080) !== 0) return true;
    if (type === 0x74) {
      if ((flags & 0x0004) !== 0) return true;
      if (at + 11 > b.length) return false;
      at += size + b.readUInt32LE(at + 7);
      continue;
    }
    if (type === 0x7b) return false; // end of archive
    at += size + ((flags & 0x8000) !== 0 && at + 11 <= b.length ? b.readUInt32LE(at + 7) : 0);
  }
  return false;
}

/**
 * 7z: the AES coder in the archive's header (which sits at the end of the
 * file: looked for in `tail` when the whole header is there, which it is
 * for the small headers of encrypted archives).
 */
function sevenZipEncrypted(head: Buffer, tail: Buffer, size: number): boolean {
  if (head.length < 32) return false;
  const offset = Number(head.readBigUInt64LE(12));
  const length = Number(head.readBigUInt64LE(20));
  if (length === 0 || length > tail.length || 32 + offset + length !== size) return false;
  const header = tail.subarray(tail.length - length);
  return (header[0] === 0x17 || header[0] === 0x01) && header.indexOf(SEVEN_Z_AES) >= 0;
}

/** An encrypted RAR or 7z archive, from its first bytes, last bytes and size; the format's name, else undefined. */
export function encryptedArchive(head: Buffer, tail: Buffer, size: number): string | undefined {
  if (head.subarray(0, RAR5.length).equals(RAR5)) return rar5Encrypted(head) ? "RAR" : undefined;
  if (head.subarray(0, RAR4.length).equals(RAR4)) return rar4Encrypted(head) ? "RAR" : undefined;
  if (head.subarray(0, SEVEN_Z.length).equals(SEVEN_Z)) return sevenZipEncrypted(head, tail, size) ? "7z" : undefined;
  return undefined;
}
