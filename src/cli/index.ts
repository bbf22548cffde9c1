/** Public face of src/cli: the `wardmail` command (main.ts) and the parsers its subcommands share. */
export { main } from "./main.ts";
export { parseTarget } from "./audit.ts";
