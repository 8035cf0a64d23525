/** CIDR networks ("10.250.0.0/24", "::1/128", or a bare address) and membership tests over them. */
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** The network `text` names, or undefined when it is not an address with an optional /prefix. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return undefined;
  const v = isIP(m[1]!);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return undefined;
  return { address: m[1]!, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** A test "is this address inside one of `networks`" (entries that do not parse are ignored; the policy loader refuses them). */
export function addressMatcher(networks: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const n of networks) {
    const c = parseCidr(n);
    if (c) list.addSubnet(c.address, c.prefix, c.family);
  }
  return (address) => {
    const v = isIP(address);
    return v !== 0 && list.check(address, v === 4 ? 'ipv4' : 'ipv6');
  };
}
