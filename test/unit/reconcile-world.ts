/**
 * An in-memory world for reconcile unit tests: NotebookServers and Secrets in maps (the caches),
 * a writer that applies merge patches to them (the API), an Event list, a probe answer, and the
 * FakeBackend (Docker). Each step records what one reconcile did.
 */
import { API_VERSION, KIND } from '../../src/api/names.js';
import type { NotebookServer, NotebookServerSpec, NotebookServerStatus } from '../../src/api/types.js';
import { FakeBackend } from '../../src/backends/fake.js';
import type { BackendKind } from '../../src/backends/types.js';
import { defaultPolicy } from '../../src/config/policy.js';
import type { Policy } from '../../src/config/types.js';
import type { EventRecorder } from '../../src/controller/events.js';
import { OrphanCollector } from '../../src/controller/gc.js';
import type { ObjectWriter } from '../../src/controller/object-writer.js';
import { HostPortAllocator } from '../../src/controller/ports.js';
import type { ReconcileResult } from '../../src/controller/progress.js';
import { Reconciler, newReconcilerStats, type ReconcilerDeps } from '../../src/controller/reconciler.js';
import { createLogger } from '../../src/log.js';

export const IMAGE = 'local/notebook:latest';
export const NOW = '2026-01-02T03:04:05Z';

/** RFC 7386: what the API server does with a merge patch. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

export interface Step {
  result?: ReconcileResult | void;
  error?: unknown;
  /** Docker writes of this reconcile. */
  docker: string[];
  statusPatches: Array<Record<string, unknown>>;
  metadataPatches: Array<Record<string, unknown>>;
  events: Array<{ type: string; reason: string; message: string }>;
  obj?: NotebookServer;
  status: NotebookServerStatus;
}

export class World {
  readonly backend: FakeBackend;
  readonly policy: Policy;
  readonly servers = new Map<string, NotebookServer>();
  readonly secrets = new Map<string, Record<string, string>>();
  readonly events: Step['events'] = [];
  readonly statusPatches: Step['statusPatches'] = [];
  readonly metadataPatches: Step['metadataPatches'] = [];
  readonly stats = newReconcilerStats();
  readonly gc: OrphanCollector;
  readonly reconciler: Reconciler;
  /** Whether servers answer their HTTP probe. */
  answering = true;
  probes: string[] = [];
  private rv = 100;

  constructor(kind: BackendKind = 'service', policy: Partial<Policy> = {}, deps: Partial<ReconcilerDeps> = {}) {
    this.backend = new FakeBackend(kind);
    this.backend.addImage(IMAGE);
    this.policy = { ...defaultPolicy(), ...policy };
    const writer: ObjectWriter = {
      patchMetadata: async (obj, metadata) => {
        this.metadataPatches.push(metadata);
        this.stats.metadataPatches++;
        return this.write(obj, (cur) => ({ ...cur, metadata: applyMergePatch(cur.metadata, metadata) as NotebookServer['metadata'] }))!;
      },
      patchStatus: async (obj, status) => {
        this.statusPatches.push(status);
        this.stats.statusPatches++;
        return this.write(obj, (cur) => ({ ...cur, status: applyMergePatch(cur.status ?? {}, status) as NotebookServerStatus }));
      },
    };
    const events: EventRecorder = {
      emit: async (_obj, type, reason, message) => void this.events.push({ type, reason, message }),
      count: () => this.events.length,
    };
    const known = { hasSynced: () => true, keyForUid: (uid: string) => [...this.servers.values()].find((o) => o.metadata.uid === uid) && 'known' };
    this.gc = new OrphanCollector(this.backend, known, createLogger({ silent: true }), { prefix: this.policy.prefix });
    this.reconciler = new Reconciler({
      policy: this.policy,
      backend: this.backend,
      servers: { get: (k: string) => this.servers.get(k), list: () => [...this.servers.values()] },
      secrets: { values: (ns, name) => this.secrets.get(`${ns}/${name}`) },
      writer,
      events,
      ports: new HostPortAllocator(this.policy.hostPortRange, async () => true),
      probe: async (url) => {
        this.probes.push(url);
        return this.answering;
      },
      gc: this.gc,
      stats: this.stats,
      now: () => NOW,
      sleep: async () => undefined,
      ...deps,
    });
  }

  private write(obj: NotebookServer, change: (cur: NotebookServer) => NotebookServer): NotebookServer | undefined {
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const cur = this.servers.get(key);
    if (!cur) return undefined;
    const next = change(structuredClone(cur));
    next.metadata.resourceVersion = String(++this.rv);
    this.servers.set(key, next);
    return structuredClone(next);
  }

  /** Create (or replace) a NotebookServer as the API would store it. */
  put(name: string, spec: Partial<NotebookServerSpec> = {}, meta: Partial<NotebookServer['metadata']> = {}): NotebookServer {
    const prev = this.servers.get(`default/${name}`);
    const obj: NotebookServer = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name,
        namespace: 'default',
        uid: prev?.metadata.uid ?? `uid-${name}`,
        generation: 1,
        resourceVersion: String(++this.rv),
        ...prev?.metadata,
        ...meta,
      },
      spec: { user: 'alice', ...spec },
      status: prev?.status,
    };
    this.servers.set(`default/${name}`, obj);
    return obj;
  }

  /** A spec change: the API bumps metadata.generation. */
  edit(name: string, spec: Partial<NotebookServerSpec>, meta: Partial<NotebookServer['metadata']> = {}): NotebookServer {
    const cur = this.get(name);
    return this.put(name, { ...cur.spec, ...spec }, { ...meta, generation: (cur.metadata.generation ?? 1) + 1 });
  }

  get(name: string): NotebookServer {
    const o = this.servers.get(`default/${name}`);
    if (!o) throw new Error(`no NotebookServer ${name}`);
    return o;
  }

  /** One reconcile of `name`, and what it did. */
  async step(name: string): Promise<Step> {
    const marks = { docker: this.backend.writes.length, status: this.statusPatches.length, meta: this.metadataPatches.length, events: this.events.length };
    const out: Partial<Step> = {};
    try {
      out.result = await this.reconciler.reconcile(`default/${name}`);
    } catch (err) {
      out.error = err;
    }
    const obj = this.servers.get(`default/${name}`);
    return {
      ...out,
      docker: this.backend.writes.slice(marks.docker),
      statusPatches: this.statusPatches.slice(marks.status),
      metadataPatches: this.metadataPatches.slice(marks.meta),
      events: this.events.slice(marks.events),
      obj,
      status: obj?.status ?? {},
    };
  }

  /** Reconcile until a reconcile writes nothing (at most `max` times); the last step. */
  async settle(name: string, max = 5): Promise<Step> {
    let s = await this.step(name);
    for (let i = 1; i < max && (s.docker.length || s.statusPatches.length || s.metadataPatches.length); i++) s = await this.step(name);
    return s;
  }
}

export function condition(status: NotebookServerStatus, type: string) {
  return status.conditions?.find((c) => c.type === type);
}
