/**
 * Who may open the status page: anyone on loopback; elsewhere a bearer token from the token file or
 * one the API server accepts (checked once, then cached), or the session cookie the login set.
 */
import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { cookie, isLoopback, SESSION_COOKIE, StatusAuth } from '../../src/statuspage/auth.js';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('status page access', () => {
  it('knows loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(a), a).to.equal(true);
    for (const a of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2']) expect(isLoopback(a), a).to.equal(false);
  });

  it('lets everyone in when no login is required', async () => {
    expect(await new StatusAuth(false, undefined).allows(req({}))).to.equal(true);
  });

  it('accepts a token from the file or one the API server accepts, and asks the API server once per token', async () => {
    let now = 0;
    const asked: string[] = [];
    const auth = new StatusAuth(
      true,
      async (t) => (asked.push(t), t === 'kube-token'),
      ['file-token'],
      () => now,
    );
    expect(await auth.allows(req({}))).to.equal(false);
    expect(await auth.allows(req({ authorization: 'Bearer file-token' }))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer kube-token' }))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer kube-token' }))).to.equal(true);
    expect(await auth.allows(req({ authorization: 'Bearer wrong' }))).to.equal(false);
    expect(await auth.allows(req({ authorization: 'Basic a2V5' }))).to.equal(false);
    expect(asked).to.deep.equal(['kube-token', 'wrong']);
    // A refusal is remembered only briefly (a token may have just been added), an acceptance for a minute.
    now += 6000;
    await auth.allows(req({ authorization: 'Bearer wrong' }));
    await auth.allows(req({ authorization: 'Bearer kube-token' }));
    expect(asked).to.deep.equal(['kube-token', 'wrong', 'wrong']);
  });

  it('opens the page for a live session cookie only', async () => {
    let now = 0;
    const auth = new StatusAuth(
      true,
      async () => false,
      [],
      () => now,
    );
    const id = auth.newSession();
    expect(await auth.allows(req({ cookie: `other=1; ${SESSION_COOKIE}=${id}` }))).to.equal(true);
    expect(await auth.allows(req({ cookie: `${SESSION_COOKIE}=forged` }))).to.equal(false);
    now += 13 * 3600_000;
    expect(await auth.allows(req({ cookie: `${SESSION_COOKIE}=${id}` }))).to.equal(false);
    expect(cookie('a=1; b = 2 ;c=3', 'b')).to.equal('2');
  });
});
