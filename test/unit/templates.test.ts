import { expect } from 'chai';
import { dockerName, escapeName, renderTemplate, unknownPlaceholders, volumeName } from '../../src/config/templates.js';

describe('templates', () => {
  describe('escapeName (DockerSpawner escapism: safe [a-z0-9], escape "-", lower-cased)', () => {
    const cases: Array<[string, string]> = [
      ['alice', 'alice'],
      ['alice42', 'alice42'],
      ['Alice', '-41lice'],
      ['a.b', 'a-2eb'],
      ['a-b', 'a-2db'],
      ['a_b', 'a-5fb'],
      ['alice@example.com', 'alice-40example-2ecom'],
      ['zoë', 'zo-c3-ab'],
      ['', ''],
    ];
    for (const [input, out] of cases) it(`${JSON.stringify(input)} → ${JSON.stringify(out)}`, () => expect(escapeName(input)).to.equal(out));

    it('is injective on names that differ only where escaping kicks in', () => {
      const names = ['a-b', 'a.b', 'a_b', 'A-b', 'a-2db', 'a--2db'];
      expect(new Set(names.map(escapeName)).size).to.equal(names.length);
    });
  });

  describe('renderTemplate', () => {
    const tpl = '{prefix}-{username}-{servername}';
    it('fills prefix, escaped username and servername', () => {
      expect(renderTemplate(tpl, { prefix: 'nbs', username: 'alice', servername: 'dash1' })).to.equal('nbs-alice-dash1');
      expect(renderTemplate(tpl, { prefix: 'nbs', username: 'Bob.Smith', servername: 'Report' })).to.equal('nbs--42ob-2e-53mith--52eport');
    });
    it('an empty servername leaves no trailing separator', () => {
      expect(renderTemplate(tpl, { prefix: 'nbs', username: 'alice', servername: '' })).to.equal('nbs-alice');
      expect(renderTemplate('{prefix}-{servername}-{username}', { prefix: 'nbs', username: 'alice', servername: '' })).to.equal('nbs-alice');
      expect(renderTemplate('{servername}_{username}', { username: 'alice', servername: '' })).to.equal('alice');
      expect(renderTemplate('{prefix}-{username}-home', { prefix: 'nbs', username: 'alice', servername: '' })).to.equal('nbs-alice-home');
    });
    it('keeps raw values with escape: false (host paths of system users)', () => {
      expect(renderTemplate('/home/{username}', { username: 'carol.x' }, { escape: false })).to.equal('/home/carol.x');
    });
    it('leaves unknown placeholders for validation to report', () => {
      expect(renderTemplate('{prefix}-{user}', { prefix: 'nbs' })).to.equal('nbs-{user}');
      expect(unknownPlaceholders('{prefix}-{user}-{servername}', ['prefix', 'username', 'servername'])).to.deep.equal(['{user}']);
    });
  });

  describe('dockerName', () => {
    it('keeps valid names as they are', () => {
      expect(dockerName('nbs-alice-dash1')).to.equal('nbs-alice-dash1');
    });
    it('lower-cases, replaces invalid characters and trims dashes at the ends', () => {
      expect(dockerName('NBS_alice.x-')).to.equal('nbs-alice-x');
      expect(dockerName('-nbs-alice')).to.equal('nbs-alice');
    });
    it('keeps runs of "-" (escaped names rely on them)', () => {
      expect(dockerName('nbs--5fbob')).to.equal('nbs--5fbob');
    });
    it('cuts at 63 characters with a suffix from the uid, unique per uid', () => {
      const long = 'nbs-' + 'a'.repeat(80) + '-server';
      const a = dockerName(long, { uniqueBy: 'uid-1' });
      const b = dockerName(long, { uniqueBy: 'uid-2' });
      expect(a).to.have.length(63);
      expect(b).to.have.length(63);
      expect(a).not.to.equal(b);
      expect(a).to.match(/^nbs-a+-[0-9a-f]{8}$/);
      expect(dockerName(long, { uniqueBy: 'uid-1' })).to.equal(a);
    });
    it('never ends in "-" before the suffix', () => {
      const n = dockerName('x'.repeat(53) + '-' + 'y'.repeat(20), { uniqueBy: 'u' });
      expect(n).to.match(/^x{53}-[0-9a-f]{8}$/);
    });
  });

  describe('volumeName', () => {
    it('allows Docker volume characters and shortens with a hash of the name', () => {
      expect(volumeName('nbs-alice-home')).to.equal('nbs-alice-home');
      expect(volumeName('nbs alice/home')).to.equal('nbs-alice-home');
      const long = 'v'.repeat(300);
      expect(volumeName(long)).to.have.length(255);
      expect(volumeName(long)).to.equal(volumeName(long));
      expect(volumeName(long)).not.to.equal(volumeName('v'.repeat(301)));
    });
  });
});
