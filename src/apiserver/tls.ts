import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { writePrivateFile } from './files.js';

export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

function serial(): string {
  // 16 bytes, first byte 0x01–0x7f: a positive DER INTEGER with no padding byte. (A leading "0"
  // nibble made forge emit 0x00 before a byte < 0x80, which OpenSSL may reject as illegal padding.)
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x01;
  return b.toString('hex');
}

/**
 * RSA keys from Node's crypto, not forge: forge's PEM export of a key pads odd-length CRT
 * components illegally now and then ("asn1 encoding routines::illegal padding" when Node loads
 * it), which broke a server start in roughly one of a hundred. forge only assembles and signs.
 */
function rsaKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; privatePem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(privatePem) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), privatePem };
}

/**
 * Self-signed CA plus a serving certificate signed by it, made once and kept in the data dir so
 * kubeconfigs handed out earlier stay valid across restarts.
 */
export function ensureTls(dataDir: string, hosts: string[]): TlsMaterial {
  const dir = join(dataDir, 'pki');
  const caCrt = join(dir, 'ca.crt');
  const crt = join(dir, 'apiserver.crt');
  const key = join(dir, 'apiserver.key');
  if (existsSync(caCrt) && existsSync(crt) && existsSync(key)) {
    const certPem = readFileSync(crt, 'utf8');
    const cert = forge.pki.certificateFromPem(certPem);
    const san = cert.getExtension('subjectAltName') as { altNames?: { type: number; value?: string; ip?: string }[] } | null;
    const names = new Set((san?.altNames ?? []).map((a) => a.ip ?? a.value ?? ''));
    if (hosts.every((h) => names.has(h))) {
      return { caPem: readFileSync(caCrt, 'utf8'), certPem, keyPem: readFileSync(key, 'utf8') };
    }
    // A new listen address is not in the SANs: re-issue the serving cert under the same CA.
    const caKeyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
    const out = issue(forge.pki.certificateFromPem(readFileSync(caCrt, 'utf8')), forge.pki.privateKeyFromPem(caKeyPem), hosts);
    writeFileSync(crt, out.certPem, { mode: 0o644 });
    writePrivateFile(key, out.keyPem);
    return { caPem: readFileSync(caCrt, 'utf8'), ...out };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKeys = rsaKeyPair();
  const ca = forge.pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serial();
  ca.validity.notBefore = new Date(Date.now() - 3600_000);
  ca.validity.notAfter = new Date(Date.now() + 10 * 365 * 86400_000);
  const caAttrs = [{ name: 'commonName', value: 'nbswarm-ca' }];
  ca.setSubject(caAttrs);
  ca.setIssuer(caAttrs);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());
  const caPem = forge.pki.certificateToPem(ca);
  const out = issue(ca, caKeys.privateKey, hosts);
  writePrivateFile(join(dir, 'ca.key'), caKeys.privatePem);
  writeFileSync(caCrt, caPem, { mode: 0o644 });
  writeFileSync(crt, out.certPem, { mode: 0o644 });
  writePrivateFile(key, out.keyPem);
  return { caPem, ...out };
}

function issue(ca: forge.pki.Certificate, caKey: forge.pki.PrivateKey, hosts: string[]): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 3600_000);
  cert.validity.notAfter = new Date(Date.now() + 5 * 365 * 86400_000);
  cert.setSubject([{ name: 'commonName', value: 'nbswarm-apiserver' }]);
  cert.setIssuer(ca.subject.attributes);
  const all = new Set(['127.0.0.1', '::1', 'localhost', ...hosts]);
  const altNames = [...all].map((h) => (/^[0-9.]+$/.test(h) || h.includes(':') ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(caKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}
