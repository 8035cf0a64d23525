/**
 * The pure parts of running on several Swarm nodes: placement (pins, rules, reservations), image
 * references and registry credentials, the builder job, node views, probe addresses and the
 * policy keys. The behaviour on a real 3-node Swarm is in test/e2e/multinode.test.ts.
 */
import { expect } from 'chai';
import { LABELS } from '../../src/api/names.js';
import type { NotebookServer } from '../../src/api/types.js';
import { DockerObserver } from '../../src/backends/docker-observer.js';
import { isImageId, isNotFound, parseImageRef, registryAuthFromSecret, registryReference, withoutTag } from '../../src/backends/registry.js';
import { buildJobName, buildJobSpec, dockerConfigJson, jobOutcome } from '../../src/backends/swarm-build.js';
import { lostNodeMessage, nodeView } from '../../src/backends/swarm-nodes.js';
import { pinConstraint, serviceSpec, withPin } from '../../src/backends/swarm-spec.js';
import type { ObservedServer, ResolvedImage } from '../../src/backends/types.js';
import { defaultPolicy, loadPolicy, PolicyError } from '../../src/config/policy.js';
import { isConstraint } from '../../src/config/policy-checks.js';
import type { Policy } from '../../src/config/types.js';
import { renderDesired, type RenderResult } from '../../src/controller/desired.js';
import { pinFor, placementConstraints } from '../../src/controller/placement.js';
import { nodeLocalVolumeNames, volumeIsNodeLocal } from '../../src/controller/server-volumes.js';
import { probeUrl } from '../../src/controller/netutil.js';
import { volumeNodeProblem } from '../../src/controller/status.js';
import { addressMatcher, parseCidr } from '../../src/util/cidr.js';

const IMAGE: ResolvedImage = { reference: 'r/x:1', id: 'sha256:' + 'a'.repeat(64), pinned: 'reg:5000/r/x@sha256:' + 'b'.repeat(64) };

function nbs(spec: Partial<NotebookServer['spec']> = {}): NotebookServer {
  return {
    apiVersion: 'nbswarm.io/v1alpha1',
    kind: 'NotebookServer',
    metadata: { name: 'nb', namespace: 'default', uid: 'u-1', generation: 1 },
    spec: { user: 'alice', ...spec },
  };
}
function ok(r: RenderResult) {
  if (!r.ok) throw new Error(`${r.field}: ${r.message}`);
  return r.desired;
}
const render = (p: Partial<Policy>, spec: Partial<NotebookServer['spec']> = {}, pinNode?: string) =>
  renderDesired(nbs(spec), { ...defaultPolicy(), ...p }, { secrets: () => undefined, pinNode });

