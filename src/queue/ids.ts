/**
 * Queue ids: short, unique across shards and restarts, safe in file names,
 * logs and shell arguments.
 *
 * An id is 18 characters of lowercase Crockford base32 (0-9, a-z without
 * i l o u): 10 for the creation time in milliseconds (48 bits, good until
 * year 10889), 2 for the shard number (0..1023), 6 for a per-process counter
 * that starts at a random value (30 bits). One shard has one writer, so time +
 * shard + counter is unique within a run; the random start covers a restart
 * whose clock went backwards. Ids sort by creation time. The shard can be read
 * back from an id, which is how the admin side routes a command to its file.
 */
import { randomInt } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_RE = /^[0-9a-hjkmnp-tv-z]{18}$/;
export const MAX_SHARD = 1023;

const COUNTER_SPACE = 2 ** 30;
let counter = randomInt(0, COUNTER_SPACE);

function encode(value: number, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[value % 32]! + out;
    value = Math.floor(value / 32);
  }
  return out;
}

function decode(text: string): number {
  let value = 0;
  for (const ch of text) value = value * 32 + ALPHABET.indexOf(ch);
  return value;
}

/** Makes a new queue id for a message created now on the given shard. */
export function newQueueId(shard: number, now: number = Date.now()): string {
  checkShard(shard);
  counter = (counter + 1) % COUNTER_SPACE;
  return encode(now, 10) + encode(shard, 2) + encode(counter, 6);
}

/** True when the text has the shape of a queue id (case-insensitive input is normalised by callers). */
export function isQueueId(text: string): boolean {
  return ID_RE.test(text);
}

/** The shard number written in a queue id, or undefined when it is not an id. */
export function shardOfId(id: string): number | undefined {
  if (!isQueueId(id)) return undefined;
  return decode(id.slice(10, 12));
}

/** The creation time (ms since the epoch) written in a queue id. */
export function timeOfId(id: string): number | undefined {
  if (!isQueueId(id)) return undefined;
  return decode(id.slice(0, 10));
}

export function checkShard(shard: number): void {
  if (!Number.isInteger(shard) || shard < 0 || shard > MAX_SHARD) {
    throw new RangeError(`shard must be an integer 0..${MAX_SHARD}, got ${shard}`);
  }
}
