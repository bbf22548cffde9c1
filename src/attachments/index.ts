/**
 * The attachment policy (a content check): executables, disk images,
 * macro-enabled Office files, encrypted and unscannable archives, found by
 * name and content in every MIME part and in zip archives, nested.
 */
export { AttachmentCheck, attachmentsFromConfig, plainText, shownName, strictest, type AttachmentOptions } from "./check.ts";
export { baseName, contentFindings, nameFindings, type Finding, type Kind } from "./detect.ts";
export type { WalkLimits } from "./walk.ts";
export { walkMessage } from "./check.ts";
