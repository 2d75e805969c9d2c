import { escapeControl } from '../format.js';

export type Severity = 'error' | 'warning' | 'info';

/** One result of validation: what is wrong, where in the file (a JSON path), and how to fix it. */
export interface Finding {
  readonly code: string;
  readonly severity: Severity;
  readonly path: string;
  readonly message: string;
  readonly fix?: string;
}

export function hasErrors(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === 'error');
}

export function formatFindings(file: string, findings: readonly Finding[]): string {
  if (findings.length === 0) return `${escapeControl(file)}: no findings\n`;
  const safe = escapeControl;
  return `${findings
    .map(
      (f) =>
        `${safe(file)}: ${f.severity} ${f.code} at ${safe(f.path)}\n  ${safe(f.message)}${f.fix ? `\n  fix: ${safe(f.fix)}` : ''}`,
    )
    .join('\n')}\n`;
}
