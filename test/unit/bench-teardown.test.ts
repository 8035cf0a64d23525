/** The bench's teardown: what a run started is stopped once, newest first, and no process of it is left. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { descendants, endDescendants, running, Teardown, TornDownError, type Proc } from '../../bench/lib/teardown.js';

const API_BENCH = fileURLToPath(new URL('../../bench/apiserver/run.js', import.meta.url));
const ETCD_BENCH = fileURLToPath(new URL('../../bench/etcd.js', import.meta.url));

describe('bench teardown', () => {
  it('undoes what is still registered newest first, each once, going on past a failure', async () => {
    const logged: string[] = [];
    const t = new Teardown((m) => logged.push(m));
    const done: string[] = [];
    t.add('proxy', async () => void done.push('proxy'));
    t.add('api', async () => {
      done.push('api');
      throw new Error('already gone');
    });
    const stopOperator = t.add('operator', async () => void done.push('operator'));
    t.add('stack', async () => void done.push('stack'));
    await stopOperator();
    await stopOperator();
    expect(done).to.deep.equal(['operator']);
    await t.all();
    expect(done).to.deep.equal(['operator', 'stack', 'api', 'proxy']);
    expect(logged).to.deep.equal(['stopping api: already gone']);
    expect(t.tearingDown).to.equal(true);
  });

  it('a stop asked for while the teardown runs it waits for that one stop', async () => {
    const t = new Teardown(() => undefined);
    let stops = 0;
    let finish!: () => void;
    const stop = t.add('operator', () => {
      stops++;
      return new Promise<void>((r) => (finish = r));
    });
    const all = t.all();
    const mine = stop();
    finish();
    await Promise.all([all, mine]);
    expect(stops).to.equal(1);
  });

  it('stops at once what starts once the teardown has begun, and says so', async () => {
    const t = new Teardown(() => undefined);
    await t.all();
    let stopped = false;
    expect(() =>
      t.add('late operator', async () => {
        stopped = true;
      }),
    ).to.throw(TornDownError, 'late operator started while the run was being torn down');
    await new Promise((r) => setImmediate(r));
    expect(stopped).to.equal(true);
  });

  it('ends every process below a root, a grandchild that ignores SIGTERM included', async function () {
    this.timeout(20_000);
    // A shell (the root) with a child shell that ignores SIGTERM, which has a child of its own.
    const root = spawn('sh', ['-c', `sh -c "trap '' TERM; sleep 300 & wait" & sleep 300 & wait`], { stdio: 'ignore' });
    try {
      let below = descendants(root.pid!);
      for (let i = 0; i < 100 && below.length < 3; i++) {
        await new Promise((r) => setTimeout(r, 50));
        below = descendants(root.pid!);
      }
      expect(below, 'the root shell has two sleeps and a shell below it').to.have.length(3);
      const ended = await endDescendants(500, root.pid!);
      expect(ended.map((p) => p.pid).sort()).to.deep.equal(below.map((p) => p.pid).sort());
      expect(ended.filter(running), 'still running').to.deep.equal([]);
      expect(descendants(root.pid!)).to.deep.equal([]);
    } finally {
      root.kill('SIGKILL');
    }
  });

  const scripts = [
    { name: 'bench/apiserver', file: API_BENCH, args: ['--quick'], signal: 'SIGTERM' as const },
    { name: 'bench/apiserver', file: API_BENCH, args: ['--quick'], signal: 'SIGINT' as const },
    { name: 'bench/etcd', file: ETCD_BENCH, args: ['--n', '10', '--warmup', '1000000'], signal: 'SIGTERM' as const },
  ];
  for (const { name, file, args, signal } of scripts) {
    it(`${name} stopped with ${signal} (kill PID, or bench/run.ts stopping a scenario) leaves neither its server nor its data dir`, async function () {
      this.timeout(60_000);
      const bench = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      bench.stderr!.on('data', (d: Buffer) => (stderr += d));
      const exited = new Promise<number | null>((r) => bench.once('exit', (code) => r(code)));
      const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      let below: Proc[] = [];
      let dataDir = '';
      try {
        // Its server (the API server, or etcd) is the process below it given a --data-dir.
        let server: Proc | undefined;
        for (let i = 0; i < 400 && !server; i++) {
          await new Promise((r) => setTimeout(r, 50));
          server = descendants(bench.pid!).find((p) => argvOf(p.pid).includes('--data-dir'));
        }
        expect(server, stderr).to.not.equal(undefined);
        const argv = argvOf(server!.pid);
        dataDir = argv[argv.indexOf('--data-dir') + 1]!;
        await new Promise((r) => setTimeout(r, 1000));
        below = descendants(bench.pid!);
        expect(existsSync(dataDir)).to.equal(true);
        bench.kill(signal);
        expect(await exited, stderr).to.equal(signal === 'SIGINT' ? 130 : 143);
        // Sent SIGKILL on the script's way out; the kernel ends them a moment later.
        for (let i = 0; i < 60 && below.some(running); i++) await new Promise((r) => setTimeout(r, 50));
        expect(below.filter(running), 'still running 3 s after the script ended').to.deep.equal([]);
        expect(existsSync(dataDir), dataDir).to.equal(false);
        expect(stderr).to.contain(`${name}: ${signal}: stopping what it started`);
      } finally {
        // Whatever a failed run left is ended here, not on the machine.
        bench.kill('SIGKILL');
        for (const p of below.filter(running)) process.kill(p.pid, 'SIGKILL');
        if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
