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
