/** The config for a `wardmail` subcommand (queue, user, dkim, domain). */
import { loadConfig, type Config } from "../config/index.ts";
import type { Io } from "./main.ts";

/** Loads `path` (embedded defaults when undefined); on an error says why and gives undefined: the command then exits 3. */
export async function loadCommandConfig(path: string | undefined, io: Io): Promise<Config | undefined> {
  try {
    return await loadConfig(path);
  } catch (err) {
    io.err(`${err instanceof Error ? err.message : String(err)}\n`);
    return undefined;
  }
}
