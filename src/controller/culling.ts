/**
 * Idle culling (off by default). Kubeflow's culling controller probes each notebook's Jupyter API
 * for kernel activity and, when idle too long, sets the annotation `kubeflow-resource-stopped`
 * instead of changing spec; the notebook controller scales to zero while it is present. We do the
 * same with `nbswarm.io/stopped` (+ `nbswarm.io/stopped-generation`, `nbswarm.io/stopped-reason`):
 *  - spec stays what the owner (a person, the hub, or a GitOps tool) declared, so a GitOps sync has
 *    nothing to revert and does not restart the server behind the culler's back; an annotation the
 *    manifest does not mention is left alone by kubectl apply's three-way merge and by SSA;
 *  - starting again is explicit: remove the annotation, or change spec (the reconciler clears the
 *    annotation when metadata.generation moves past the generation recorded at cull time).
 *
 * Activity signals, probed on 127.0.0.1 only:
 *  1. Jupyter's GET <hostUrl>/api/status → last_activity (kernels, terminals, API requests);
 *  2. for every mode (dashboards have no such API): established TCP connections to the server's
 *     host port, read from /proc/net/tcp{,6} of the operator's network namespace. That works where
 *     `nbswarm up` runs (on the Docker host: Docker's userland proxy or host networking holds the
 *     client connections). An open browser tab/websocket keeps a dashboard alive; plain HTTP
 *     reachability is NOT treated as activity, since it would mean "never idle".
 * The idle clock starts at the later of status.lastActivity and the time the server became Ready.
 */
import { readFile } from 'node:fs/promises';
import { ANNOTATIONS } from '../api/names.js';
import type { NotebookServer } from '../api/types.js';
import type { Policy } from '../config/types.js';
import { isoSeconds, nowIso } from '../util/time.js';
import { getCondition } from './conditions.js';
import { isStopped } from './desired.js';
import type { EventRecorder } from './events.js';
import type { NotebookServerInformer } from './informer.js';
import type { Logger } from '../log.js';
import { errorFields } from '../log.js';
import { httpGet, probeUrl } from './netutil.js';
import type { ObjectWriter } from './object-writer.js';

export interface CullerStats {
  probes: number;
  culled: number;
  activityWrites: number;
}

/** Established connections per local port, from the kernel's socket tables. */
export async function establishedByLocalPort(): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '01') continue; // 01 = ESTABLISHED
      const port = parseInt(cols[1].split(':')[1] ?? '', 16);
      if (port) out.set(port, (out.get(port) ?? 0) + 1);
      // A client on this host seen from its own side (when no userland proxy holds the other end).
      const [raddr, rport] = cols[2].split(':');
      const remote = parseInt(rport ?? '', 16);
      if (remote && remote !== port && isLoopbackHex(raddr ?? '')) out.set(remote, (out.get(remote) ?? 0) + 1);
    }
  }
  return out;
}

/** 127.0.0.0/8 in /proc/net/tcp's little-endian hex, or ::1 / ::ffff:127.x in tcp6. */
function isLoopbackHex(a: string): boolean {
  if (a.length === 8) return a.endsWith('7F');
  return a === '00000000000000000000000001000000' || (a.startsWith('0000000000000000FFFF0000') && a.endsWith('7F'));
}

export class Culler {
  readonly s: CullerStats = { probes: 0, culled: 0, activityWrites: 0 };
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly d: {
      /** Writes status.lastActivity and the stop annotations. */
      writer: ObjectWriter;
      policy: Policy;
      informer: NotebookServerInformer;
      events: EventRecorder;
      log: Logger;
      isLeader: () => boolean;
      /** The writer puts our write into the cache and marks its watch event an echo: queue the key ourselves. */
      enqueue: (key: string, reason: string) => void;
    },
  ) {}

  start(): void {
    const every = Math.max(1, this.d.policy.culling.probeIntervalSeconds) * 1000;
    const loop = async () => {
      if (this.stopped) return;
      if (this.d.isLeader()) {
        try {
          await this.probeAll();
        } catch (err) {
          this.d.log.warn('culling pass failed', errorFields(err));
        }
      }
      if (!this.stopped) this.timer = setTimeout(() => void loop(), every);
    };
    this.timer = setTimeout(() => void loop(), every);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  async probeAll(): Promise<void> {
    const conns = await establishedByLocalPort();
    for (const obj of this.d.informer.list()) {
      if (this.stopped) return;
      if (obj.metadata.deletionTimestamp || isStopped(obj) || obj.status?.phase !== 'Running') continue;
      await this.probe(obj, conns);
    }
  }

  private async probe(obj: NotebookServer, conns: Map<number, number>): Promise<void> {
    this.s.probes++;
    const ep = obj.status?.endpoint;
    // Connection counts are local (/proc), so they mean something only for a loopback endpoint.
    const base = probeUrl(ep?.hostUrl, this.d.policy.probeNetworks ?? ['127.0.0.0/8', '::1/128']);
    const local = base !== undefined && /^http:\/\/127\./.test(base);
    const now = Date.now();
    let activity: number | undefined;
    const port = base ? Number(new URL(base).port) : undefined;
    if (local && port && (conns.get(port) ?? 0) > 0) activity = now;
    if (base) {
      try {
        const res = await httpGet(new URL('api/status', base.endsWith('/') ? base : base + '/').toString(), 1500);
        if (res.status === 200) {
          const la = Date.parse((JSON.parse(res.body) as { last_activity?: string }).last_activity ?? '');
          if (Number.isFinite(la)) activity = Math.max(activity ?? 0, la);
        }
      } catch {
        // not a Jupyter server, or not answering: no signal from this source
      }
    }
    const stored = Date.parse(obj.status?.lastActivity ?? '');
    const readySince = Date.parse(getCondition(obj.status?.conditions, 'Ready')?.lastTransitionTime ?? '');
    const last = Math.max(activity ?? 0, Number.isFinite(stored) ? stored : 0, Number.isFinite(readySince) ? readySince : 0);
    if (activity !== undefined && (!Number.isFinite(stored) || activity > stored)) {
      await this.d.writer.patchStatus(obj, { lastActivity: isoSeconds(activity) });
      this.s.activityWrites++;
    }
    const idleMs = now - last;
    if (last > 0 && idleMs > this.d.policy.culling.idleTimeoutSeconds * 1000) {
      const idleFor = Math.round(idleMs / 1000);
      await this.d.writer.patchMetadata(obj, {
        annotations: {
          [ANNOTATIONS.stopped]: nowIso(),
          [ANNOTATIONS.stoppedGeneration]: String(obj.metadata.generation ?? 0),
          [ANNOTATIONS.stoppedReason]: 'Culled',
        },
      });
      this.s.culled++;
      this.d.enqueue(`${obj.metadata.namespace}/${obj.metadata.name}`, 'culled');
      const msg = `idle for ${idleFor}s (policy culling.idleTimeoutSeconds=${this.d.policy.culling.idleTimeoutSeconds}); stopping, volumes kept. Remove annotation ${ANNOTATIONS.stopped} to start again`;
      this.d.log.info('culling idle server', { resource: `${obj.metadata.namespace}/${obj.metadata.name}`, idleSeconds: idleFor });
      await this.d.events.emit(obj, 'Normal', 'Culled', msg);
    }
  }
}
