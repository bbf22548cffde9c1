/** The wire's bytes, shared by the server's and the client's codec. */
export const CR = 0x0d;
export const LF = 0x0a;
export const DOT = 0x2e;
export const CRLF = Buffer.from("\r\n");
export const DOT_BUF = Buffer.from(".");
export const DOT_CRLF = Buffer.from(".\r\n");
