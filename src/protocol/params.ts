/**
 * The ESMTP parameters of MAIL FROM and RCPT TO, checked: SIZE (RFC 1870),
 * BODY (RFC 6152; BINARYMIME is not offered), SMTPUTF8 (RFC 6531), RET and
 * ENVID (RFC 3461 §4.3, §4.4), NOTIFY and ORCPT (RFC 3461 §4.1, §4.2),
 * REQUIRETLS (RFC 8689, over TLS only).
 * Input is the keyword → value map of address.ts; anything unknown or
 * malformed comes back as the Reply to send.
 */
import type { RecipientDsn } from "./envelope.ts";
import { decodeXtext, decodeXtextUtf8 } from "./address.ts";
import { type Reply } from "./reply.ts";
import { R } from "./replies.ts";

export interface MailParams {
  /** SIZE= as declared (RFC 1870), when given. */
  readonly size?: number;
  readonly body?: "7BIT" | "8BITMIME";
  readonly smtputf8: boolean;
  readonly ret?: "FULL" | "HDRS";
  readonly envid?: string;
  readonly requireTls?: boolean;
}


/**
 * @param authOffered AUTH is offered in this session: the RFC 4954 §5
 *   AUTH=<mailbox> parameter is then accepted (checked as xtext) and
 *   ignored, since we trust no other server's claim of who sent it.
 */
export function mailParams(params: ReadonlyMap<string, string | undefined>, maxSize: number, authOffered = false, tlsActive = false): MailParams | Reply {
  let body: MailParams["body"];
  let smtputf8 = false;
  let ret: MailParams["ret"];
  let envid: string | undefined;
  let requireTls = false;
  let size: number | undefined;
  for (const [key, value] of params) {
    switch (key) {
      case "SIZE":
        if (value === undefined || !/^\d{1,15}$/.test(value)) return R.badSize;
        if (Number(value) > maxSize) return R.tooBig;
        size = Number(value);
        break;
      case "BODY":
        if (value?.toUpperCase() === "7BIT") body = "7BIT";
        else if (value?.toUpperCase() === "8BITMIME") body = "8BITMIME";
        else return R.unsupportedBody;
        break;
      case "SMTPUTF8":
        if (value !== undefined) return R.smtputf8Value;
        smtputf8 = true;
        break;
      case "RET":
        if (value?.toUpperCase() === "FULL") ret = "FULL";
        else if (value?.toUpperCase() === "HDRS") ret = "HDRS";
        else return R.badRet;
        break;
      case "ENVID": {
        const decoded = value === undefined ? undefined : decodeXtext(value);
        if (decoded === undefined || decoded.length > 100 || !/^[\x20-\x7e]+$/.test(decoded)) return R.badEnvid;
        envid = decoded;
        break;
      }
      case "REQUIRETLS":
        // RFC 8689 §4.1: only offered, and only accepted, over TLS.
        if (!tlsActive) return R.requireTlsNeedsTls;
        if (value !== undefined) return R.requireTlsValue;
        requireTls = true;
        break;
      case "AUTH":
        if (!authOffered) return R.unsupportedParam(key);
        if (value === undefined || decodeXtext(value) === undefined) return R.badAuthParam;
        break;
      default:
        return R.unsupportedParam(key);
    }
  }
  return { ...(size !== undefined ? { size } : {}), ...(body ? { body } : {}), smtputf8, ...(ret ? { ret } : {}), ...(envid !== undefined ? { envid } : {}), ...(requireTls ? { requireTls } : {}) };
}

export function rcptParams(params: ReadonlyMap<string, string | undefined>): RecipientDsn | Reply {
  let notify: string[] | undefined;
  let orcpt: string | undefined;
  for (const [key, value] of params) {
    switch (key) {
      case "NOTIFY": {
        const items = (value ?? "").toUpperCase().split(",");
        const ok =
          (items.length === 1 && items[0] === "NEVER") ||
          (items.every((i) => i === "SUCCESS" || i === "FAILURE" || i === "DELAY") && new Set(items).size === items.length);
        if (!ok) return R.badNotify;
        notify = items;
        break;
      }
      case "ORCPT": {
        const semi = value?.indexOf(";") ?? -1;
        const type = semi > 0 ? (value as string).slice(0, semi) : "";
        const decoded = semi > 0 ? decodeXtextUtf8((value as string).slice(semi + 1)) : undefined;
        if (!/^[A-Za-z0-9-]+$/.test(type) || decoded === undefined || decoded.length === 0 || decoded.length > 500) {
          return R.badOrcpt;
        }
        orcpt = `${type.toLowerCase()};${decoded}`;
        break;
      }
      default:
        return R.unsupportedParam(key);
    }
  }
  return { ...(notify ? { notify } : {}), ...(orcpt ? { orcpt } : {}) };
}
