/**
 * Number parsers for the benches' command lines (commander `argParser`s): a size or a duration that
 * is not a whole number in range is refused with the option's name, instead of becoming NaN or a
 * negative count that silently changes what is measured.
 */
import { InvalidArgumentError } from 'commander';

/** A parser accepting whole numbers ≥ `min` written in decimal ("20", "10000"; not "1e3", "abc", "-1"). */
export function wholeNumber(min: number): (value: string) => number {
  return (value: string) => {
    const trimmed = value.trim();
    const n = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`It must be a whole number ≥ ${min}.`);
    return n;
  };
}

/** The space-separated words of an option or environment variable (extra arguments for a child); none when unset. */
export function words(text: string | undefined): string[] {
  return (text ?? '').split(' ').filter(Boolean);
}
