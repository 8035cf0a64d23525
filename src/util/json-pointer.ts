/** A JSON pointer as ajv reports it (`/spec/env/0/name`) in the dotted form messages use (`spec.env[0].name`). */
export function fieldPathOf(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}
