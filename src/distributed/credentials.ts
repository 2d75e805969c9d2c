import { readFileSync } from 'node:fs';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';
import { ParallelError } from '../errors.js';

/** PEM files for gRPC's TLS: every rank presents `cert`/`key` and trusts peers signed by `ca`. */
export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ParallelError('IO', `cannot read the TLS ${what} ${file}`, {
      where: file,
      fix: 'pass readable PEM files to --tls-ca, --tls-cert and --tls-key',
      cause: error,
    });
  }
}

/** Server side: plaintext by default (the token still guards every call), TLS with client certificates. */
export function serverCredentials(tls: TlsFiles | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    readPem(tls.ca, 'CA'),
    [{ cert_chain: readPem(tls.cert, 'certificate'), private_key: readPem(tls.key, 'key') }],
    true,
  );
}

export function channelCredentials(tls: TlsFiles | undefined): ChannelCredentials {
  if (!tls) return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(
    readPem(tls.ca, 'CA'),
    readPem(tls.key, 'key'),
    readPem(tls.cert, 'certificate'),
  );
}
