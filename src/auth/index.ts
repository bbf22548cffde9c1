/** Public face of src/auth: password hashes, SCRAM keys and the SASL mechanisms (pure state machines). */
export { dummyHash, hashPassword, verifyPassword } from "./password.ts";
export { deriveScramKeys, newScramSalt, SCRAM_ITERATIONS, type ScramKeys } from "./scram-keys.ts";
export { createMechanism } from "./sasl.ts";
export type { CredentialStore, SaslMechanism, ScramCredentials } from "./types.ts";
