/** What the store tells its watchers and keeps in its history: one change of one object. */
import type { StoredObject } from '../types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  gr: string;
  ns: string;
  name: string;
  rv: number;
  object: StoredObject;
  /** The object before this change (live events only; history replay has no previous state). */
  prev?: StoredObject;
  /** Serialised watch lines, shared by every watcher that sends the same bytes. */
  wire?: Map<string, Buffer>;
  /** Whether watches of one selection show the object and its previous state: decided once for all of them. */
  visibility?: Map<string, [boolean, boolean]>;
}

/** One change as the history table keeps it. */
export interface HistoryRow {
  rv: number;
  ns: string;
  name: string;
  type: EventType;
  data: string;
}

export interface Watcher {
  gr: string;
  ns: string; // '' = all namespaces
  send(ev: StoreEvent): void;
  /** Ends the watch (its resource stopped being served). */
  close?(): void;
}
