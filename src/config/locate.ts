/**
 * Where each key is in a TOML source: a small scanner that maps dotted key
 * paths to 1-based line numbers, so config errors can name the line.
 *
 * It runs only on text smol-toml has already parsed, and never throws. It
 * follows `[table]` and `[[array]]` headers, bare / quoted / dotted keys,
 * strings of all four kinds, inline tables and arrays (also across lines, each
 * element getting its own line). Nested arrays of tables (`[[a.b]]` under
 * `[[a]]`) are indexed per header name only; Wardmail's layout has none.
 *
 * Paths are written by `keyPath`: bare segments as they are, other segments
 * JSON-quoted, array indexes as `[i]`: `local.aliases."a@b.test"[0]`.
 */

export type PathSegment = string | number;

const BARE_RE = /^[A-Za-z0-9_-]+$/;

/** Canonical dotted text of a key path. */
export function keyPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const text = BARE_RE.test(seg) ? seg : JSON.stringify(seg);
      out += out === "" ? text : `.${text}`;
    }
  }
  return out;
}

/** Line of `path`, or of its nearest recorded parent; 0 when none is in the file. */
export function lineOf(lines: ReadonlyMap<string, number>, path: readonly PathSegment[]): number {
  for (let n = path.length; n > 0; n--) {
    const line = lines.get(keyPath(path.slice(0, n)));
    if (line !== undefined) return line;
  }
  return 0;
}

/** Maps every key path in `src` (and each table header, and each array element) to its first line. */
export function scanKeyLines(src: string): Map<string, number> {
  const out = new Map<string, number>();
  const aotCount = new Map<string, number>();
  const n = src.length;
  let i = 0;
  let line = 1;

  const record = (path: readonly PathSegment[], at: number) => {
    for (let k = 1; k <= path.length; k++) {
      const key = keyPath(path.slice(0, k));
      if (!out.has(key)) out.set(key, at);
    }
  };
  const skipBlank = () => {
    while (i < n && (src[i] === " " || src[i] === "\t")) i++;
  };
  /** Skips blanks, comments and newlines. */
  const skipSpace = () => {
    for (;;) {
      skipBlank();
      const c = src[i];
      if (c === "#") while (i < n && src[i] !== "\n") i++;
      else if (c === "\n") {
        line++;
        i++;
      } else if (c === "\r") i++;
      else return;
    }
  };
  const skipToEol = () => {
    while (i < n && src[i] !== "\n") i++;
  };

  /** Skips a string starting at i; returns its decoded text (best effort). */
  const readString = (): string => {
    const q = src[i] ?? "";
    const triple = src.startsWith(q.repeat(3), i);
    i += triple ? 3 : 1;
    const bodyStart = i;
    while (i < n) {
      const c = src[i];
      if (c === "\\" && q === '"') {
        if (src[i + 1] === "\n") line++;
        i += 2;
        continue;
      }
      if (c === "\n") {
        if (!triple) break;
        line++;
      }
      if (c === q && (!triple || src.startsWith(q.repeat(3), i))) {
        const body = src.slice(bodyStart, i);
        i += triple ? 3 : 1;
        // Up to two extra quotes may close a multi-line string.
        for (let extra = 0; triple && extra < 2 && src[i] === q; extra++) i++;
        if (q === "'") return body;
        try {
          return JSON.parse(`"${body}"`) as string;
        } catch {
          return body;
        }
      }
      i++;
    }
    return src.slice(bodyStart, i);
  };

  /** Reads a possibly dotted key; returns [] when none is at i. */
  const readKey = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      skipBlank();
      const c = src[i];
      if (c === '"' || c === "'") parts.push(readString());
      else {
        const m = /^[A-Za-z0-9_-]+/.exec(src.slice(i, i + 256));
        if (!m) return parts;
        parts.push(m[0]);
        i += m[0].length;
      }
      skipBlank();
      if (src[i] !== ".") return parts;
      i++;
    }
  };

  const skipValue = (path: PathSegment[]): void => {
    skipBlank();
    const c = src[i];
    if (c === '"' || c === "'") {
      readString();
    } else if (c === "[") {
      i++;
      let index = 0;
      while (i < n) {
        skipSpace();
        if (src[i] === "]") {
          i++;
          return;
        }
        if (src[i] === ",") {
          i++;
          continue;
        }
        const before = i;
        const element = [...path, index++];
        record(element, line);
        skipValue(element);
        if (i === before) i++;
      }
    } else if (c === "{") {
      i++;
      while (i < n) {
        skipSpace();
        if (src[i] === "}") {
          i++;
          return;
        }
        if (src[i] === ",") {
          i++;
          continue;
        }
        const before = i;
        const key = readKey();
        skipBlank();
        if (key.length > 0 && src[i] === "=") {
          i++;
          const full = [...path, ...key];
          record(full, line);
          skipValue(full);
        }
        if (i === before) i++;
      }
    } else {
      while (i < n && !",]}#\r\n".includes(src[i] ?? "")) i++;
    }
  };

  let table: PathSegment[] = [];
  while (i < n) {
    skipSpace();
    if (i >= n) break;
    if (src.startsWith("[[", i)) {
      i += 2;
      const name = readKey();
      const base = keyPath(name);
      const index = aotCount.get(base) ?? 0;
      aotCount.set(base, index + 1);
      table = [...name, index];
      record(table, line);
      skipToEol();
    } else if (src[i] === "[") {
      i++;
      table = readKey();
      record(table, line);
      skipToEol();
    } else {
      const key = readKey();
      skipBlank();
      if (key.length === 0 || src[i] !== "=") {
        skipToEol();
        continue;
      }
      i++;
      const full = [...table, ...key];
      record(full, line);
      skipValue(full);
    }
  }
  return out;
}
