/**
 * Child-process entry that runs the embedded API server for the bench, so its RSS and CPU can be
 * read apart from the operator's. Sends the admin kubeconfig to the parent over IPC once listening.
 *   fork('apiserver-child.js', [dataDir])
 */
import { readFileSync } from 'node:fs';
import { startApiServer } from '../../src/apiserver/index.js';

const dataDir = process.argv[2];
if (!dataDir || !process.send) {
  console.error('usage: fork apiserver-child.js <dataDir> (with an IPC channel)');
  process.exit(2);
}
try {
  const srv = await startApiServer({ dataDir, host: '127.0.0.1', port: 0 });
  const stop = async () => {
    await srv.close().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  // Never outlive the bench.
  process.on('disconnect', () => void stop());
  process.send({ kubeconfig: readFileSync(srv.kubeconfigPath, 'utf8'), url: srv.url });
} catch (err) {
  process.send({ error: String((err as Error)?.stack ?? err) });
  process.exit(1);
}
