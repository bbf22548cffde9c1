/**
 * How a Connection ends its socket over loopback: after QUIT the socket is
 * closed as soon as the 221 is written (the client gets the 221 and our
 * FIN, and the server holds nothing while the client keeps its side open);
 * any other close (a 421, an error limit) still shuts down the sending side
 * and waits for the client, so a client that is still sending gets its
 * reply. The facts given to the host are the same object while they do
 * not change and a new one when they do (EHLO).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { serveConnections } from "../../test/helpers/connection.ts";
import { reply, type Question } from "../protocol/index.ts";
import type { ConnectionInfo, HostAnswer, SessionHost } from "./host.ts";

const OK = reply(250, "2.0.0", "Ok");

class RecordingHost implements SessionHost {
  readonly infos: ConnectionInfo[] = [];
  connected(info: ConnectionInfo): void {
    this.infos.push(info);
  }
  answer(_q: Question, info: ConnectionInfo): HostAnswer {
    this.infos.push(info);
    return { reply: OK };
  }
}

/** Sends lines one by one, each after the previous reply; resolves with everything read once `until` matches (bounded in time). */
async function talk(socket: net.Socket, lines: string[], until: RegExp): Promise<string> {
  let buf = "";
  socket.setEncoding("latin1");
  let next = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out; read ${JSON.stringify(buf)}`)), 5000);
    socket.on("data", (d: string) => {
      buf += d;
      if (until.test(buf)) {
        clearTimeout(timer);
        resolve(buf);
        return;
      }
      if (/(?:^|\r\n)\d{3} [^\r\n]*\r\n$/.test(buf) && next < lines.length) socket.write(`${lines[next++]}\r\n`);
    });
  });
}

/** Polls f until it is true, at most `ms`. */
async function eventually(f: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await f()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return f();
}

test("after QUIT the server closes its socket at once, even while the client keeps its side open", async () => {
  const host = new RecordingHost();
  const srv = await serveConnections(host);
  // allowHalfOpen: the client does not answer our FIN with its own.
  const socket = net.connect({ port: srv.port, host: "127.0.0.1", allowHalfOpen: true });
  try {
    const ended = once(socket, "end");
    const out = await talk(socket, ["HELO client.test", "QUIT"], /221 2\.0\.0 Bye\r\n/);
    assert.match(out, /^220 /);
    // Our FIN comes with (after) the 221; the client has not closed anything.
    await ended;
    assert.ok(await eventually(async () => (await srv.open()) === 0, 2000), "the server still holds the socket after QUIT");
  } finally {
    socket.destroy();
    await srv.close();
  }
});

test("a close that is not QUIT (too many errors) still shuts down gracefully: the reply arrives, then our FIN", async () => {
  const srv = await serveConnections(new RecordingHost(), 2);
  // allowHalfOpen: the client keeps its side open after our FIN; the server waits for it (unlike after QUIT).
  const socket = net.connect({ port: srv.port, host: "127.0.0.1", allowHalfOpen: true });
  try {
    const ended = once(socket, "end");
    const out = await talk(socket, ["BOGUS", "BOGUS"], /421 4\.7\.0 Too many errors[^\r\n]*\r\n/);
    assert.match(out, /500 5\.5\.2 Command unrecognized/);
    await ended;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await srv.open(), 1, "the server waits for the client's side after a 421");
    socket.end();
    assert.ok(await eventually(async () => (await srv.open()) === 0, 2000), "the server lets go once the client closes");
  } finally {
    socket.destroy();
    await srv.close();
  }
});

test("the facts given to the host stay one object until EHLO changes them", async () => {
  const host = new RecordingHost();
  const srv = await serveConnections(host);
  const socket = net.connect(srv.port, "127.0.0.1");
  try {
    await talk(socket, ["HELO one.test", "MAIL FROM:<a@one.test>", "RCPT TO:<b@two.test>", "RSET", "EHLO two.test", "MAIL FROM:<a@one.test>", "QUIT"], /221 /);
    const [connect, mail1, rcpt1, mail2] = host.infos;
    assert.equal(host.infos.length, 4);
    assert.equal(connect?.helo, "");
    assert.equal(mail1?.helo, "one.test");
    assert.equal(mail1?.protocol, "SMTP");
    assert.equal(rcpt1, mail1, "a new object although nothing changed");
    assert.equal(mail2?.helo, "two.test");
    assert.equal(mail2?.protocol, "ESMTP");
    assert.equal(mail2?.scratch, mail1?.scratch, "the per-connection state must be the same");
  } finally {
    socket.destroy();
    await srv.close();
  }
});
