import type { KubeObject, ObjectMeta } from '../types.js';

/**
 * Decoder for the Kubernetes protobuf envelope (`k8s\0` + runtime.Unknown), enough for the
 * built-in types kubectl sends as protobuf (Secret, ConfigMap, Namespace, Event, ServiceAccount,
 * TokenRequest, Role, ClusterRole and their bindings, self-reviews): kubectl's typed clients
 * use protobuf for built-in kinds and do not fall back to JSON on 415.
 */
type Field = { no: number; wire: number; v: bigint | Buffer };

function varint(b: Buffer, pos: { i: number }): bigint {
  let r = 0n;
  let shift = 0n;
  for (;;) {
    if (pos.i >= b.length) throw new Error('truncated varint');
    const x = b[pos.i++];
    r |= BigInt(x & 0x7f) << shift;
    if (!(x & 0x80)) return r;
    shift += 7n;
  }
}

function fields(b: Buffer): Field[] {
  const out: Field[] = [];
  const pos = { i: 0 };
  while (pos.i < b.length) {
    const key = Number(varint(b, pos));
    const no = key >>> 3,
      wire = key & 7;
    if (wire === 0) out.push({ no, wire, v: varint(b, pos) });
    else if (wire === 2) {
      const len = Number(varint(b, pos));
      if (pos.i + len > b.length) throw new Error('truncated field');
      out.push({ no, wire, v: b.subarray(pos.i, pos.i + len) });
      pos.i += len;
    } else if (wire === 1) {
      out.push({ no, wire, v: b.subarray(pos.i, pos.i + 8) });
      pos.i += 8;
    } else if (wire === 5) {
      out.push({ no, wire, v: b.subarray(pos.i, pos.i + 4) });
      pos.i += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const str = (f: Field) => (f.v as Buffer).toString('utf8');

function map(fs: Field[], no: number, bytes: boolean): Record<string, string> | undefined {
  const entries = fs.filter((f) => f.no === no);
  if (!entries.length) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    const kv = fields(e.v as Buffer);
    const k = kv.find((f) => f.no === 1);
    const v = kv.find((f) => f.no === 2);
    out[k ? str(k) : ''] = v ? (bytes ? (v.v as Buffer).toString('base64') : str(v)) : '';
  }
  return out;
}

function time(b: Buffer): string {
  const s = fields(b).find((f) => f.no === 1);
  return new Date(Number(s ? (s.v as bigint) : 0n) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
}

function objectMeta(b: Buffer): ObjectMeta {
  const fs = fields(b);
  const m: ObjectMeta = {};
  for (const f of fs) {
    switch (f.no) {
      case 1:
        m.name = str(f);
        break;
      case 2:
        m.generateName = str(f);
        break;
      case 3:
        m.namespace = str(f);
        break;
      case 5:
        m.uid = str(f);
        break;
      case 6:
        m.resourceVersion = str(f);
        break;
      case 14:
        (m.finalizers ??= []).push(str(f));
        break;
    }
  }
  const labels = map(fs, 11, false);
  const ann = map(fs, 12, false);
  if (labels) m.labels = labels;
  if (ann) m.annotations = ann;
  return m;
}

function objRef(b: Buffer): Record<string, string> {
  const names = ['', 'kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'];
  const o: Record<string, string> = {};
  for (const f of fields(b)) if (names[f.no]) o[names[f.no]] = str(f);
  return o;
}

const strings = (fs: Field[], no: number) => fs.filter((f) => f.no === no && f.wire === 2).map(str);

/** Named string fields of a small message (`names[fieldNumber]`). */
function strFields(b: Buffer, names: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (const f of fields(b)) if (names[f.no] && f.wire === 2) o[names[f.no]] = str(f);
  return o;
}

/** rbac/v1 PolicyRule: verbs 1, apiGroups 2, resources 3, resourceNames 4, nonResourceURLs 5 (all repeated). */
function policyRule(b: Buffer): Record<string, string[]> {
  const fs = fields(b);
  const out: Record<string, string[]> = { verbs: strings(fs, 1) };
  for (const [no, name] of [
    [2, 'apiGroups'],
    [3, 'resources'],
    [4, 'resourceNames'],
    [5, 'nonResourceURLs'],
  ] as const) {
    const v = strings(fs, no);
    if (v.length) out[name] = v;
  }
  return out;
}

/** What the RBAC and ServiceAccount kinds carry beyond metadata (kubectl create role/rolebinding/serviceaccount/token send protobuf). */
function decodeIdentityKinds(kind: string, fs: Field[], o: KubeObject): boolean {
  switch (kind) {
    case 'ServiceAccount': {
      const secrets = fs.filter((f) => f.no === 2).map((f) => objRef(f.v as Buffer));
      if (secrets.length) o.secrets = secrets;
      const pull = fs.filter((f) => f.no === 4).map((f) => strFields(f.v as Buffer, ['', 'name']));
      if (pull.length) o.imagePullSecrets = pull;
      const automount = fs.find((f) => f.no === 3);
      if (automount) o.automountServiceAccountToken = (automount.v as bigint) !== 0n;
      return true;
    }
    case 'Role':
    case 'ClusterRole':
      o.rules = fs.filter((f) => f.no === 2).map((f) => policyRule(f.v as Buffer));
      return true;
    case 'RoleBinding':
    case 'ClusterRoleBinding': {
      const subjects = fs.filter((f) => f.no === 2).map((f) => strFields(f.v as Buffer, ['', 'kind', 'apiGroup', 'name', 'namespace']));
      if (subjects.length) o.subjects = subjects;
      const ref = fs.find((f) => f.no === 3);
      if (ref) o.roleRef = strFields(ref.v as Buffer, ['', 'apiGroup', 'kind', 'name']);
      return true;
    }
    case 'TokenRequest': {
      const specF = fs.find((f) => f.no === 2);
      const spec: Record<string, unknown> = {};
      for (const f of specF ? fields(specF.v as Buffer) : []) {
        if (f.no === 1 && f.wire === 2) ((spec.audiences ??= []) as string[]).push(str(f));
        else if (f.no === 4 && f.wire === 0) spec.expirationSeconds = Number(f.v as bigint);
        else if (f.no === 3 && f.wire === 2) spec.boundObjectRef = strFields(f.v as Buffer, ['', 'kind', 'apiVersion', 'name', 'uid']);
      }
      o.spec = spec;
      return true;
    }
    case 'SelfSubjectRulesReview': {
      const specF = fs.find((f) => f.no === 2);
      o.spec = specF ? strFields(specF.v as Buffer, ['', 'namespace']) : {};
      return true;
    }
    default:
      return false;
  }
}

export function decodeK8sProtobuf(buf: Buffer): KubeObject {
  if (buf.length < 4 || buf.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new Error('missing k8s protobuf envelope');
  const unknown = fields(buf.subarray(4));
  const tm = unknown.find((f) => f.no === 1);
  const raw = unknown.find((f) => f.no === 2);
  let apiVersion = '',
    kind = '';
  if (tm) {
    for (const f of fields(tm.v as Buffer)) {
      if (f.no === 1) apiVersion = str(f);
      else if (f.no === 2) kind = str(f);
    }
  }
  const fs = fields((raw?.v as Buffer) ?? Buffer.alloc(0));
  const metaF = fs.find((f) => f.no === 1);
  const o: KubeObject = { apiVersion, kind, metadata: metaF ? objectMeta(metaF.v as Buffer) : {} };
  switch (kind) {
    case 'Secret': {
      const data = map(fs, 2, true);
      const sd = map(fs, 4, false);
      if (data) o.data = data;
      if (sd) o.stringData = sd;
      const t = fs.find((f) => f.no === 3);
      if (t) o.type = str(t);
      const im = fs.find((f) => f.no === 5);
      if (im) o.immutable = (im.v as bigint) !== 0n;
      break;
    }
    case 'ConfigMap': {
      const data = map(fs, 2, false);
      const bin = map(fs, 3, true);
      if (data) o.data = data;
      if (bin) o.binaryData = bin;
      const im = fs.find((f) => f.no === 4);
      if (im) o.immutable = (im.v as bigint) !== 0n;
      break;
    }
    case 'Namespace':
      break;
    case 'Event': {
      for (const f of fs) {
        switch (f.no) {
          case 2:
            o.involvedObject = objRef(f.v as Buffer);
            break;
          case 3:
            o.reason = str(f);
            break;
          case 4:
            o.message = str(f);
            break;
          case 6:
            o.firstTimestamp = time(f.v as Buffer);
            break;
          case 7:
            o.lastTimestamp = time(f.v as Buffer);
            break;
          case 8:
            o.count = Number(f.v as bigint);
            break;
          case 9:
            o.type = str(f);
            break;
        }
      }
      break;
    }
    case 'SelfSubjectReview':
      break;
    case 'SelfSubjectAccessReview': {
      const spec = fs.find((f) => f.no === 2);
      const reviewSpec: Record<string, Record<string, string>> = {};
      for (const f of spec ? fields(spec.v as Buffer) : []) {
        const names = f.no === 1 ? ['', 'namespace', 'verb', 'group', 'version', 'resource', 'subresource', 'name'] : ['', 'path', 'verb'];
        const attrs: Record<string, string> = {};
        for (const a of fields(f.v as Buffer)) if (names[a.no] && a.wire === 2) attrs[names[a.no]] = str(a);
        reviewSpec[f.no === 1 ? 'resourceAttributes' : 'nonResourceAttributes'] = attrs;
      }
      o.spec = reviewSpec;
      break;
    }
    default:
      if (!decodeIdentityKinds(kind, fs, o)) {
        throw new Error(
          `protobuf bodies are supported only for Secret, ConfigMap, Namespace, Event, ServiceAccount, TokenRequest, RBAC kinds and self-reviews, not ${kind || 'unknown'}`,
        );
      }
  }
  return o;
}
