/**
 * ServiceAccount tokens: signed JWTs the server issues and verifies itself.
 *
 * - Bound tokens (TokenRequest, `kubectl create token`): claims iss, sub, aud, exp, iat, nbf, jti
 *   and `kubernetes.io` {namespace, serviceaccount {name, uid}, secret?}; valid until they expire,
 *   for the audiences they name, while the ServiceAccount (and a bound Secret) still exists with
 *   the same uid.
 * - Legacy tokens in `kubernetes.io/service-account-token` Secrets: no expiry; valid while the
 *   Secret still holds exactly that token and its ServiceAccount exists.
 *
 * Signed with Ed25519 through node:crypto (synchronous, so a Secret can be filled on the write
 * path); the key lives in the data dir, readable by its owner only.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isObject } from '../../util/json.js';
import { kindKey } from '../registry/kinds.js';
import type { Store } from '../storage/sqlite.js';
import type { Cause, Secret, StoredObject } from '../types.js';
import { AUTHENTICATED } from './rbac/bootstrap.js';
import { bearerToken, type Authenticator, type User } from './tokens.js';

/** The issuer of bound tokens, and the audience this server accepts (as kube-apiserver's defaults). */
export const ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const API_AUDIENCES = [ISSUER];
const LEGACY_ISSUER = 'kubernetes/serviceaccount';
export const SERVICE_ACCOUNT_TOKEN_TYPE = 'kubernetes.io/service-account-token';
export const SA_NAME_ANNOTATION = 'kubernetes.io/service-account.name';
export const SA_UID_ANNOTATION = 'kubernetes.io/service-account.uid';

/** Seconds a token may be off in nbf/iat from this server's clock. */
const LEEWAY = 60;

const b64url = (v: Buffer | string) => Buffer.from(v).toString('base64url');

/** The signing key from `file` (PKCS#8 PEM), created with mode 0600 on first use. */
export function loadSigningKey(file: string): KeyObject {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  }
  return createPrivateKey(readFileSync(file));
}

export function newSigningKey(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey;
}

export interface TokenClaims {
  [claim: string]: unknown;
}

export interface BoundTokenRequest {
  namespace: string;
  serviceAccount: StoredObject;
  audiences: string[];
  expirationSeconds: number;
  /** A Secret the token is bound to: deleting it invalidates the token. */
  boundSecret?: StoredObject;
}

export class ServiceAccountTokens implements Authenticator {
  private readonly publicKey: KeyObject;
  private readonly kid: string;

  constructor(
    private readonly key: KeyObject,
    private readonly storage: Store,
    /** Seconds since the epoch (tests move the clock). */
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.publicKey = createPublicKey(key);
    this.kid = b64url(this.publicKey.export({ type: 'spki', format: 'der' }).subarray(-16));
  }

