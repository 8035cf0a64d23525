/**
 * Every reconcile transition, table-driven, through the FakeBackend: the Docker writes each one
 * makes, the status it writes and the Events it records. No Docker, no API server.
 */
import { expect } from 'chai';
import { ANNOTATIONS, FINALIZER, LABELS } from '../../src/api/names.js';
import { BackendError } from '../../src/backends/types.js';
import type { NotebookServerSpec } from '../../src/api/types.js';
import type { Policy } from '../../src/config/types.js';
import { SystemUserError } from '../../src/config/system-users.js';
import { RetryLater, type ReconcilerDeps } from '../../src/controller/reconciler.js';
import { IMAGE, NOW, World, condition, type Step } from './reconcile-world.js';

const STAMP = '2026-01-02T03:00:00Z';

interface Expect {
  docker?: string[];
  phase?: string;
  ready?: [string, string];
  message?: RegExp;
  events?: string[];
  result?: unknown;
  error?: new (...args: any[]) => Error;
  statusPatches?: number;
}

interface Case {
  name: string;
  kind?: 'service' | 'container';
  policy?: Partial<Policy>;
  deps?: Partial<ReconcilerDeps>;
  /** The server reconciled (default "nb"). */
  key?: string;
  /** Bring the world to the state before the reconcile under test. */
  given: (w: World) => Promise<void> | void;
  expect: Expect;
  /** Further checks on the world and the step. */
  also?: (w: World, s: Step) => void;
}

const running = async (w: World, name = 'nb', spec = {}) => {
  w.put(name, spec);
  await w.settle(name);
};
/** Running, then its spec changed. */
const edited = (spec: Partial<NotebookServerSpec>) => async (w: World) => {
  await running(w);
  w.edit('nb', spec);
};
const ENV_A = { env: [{ name: 'A', value: '1' }] };
/** Running, then stopped by the culler's annotation (no spec change). */
const culled = async (w: World) => {
  await running(w);
  w.put('nb', {}, { annotations: { [ANNOTATIONS.stopped]: STAMP, [ANNOTATIONS.stoppedGeneration]: '1', [ANNOTATIONS.stoppedReason]: 'Culled' } });
};
/** Running, then deleted (the API sets deletionTimestamp; our finalizer holds it). */
const deleted = async (w: World) => {
  await running(w);
  w.put('nb', {}, { deletionTimestamp: STAMP });
};

