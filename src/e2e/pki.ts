/**
 * asn1js and pkijs, imported on first use: only a mailbox with an S/MIME
 * certificate needs them, and every worker thread would otherwise carry
 * them (about 13 MB each).
 */
import type * as Asn1 from "asn1js";
import type * as Pki from "pkijs";

export interface PkiLibraries {
  readonly asn1js: typeof Asn1;
  readonly pkijs: typeof Pki;
}

let loading: Promise<PkiLibraries> | undefined;
let loaded: PkiLibraries | undefined;

/** The libraries, imported on the first call. */
export function pkiLibraries(): Promise<PkiLibraries> {
  loading ??= Promise.all([import("asn1js"), import("pkijs")]).then(
    ([asn1js, pkijs]) => (loaded = { asn1js, pkijs }),
    (err: unknown) => {
      // Tried again next time, not kept.
      loading = undefined;
      throw err;
    },
  );
  return loading;
}

/**
 * The libraries for synchronous code that runs only on a certificate
 * already parsed (so after pkiLibraries() resolved): the S/MIME envelope.
 */
export function pkiLibrariesLoaded(): PkiLibraries {
  if (loaded === undefined) throw new Error("asn1js and pkijs are used before pkiLibraries() loaded them");
  return loaded;
}
