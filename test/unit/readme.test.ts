/**
 * The README's resource and policy references must keep up with the code: every spec/status
 * field of the schema, every policy key and every NBSWARM_* policy variable is named there.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { notebookServerSchema, type JSONSchemaProps } from '../../src/api/schema.js';
import { defaultPolicy } from '../../src/config/policy.js';
import { POLICY_ENV } from '../../src/config/policy-env.js';
import { repoPath } from '../../src/paths.js';

const readme = readFileSync(repoPath('README.md'), 'utf8');

function fieldPaths(schema: JSONSchemaProps, prefix: string, depth: number): string[] {
  const props = (schema.properties ?? {}) as Record<string, JSONSchemaProps>;
  return Object.entries(props).flatMap(([name, sub]) => {
    const path = `${prefix}.${name}`;
    return depth > 1 && sub.properties ? fieldPaths(sub, path, depth - 1) : [path];
  });
}

describe('README', () => {
  const top = notebookServerSchema.properties as Record<string, JSONSchemaProps>;

  it('documents every spec field (two levels deep)', () => {
    const missing = fieldPaths(top.spec, 'spec', 2).filter((p) => !readme.includes(`\`${p}`));
    expect(missing, 'spec fields missing from the README resource table').to.deep.equal([]);
  });

  it('documents every status field', () => {
    const missing = fieldPaths(top.status, 'status', 1).filter((p) => !readme.includes(`\`${p}`));
    expect(missing, 'status fields missing from the README resource table').to.deep.equal([]);
  });

  it('documents every policy key and every NBSWARM_* policy variable', () => {
    const keys = [...Object.keys(defaultPolicy()), 'proxyCommand'];
    const named = (k: string) => readme.includes(`\`${k}\``) || readme.includes(`\`${k}.`);
    expect(
      keys.filter((k) => !named(k)),
      'policy keys',
    ).to.deep.equal([]);
    expect(
      Object.keys(POLICY_ENV).filter((v) => !readme.includes(`\`${v}\``)),
      'policy env variables',
    ).to.deep.equal([]);
  });
});
