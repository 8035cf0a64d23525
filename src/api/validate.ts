/**
 * ajv for Kubernetes-style openAPIV3Schema: knows the x-kubernetes-* annotations and the formats
 * CRDs use, so a CRD schema compiles in strict mode. Used to check NotebookServer objects against
 * ./schema.ts without an API server (tests, `--dry-run` style checks).
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { notebookServerSchema, type JSONSchemaProps } from './schema.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function openApiAjv(opts: { useDefaults?: boolean } = {}): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, useDefaults: opts.useDefaults ?? false });
  for (const kw of [
    'x-kubernetes-int-or-string',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-embedded-resource',
    'x-kubernetes-map-type',
    'x-kubernetes-validations',
  ]) {
    ajv.addKeyword({ keyword: kw });
  }
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('date-time', RFC3339);
  return ajv;
}

/** A validator for whole NotebookServer objects; with useDefaults it fills the schema defaults in place. */
export function notebookServerValidator(opts: { useDefaults?: boolean } = {}): ValidateFunction {
  // ajv keeps no references into the schema once compiled, but compile a copy to be safe.
  return openApiAjv(opts).compile(structuredClone(notebookServerSchema) as JSONSchemaProps as object);
}
