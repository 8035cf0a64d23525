/**
 * serviceaccounts/token (TokenRequest, `kubectl create token`): a signed token for the named
 * ServiceAccount, for the audiences asked (default: this server), for expirationSeconds
 * (default 1 h, at least 10 min), optionally bound to a Secret. Nothing is stored.
 */
import { isObject } from '../../util/json.js';
import { API_AUDIENCES, type ServiceAccountTokens } from '../auth/serviceaccounts.js';
import { badRequest, invalid, notFound } from '../errors.js';
import { kindKey } from '../registry/kinds.js';
import type { Cause } from '../types.js';
import { dryRun, getStored, readObjectBody, type Handler } from './scope.js';

const DEFAULT_SECONDS = 3600;
const MIN_SECONDS = 600;
const MAX_SECONDS = 2 ** 32;

export function tokenRequest(tokens: ServiceAccountTokens): Handler {
  return async (s) => {
    const body = await readObjectBody(s);
    if (body.kind !== undefined && body.kind !== 'TokenRequest')
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (TokenRequest)`);
    if (body.apiVersion !== undefined && body.apiVersion !== 'authentication.k8s.io/v1')
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (authentication.k8s.io/v1)`);
    const spec = isObject(body.spec) ? body.spec : {};
    const causes: Cause[] = [];
    const audiences =
      spec.audiences === undefined || spec.audiences === null || (Array.isArray(spec.audiences) && spec.audiences.length === 0)
        ? API_AUDIENCES
        : spec.audiences;
    if (!Array.isArray(audiences) || !audiences.every((a) => typeof a === 'string' && a !== ''))
      causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: must be a list of non-empty strings', field: 'spec.audiences' });
    const seconds = spec.expirationSeconds ?? DEFAULT_SECONDS;
    if (typeof seconds !== 'number' || !Number.isInteger(seconds))
      causes.push({
        reason: 'FieldValueInvalid',
        message: `Invalid value: ${JSON.stringify(seconds)}: must be a whole number of seconds`,
        field: 'spec.expirationSeconds',
      });
    else if (seconds < MIN_SECONDS)
      causes.push({
        reason: 'FieldValueInvalid',
        message: `Invalid value: ${seconds}: may not specify a duration less than 10 minutes`,
        field: 'spec.expirationSeconds',
      });
    else if (seconds > MAX_SECONDS)
      causes.push({
        reason: 'FieldValueInvalid',
        message: `Invalid value: ${seconds}: may not specify a duration larger than 2^32 seconds`,
        field: 'spec.expirationSeconds',
      });
    const ref = isObject(spec.boundObjectRef) ? spec.boundObjectRef : undefined;
    if (ref && ref.kind !== 'Secret')
      causes.push({
        reason: 'FieldValueNotSupported',
        message: `Unsupported value: ${JSON.stringify(ref.kind)}: supported values: "Secret"`,
        field: 'spec.boundObjectRef.kind',
      });
    if (causes.length) throw invalid('TokenRequest', 'authentication.k8s.io', s.name, causes);
    const serviceAccount = getStored(s);
    let boundSecret;
    if (ref) {
      boundSecret = s.services.storage.get(kindKey('', 'secrets'), s.namespace, String(ref.name ?? ''));
      if (!boundSecret) throw notFound({ group: '', resource: 'secrets' }, String(ref.name ?? ''));
      if (ref.uid !== undefined && ref.uid !== boundSecret.metadata.uid) {
        throw invalid('TokenRequest', 'authentication.k8s.io', s.name, [
          {
            reason: 'FieldValueInvalid',
            message: `Invalid value: ${JSON.stringify(ref.uid)}: the Secret's uid is ${boundSecret.metadata.uid}`,
            field: 'spec.boundObjectRef.uid',
          },
        ]);
      }
    }
    const expirationSeconds = seconds as number;
    const issued = dryRun(s)
      ? { token: '', expirationTimestamp: new Date(Date.now() + expirationSeconds * 1000).toISOString() }
      : tokens.issue({
          namespace: s.namespace,
          serviceAccount,
          audiences: audiences as string[],
          expirationSeconds,
          boundSecret,
        });
    s.services.respond.send(s.res, 201, {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: s.name, namespace: s.namespace, creationTimestamp: null },
      spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
      status: issued,
    });
  };
}
