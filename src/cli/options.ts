import { InvalidArgumentError } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../runtime/device-group.js';

/** Parses an integer option; commander puts the option's name before the message. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`'${value}' is not a positive integer`);
  return n;
}

/** Parses an integer of zero or more (a seed). */
export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`'${value}' is not an integer of 0 or more`);
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

/** Parses --backend: one of the backends a group opens on, refused otherwise with the list. */
export function backendChoice(value: string): BackendChoice {
  if (!BACKEND_CHOICES.includes(value as BackendChoice)) {
    throw new InvalidArgumentError(`'${value}' is not a backend; use one of ${BACKEND_CHOICES.join(', ')}`);
  }
  return value as BackendChoice;
}