const cases: Case[] = [
  {
    name: 'create: finalizer, volume and service, Running once the server answers',
    given: (w) => void w.put('nb'),
    expect: { docker: ['volume-create nbs-alice-home', 'create nbs-alice'], phase: 'Running', ready: ['True', 'Running'], events: ['Created', 'Ready'], result: undefined },
    also: (w, s) => {
      expect(s.metadataPatches).to.deep.equal([{ finalizers: [FINALIZER] }]);
      expect(s.statusPatches).to.have.length(1);
      expect(s.status.observedGeneration).to.equal(1);
      expect(s.status.endpoint).to.deep.equal({ hostUrl: 'http://127.0.0.1:32768', host: '127.0.0.1', port: 32768, url: 'http://127.0.0.1:32768' });
      expect(s.status.backend).to.deep.include({ kind: 'service', name: 'nbs-alice', image: IMAGE, node: 'fake-node' });
      expect(condition(s.status, 'ImageReady')).to.include({ status: 'True', reason: 'Resolved' });
      expect(w.probes).to.deep.equal(['http://127.0.0.1:32768/']);
    },
  },
  {
    name: 'create with the task still pending: Creating, polled by stage',
    given: (w) => {
      w.backend.startState = 'pending';
      w.put('nb');
    },
    expect: { docker: ['volume-create nbs-alice-home', 'create nbs-alice'], phase: 'Creating', ready: ['False', 'Pending'], events: ['Created', 'Pending'], result: { progress: 'Pending: nbs-alice is waiting to be scheduled' } },
  },
  {
    name: 'running but not answering yet: Creating, polled at stage "answering"',
    given: (w) => {
      w.answering = false;
      w.put('nb');
    },
    expect: { phase: 'Creating', ready: ['False', 'Starting'], events: ['Created'], result: { progress: 'answering' } },
  },
  {
    name: 'converged: no Docker write, no status patch, no Event',
    given: (w) => running(w),
    expect: { docker: [], statusPatches: 0, events: [], phase: 'Running', result: undefined },
    also: (_w, s) => expect(s.metadataPatches).to.deep.equal([]),
  },
  {
    name: 'update: a spec change updates the service in place for the new generation',
    given: edited(ENV_A),
    expect: { docker: ['update nbs-alice'], phase: 'Running', events: ['Updated'] },
    also: (_w, s) => expect(s.status.observedGeneration).to.equal(2),
  },
  {
    name: 'update: a spec change recreates a plain container',
    kind: 'container',
    given: edited(ENV_A),
    expect: { docker: ['recreate nbs-alice'], phase: 'Running', events: ['Updated'] },
  },
  {
    name: 'a spec change that renders the same object writes nothing to Docker',
    given: edited({ servername: '' }),
    expect: { docker: [], phase: 'Running', events: [] },
    also: (_w, s) => expect(s.statusPatches).to.deep.equal([{ observedGeneration: 2 }]),
  },
  {
    name: 'drift: an object removed behind the operator\'s back is created again',
    given: async (w) => {
      await running(w);
      w.backend.removeBehindBack('uid-nb');
    },
    expect: { docker: ['create nbs-alice'], phase: 'Running', events: ['Created'] },
  },
  {
    name: 'stop: spec.stopped scales to 0; Stopped, endpoint gone, volume kept',
    given: edited({ stopped: true }),
    expect: { docker: ['stop nbs-alice'], phase: 'Stopped', ready: ['False', 'Stopped'], events: ['Stopped'], result: undefined },
    also: (w, s) => {
      expect(s.status.endpoint).to.equal(undefined);
      expect(s.status.message).to.equal('nbs-alice is stopped');
      expect(w.backend.volumeNames()).to.deep.equal(['nbs-alice-home']);
    },
  },
  {
    name: 'stop while the task shuts down: Stopping, looked at again in 1 s',
    given: async (w) => {
      await running(w);
      w.backend.stoppedState = 'running';
      w.edit('nb', { stopped: true });
    },
    expect: { docker: ['stop nbs-alice'], phase: 'Stopping', ready: ['False', 'Stopping'], result: { requeueAfterMs: 1000 } },
  },
  {
    name: 'culled: the stop annotation stops without a spec change, saying why',
    given: culled,
    expect: { docker: ['stop nbs-alice'], phase: 'Stopped', message: /stopped by annotation nbswarm\.io\/stopped \(Culled\); remove it or change spec/ },
    also: (w) => expect(w.events.at(-1)?.message).to.equal('stopped service nbs-alice (Culled); volumes kept'),
  },
  {
    name: 'a spec change after a cull clears the annotation and starts the server again',
    given: async (w) => {
      await culled(w);
      await w.settle('nb');
      w.edit('nb', ENV_A);
    },
    expect: { docker: ['update nbs-alice'], phase: 'Running', events: ['Resumed', 'Updated', 'Ready'] },
    also: (_w, s) => {
      expect(s.metadataPatches).to.deep.equal([{ annotations: { [ANNOTATIONS.stopped]: null, [ANNOTATIONS.stoppedGeneration]: null, [ANNOTATIONS.stoppedReason]: null } }]);
      expect(s.obj?.metadata.annotations ?? {}).to.deep.equal({});
    },
  },
  {
    name: 'start of a server created stopped: its object is created now',
    kind: 'container',
    given: async (w) => {
      await running(w, 'nb', { stopped: true });
      w.edit('nb', { stopped: false });
    },
    expect: { docker: ['volume-create nbs-alice-home', 'create nbs-alice'], phase: 'Running', events: ['Created', 'Ready'] },
  },
  {
    name: 'start of a stopped container that exists: started, not recreated',
    kind: 'container',
    given: async (w) => {
      await running(w);
      w.edit('nb', { stopped: true });
      await w.settle('nb');
      w.edit('nb', { stopped: false });
    },
    expect: { docker: ['start nbs-alice'], phase: 'Running', events: ['Started', 'Ready'] },
  },
  {
    name: 'created stopped: no Docker object, no image resolved, Stopped',
    given: (w) => void w.put('nb', { stopped: true, image: 'local/absent:1' }),
    expect: { docker: [], phase: 'Stopped', ready: ['False', 'Stopped'], message: /no service exists until it starts/ },
    also: (w, s) => {
      expect(w.backend.reads.resolveImage ?? 0).to.equal(0);
      expect(s.status.backend).to.equal(undefined);
    },
  },
  {
    name: 'delete: Terminating, the object removed, volumes kept, finalizer released',
    given: deleted,
    expect: { docker: ['remove nbs-alice'], phase: 'Terminating', ready: ['False', 'Terminating'], events: ['Deleted'] },
    also: (w, s) => {
      expect(s.metadataPatches).to.deep.equal([{ finalizers: [] }]);
      expect(w.backend.volumeNames()).to.deep.equal(['nbs-alice-home']);
    },
  },
  {
    name: 'delete removes the volumes the policy marks deleteWithServer, not the others',
    policy: { volumes: [{ name: '{prefix}-{username}-home', target: '/home/jovyan/work', type: 'volume' }, { name: '{prefix}-{username}-scratch', target: '/scratch', type: 'volume', deleteWithServer: true }] },
    given: deleted,
    expect: { docker: ['remove nbs-alice', 'volume-remove nbs-alice-scratch'], phase: 'Terminating' },
    also: (w) => expect(w.backend.volumeNames()).to.deep.equal(['nbs-alice-home']),
  },
  {
    name: 'delete of an object without our finalizer: nothing to do',
    given: (w) => void w.put('nb', {}, { deletionTimestamp: STAMP }),
    expect: { docker: [], statusPatches: 0, events: [] },
  },
  {
    name: 'failure: a missing image (pull policy never) → ImageReady False, Failed, retried with back-off',
    policy: { pullPolicy: 'never' },
    given: (w) => void w.put('nb', { image: 'local/absent:1' }),
    expect: { docker: [], phase: 'Failed', ready: ['False', 'ImageNotFound'], events: ['ImageNotFound'], error: RetryLater },
    also: (_w, s) => {
      expect(condition(s.status, 'ImageReady')).to.include({ status: 'False', reason: 'ImageNotFound' });
      expect(s.status.message).to.contain('local/absent:1').and.to.contain('pullPolicy');
    },
  },
  {
    name: 'failure: Docker refuses the create → Failed, Degraded, the error goes to the queue',
    given: (w) => {
      w.backend.failNext('apply', new BackendError('docker service create nbs-alice failed (HTTP 500): boom', 'DockerError', 'docker service create nbs-alice', 'look at dockerd'));
      w.put('nb');
    },
    expect: { docker: [], phase: 'Failed', ready: ['False', 'DockerError'], events: ['Failed'], error: BackendError },
    also: (_w, s) => {
      expect(condition(s.status, 'Degraded')).to.include({ status: 'True', reason: 'DockerError' });
      expect(s.status.message).to.equal('docker service create nbs-alice: docker service create nbs-alice failed (HTTP 500): boom (hint: look at dockerd)');
    },
  },
  {
    name: 'failure: the task failed → Failed, Degraded, no stale endpoint, looked at again in 5 s',
    given: async (w) => {
      await running(w);
      w.backend.setState('uid-nb', 'failed', 'failed: exit code 1');
    },
    expect: { docker: [], phase: 'Failed', ready: ['False', 'TaskFailed'], events: ['TaskFailed'], result: { requeueAfterMs: 5000 } },
    also: (_w, s) => {
      expect(s.status.endpoint).to.equal(undefined);
      expect(condition(s.status, 'Degraded')).to.include({ status: 'True', message: 'nbs-alice failed: failed: exit code 1' });
    },
  },
  {
    name: 'a failed task seen again: no new Event, no status write',
    given: async (w) => {
      await running(w);
      w.backend.setState('uid-nb', 'failed', 'failed: exit code 1');
      await w.step('nb');
    },
    expect: { docker: [], statusPatches: 0, events: [], result: { requeueAfterMs: 5000 } },
  },
  {
    name: 'missing Secret → Failed naming the field; nothing runs, nothing is polled',
    given: (w) => void w.put('nb', { env: [{ name: 'KEY', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] }),
    expect: { docker: [], phase: 'Failed', ready: ['False', 'SecretNotFound'], events: ['SecretNotFound'], result: undefined },
    also: (_w, s) => expect(s.status.message).to.equal('spec.env[0].valueFrom.secretKeyRef: secret default/creds not found; create it or mark the reference optional'),
  },
  {
    name: 'the Secret appears → the server is created with its value',
    also: (w) => expect(w.backend.written('uid-nb')?.env).to.include({ KEY: 's3cret' }),
    given: async (w) => {
      w.put('nb', { env: [{ name: 'KEY', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] });
      await w.settle('nb');
      w.secrets.set('default/creds', { k: 's3cret' });
    },
    expect: { docker: ['volume-create nbs-alice-home', 'create nbs-alice'], phase: 'Running', events: ['Created', 'Ready'] },
  },
  {
    name: 'a Secret without the key → Failed, SecretKeyMissing',
    given: (w) => {
      w.secrets.set('default/creds', { other: 'x' });
      w.put('nb', { env: [{ name: 'KEY', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] });
    },
    expect: { docker: [], phase: 'Failed', ready: ['False', 'SecretKeyMissing'], message: /has no key "k"/ },
  },
  {
    name: 'a disallowed image → Failed naming the image and the policy; no Docker call',
    given: (w) => void w.put('nb', { image: 'evil.example/miner:1' }),
    expect: { docker: [], phase: 'Failed', ready: ['False', 'ImageNotAllowed'], message: /evil\.example\/miner:1.*allowedImages/ },
    also: (w) => expect(w.backend.reads.resolveImage ?? 0).to.equal(0),
  },
  {
    name: 'a system user that cannot be used → Failed naming spec.systemUser',
    policy: { systemUsers: { enabled: true, homeTemplate: '/home/{username}', mountTarget: '/home/{username}', uidFloor: 1000, uidCeiling: 60000, users: {} } },
    deps: { systemUser: async () => Promise.reject(new SystemUserError('system user "alice" does not exist on this host', 'SystemUserNotFound')) },
    given: (w) => void w.put('nb', { systemUser: true }),
    expect: { docker: [], phase: 'Failed', ready: ['False', 'SystemUserNotFound'], events: ['SystemUserNotFound'], message: /^spec\.systemUser: system user "alice" does not exist/ },
  },
  {
    name: 'a system user listed in the policy runs as its uid:gid with the host home bound in',
    policy: { systemUsers: { enabled: true, homeTemplate: '/srv/homes/{username}', mountTarget: '/home/{username}', uidFloor: 1000, uidCeiling: 60000, users: { alice: { uid: 1500, gid: 1600 } } } },
    given: (w) => void w.put('nb', { systemUser: true }),
    expect: { docker: ['create nbs-alice'], phase: 'Running' },
    also: (w) => {
      const d = w.backend.written('uid-nb')!;
      expect(d.user).to.equal('1500:1600');
      expect(d.volumes).to.deep.include({ source: '/srv/homes/alice', target: '/home/alice', type: 'bind' });
    },
  },
  {
    name: 'source server missing → Pending, SourceNotFound, looked at again in 5 s',
    key: 'dash',
    given: (w) => void w.put('dash', { user: 'bob', source: { server: 'nb' } }),
    expect: { docker: [], phase: 'Pending', ready: ['False', 'SourceNotFound'], events: ['SourceNotFound'], result: { requeueAfterMs: 5000 } },
  },
  {
    name: 'source server not running → WaitingForSource, looked at again in 3 s',
    key: 'dash',
    policy: { sourceImages: { repository: 'nbswarm-built', allowOtherUsers: true } },
    given: async (w) => {
      await running(w, 'nb', { stopped: true });
      w.put('dash', { user: 'bob', source: { server: 'nb' } });
    },
    expect: { docker: [], phase: 'Pending', ready: ['False', 'WaitingForSource'], result: { requeueAfterMs: 3000 } },
  },
  {
    name: 'source server running → its container is committed once and this server runs the image',
    key: 'dash',
    policy: { sourceImages: { repository: 'nbswarm-built', allowOtherUsers: true } },
    given: async (w) => {
      await running(w);
      w.put('dash', { user: 'bob', source: { server: 'nb' } });
    },
    expect: { docker: ['commit nbswarm-built/default/nb:g1', 'volume-create nbs-bob-home', 'create nbs-bob'], phase: 'Running', events: ['Built', 'Created', 'Ready'] },
    also: (w, s) => {
      expect(s.status.build).to.deep.equal({ image: 'nbswarm-built/default/nb:g1', builtAt: NOW, sourceGeneration: 1 });
      expect(w.backend.imageLabels('nbswarm-built/default/nb:g1')).to.include({ [LABELS.uid]: '', [LABELS.sourceUid]: 'uid-nb', [LABELS.builtForUid]: 'uid-dash' });
    },
  },
  {
    name: 'source image already built → no second commit',
    key: 'dash',
    policy: { sourceImages: { repository: 'nbswarm-built', allowOtherUsers: true } },
    given: async (w) => {
      await running(w);
      await running(w, 'dash', { user: 'bob', source: { server: 'nb' } });
      w.edit('dash', ENV_A);
    },
    expect: { docker: ['update nbs-bob'], phase: 'Running' },
  },
  {
    name: 'source server of another user → Failed, nothing built (unless the policy allows other users)',
    key: 'dash',
    given: async (w) => {
      await running(w);
      w.put('dash', { user: 'bob', source: { server: 'nb' } });
    },
    expect: { docker: [], phase: 'Failed', ready: ['False', 'SourceNotAllowed'], events: ['SourceNotAllowed'], message: /^spec\.source\.server: source server nb belongs to user "alice", not "bob"/ },
  },
  {
    name: 'source server of the same user → built without any policy grant',
    key: 'dash',
    given: async (w) => {
      await running(w);
      w.put('dash', { servername: 'dash', source: { server: 'nb' } });
    },
    expect: { docker: ['commit nbswarm-built/default/nb:g1', 'create nbs-alice-dash'], phase: 'Running', events: ['Built', 'Created', 'Ready'] },
  },
  {
    name: 'two objects for one server → the extra one is removed',
    given: async (w) => {
      w.put('nb');
      await w.settle('nb');
      w.backend.duplicate('uid-nb', 'nbs-alice-dup');
    },
    expect: { docker: ['remove nbs-alice-dup'], phase: 'Running', events: ['DuplicateRemoved'] },
  },
  {
    name: 'host networking: a port from the policy range, kept across an update',
    policy: { networkMode: 'host', hostPortRange: [31000, 31009] },
    given: async (w) => {
      await running(w, 'other', { user: 'zed' });
      await running(w);
      w.edit('nb', ENV_A);
    },
    expect: { docker: ['update nbs-alice'], phase: 'Running' },
    also: (w, s) => {
      expect(w.get('other').status?.endpoint?.port).to.equal(31000);
      expect(s.status.endpoint?.port).to.equal(31001);
    },
  },
];

describe('reconcile transitions (FakeBackend)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const w = new World(c.kind ?? 'service', c.policy, c.deps);
      await c.given(w);
      const s = await w.step(c.key ?? 'nb');
      const e = c.expect;
      if (e.error) expect(s.error, String(s.error)).to.be.instanceOf(e.error);
      else expect(s.error, String((s.error as Error)?.stack)).to.equal(undefined);
      if (e.docker) expect(s.docker).to.deep.equal(e.docker);
      if (e.phase) expect(s.status.phase).to.equal(e.phase);
      if (e.ready) expect([condition(s.status, 'Ready')?.status, condition(s.status, 'Ready')?.reason]).to.deep.equal(e.ready);
      if (e.message) expect(s.status.message).to.match(e.message);
      if (e.events) expect(s.events.map((x) => x.reason)).to.deep.equal(e.events);
      if ('result' in e) expect(s.result).to.deep.equal(e.result);
      if (e.statusPatches !== undefined) expect(s.statusPatches).to.have.length(e.statusPatches);
      c.also?.(w, s);
    });
  }
});
