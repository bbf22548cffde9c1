/**
 * Test-only helpers for the MTA-STS and DANE tests: certificates made with
 * the openssl CLI in a temporary directory (CAs, intermediates, leaves,
 * self-signed, expired), openssl digests for TLSA data computed
 * independently of dane.ts, and TLS servers/clients on 127.0.0.1.
 * Loopback only. Not part of the server: keep it out of dist.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { isIP, type AddressInfo } from "node:net";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";

export interface Issued {
  readonly key: string;
  readonly cert: string;
  readonly keyPath: string;
  readonly certPath: string;
  /** The certificate PEM followed by the issuer chain PEMs below the root (what a server sends). */
  readonly chain: string;
  readonly selfSigned: boolean;
}

/** Runs openssl; resolves stdout as a Buffer. */
export function openssl(args: readonly string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile("openssl", args, { encoding: "buffer", maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(" ")}: ${err.message} ${stderr.toString()}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

export interface CertOptions {
  /** subjectAltNames: DNS names, or IP addresses (an IP SAN); none → no SAN extension. */
  readonly names?: readonly string[];
  readonly cn?: string;
  /** Signing CA (absent → self-signed). */
  readonly issuer?: Issued;
  /** Validity in days; -1 gives a certificate already expired. */
  readonly days?: number;
  readonly ca?: boolean;
  readonly keyType?: "ec" | "rsa";
  /** Leave out authorityKeyIdentifier (issuer linked by name only). */
  readonly noAki?: boolean;
}

export class CertFactory {
  readonly dir: string;
  #n = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<CertFactory> {
    return new CertFactory(await mkdtemp(join(tmpdir(), "wardmail-outbound-")));
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** A root CA (self-signed) or an intermediate CA when `issuer` is given. */
  caCert(cn: string, issuer?: Issued): Promise<Issued> {
    return this.make({ cn, ca: true, days: 30, ...(issuer !== undefined ? { issuer } : {}) });
  }

  async make(o: CertOptions): Promise<Issued> {
    const base = join(this.dir, `c${++this.#n}`);
    const keyPath = `${base}.key`;
    const certPath = `${base}.crt`;
    const extPath = `${base}.ext`;
    const cn = o.cn ?? o.names?.[0] ?? `cert ${this.#n}`;
    const ext = o.ca
      ? ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign", "subjectKeyIdentifier=hash"]
      : ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth"];
    if (o.names !== undefined && o.names.length > 0) ext.push(`subjectAltName=${o.names.map((n) => (isIP(n) !== 0 ? `IP:${n}` : `DNS:${n}`)).join(",")}`);
    if (o.issuer !== undefined) ext.push(o.noAki === true ? "authorityKeyIdentifier=none" : "authorityKeyIdentifier=keyid");
    await writeFile(extPath, ext.join("\n") + "\n");
    const keyArgs = o.keyType === "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    const days = String(o.days ?? 30);
    const csr = `${base}.csr`;
    const signer = o.issuer === undefined ? ["-signkey", keyPath] : ["-CA", o.issuer.certPath, "-CAkey", o.issuer.keyPath];
    await openssl(["req", "-new", ...keyArgs, "-nodes", "-keyout", keyPath, "-out", csr, "-subj", `/CN=${cn}`]);
    await openssl(["x509", "-req", "-in", csr, ...signer, "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", days, "-extfile", extPath, "-out", certPath]);
    const [key, cert] = await Promise.all([readFile(keyPath, "utf8"), readFile(certPath, "utf8")]);
    // The issuer's chain minus a self-signed root (servers do not send the root).
    const upper = o.issuer === undefined || o.issuer.selfSigned ? "" : o.issuer.chain;
    return { key, cert, keyPath, certPath, chain: cert + upper, selfSigned: o.issuer === undefined };
  }
}

/** TLSA association data computed by openssl: selector 0 = DER certificate, 1 = DER SPKI; matching 0/1/2. */
export async function tlsaData(c: Issued, selector: number, matching: number): Promise<Buffer> {
  const der = await openssl(["x509", "-in", c.certPath, "-outform", "DER"]);
  const selected = selector === 0 ? der : await openssl(["pkey", "-pubin", "-outform", "DER"], await openssl(["x509", "-in", c.certPath, "-noout", "-pubkey"]));
  if (matching === 0) return selected;
  const hex = (await openssl(["dgst", matching === 1 ? "-sha256" : "-sha512", "-r"], selected)).toString().split(" ")[0] ?? "";
  return Buffer.from(hex, "hex");
}

export interface TestTlsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A TLS server on 127.0.0.1 that completes handshakes and then closes each connection when the client does. */
export async function tlsServer(options: tls.TlsOptions): Promise<TestTlsServer> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(options, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    s.resume();
  });
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

/** Connects like the SMTP client will (rejectUnauthorized false, SNI = servername); resolves after the handshake. */
export async function tlsConnect(port: number, servername: string, ca?: string | string[]): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false, ...(ca !== undefined ? { ca } : {}) });
  try {
    await once(socket, "secureConnect");
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return socket;
}

export interface PolicyResponse {
  readonly status?: number;
  readonly contentType?: string;
  readonly body?: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  /** Send the body in pieces with chunked transfer coding (no Content-Length). */
  readonly chunked?: boolean;
  /** Never answer (for timeouts). */
  readonly hang?: boolean;
}

export interface PolicyServer {
  readonly port: number;
  /** Requests per Host header. */
  readonly hits: Map<string, number>;
  /** Host header (lower case) → response; absent → 404. */
  readonly routes: Map<string, PolicyResponse>;
  close(): Promise<void>;
}

/**
 * An HTTPS server on 127.0.0.1 for policy hosts: the certificate is chosen by
 * SNI (`certFor(servername)`, else `fallback`), the response by Host header.
 */
export async function policyServer(certFor: (servername: string) => Issued | undefined, fallback: Issued): Promise<PolicyServer> {
  const hits = new Map<string, number>();
  const routes = new Map<string, PolicyResponse>();
  const contexts = new Map<string, tls.SecureContext>();
  const server = https.createServer(
    {
      key: fallback.key,
      cert: fallback.chain,
      SNICallback: (name, cb) => {
        const c = certFor(name.toLowerCase()) ?? fallback;
        let ctx = contexts.get(c.certPath);
        if (ctx === undefined) {
          ctx = tls.createSecureContext({ key: c.key, cert: c.chain });
          contexts.set(c.certPath, ctx);
        }
        cb(null, ctx);
      },
    },
    (req, res) => {
      const host = (req.headers.host ?? "").toLowerCase().replace(/:\d+$/, "");
      hits.set(host, (hits.get(host) ?? 0) + 1);
      const r = req.url === "/.well-known/mta-sts.txt" ? routes.get(host) : undefined;
      if (r === undefined) {
        res.writeHead(404, { "content-type": "text/plain", "content-length": "9" }).end("not found");
        return;
      }
      if (r.hang === true) return;
      const body = Buffer.from(r.body ?? "");
      const headers: Record<string, string> = { ...(r.contentType !== undefined ? { "content-type": r.contentType } : {}), ...r.headers };
      if (r.chunked === true) {
        res.writeHead(r.status ?? 200, headers);
        for (let at = 0; at < body.length; at += 4096) res.write(body.subarray(at, at + 4096));
        res.end();
        return;
      }
      res.writeHead(r.status ?? 200, { "content-length": String(body.length), ...headers }).end(body);
    },
  );
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    routes,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
