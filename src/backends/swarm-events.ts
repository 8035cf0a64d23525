/**
 * Swarm's node and service events as BackendEvents. A service event names only the service, so
 * its server is found by service ID (the reader's map, else one inspect); services that are not
 * ours are remembered so their next events cost nothing.
 */
import { LABELS } from '../api/names.js';
import { eventTime } from './docker-events.js';
import type { SwarmReader } from './swarm-reader.js';
import type { BackendEvent } from './types.js';

export class SwarmEventMapper {
  /** Services seen in events that are not ours (no managed-by label), so each is inspected once. */
  private readonly foreign = new Set<string>();

  constructor(private readonly reader: SwarmReader) {}

  nodeEvent(raw: any): BackendEvent {
    // A node went down, came back, was drained or joined: tasks moved without events of their own.
    this.reader.nodesChanged();
    const id = String(raw.Actor?.ID ?? '');
    const name = raw.Actor?.Attributes?.name ?? this.reader.lastNodes?.byId.get(id)?.hostname;
    return { type: 'node', name, action: String(raw.Action ?? ''), time: eventTime(raw) };
  }

  async serviceEvent(raw: any): Promise<BackendEvent | undefined> {
    const id: string = raw.Actor?.ID;
    if (this.foreign.has(id)) return undefined;
    let uid = this.reader.serviceUids.get(id);
    if (!uid && raw.Action !== 'remove') {
      const s = await this.reader.inspectService(id);
      uid = s?.Spec?.Labels?.[LABELS.uid];
      if (s && s.Spec?.Labels?.[LABELS.managedBy] === undefined) {
        // Someone else's service (a shared daemon): remember, so its next events cost no inspect.
        if (this.foreign.size > 10_000) this.foreign.clear();
        this.foreign.add(id);
      }
      if (s?.Spec?.Labels?.[LABELS.managedBy] === undefined) return undefined;
      if (uid) this.reader.serviceUids.set(id, uid);
    }
    if (!uid) return undefined;
    if (raw.Action === 'remove') this.reader.serviceUids.delete(id);
    const name = raw.Actor?.Attributes?.name;
    return { uid, name, type: 'service', action: String(raw.Action), time: eventTime(raw) };
  }
}
