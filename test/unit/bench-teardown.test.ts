/** The bench's teardown: what a run started is stopped once, newest first, and no process of it is left. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { descendants, endDescendants, running, Teardown, TornDownError } from '../../bench/lib/teardown.js';

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
});