describe('multi-node: placement', () => {
  it('pinFor: no pin on one node or without node-local volumes; else annotation > service > status > siblings > where Swarm placed it', () => {
    const base = { multiNode: true, volumes: ['nbs-alice-home'] };
    expect(pinFor({ ...base, multiNode: false, running: 'n2' })).to.equal(undefined);
    expect(pinFor({ ...base, volumes: [], running: 'n2' })).to.equal(undefined);
    expect(pinFor({ ...base })).to.equal(undefined);
    expect(pinFor({ ...base, running: 'n2' })).to.equal('n2');
    expect(pinFor({ ...base, siblings: ['n3'], running: 'n2' })).to.equal('n3');
    expect(pinFor({ ...base, recorded: 'n1', siblings: ['n3'], running: 'n2' })).to.equal('n1');
    expect(pinFor({ ...base, current: 'n2', recorded: 'n1' })).to.equal('n2');
    expect(pinFor({ ...base, annotation: 'n3', current: 'n2', recorded: 'n1' })).to.equal('n3');
  });

  it('named volumes are node-local unless marked shared; binds are shared unless marked otherwise', () => {
    expect(volumeIsNodeLocal({ type: 'volume' })).to.equal(true);
    expect(volumeIsNodeLocal({})).to.equal(true);
    expect(volumeIsNodeLocal({ type: 'volume', shared: true })).to.equal(false);
    expect(volumeIsNodeLocal({ type: 'bind' })).to.equal(false);
    expect(volumeIsNodeLocal({ type: 'bind', shared: false })).to.equal(true);
    const p = {
      ...defaultPolicy(),
      volumes: [
        { name: '{prefix}-{username}-home', target: '/home/jovyan/work' },
        { name: '{prefix}-{username}-{servername}-scratch', target: '/scratch', type: 'volume' as const },
        { name: 'nfs-{username}', target: '/nfs', type: 'volume' as const, shared: true },
        { name: '/srv/data', target: '/data', type: 'bind' as const },
      ],
    };
    expect(nodeLocalVolumeNames({ user: 'alice', servername: 'dash' }, p)).to.deep.equal(['nbs-alice-home', 'nbs-alice-dash-scratch']);
    // A system user's host home replaces volumes inside the image's home.
    expect(nodeLocalVolumeNames({ user: 'alice', servername: '', systemUser: true }, { ...p, homeDir: '/home/jovyan' })).to.deep.equal(['nbs-alice-scratch']);
  });

  it('placement rules add constraints for matching images and modes, each once, after the policy constraints', () => {
    const p = {
      constraints: ['node.role==worker'],
      placementRules: [
        { images: ['reg:5000/gpu/*'], constraints: ['node.labels.gpu==true'] },
        { modes: ['rshiny'], constraints: ['node.labels.r==true', 'node.role==worker'] },
        { images: ['reg:5000/gpu/*'], modes: ['lab'], constraints: ['node.labels.big==true'] },
      ],
    };
    expect(placementConstraints('reg:5000/gpu/torch:1', 'notebook', p)).to.deep.equal(['node.role==worker', 'node.labels.gpu==true']);
    expect(placementConstraints('reg:5000/gpu/torch:1', 'lab', p)).to.deep.equal(['node.role==worker', 'node.labels.gpu==true', 'node.labels.big==true']);
    expect(placementConstraints('local/r:1', 'rshiny', p)).to.deep.equal(['node.role==worker', 'node.labels.r==true']);
    expect(placementConstraints('local/x:1', 'notebook', p)).to.deep.equal(['node.role==worker']);
    const d = ok(render({ allowedImages: ['reg:5000/*/*'], placementRules: p.placementRules }, { image: 'reg:5000/gpu/torch:1' }));
    expect(d.constraints).to.deep.equal(['node.labels.gpu==true']);
  });

  it('requests become reservations (spec over policy), at most the limit; the pin is outside the spec hash', () => {
    const d = ok(
      render(
        { resources: { defaults: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' }, requests: { memory: '256Mi' } } },
        { resources: { requests: { cpu: '250m' } } },
      ),
    );
    expect(d.resources).to.deep.equal({ nanoCpus: 1e9, memoryBytes: 2 ** 30, reserveNanoCpus: 2.5e8, reserveMemoryBytes: 256 * 2 ** 20 });
    const over = render({}, { resources: { memory: '1Gi', requests: { memory: '2Gi' } } });
    expect(over.ok).to.equal(false);
    if (!over.ok) expect([over.field, over.reason]).to.deep.equal(['spec.resources.requests.memory', 'ResourceOverLimit']);
    expect(ok(render({}, {}, 'node2')).specHash).to.equal(ok(render({}, {})).specHash);
    expect(ok(render({}, {}, 'node2')).pinNode).to.equal('node2');
  });

  it('volume drivers and their templated options reach the mount; the default volume renders as before', () => {
    const d = ok(
      render({
        volumes: [
          {
            name: '{prefix}-{username}-home',
            target: '/home/jovyan/work',
            driver: 'local',
            driverOptions: { type: 'nfs', o: 'addr=10.0.0.5,rw', device: ':/export/{username}' },
          },
        ],
      }),
    );
    expect(d.volumes[0]).to.deep.include({ driver: 'local', driverOptions: { type: 'nfs', o: 'addr=10.0.0.5,rw', device: ':/export/alice' } });
    expect(ok(render({})).volumes[0]).to.not.have.any.keys('driver', 'driverOptions');
  });

  it('serviceSpec: the pin is a constraint and a service label (not a container label); reservations and volume drivers', () => {
    const d = ok(
      render(
        {
          resources: { defaults: { memory: '64Mi' }, limits: {}, requests: { memory: '32Mi', cpu: '100m' } },
          constraints: ['node.role==worker'],
          volumes: [{ name: 'v-{username}', target: '/w', driver: 'nfsplugin', driverOptions: { share: '{username}' } }],
        },
        {},
        'node2',
      ),
    );
    const spec = serviceSpec(d, IMAGE);
    expect(spec.TaskTemplate.Placement.Constraints).to.deep.equal(['node.role==worker', 'node.hostname==node2']);
    expect(spec.Labels[LABELS.node]).to.equal('node2');
    expect(spec.TaskTemplate.ContainerSpec.Labels[LABELS.node]).to.equal(undefined);
    expect(spec.TaskTemplate.Resources).to.deep.equal({
      Limits: { MemoryBytes: 64 * 2 ** 20, Pids: 1024 },
      Reservations: { MemoryBytes: 32 * 2 ** 20, NanoCPUs: 1e8 },
    });
    expect(spec.TaskTemplate.ContainerSpec.Mounts[0].VolumeOptions.DriverConfig).to.deep.equal({ Name: 'nfsplugin', Options: { share: 'alice' } });
    const plain = serviceSpec(ok(render({})), IMAGE);
    expect(plain.TaskTemplate.Resources).to.deep.equal({ Limits: { NanoCPUs: 1e9, MemoryBytes: 2 * 2 ** 30, Pids: 1024 } });
    expect(plain.TaskTemplate.ContainerSpec.Mounts[0].VolumeOptions.DriverConfig).to.equal(undefined);
    expect(plain.TaskTemplate.Placement).to.deep.equal({});
  });

  it('withPin changes only placement and the node label, keeps policy constraints, replaces an old pin', () => {
    const d = ok(render({ constraints: ['node.hostname!=bad', 'node.role==worker'] }));
    const spec = serviceSpec(d, IMAGE);
    const pinned = withPin(spec, 'node2');
    expect(pinned.TaskTemplate.Placement.Constraints).to.deep.equal(['node.hostname!=bad', 'node.role==worker', pinConstraint('node2')]);
    expect(pinned.TaskTemplate.ContainerSpec).to.deep.equal(spec.TaskTemplate.ContainerSpec);
    expect(pinned.TaskTemplate.Resources).to.deep.equal(spec.TaskTemplate.Resources);
    const moved = withPin(pinned, 'node3');
    expect(moved.TaskTemplate.Placement.Constraints).to.deep.equal(['node.hostname!=bad', 'node.role==worker', 'node.hostname==node3']);
    expect(moved.Labels[LABELS.node]).to.equal('node3');
    const unpinned = withPin(moved, undefined);
    expect(unpinned.TaskTemplate.Placement.Constraints).to.deep.equal(['node.hostname!=bad', 'node.role==worker']);
    expect(unpinned.Labels).to.not.have.property(LABELS.node);
  });

  it('volumeNodeProblem names the node and what is wrong with it', () => {
    const n = (over: object) => [
      {
        ...nodeView({
          ID: 'i2',
          Description: { Hostname: 'node2' },
          Status: { State: 'ready', Addr: '10.0.0.12' },
          Spec: { Role: 'worker', Availability: 'active' },
        }),
        ...over,
      },
    ];
    expect(volumeNodeProblem('node2', n({}))).to.equal(undefined);
    expect(volumeNodeProblem('node2', n({ availability: 'drain' }))).to.deep.equal({ reason: 'NodeDrained', message: 'node node2 is drained' });
    expect(volumeNodeProblem('node2', n({ state: 'down' }))).to.deep.equal({ reason: 'NodeDown', message: 'node node2 is down' });
    expect(volumeNodeProblem('node2', n({ availability: 'pause' }))?.reason).to.equal('NodePaused');
    expect(volumeNodeProblem('node9', n({}))?.reason).to.equal('NodeGone');
  });

  it('nodeView: hostname, advertised address (a manager listening on 0.0.0.0 by its manager address), role, state, availability, labels', () => {
    expect(
      nodeView({
        ID: 'a',
        Description: { Hostname: 'h1' },
        Status: { State: 'ready', Addr: '0.0.0.0' },
        ManagerStatus: { Addr: '10.0.0.11:2377' },
        Spec: { Role: 'manager', Availability: 'drain', Labels: { gpu: 'true' } },
      }),
    ).to.deep.equal({
      id: 'a',
      hostname: 'h1',
      addr: '10.0.0.11',
      role: 'manager',
      state: 'ready',
      availability: 'drain',
      labels: { gpu: 'true' },
    });
    expect(nodeView({ ID: 'b', Status: { State: 'down' } })).to.deep.include({ hostname: 'b', addr: undefined, role: 'worker', availability: 'active' });
  });
});

describe('multi-node: images and registries', () => {
  it('parses references the way Docker does', () => {
    expect(parseImageRef('local/busybox:test')).to.deep.equal({ registry: undefined, path: 'local/busybox', tag: 'test', digest: undefined });
    expect(parseImageRef('10.250.0.1:5000/local/busybox:v1')).to.deep.equal({
      registry: '10.250.0.1:5000',
      path: 'local/busybox',
      tag: 'v1',
      digest: undefined,
    });
    expect(parseImageRef('reg.example/a/b@sha256:abc')).to.deep.include({ registry: 'reg.example', path: 'a/b', tag: undefined, digest: 'sha256:abc' });
    expect(parseImageRef('localhost/x')).to.deep.include({ registry: 'localhost', path: 'x' });
    expect(parseImageRef('busybox')).to.deep.include({ registry: undefined, path: 'busybox', tag: undefined });
    expect(withoutTag('10.250.0.1:5000/local/busybox:v1')).to.equal('10.250.0.1:5000/local/busybox');
    expect(isImageId('sha256:' + 'c'.repeat(64))).to.equal(true);
    expect(isImageId('c'.repeat(64))).to.equal(true);
    expect(isImageId('local/x:1')).to.equal(false);
  });

  it('a tag without a registry is looked up in the policy registry; one naming a registry stays', () => {
    expect(registryReference('local/notebook:latest', '10.250.0.1:5000')).to.equal('10.250.0.1:5000/local/notebook:latest');
    expect(registryReference('local/notebook', '10.250.0.1:5000/')).to.equal('10.250.0.1:5000/local/notebook:latest');
    expect(registryReference('quay.io/jupyter/base:1', '10.250.0.1:5000')).to.equal('quay.io/jupyter/base:1');
    expect(registryReference('local/notebook:latest', undefined)).to.equal('local/notebook:latest');
  });

  it('tells "no such manifest" from "cannot ask the registry"', () => {
    expect(isNotFound({ statusCode: 404 })).to.equal(true);
    expect(isNotFound({ statusCode: 500, json: { message: 'manifest unknown: manifest unknown' } })).to.equal(true);
    expect(
      isNotFound({ statusCode: 401, json: { message: 'errors: denied: requested access to the resource is denied; unauthorized: authentication required' } }),
    ).to.equal(false);
    expect(
      isNotFound({ statusCode: 500, json: { message: 'Get "http://10.250.0.1:5000/v2/": dial tcp 10.250.0.1:5000: connect: connection refused' } }),
    ).to.equal(false);
  });

  it('reads credentials from a dockerconfigjson Secret (auth or username/password) or username/password keys', () => {
    const reg = '10.250.0.1:5000';
    const auth = Buffer.from('alice:s3:cr3t').toString('base64');
    expect(registryAuthFromSecret({ '.dockerconfigjson': JSON.stringify({ auths: { [reg]: { auth } } }) }, reg)).to.deep.equal({
      username: 'alice',
      password: 's3:cr3t',
      serveraddress: reg,
    });
    expect(
      registryAuthFromSecret({ '.dockerconfigjson': JSON.stringify({ auths: { [`https://${reg}`]: { username: 'bob', password: 'pw' } } }) }, reg),
    ).to.deep.equal({ username: 'bob', password: 'pw', serveraddress: reg });
    expect(registryAuthFromSecret({ username: 'carol', password: 'x' }, reg)).to.deep.equal({ username: 'carol', password: 'x', serveraddress: reg });
    expect(registryAuthFromSecret({ '.dockerconfigjson': JSON.stringify({ auths: { 'other:5000': { auth } } }) }, reg)).to.equal(undefined);
    expect(registryAuthFromSecret({ '.dockerconfigjson': '{not json' }, reg)).to.equal(undefined);
  });
});

describe('multi-node: the builder job', () => {
  const job = {
    node: 'node2',
    containerId: 'a'.repeat(64),
    target: '10.250.0.1:5000/nbswarm-built/default-src:g1',
    builderImage: '10.250.0.1:5000/docker@sha256:' + 'd'.repeat(64),
    labels: { [LABELS.uid]: '', [LABELS.source]: 'default/src' },
    comment: 'nbswarm: snapshot of nbs-src',
  };

  it('runs once on the source node with the node socket; values are arguments, never script text', () => {
    const spec = buildJobSpec(job);
    expect(spec.Name)
      .to.equal(buildJobName(job.target))
      .and.match(/^nbswarm-build-[0-9a-f]{16}$/);
    expect(spec.Mode).to.deep.equal({ ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } });
    expect(spec.Labels).to.deep.equal({ [LABELS.buildTarget]: job.target });
    expect(spec.Labels).to.not.have.property(LABELS.managedBy);
    expect(spec.TaskTemplate.Placement.Constraints).to.deep.equal(['node.hostname==node2']);
    expect(spec.TaskTemplate.RestartPolicy).to.deep.equal({ Condition: 'none' });
    expect(spec.TaskTemplate.ContainerSpec.Mounts).to.deep.equal([{ Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock' }]);
    const cmd: string[] = spec.TaskTemplate.ContainerSpec.Command;
    expect(cmd.slice(0, 2)).to.deep.equal(['sh', '-c']);
    expect(cmd[2]).to.not.include(job.target).and.not.include(job.containerId);
    expect(cmd.slice(4)).to.deep.equal([
      '--pause=true',
      '--message',
      job.comment,
      '--change',
      `LABEL "${LABELS.uid}"=""`,
      '--change',
      `LABEL "${LABELS.source}"="default/src"`,
      job.containerId,
      job.target,
    ]);
    expect(spec.TaskTemplate.ContainerSpec.Env).to.deep.equal([`NBSWARM_BUILD_TARGET=${job.target}`]);
    expect(() => buildJobSpec({ ...job, containerId: 'x; rm -rf /' })).to.throw(/not a container ID/);
  });

  it('credentials reach the push as a Swarm secret (config.json), never in the environment', () => {
    const spec = buildJobSpec({ ...job, credentials: { secretId: 'sid', secretName: 'sname' } });
    expect(spec.TaskTemplate.ContainerSpec.Secrets).to.deep.equal([
      { SecretID: 'sid', SecretName: 'sname', File: { Name: 'config.json', UID: '0', GID: '0', Mode: 0o400 } },
    ]);
    expect(spec.TaskTemplate.ContainerSpec.Env).to.include('DOCKER_CONFIG=/run/secrets');
    expect(JSON.parse(dockerConfigJson({ username: 'a', password: 'b', serveraddress: 'r:5000' }))).to.deep.equal({
      auths: { 'r:5000': { auth: Buffer.from('a:b').toString('base64') } },
    });
  });

  it('reads the outcome from the job tasks', () => {
    expect(jobOutcome([])).to.deep.equal({ running: true });
    expect(jobOutcome([{ Status: { State: 'running' } }])).to.deep.equal({ running: true });
    expect(jobOutcome([{ Status: { State: 'complete' } }])).to.deep.equal({ done: true });
    expect(jobOutcome([{ Status: { State: 'failed', Err: 'task: non-zero exit (1)' } }])).to.deep.equal({ failed: 'failed: task: non-zero exit (1)' });
    expect(jobOutcome([{ Status: { State: 'rejected', Err: 'No such image' } }])).to.deep.equal({ failed: 'rejected: No such image' });
  });
});

describe('multi-node: probe addresses and the policy', () => {
  it('probes loopback by default and the networks the policy lists, never anything else', () => {
    const loop = defaultPolicy().probeNetworks;
    expect(probeUrl('http://127.0.0.1:30001', loop)).to.equal('http://127.0.0.1:30001/');
    expect(probeUrl('http://0.0.0.0:30001', loop)).to.equal('http://127.0.0.1:30001/');
    expect(probeUrl('http://[::1]:30001', loop)).to.equal('http://[::1]:30001/');
    expect(probeUrl('http://10.250.0.12:30001', loop)).to.equal(undefined);
    expect(probeUrl('http://172.17.0.2:8888', loop)).to.equal(undefined);
    const cluster = [...loop, '10.250.0.0/24'];
    expect(probeUrl('http://10.250.0.12:30001', cluster)).to.equal('http://10.250.0.12:30001/');
    expect(probeUrl('http://10.250.1.12:30001', cluster)).to.equal(undefined);
    expect(probeUrl('http://172.17.0.2:8888', cluster)).to.equal(undefined);
    expect(probeUrl('not a url', cluster)).to.equal(undefined);
  });

  it('parses networks and single addresses', () => {
    expect(parseCidr('10.250.0.0/24')).to.deep.equal({ address: '10.250.0.0', prefix: 24, family: 'ipv4' });
    expect(parseCidr('::1')).to.deep.equal({ address: '::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['10.250.0.0/33', 'host.example', '10.0.0/8', '']) expect(parseCidr(bad), bad).to.equal(undefined);
    const m = addressMatcher(['10.0.0.0/8', 'fd00::/8']);
    expect([m('10.1.2.3'), m('11.0.0.1'), m('fd00::5'), m('nope')]).to.deep.equal([true, false, true, false]);
  });

  it('the policy refuses bad constraints, networks, registries and requests, naming the key', () => {
    expect(isConstraint('node.labels.gpu==true')).to.equal(true);
    expect(isConstraint('node.hostname != n1')).to.equal(true);
    expect(isConstraint('engine.labels.os==linux')).to.equal(true);
    for (const bad of ['gpu==true', 'node.labels.gpu=true', 'node.cpu>2', 'node.role==']) expect(isConstraint(bad), bad).to.equal(false);
    let err: unknown;
    try {
      loadPolicy({
        overrides: {
          placementRules: [{ images: ['x/*'], constraints: ['gpu'] }],
          probeNetworks: ['10.0.0.0/40'],
          constraints: ['node.labels.a=b'],
          resources: { defaults: { memory: '1Gi' }, limits: { memory: '2Gi' }, requests: { memory: '4Gi' } },
        } as Partial<Policy>,
      });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(PolicyError);
    const problems = (err as PolicyError).problems.join('\n');
    expect(problems).to.match(/placementRules\[0\]\.constraints\[0\]: "gpu"/);
    expect(problems).to.match(/probeNetworks\[0\]/);
    expect(problems).to.match(/constraints\[0\]: "node\.labels\.a=b"/);
    expect(problems).to.match(/resources\.requests\.memory: 4Gi is above resources\.limits\.memory 2Gi/);
    expect(() => loadPolicy({ overrides: { registry: { address: 'http://reg', pushLocalImages: false } } })).to.throw(PolicyError, /registry\.address/);
    const p = loadPolicy({ env: { NBSWARM_REGISTRY: '10.250.0.1:5000', NBSWARM_PROBE_NETWORKS: '127.0.0.0/8,10.250.0.0/24' } });
    expect(p.registry).to.deep.equal({ pushLocalImages: false, address: '10.250.0.1:5000' });
    expect(p.probeNetworks).to.deep.equal(['127.0.0.0/8', '10.250.0.0/24']);
  });
});

describe('multi-node: the Docker observer and node events', () => {
  it('a node event makes everything observed on (or pinned to) that node be read again', async () => {
    let now = 1000;
    const obs = (uid: string, node: string, pin?: string): ObservedServer => ({
      kind: 'service',
      id: `s-${uid}`,
      name: `n-${uid}`,
      labels: { [LABELS.uid]: uid },
      state: 'running',
      node,
      pinNode: pin,
    });
    let listed = [obs('a', 'node3'), obs('b', 'node2'), obs('c', 'node1', 'node3')];
    const fetched: string[] = [];
    const o = new DockerObserver(
      {
        listAll: async () => listed,
        fetchUid: async (uid) => {
          fetched.push(uid);
          return listed.filter((x) => x.labels[LABELS.uid] === uid);
        },
        settled: () => true,
      },
      { maxAgeMs: 60_000, unsettledTtlMs: 1000, progressTtlMs: 20, writeGraceMs: 5000, taskReportLagMs: 10_000 },
      () => now,
    );
    o.watchingFrom(0);
    o.setLive(true);
    await o.find('a');
    now += 10;
    listed = [obs('a', 'node2'), obs('b', 'node2'), obs('c', 'node1', 'node3')];
    expect((await o.find('a'))[0]!.node, 'answered from the snapshot').to.equal('node3');
    o.noteEvent({ type: 'node', name: 'node3', action: 'update', time: now });
    now += 10;
    expect((await o.find('a'))[0]!.node).to.equal('node2');
    await o.find('b');
    await o.find('c');
    expect(fetched).to.deep.equal(['a', 'c']);
  });

  it('a task the manager lists as running on a node it declared down is starting (Swarm moves it), not running', () => {
    const node = (state: string) =>
      nodeView({ ID: 'n3', Description: { Hostname: 'node3' }, Status: { State: state, Addr: '10.0.0.13' }, Spec: { Role: 'worker' } });
    expect(lostNodeMessage('running', node('down'))).to.equal(
      'node node3 is down; Swarm replaces its task on another node (or there, once it is back, when pinned)',
    );
    // A manager restart makes every node "unknown" for moments: no reason to report servers moving.
    for (const state of ['ready', 'unknown', 'disconnected']) expect(lostNodeMessage('running', node(state)), state).to.equal(undefined);
    for (const state of ['pending', 'starting', 'stopped', 'failed'] as const) expect(lostNodeMessage(state, node('down')), state).to.equal(undefined);
    // One node (no node view): nothing to judge by.
    expect(lostNodeMessage('running', undefined)).to.equal(undefined);
  });
});
