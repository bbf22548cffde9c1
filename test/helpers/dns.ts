/**
 * A tiny authoritative DNS server for tests: UDP and TCP on 127.0.0.1, same
 * random port, answering from a zone map with dns-packet. Switches make it
 * misbehave the ways a resolver must survive: SERVFAIL/REFUSED, dropping
 * queries, TC=1 on UDP (the full answer then over TCP), spoofed datagrams
 * (wrong id, wrong question, QR=0) sent before the real answer, AD=1.
 * Every query received is recorded. Loopback only; never built into dist.
 */
import dgram from "node:dgram";
import net from "node:net";
import type { PacketRecord, PacketQuestion } from "../../src/dns/packet.ts";
import { dnsPacket } from "../../src/dns/packet.ts";
import { asciiLower } from "../../src/dns/types.ts";

/** Zone: lower-case name → type → rdata values (dns-packet's `data` shapes). */
export type TestZone = Record<string, { readonly ttl?: number; readonly [type: string]: unknown }>;

export type Mode = "answer" | "servfail" | "refused" | "formerr" | "drop" | "truncate";
export type Spoof = "none" | "id" | "question" | "qr" | "garbage";

export interface ReceivedQuery {
  readonly transport: "udp" | "tcp";
  readonly id: number;
  readonly name: string;
  readonly type: string;
  readonly flags: number;
  readonly ednsSize: number | undefined;
}

export interface TestDnsServer {
  readonly host: string;
  readonly port: number;
  readonly zone: TestZone;
  mode: Mode;
  spoof: Spoof;
  /** Send the real answer after a spoofed one (false: only the spoof). */
  answerAfterSpoof: boolean;
  ad: boolean;
  /** Names (lower case) at or under which every query is read and dropped: a dead name server for those domains only. */
  silent: string[];
  /** The SOA put in the authority section of NXDOMAIN/NODATA, or null for none. */
  soa: { ttl: number; minimum: number } | null;
  readonly queries: ReceivedQuery[];
  close(): Promise<void>;
}

const SPOOF_A = "203.0.113.66";

function answerFor(server: TestDnsServer, q: PacketQuestion): { rcode: number; answers: PacketRecord[]; authorities: PacketRecord[] } {
  const answers: PacketRecord[] = [];
  let owner = asciiLower(q.name);
  for (let link = 0; link < 16; link++) {
    const entry = server.zone[owner];
    if (entry === undefined) return { rcode: 3, answers, authorities: soaRecords(server) };
    const ttl = entry.ttl ?? 300;
    const own = entry[q.type];
    if (Array.isArray(own) && own.length > 0) {
      for (const data of own) answers.push({ name: owner, type: q.type, class: "IN", ttl, data });
      return { rcode: 0, answers, authorities: [] };
    }
    const cname: unknown = Array.isArray(entry.CNAME) ? entry.CNAME[0] : undefined;
    if (typeof cname !== "string") break;
    answers.push({ name: owner, type: "CNAME", class: "IN", ttl, data: cname });
    owner = asciiLower(cname);
  }
  return { rcode: 0, answers, authorities: soaRecords(server) };
}

function soaRecords(server: TestDnsServer): PacketRecord[] {
  if (server.soa === null) return [];
  const data = { mname: "ns.example.test", rname: "hostmaster.example.test", serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: server.soa.minimum };
  return [{ name: "example.test", type: "SOA", class: "IN", ttl: server.soa.ttl, data }];
}

function respond(server: TestDnsServer, query: ReturnType<typeof dnsPacket.decode>, truncate: boolean): Buffer {
  const q = query.questions?.[0] ?? { name: ".", type: "A" };
  let flags = dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED);
  if (server.ad) flags |= dnsPacket.AUTHENTIC_DATA;
  const rcodes: Partial<Record<Mode, number>> = { servfail: 2, refused: 5, formerr: 1 };
  const fixed = rcodes[server.mode];
  if (fixed !== undefined) return dnsPacket.encode({ id: query.id ?? 0, type: "response", flags: flags | fixed, questions: [q] });
  if (truncate) return dnsPacket.encode({ id: query.id ?? 0, type: "response", flags: flags | dnsPacket.TRUNCATED_RESPONSE, questions: [q] });
  const { rcode, answers, authorities } = answerFor(server, q);
  return dnsPacket.encode({ id: query.id ?? 0, type: "response", flags: flags | rcode, questions: [q], answers, authorities });
}

