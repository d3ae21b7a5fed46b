// The shapes the backend sends and takes: generated from the Rust definitions (bindings.ts),
// with the few names the pages use for them.
export type * from "./bindings";
export type { State as ServerState } from "./bindings";
export type { Event as SecurityEvent } from "./bindings";
export type { IndexEntry as ModelRow } from "./bindings";
