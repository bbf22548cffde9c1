/**
 * Public face of the pipeline: the policy object of one SMTP transaction
 * (Transaction: mail, rcpt, data, close; its state typed) and the pipeline
 * of each listener role (mx, submission, trusted), assembled in roles.ts.
 */
export { Pipelines, type PipelineOptions } from "./roles.ts";
export { MAX_HOPS, type Role, type Transaction } from "./transaction.ts";
