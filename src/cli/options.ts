import { InvalidArgumentError } from 'commander';

/** Parses an integer option; commander puts the option's name before the message. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`'${value}' is not a positive integer`);
  return n;
}

/** Parses a finite number above zero (a factor). */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`'${value}' is not a number above zero`);
  }
  return n;
}