  /** A bound token for the request, and when it expires. */
  issue(r: BoundTokenRequest): { token: string; expirationTimestamp: string } {
    const iat = this.now();
    const exp = iat + r.expirationSeconds;
    const sa = r.serviceAccount.metadata;
    const claims: TokenClaims = {
      aud: r.audiences,
      exp,
      iat,
      nbf: iat,
      iss: ISSUER,
      jti: randomUUID(),
      sub: `system:serviceaccount:${r.namespace}:${sa.name}`,
      'kubernetes.io': {
        namespace: r.namespace,
        serviceaccount: { name: sa.name, uid: sa.uid },
        ...(r.boundSecret ? { secret: { name: r.boundSecret.metadata.name, uid: r.boundSecret.metadata.uid } } : {}),
      },
    };
    return { token: this.sign(claims), expirationTimestamp: new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  }

  /** The token a `kubernetes.io/service-account-token` Secret holds (no expiry). */
  issueLegacy(namespace: string, secretName: string, sa: StoredObject): string {
    return this.sign({
      iss: LEGACY_ISSUER,
      'kubernetes.io/serviceaccount/namespace': namespace,
      'kubernetes.io/serviceaccount/secret.name': secretName,
      'kubernetes.io/serviceaccount/service-account.name': sa.metadata.name,
      'kubernetes.io/serviceaccount/service-account.uid': sa.metadata.uid,
      sub: `system:serviceaccount:${namespace}:${sa.metadata.name}`,
    });
  }

  /**
   * Fills a service-account-token Secret as kube's token controller does (token, ca.crt,
   * namespace, the ServiceAccount's uid); problems are returned as causes for a 422.
   */
  fillSecret(secret: Secret, caPem: string): Cause[] {
    const annotations = secret.metadata.annotations ?? {};
    const saName = annotations[SA_NAME_ANNOTATION];
    const field = `metadata.annotations[${SA_NAME_ANNOTATION}]`;
    if (!saName) return [{ reason: 'FieldValueRequired', message: 'Required value: the ServiceAccount whose token this Secret holds', field }];
    const namespace = secret.metadata.namespace ?? '';
    const sa = this.storage.get(kindKey('', 'serviceaccounts'), namespace, saName);
    if (!sa) return [{ reason: 'FieldValueNotFound', message: `Not found: "${saName}": create the ServiceAccount first, then the Secret`, field }];
    const data = { ...(secret.data ?? {}) };
    const current = data.token ? this.verify(Buffer.from(data.token, 'base64').toString()) : undefined;
    const stale =
      !current ||
      current['kubernetes.io/serviceaccount/secret.name'] !== secret.metadata.name ||
      current['kubernetes.io/serviceaccount/service-account.uid'] !== sa.metadata.uid ||
      current['kubernetes.io/serviceaccount/namespace'] !== namespace;
    if (stale && secret.metadata.name) data.token = Buffer.from(this.issueLegacy(namespace, secret.metadata.name, sa)).toString('base64');
    data['ca.crt'] = Buffer.from(caPem).toString('base64');
    data.namespace = Buffer.from(namespace).toString('base64');
    secret.data = data;
    secret.metadata.annotations = { ...annotations, [SA_UID_ANNOTATION]: sa.metadata.uid };
    return [];
  }

  authenticate(header: string | undefined): User | null {
    const token = bearerToken(header);
    if (!token || token.split('.').length !== 3) return null;
    const claims = this.verify(token);
    if (!claims) return null;
    return claims.iss === ISSUER ? this.boundUser(claims) : claims.iss === LEGACY_ISSUER ? this.legacyUser(token, claims) : null;
  }

  private boundUser(c: TokenClaims): User | null {
    const now = this.now();
    if (typeof c.exp !== 'number' || c.exp <= now) return null;
    if (typeof c.nbf === 'number' && c.nbf > now + LEEWAY) return null;
    const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
    if (!aud.some((a) => API_AUDIENCES.includes(String(a)))) return null;
    const k = c['kubernetes.io'];
    if (!isObject(k) || typeof k.namespace !== 'string' || !isObject(k.serviceaccount)) return null;
    const { name, uid } = k.serviceaccount;
    if (typeof name !== 'string' || typeof uid !== 'string') return null;
    const sa = this.storage.get(kindKey('', 'serviceaccounts'), k.namespace, name);
    if (!sa || sa.metadata.uid !== uid || sa.metadata.deletionTimestamp) return null;
    if (isObject(k.secret)) {
      const s = this.storage.get(kindKey('', 'secrets'), k.namespace, String(k.secret.name));
      if (!s || s.metadata.uid !== k.secret.uid || s.metadata.deletionTimestamp) return null;
    }
    return serviceAccountUser(k.namespace, name, uid);
  }

  private legacyUser(token: string, c: TokenClaims): User | null {
    const ns = c['kubernetes.io/serviceaccount/namespace'];
    const secretName = c['kubernetes.io/serviceaccount/secret.name'];
    const saName = c['kubernetes.io/serviceaccount/service-account.name'];
    const uid = c['kubernetes.io/serviceaccount/service-account.uid'];
    if (typeof ns !== 'string' || typeof secretName !== 'string' || typeof saName !== 'string' || typeof uid !== 'string') return null;
    const secret = this.storage.get(kindKey('', 'secrets'), ns, secretName) as Secret | undefined;
    if (!secret || secret.type !== SERVICE_ACCOUNT_TOKEN_TYPE || secret.metadata.deletionTimestamp) return null;
    if (!secret.data?.token || Buffer.from(secret.data.token, 'base64').toString() !== token) return null;
    const sa = this.storage.get(kindKey('', 'serviceaccounts'), ns, saName);
    if (!sa || sa.metadata.uid !== uid || sa.metadata.deletionTimestamp) return null;
    return serviceAccountUser(ns, saName, uid);
  }

  private sign(claims: TokenClaims): string {
    const head = b64url(JSON.stringify({ alg: 'EdDSA', kid: this.kid, typ: 'JWT' }));
    const body = b64url(JSON.stringify(claims));
    const sig = sign(null, Buffer.from(`${head}.${body}`), this.key);
    return `${head}.${body}.${b64url(sig)}`;
  }

  /** The claims of a token this server signed, or undefined. */
  private verify(token: string): TokenClaims | undefined {
    const [head, body, sig] = token.split('.');
    if (!head || !body || !sig) return undefined;
    try {
      const h: unknown = JSON.parse(Buffer.from(head, 'base64url').toString());
      if (!isObject(h) || h.alg !== 'EdDSA') return undefined;
      if (!verify(null, Buffer.from(`${head}.${body}`), this.publicKey, Buffer.from(sig, 'base64url'))) return undefined;
      const claims: unknown = JSON.parse(Buffer.from(body, 'base64url').toString());
      return isObject(claims) ? claims : undefined;
    } catch {
      return undefined;
    }
  }
}

export function serviceAccountUser(namespace: string, name: string, uid: string): User {
  return {
    name: `system:serviceaccount:${namespace}:${name}`,
    uid,
    namespaces: [namespace],
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, AUTHENTICATED],
  };
}
