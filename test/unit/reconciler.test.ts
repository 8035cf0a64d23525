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
import type { ReconcilerDeps } from '../../src/controller/reconciler.js';
import { RetryLater } from '../../src/controller/server-writes.js';
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
  /** Reconciling and Stalled statuses, as kstatus reads them. */
  health?: [string, string];
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
/** NOW minus `s` seconds. */
const ago = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString();
const TOKEN_ENV = (secret: string) => ({ env: [{ name: 'JUPYTERHUB_API_TOKEN', valueFrom: { secretKeyRef: { name: secret, key: 'token' } } }] });
/** Running, then Swarm's restart policy gave up after crashes `s` seconds ago. */
const crashLooped = (s: number) => async (w: World) => {
  await running(w);
  w.backend.setState('uid-nb', 'failed', 'failed: task: non-zero exit (137)', {
    failedAt: ago(s),
    restarts: 5,
    lastFailure: 'failed: task: non-zero exit (137)',
  });
};
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

/** A three-node Swarm; new unpinned tasks land on node2. */
const NODES = ['node1', 'node2', 'node3'];
const multiNode = (w: World, availability: Record<string, string> = {}, down: string[] = []) => {
  w.backend.clusterView = {
    multiNode: true,
    nodes: NODES.map((h, i) => ({
      id: `id-${h}`,
      hostname: h,
      addr: `10.0.0.${11 + i}`,
      role: i === 0 ? 'manager' : 'worker',
      state: down.includes(h) ? 'down' : 'ready',
      availability: availability[h] ?? 'active',
      labels: {},
    })),
  };
  w.backend.scheduleOn = 'node2';
};
/** Running on node2 and pinned there (first start, then the pin). */
const pinnedOnNode2 = async (w: World) => {
  multiNode(w);
  await running(w);
};
const SHARED_HOME: Partial<Policy> = { volumes: [{ name: '/srv/shared/{username}', target: '/home/jovyan/work', type: 'bind', shared: true }] };