function spoofed(server: TestDnsServer, query: ReturnType<typeof dnsPacket.decode>): Buffer {
  const id = query.id ?? 0;
  const q = query.questions?.[0] ?? { name: ".", type: "A" };
  const poison = (name: string): PacketRecord[] => [{ name, type: "A", class: "IN", ttl: 86400, data: SPOOF_A }];
  switch (server.spoof) {
    case "id":
      return dnsPacket.encode({ id: (id + 1) & 0xffff, type: "response", questions: [q], answers: poison(q.name) });
    case "question":
      return dnsPacket.encode({ id, type: "response", questions: [{ ...q, name: `evil.${q.name}` }], answers: poison(q.name) });
    case "qr":
      return dnsPacket.encode({ id, type: "query", questions: [q], answers: poison(q.name) });
    default: {
      // Right header, then bytes that do not decode.
      const b = Buffer.alloc(20, 0xff);
      b.writeUInt16BE(id, 0);
      b.writeUInt16BE(0x8000, 2);
      b.writeUInt16BE(1, 4);
      return b;
    }
  }
}

/** Whether the query's name is at or under one of server.silent (dropped, never answered). */
function silenced(server: TestDnsServer, query: ReturnType<typeof dnsPacket.decode>): boolean {
  const name = asciiLower(query.questions?.[0]?.name ?? "");
  return server.silent.some((d) => name === d || name.endsWith(`.${d}`));
}

function record(server: TestDnsServer, msg: Buffer, transport: "udp" | "tcp"): ReturnType<typeof dnsPacket.decode> {
  const query = dnsPacket.decode(msg);
  const q = query.questions?.[0];
  const opt = query.additionals?.find((r) => r.type === "OPT");
  server.queries.push({ transport, id: query.id ?? 0, name: q?.name ?? "", type: q?.type ?? "", flags: query.flags ?? 0, ednsSize: opt?.udpPayloadSize });
  return query;
}

async function bindBoth(): Promise<{ udp: dgram.Socket; tcp: net.Server }> {
  for (let i = 0; i < 20; i++) {
    const udp = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
    const port = udp.address().port;
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once("error", () => resolve(false));
      tcp.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) return { udp, tcp };
    udp.close();
  }
  throw new Error("no free port for the test DNS server");
}

export async function startTestDnsServer(zone: TestZone): Promise<TestDnsServer> {
  const { udp, tcp } = await bindBoth();
  const sockets = new Set<net.Socket>();
  const server: TestDnsServer = {
    host: "127.0.0.1",
    port: udp.address().port,
    zone,
    mode: "answer",
    spoof: "none",
    answerAfterSpoof: true,
    ad: false,
    silent: [],
    soa: { ttl: 3600, minimum: 60 },
    queries: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
    },
  };
  udp.on("message", (msg, rinfo) => {
    let query;
    try {
      query = record(server, msg, "udp");
    } catch {
      return;
    }
    if (server.mode === "drop" || silenced(server, query)) return;
    const send = (b: Buffer): void => udp.send(b, rinfo.port, rinfo.address);
    if (server.spoof !== "none") {
      send(spoofed(server, query));
      if (!server.answerAfterSpoof) return;
    }
    send(respond(server, query, server.mode === "truncate"));
  });
  tcp.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      let query;
      try {
        query = record(server, msg, "tcp");
      } catch {
        socket.destroy();
        return;
      }
      if (server.mode === "drop" || silenced(server, query)) return;
      const body = respond(server, query, false);
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(body.length, 0);
      socket.write(Buffer.concat([prefix, body]));
    });
  });
  return server;
}

export { SPOOF_A };
