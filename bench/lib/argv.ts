/**
 * Number parsers for the benches' command lines (commander `argParser`s): a size or a duration that
 * is not a whole number in range is refused with the option's name, instead of becoming NaN or a
 * negative count that silently changes what is measured.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';

/** A parser accepting whole numbers ≥ `min` written in decimal ("20", "10000"; not "1e3", "abc", "-1"). */
export function wholeNumber(min: number): (value: string) => number {
  return (value: string) => {
    const trimmed = value.trim();
    const n = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`It must be a whole number ≥ ${min}.`);
    return n;
  };
}

/**
 * A parser of a comma-separated list of `known` names (each trimmed, then `normalize`d): an empty
 * list or a name not known is refused, naming what it is (`what`) and every known name.
 */
export function knownNames(known: readonly string[], what: string, normalize: (name: string) => string = (n) => n): (value: string) => string[] {
  return (value: string) => {
    const names = value
      .split(',')
      .map((s) => normalize(s.trim()))
      .filter(Boolean);
    if (names.length === 0) throw new InvalidArgumentError(`It must be a comma-separated list of ${known.join(', ')}.`);
    for (const n of names) if (!known.includes(n)) throw new InvalidArgumentError(`Unknown ${what} ${n} (known: ${known.join(', ')}).`);
    return names;
  };
}

/** A numeric option whose default differs between a full run and `--quick`, with the smallest value that makes sense. */
export interface SizeOption<K extends string = string> {
  flags: string;
  key: K;
  description: string;
  full: number;
  quick: number;
  min: number;
}

/** Adds each size to `program`, whole numbers ≥ its min, its help naming both defaults. */
export function addSizeOptions(program: Command, sizes: readonly SizeOption[]): Command {
  for (const o of sizes) {
    const defaults = o.full === o.quick ? `default: ${o.full}` : `default: ${o.full}; --quick: ${o.quick}`;
    program.addOption(new Option(o.flags, `${o.description} (${defaults})`).argParser(wholeNumber(o.min)));
  }
  return program;
}

/** Each size's value in parsed `opts`: as given, else its `--quick` or full default. */
export function resolveSizes<K extends string>(opts: Record<string, unknown>, sizes: readonly SizeOption<K>[], quick: boolean): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const o of sizes) out[o.key] = (opts[new Option(o.flags).attributeName()] as number | undefined) ?? (quick ? o.quick : o.full);
  return out;
}

/** The space-separated words of an option or environment variable (extra arguments for a child); none when unset. */
export function words(text: string | undefined): string[] {
  return (text ?? '').split(' ').filter(Boolean);
}
