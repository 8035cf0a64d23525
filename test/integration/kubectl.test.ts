import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { repoPath } from '../../src/paths.js';
import { kubectlAs, kubectlDir, startTestApiServer, type TestApiServer } from '../helpers/apiserver.js';

const CRD = repoPath('test/fixtures/widget-crd.yaml');
const WIDGET = readFileSync(repoPath('test/fixtures/widget-a.yaml'), 'utf8');

/** The same suite with the default kubectl (1.32) and the oldest and newest on the machine. */
for (const bin of ['kubectl', 'kubectl.1.27', 'kubectl.1.33']) {
  describe(`kubectl suite (${bin})`, function () {
    let srv: TestApiServer;
    const ns = `kc-${bin.replace(/\W/g, '-')}`;
    const { run: k, ok } = kubectlAs(() => srv.kubeconfigPath, bin, ns);

    before(async () => {
      srv = await startTestApiServer();
      await ok(['create', 'namespace', ns]);
    });
    after(async () => srv?.cleanup());

    it('applies the CRD and waits for it to be established', async () => {
      expect(await ok(['apply', '-f', CRD])).to.match(/customresourcedefinition.apiextensions.k8s.io\/widgets.example.nbswarm.io created/);
      expect(await ok(['wait', '--for', 'condition=established', 'crd/widgets.example.nbswarm.io', '--timeout=20s'])).to.match(/condition met/);
    });

    it('apply reports created, unchanged, then configured with generation bumped', async () => {
      expect(await ok(['apply', '-f', '-'], WIDGET)).to.match(/widget.example.nbswarm.io\/wa created/);
      expect(await ok(['apply', '-f', '-'], WIDGET)).to.match(/wa unchanged/);
      expect(await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.metadata.generation}'])).to.equal('1');
      expect(await ok(['apply', '-f', '-'], WIDGET.replace('size: 3', 'size: 4'))).to.match(/wa configured/);
      expect(await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.metadata.generation} {.spec.size} {.spec.color}'])).to.equal('2 4 red');
    });

    it('get shows printer columns and the output formats', async () => {
      await ok(['apply', '-f', '-'], WIDGET.replace('name: wa', 'name: wb').replace('tier: front', 'tier: back').replace('alice', 'bob'));
      const table = await ok(['get', 'widgets']);
      expect(table.split('\n')[0]).to.match(/^NAME\s+USER\s+SIZE\s+READY\s+AGE$/);
      expect(table).to.match(/wa\s+alice\s+4/);
      expect(await ok(['get', 'wdg', '-o', 'wide'])).to.match(/COLOR[\s\S]*wa\s+alice\s+4\s+red/);
      expect(await ok(['get', 'widget', 'wa', '-o', 'yaml'])).to.match(/kind: Widget[\s\S]*user: alice/);
      const json = JSON.parse(await ok(['get', 'widgets', '-o', 'json']));
      expect(json.kind).to.equal('List');
      expect(json.items.map((i: { metadata: { name: string } }) => i.metadata.name)).to.deep.equal(['wa', 'wb']);
      expect((await ok(['get', 'widgets', '-o', 'name'])).trim().split('\n')).to.deep.equal(['widget.example.nbswarm.io/wa', 'widget.example.nbswarm.io/wb']);
      expect(await ok(['get', 'widgets', '-l', 'tier=back', '-o', 'name'])).to.equal('widget.example.nbswarm.io/wb\n');
      expect(await ok(['get', 'widgets', '-l', 'tier notin (back),app', '-o', 'name'])).to.equal('widget.example.nbswarm.io/wa\n');
      expect(await ok(['get', 'widgets', '--field-selector', 'metadata.name=wb', '-o', 'name'])).to.equal('widget.example.nbswarm.io/wb\n');
      const all = await ok(['get', 'widgets', '-A']);
      expect(all.split('\n')[0]).to.match(/^NAMESPACE\s+NAME/);
      expect(all).to.contain(ns);
    });

    it('get -w streams changes', async () => {
      const child = spawn(bin, ['--kubeconfig', srv.kubeconfigPath, '-n', ns, 'get', 'widgets', '-w', '--output-watch-events'], {
        env: { ...process.env, PATH: `${kubectlDir()}:${process.env.PATH}` },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await until(() => /wb/.test(out));
        await ok(['patch', 'widget', 'wb', '--type=merge', '-p', '{"spec":{"size":42}}']);
        await until(() => /MODIFIED\s+wb\s+bob\s+42/.test(out));
      } finally {
        child.kill();
      }
      expect(out).to.match(/ADDED\s+wa/);
    });

    it('describe shows Events of the object', async () => {
      const uid = await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.metadata.uid}']);
      const ev = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'wa.test' },
        involvedObject: { apiVersion: 'example.nbswarm.io/v1', kind: 'Widget', name: 'wa', namespace: ns, uid },
        reason: 'Painted',
        message: 'the widget was painted red',
        type: 'Normal',
        source: { component: 'tester' },
        firstTimestamp: new Date().toISOString(),
        lastTimestamp: new Date().toISOString(),
        count: 1,
      };
      await ok(['create', '-f', '-'], JSON.stringify(ev));
      expect(await ok(['describe', 'widget', 'wa'])).to.match(/Events:[\s\S]*Painted[\s\S]*the widget was painted red/);
    });

    it('explain shows field descriptions', async () => {
      expect(await ok(['explain', 'widgets.spec'])).to.match(/Desired state of the widget[\s\S]*user\s+<string>[\s\S]*The user who owns this widget/);
      expect(await ok(['explain', 'widget.spec.size'])).to.match(/How big the widget is/);
    });

    it('diff shows the change without making it', async () => {
      const r = await k(['diff', '-f', '-'], WIDGET.replace('size: 3', 'size: 9'));
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stdout).to.match(/-\s+size: 4[\s\S]*\+\s+size: 9/);
      expect(await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.spec.size}'])).to.equal('4');
    });

    it('apply --server-side detects a conflict between field managers', async () => {
      const obj = WIDGET.replace('name: wa', 'name: ws').replace('size: 3', 'size: 5');
      expect(await ok(['apply', '--server-side', '--field-manager=team-a', '-f', '-'], obj)).to.match(/ws serverside-applied/);
      const r = await k(['apply', '--server-side', '--field-manager=team-b', '-f', '-'], obj.replace('size: 5', 'size: 6'));
      expect(r.code).to.not.equal(0);
      expect(r.stderr)
        .to.match(/conflict with "team-a"/)
        .and.to.match(/\.spec\.size/);
      await ok(['apply', '--server-side', '--field-manager=team-b', '--force-conflicts', '-f', '-'], obj.replace('size: 5', 'size: 6'));
      const o = JSON.parse(await ok(['get', 'widget', 'ws', '-o', 'json', '--show-managed-fields']));
      expect(o.spec.size).to.equal(6);
      const b = o.metadata.managedFields.find((m: { manager: string }) => m.manager === 'team-b');
      expect(b.operation).to.equal('Apply');
      expect(b.fieldsV1['f:spec']).to.have.property('f:size');
      const a = o.metadata.managedFields.find((m: { manager: string }) => m.manager === 'team-a');
      expect(a.fieldsV1['f:spec']).to.not.have.property('f:size');
    });

    it('--dry-run=server validates but does not persist', async () => {
      expect(await ok(['apply', '--dry-run=server', '-f', '-'], WIDGET.replace('size: 3', 'size: 7'))).to.match(/server dry run/);
      expect(await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.spec.size}'])).to.equal('4');
    });

    it('patch (merge and json), label and annotate', async () => {
      await ok(['patch', 'widget', 'wa', '--type=merge', '-p', '{"spec":{"size":5}}']);
      await ok(['patch', 'widget', 'wa', '--type=json', '-p', '[{"op":"replace","path":"/spec/color","value":"blue"}]']);
      await ok(['label', 'widget', 'wa', 'env=prod']);
      await ok(['annotate', 'widget', 'wa', 'note=hello']);
      expect(await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.spec.size} {.spec.color} {.metadata.labels.env} {.metadata.annotations.note}'])).to.equal(
        '5 blue prod hello',
      );
    });

    it('edit works with a non-interactive EDITOR', async () => {
      const editor = join(srv.dataDir, 'editor.sh');
      writeFileSync(editor, '#!/bin/sh\nsed -i "s/size: 5/size: 8/" "$1"\n');
      chmodSync(editor, 0o755);
      expect(await ok(['edit', 'widget', 'wa'], undefined, { EDITOR: editor, KUBE_EDITOR: editor })).to.match(/wa edited/);
      expect(await ok(['get', 'widget', 'wa', '-o', 'jsonpath={.spec.size}'])).to.equal('8');
    });

    it('a schema-invalid object is refused naming the field', async () => {
      const r = await k(['create', '-f', '-'], 'apiVersion: example.nbswarm.io/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: -1, color: pink}\n');
      expect(r.code).to.not.equal(0);
      expect(r.stderr)
        .to.match(/spec.user: Required value/)
        .and.to.match(/spec.color: Unsupported value: "pink"/);
    });

    it('delete waits on a finalizer, wait --for=delete sees it go', async () => {
      await ok(['patch', 'widget', 'wb', '--type=merge', '-p', '{"metadata":{"finalizers":["example.nbswarm.io/hold"]}}']);
      expect(await ok(['delete', 'widget', 'wb', '--wait=false'])).to.match(/wb" deleted/);
      expect(await ok(['get', 'widget', 'wb', '-o', 'jsonpath={.metadata.deletionTimestamp}'])).to.match(/^\d{4}-/);
      const waiting = k(['wait', '--for=delete', 'widget/wb', '--timeout=30s']);
      await ok(['patch', 'widget', 'wb', '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
      const w = await waiting;
      expect(w.code, w.stderr).to.equal(0);
      const r = await k(['get', 'widget', 'wb']);
      expect(r.stderr).to.match(/NotFound|not found/);
    });

    it('wait --for=condition=Ready sees a status update', async () => {
      const waiting = k(['wait', '--for=condition=Ready', 'widget/wa', '--timeout=30s']);
      const status = {
        status: {
          phase: 'Ready',
          conditions: [{ type: 'Ready', status: 'True', reason: 'Test', message: 'ok', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z/, 'Z') }],
        },
      };
      await ok(['patch', 'widget', 'wa', '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
      const w = await waiting;
      expect(w.code, w.stderr).to.equal(0);
      expect(w.stdout).to.match(/condition met/);
      expect(await ok(['get', 'widget', 'wa'])).to.match(/wa\s+alice\s+8\s+True/);
    });

    it('api-resources lists the custom resource; create secret generic works', async () => {
      expect(await ok(['api-resources'])).to.match(/widgets\s+wdg\s+example.nbswarm.io\/v1\s+true\s+Widget/);
      await ok(['create', 'secret', 'generic', 'creds', '--from-literal=password=s3cret']);
      const data = await ok(['get', 'secret', 'creds', '-o', 'jsonpath={.data.password}']);
      expect(Buffer.from(data, 'base64').toString()).to.equal('s3cret');
      expect(await ok(['get', 'secrets'])).to.match(/creds\s+Opaque\s+1/);
      expect(await ok(['auth', 'can-i', 'create', 'widgets.example.nbswarm.io'])).to.equal('yes\n');
    });
  });
}

async function until(cond: () => boolean, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