const cases: Case[] = [
  {
    name: 'create: finalizer, volume and service, Running once the server answers',
    given: (w) => void w.put('nb'),
    expect: {
      health: ['False', 'False'],
      docker: ['volume-create nbs-alice-home', 'create nbs-alice'],
      phase: 'Running',
      ready: ['True', 'Running'],
      events: ['Created', 'Ready'],
      result: undefined,
    },
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
    expect: {
      health: ['True', 'False'],
      docker: ['volume-create nbs-alice-home', 'create nbs-alice'],
      phase: 'Creating',
      ready: ['False', 'Pending'],
      events: ['Created', 'Pending'],
      result: { progress: 'Pending: nbs-alice is waiting to be scheduled' },
    },
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
    also: (_w, s) => {
      // Only the generation the operator acted on moves, in status and in every condition.
      expect(s.statusPatches).to.have.length(1);
      expect(s.statusPatches[0].observedGeneration).to.equal(2);
      expect((s.statusPatches[0].conditions as { observedGeneration: number }[]).map((c) => c.observedGeneration)).to.deep.equal([2, 2, 2, 2, 2, 2]);
    },
  },
  {
    name: "drift: an object removed behind the operator's back is created again",
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
    name: 'stop while the task shuts down: Stopping, polled by stage (no Docker event says when Swarm reports the task down)',
    given: async (w) => {
      await running(w);
      w.backend.stoppedState = 'running';
      w.edit('nb', { stopped: true });
    },
    expect: { health: ['True', 'False'], docker: ['stop nbs-alice'], phase: 'Stopping', ready: ['False', 'Stopping'], result: { progress: 'stopping' } },
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
      expect(s.metadataPatches).to.deep.equal([
        { annotations: { [ANNOTATIONS.stopped]: null, [ANNOTATIONS.stoppedGeneration]: null, [ANNOTATIONS.stoppedReason]: null } },
      ]);
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
    expect: { health: ['True', 'False'], docker: ['remove nbs-alice'], phase: 'Terminating', ready: ['False', 'Terminating'], events: ['Deleted'] },
    also: (w, s) => {
      expect(s.metadataPatches).to.deep.equal([{ finalizers: [] }]);
      expect(w.backend.volumeNames()).to.deep.equal(['nbs-alice-home']);
    },
  },
  {
    name: 'delete removes the volumes the policy marks deleteWithServer, not the others',
    policy: {
      volumes: [
        { name: '{prefix}-{username}-home', target: '/home/jovyan/work', type: 'volume' },
        { name: '{prefix}-{username}-scratch', target: '/scratch', type: 'volume', deleteWithServer: true },
      ],
    },
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
    expect: { health: ['False', 'True'], docker: [], phase: 'Failed', ready: ['False', 'ImageNotFound'], events: ['ImageNotFound'], error: RetryLater },
    also: (_w, s) => {
      expect(condition(s.status, 'ImageReady')).to.include({ status: 'False', reason: 'ImageNotFound' });
      expect(s.status.message).to.contain('local/absent:1').and.to.contain('pullPolicy');
    },
  },
  {
    name: 'failure: Docker refuses the create → Failed, Degraded, the error goes to the queue',
    given: (w) => {
      w.backend.failNext(
        'apply',
        new BackendError('docker service create nbs-alice failed (HTTP 500): boom', 'DockerError', 'docker service create nbs-alice', 'look at dockerd'),
      );
      w.put('nb');
    },
    expect: { health: ['True', 'False'], docker: [], phase: 'Failed', ready: ['False', 'DockerError'], events: ['Failed'], error: BackendError },
    also: (_w, s) => {
      expect(condition(s.status, 'Degraded')).to.include({ status: 'True', reason: 'DockerError' });
      expect(s.status.message).to.equal('docker service create nbs-alice failed (HTTP 500): boom (hint: look at dockerd)');
    },
  },
  {
    name: 'failure: the task failed and nothing restarts it → Failed, Degraded, no stale endpoint, looked at again when its back-off is due',
    given: async (w) => {
      await running(w);
      w.backend.setState('uid-nb', 'failed', 'failed: exit code 1');
    },
    expect: {
      health: ['False', 'True'],
      docker: [],
      phase: 'Failed',
      ready: ['False', 'TaskFailed'],
      events: ['TaskFailed'],
      result: { requeueAfterMs: 10000 },
    },
    also: (_w, s) => {
      expect(s.status.endpoint).to.equal(undefined);
      expect(condition(s.status, 'Degraded')).to.include({ status: 'True' });
      expect(condition(s.status, 'Degraded')?.message).to.match(
        /^nbs-alice failed: failed: exit code 1; Swarm stopped restarting it, the operator starts it again at /,
      );
    },
  },
  {
    name: 'restarting: a crash Swarm restarts by itself is not Failed (Creating, Ready=Restarting, Restarted condition with the count)',
    given: async (w) => {
      await running(w);
      w.backend.setState('uid-nb', 'pending', 'ready', { restarts: 1, lastFailure: 'failed: task: non-zero exit (137)' });
    },
    expect: { docker: [], phase: 'Creating', ready: ['False', 'Restarting'], events: ['Restarting'], result: { progress: 'Restarting' } },
    also: (_w, s) => {
      expect(s.status.message).to.equal('nbs-alice is restarting after a failure (restart 1): failed: task: non-zero exit (137)');
      expect(condition(s.status, 'Restarted')).to.include({ status: 'True', reason: 'Restarted' });
      expect(condition(s.status, 'Restarted')?.message).to.match(/restarted it 1 time after a failure; last failure: failed: task: non-zero exit \(137\)/);
      expect(s.status.endpoint).to.equal(undefined);
      expect(s.status.restartCount).to.equal(1);
    },
  },
  {
    name: 'restarted: back up and answering → Running again, the Restarted condition keeps the count',
    given: async (w) => {
      await running(w);
      w.backend.setState('uid-nb', 'pending', 'ready', { restarts: 1, lastFailure: 'failed: exit 1' });
      await w.step('nb');
      w.backend.setState('uid-nb', 'running', 'running', { restarts: 1, lastFailure: 'failed: exit 1' });
    },
    expect: { docker: [], phase: 'Running', ready: ['True', 'Running'], events: ['Ready'] },
    also: (_w, s) => expect(condition(s.status, 'Restarted')?.status).to.equal('True'),
  },
  {
    name: 'crash loop: Swarm gave up → Failed saying when the operator starts it again; looked at again then, no Docker write',
    given: crashLooped(2),
    expect: { docker: [], phase: 'Failed', ready: ['False', 'TaskFailed'], events: ['TaskFailed'], result: { requeueAfterMs: 8000 } },
    also: (_w, s) =>
      expect(s.status.message).to.equal(
        'nbs-alice failed: failed: task: non-zero exit (137); Swarm stopped restarting it, the operator starts it again at 2026-01-02T03:04:13.000Z (back-off 10 s, attempt 1)',
      ),
  },
  {
    name: 'crash loop: the back-off has passed → the operator starts it again (forced restart), Restarted Event, Running',
    given: crashLooped(11),
    expect: { docker: ['restart nbs-alice'], phase: 'Running', events: ['Restarted'] },
    also: (_w, s) => {
      expect(s.events[0]?.message).to.match(
        /^started service nbs-alice again after Docker stopped restarting it \(back-off 10 s, attempt 1\); it had failed: failed: task: non-zero exit \(137\)$/,
      );
      expect(condition(s.status, 'Restarted')).to.include({ status: 'True', reason: 'CrashLoopBackOff' });
    },
  },
  {
    name: 'crash loop again after a forced restart: the back-off doubles (20 s, attempt 2)',
    given: async (w) => {
      await crashLooped(11)(w);
      await w.step('nb');
      w.backend.setState('uid-nb', 'failed', 'failed: task: non-zero exit (1)', { failedAt: ago(12) });
    },
    expect: { docker: [], phase: 'Failed', result: { requeueAfterMs: 8000 } },
    also: (_w, s) => expect(s.status.message).to.match(/starts it again at 2026-01-02T03:04:13.000Z \(back-off 20 s, attempt 2\)$/),
  },
  {
    name: 'crash loop with a policy back-off of 1 s: restarted as soon as it is due',
    policy: { crashLoopBackOff: { initialSeconds: 1, maxSeconds: 5, resetAfterSeconds: 600 } },
    given: crashLooped(1),
    expect: { docker: ['restart nbs-alice'], phase: 'Running' },
  },
  {
    name: 'a new start after a crash loop is never answered with the old Failed: the update runs, Running for the new generation',
    given: async (w) => {
      await crashLooped(2)(w);
      await w.step('nb');
      w.edit('nb', ENV_A);
    },
    expect: { docker: ['update nbs-alice'], phase: 'Running', ready: ['True', 'Running'] },
    also: (_w, s) => expect(s.status.observedGeneration).to.equal(2),
  },
  {
    name: 'a new start after a crash loop whose Secret is not in the cache yet: Pending for the new generation, not the old Failed',
    given: async (w) => {
      await crashLooped(2)(w);
      await w.step('nb');
      w.edit('nb', TOKEN_ENV('nb-hub-2'));
    },
    expect: { docker: [], phase: 'Pending', ready: ['False', 'SecretNotFound'], events: ['SecretNotFound'], result: undefined },
    also: (_w, s) => expect(s.status.observedGeneration).to.equal(2),
  },
  {
    name: "a referenced Secret's content changes → the server is updated (restarted) with the new value",
    given: async (w) => {
      w.secrets.set('default/nb-hub', { token: 'old' });
      await running(w, 'nb', TOKEN_ENV('nb-hub'));
      w.secrets.set('default/nb-hub', { token: 'new' });
    },
    expect: { docker: ['update nbs-alice'], phase: 'Running', events: ['Updated'] },
    also: (w) => expect(w.backend.written('uid-nb')?.env).to.include({ JUPYTERHUB_API_TOKEN: 'new' }),
  },
  {
    name: 'a stopped server whose token Secret was deleted still stops (a stopped server needs no Secret)',
    given: async (w) => {
      w.secrets.set('default/nb-hub', { token: 't' });
      await running(w, 'nb', TOKEN_ENV('nb-hub'));
      w.edit('nb', { stopped: true });
      w.secrets.delete('default/nb-hub');
    },
    expect: { docker: ['stop nbs-alice'], phase: 'Stopped', ready: ['False', 'Stopped'] },
  },
  {
    name: 'a spec change together with a stop is a scale-down only; the new spec is written when it starts again',
    given: async (w) => {
      await running(w);
      w.edit('nb', { ...ENV_A, stopped: true });
      await w.step('nb');
      w.edit('nb', { stopped: false });
    },
    expect: { docker: ['update nbs-alice'], phase: 'Running' },
    also: (w) => expect(w.backend.written('uid-nb')?.env).to.include({ A: '1' }),
  },
  {
    name: 'start deadline passed, never Ready for this generation → stopped by annotation (StartDeadlineExceeded), saying why',
    given: async (w) => {
      w.backend.startState = 'pending';
      w.put('nb', {}, { annotations: { [ANNOTATIONS.startDeadline]: ago(-30) } });
      await w.step('nb');
      w.put('nb', {}, { annotations: { [ANNOTATIONS.startDeadline]: ago(1) } });
    },
    expect: { docker: ['stop nbs-alice'], phase: 'Stopped', events: ['StartDeadlineExceeded', 'Stopped'] },
    also: (_w, s) => {
      expect(s.metadataPatches[0]).to.deep.include({
        annotations: {
          [ANNOTATIONS.stopped]: NOW,
          [ANNOTATIONS.stoppedGeneration]: '1',
          [ANNOTATIONS.stoppedReason]: 'StartDeadlineExceeded',
          [ANNOTATIONS.startDeadline]: null,
        },
      });
      expect(s.metadataPatches[0]).to.have.property('resourceVersion');
      expect(s.events[0]?.message).to.match(/^not Ready by its start deadline 2026-01-02T03:04:04.000Z, when the client that started it stopped waiting/);
    },
  },
  {
    name: 'Ready before the start deadline → the operator removes the deadline (a later crash is no missed start)',
    given: (w) => void w.put('nb', {}, { annotations: { [ANNOTATIONS.startDeadline]: ago(-30) } }),
    expect: { phase: 'Running' },
    also: (_w, s) => {
      expect(s.metadataPatches.at(-1)).to.deep.include({ annotations: { [ANNOTATIONS.startDeadline]: null } });
      expect(s.obj?.metadata.annotations ?? {}).to.deep.equal({});
    },
  },
  {
    name: 'a server waiting for its Secret with a start deadline is looked at again at the deadline',
    given: (w) => void w.put('nb', TOKEN_ENV('nb-hub'), { annotations: { [ANNOTATIONS.startDeadline]: ago(-3) } }),
    expect: { docker: [], phase: 'Pending', result: { requeueAfterMs: 3050 } },
  },
  {
    name: 'a failed task seen again: no new Event, no status write',
    given: async (w) => {
      await running(w);
      w.backend.setState('uid-nb', 'failed', 'failed: exit code 1');
      await w.step('nb');
    },
    expect: { docker: [], statusPatches: 0, events: [], result: { requeueAfterMs: 10000 } },
  },
  {
    name: 'missing Secret → Pending naming the field (waits for it, as a Pod does); nothing runs, nothing is polled',
    given: (w) => void w.put('nb', { env: [{ name: 'KEY', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] }),
    expect: { health: ['True', 'False'], docker: [], phase: 'Pending', ready: ['False', 'SecretNotFound'], events: ['SecretNotFound'], result: undefined },
    also: (_w, s) =>
      expect(s.status.message).to.equal('spec.env[0].valueFrom.secretKeyRef: secret default/creds not found; create it or mark the reference optional'),
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
    name: 'a Secret without the key → Pending, SecretKeyMissing',
    given: (w) => {
      w.secrets.set('default/creds', { other: 'x' });
      w.put('nb', { env: [{ name: 'KEY', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] });
    },
    expect: { docker: [], phase: 'Pending', ready: ['False', 'SecretKeyMissing'], message: /has no key "k"/ },
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
    expect: {
      docker: [],
      phase: 'Failed',
      ready: ['False', 'SystemUserNotFound'],
      events: ['SystemUserNotFound'],
      message: /^spec\.systemUser: system user "alice" does not exist/,
    },
  },
  {
    name: 'a system user listed in the policy runs as its uid:gid with the host home bound in',
    policy: {
      systemUsers: {
        enabled: true,
        homeTemplate: '/srv/homes/{username}',
        mountTarget: '/home/{username}',
        uidFloor: 1000,
        uidCeiling: 60000,
        users: { alice: { uid: 1500, gid: 1600 } },
      },
    },
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
    expect: {
      health: ['True', 'False'],
      docker: [],
      phase: 'Pending',
      ready: ['False', 'SourceNotFound'],
      events: ['SourceNotFound'],
      result: { requeueAfterMs: 5000 },
    },
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
    expect: {
      docker: ['commit nbswarm-built/default/nb:g1', 'volume-create nbs-bob-home', 'create nbs-bob'],
      phase: 'Running',
      events: ['Built', 'Created', 'Ready'],
    },
    also: (w, s) => {
      expect(s.status.build).to.deep.equal({ image: 'nbswarm-built/default/nb:g1', builtAt: NOW, sourceGeneration: 1 });
      expect(w.backend.imageLabels('nbswarm-built/default/nb:g1')).to.include({
        [LABELS.uid]: '',
        [LABELS.sourceUid]: 'uid-nb',
        [LABELS.builtForUid]: 'uid-dash',
      });
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
    expect: {
      docker: [],
      phase: 'Failed',
      ready: ['False', 'SourceNotAllowed'],
      events: ['SourceNotAllowed'],
      message: /^spec\.source\.server: source server nb belongs to user "alice", not "bob"/,
    },
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
  {
    name: 'multi-node: a first start is created where Swarm places it, then pinned there by a placement-only update',
    given: async (w) => {
      multiNode(w);
      w.put('nb');
      await w.step('nb');
    },
    expect: { docker: ['pin nbs-alice'], phase: 'Running', events: ['Pinned'] },
    also: (w, s) => {
      expect(w.backend.writes, 'no volume is created on the manager: each node makes its own').to.deep.equal(['create nbs-alice', 'pin nbs-alice']);
      expect(w.backend.written('uid-nb')?.pinNode).to.equal('node2');
      expect(s.status.node).to.equal('node2');
      expect(condition(s.status, 'VolumeUnavailable')).to.include({ status: 'False', reason: 'NodeAvailable' });
    },
  },
  {
    name: "multi-node: the user's second server is created on the node that holds the user's volume",
    key: 'two',
    given: async (w) => {
      await pinnedOnNode2(w);
      w.backend.scheduleOn = 'node3';
      w.put('two', { servername: 'two' });
    },
    expect: { docker: ['create nbs-alice-two'], phase: 'Running', events: ['Created', 'Ready'] },
    also: (w, s) => {
      expect(w.backend.written('uid-two')?.pinNode).to.equal('node2');
      expect(s.status.node).to.equal('node2');
    },
  },
  {
    name: "multi-node: another user is not pinned to alice's node",
    key: 'bob',
    given: async (w) => {
      await pinnedOnNode2(w);
      w.backend.scheduleOn = 'node3';
      w.put('bob', { user: 'bob' });
    },
    expect: { docker: ['create nbs-bob'], phase: 'Running' },
    also: (w, s) => {
      expect(w.backend.written('uid-bob')?.pinNode).to.equal(undefined);
      expect(s.status.node).to.equal('node3');
    },
  },
  {
    name: 'multi-node: the node holding the volumes is drained → Pending with VolumeUnavailable naming it, no endpoint, one Warning',
    given: async (w) => {
      await pinnedOnNode2(w);
      multiNode(w, { node2: 'drain' });
      w.backend.setState('uid-nb', 'pending', 'no suitable node (scheduling constraints not satisfied on 3 nodes)');
    },
    expect: {
      docker: [],
      phase: 'Pending',
      ready: ['False', 'VolumeUnavailable'],
      events: ['VolumeUnavailable'],
      message: /waits for node node2.*drained/,
      result: { requeueAfterMs: 15000 },
    },
    also: (w, s) => {
      expect(s.status.endpoint).to.equal(undefined);
      expect(s.status.node).to.equal('node2');
      expect(condition(s.status, 'VolumeUnavailable')).to.include({ status: 'True', reason: 'NodeDrained' });
      expect(w.backend.written('uid-nb')?.pinNode, 'still pinned: it never starts elsewhere with an empty home').to.equal('node2');
    },
  },
  {
    name: 'multi-node: the same report while the node is down; a second reconcile writes nothing',
    given: async (w) => {
      await pinnedOnNode2(w);
      multiNode(w, {}, ['node2']);
      w.backend.setState('uid-nb', 'pending', 'no suitable node');
      await w.step('nb');
    },
    expect: { docker: [], statusPatches: 0, events: [], phase: 'Pending', ready: ['False', 'VolumeUnavailable'] },
    also: (_w, s) => expect(condition(s.status, 'VolumeUnavailable')).to.include({ status: 'True', reason: 'NodeDown' }),
  },
  {
    name: 'multi-node: the node is back → Running on it again',
    given: async (w) => {
      await pinnedOnNode2(w);
      multiNode(w, { node2: 'drain' });
      w.backend.setState('uid-nb', 'pending', 'no suitable node');
      await w.step('nb');
      multiNode(w);
      w.backend.setState('uid-nb', 'running');
    },
    expect: { docker: [], phase: 'Running', ready: ['True', 'Running'], events: ['Ready'] },
    also: (_w, s) => expect(condition(s.status, 'VolumeUnavailable')).to.include({ status: 'False' }),
  },
  {
    name: 'multi-node: a stopped server whose node is drained is just Stopped',
    given: async (w) => {
      await pinnedOnNode2(w);
      w.edit('nb', { stopped: true });
      await w.step('nb');
      multiNode(w, { node2: 'drain' });
    },
    expect: { docker: [], phase: 'Stopped', events: [] },
  },
  {
    name: 'multi-node: annotation nbswarm.io/node moves the pin (an admin moved the volumes)',
    given: async (w) => {
      await pinnedOnNode2(w);
      w.put('nb', {}, { annotations: { [ANNOTATIONS.node]: 'node3' } });
    },
    expect: { docker: ['pin nbs-alice'], events: ['Pinned'] },
    also: (w, s) => {
      expect(w.backend.written('uid-nb')?.pinNode).to.equal('node3');
      expect(s.status.node).to.equal('node3');
    },
  },
  {
    name: 'multi-node, shared storage: never pinned; a task Swarm moved gets its new endpoint',
    policy: SHARED_HOME,
    given: async (w) => {
      multiNode(w);
      await running(w);
      w.backend.move('uid-nb', 'node1');
    },
    expect: { docker: [], phase: 'Running', events: [] },
    also: (w, s) => {
      expect(w.backend.written('uid-nb')?.pinNode).to.equal(undefined);
      expect(s.status.node).to.equal('node1');
      expect(s.status.endpoint?.port).to.equal(32769);
      expect(w.probes.at(-1)).to.equal('http://127.0.0.1:32769/');
      expect(condition(s.status, 'VolumeUnavailable')).to.equal(undefined);
    },
  },
  {
    name: 'multi-node: a converged server writes nothing while another node is down (an operator restart)',
    given: async (w) => {
      await pinnedOnNode2(w);
      multiNode(w, {}, ['node3']);
    },
    expect: { docker: [], statusPatches: 0, events: [], phase: 'Running' },
  },
  {
    name: 'one node: never pinned; status.node names the host',
    given: (w) => void w.put('nb'),
    expect: { docker: ['volume-create nbs-alice-home', 'create nbs-alice'], phase: 'Running' },
    also: (w, s) => {
      expect(w.backend.written('uid-nb')?.pinNode).to.equal(undefined);
      expect(s.status.node).to.equal('fake-node');
      expect(condition(s.status, 'VolumeUnavailable')).to.equal(undefined);
    },
  },
  {
    name: 'registry credentials Secret missing → Failed naming the Secret and the policy key, retried',
    policy: { registry: { address: 'reg.example:5000', pushLocalImages: false, credentialsSecret: { name: 'regcred', namespace: 'nbswarm' } } },
    given: (w) => void w.put('nb'),
    expect: {
      docker: [],
      phase: 'Failed',
      ready: ['False', 'RegistryCredentialsMissing'],
      message: /nbswarm\/regcred.*registry\.credentialsSecret/,
      error: RetryLater,
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
      if (e.health) expect([condition(s.status, 'Reconciling')?.status, condition(s.status, 'Stalled')?.status]).to.deep.equal(e.health);
      if (s.statusPatches.length) {
        const generation = w.get(c.key ?? 'nb').metadata.generation;
        expect(s.status.observedGeneration, 'status.observedGeneration').to.equal(generation);
        for (const cond of s.status.conditions ?? []) expect(cond.observedGeneration, `${cond.type}.observedGeneration`).to.equal(generation);
      }
      c.also?.(w, s);
    });
  }
});
