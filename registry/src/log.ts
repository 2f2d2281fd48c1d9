import { pino, type Logger } from 'pino';

/**
 * The root logger. Modules take `log.child({ module: 'x' })`. Secrets are redacted by path;
 * the request serializer drops query strings, where OAuth codes travel.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'registry' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
          '*.client_secret',
          '*.clientSecret',
          '*.access_token',
          '*.refresh_token',
          '*.id_token',
          '*.accessToken',
          '*.refreshToken',
          '*.idToken',
          '*.subject_token',
          '*.password',
          '*.secretKey',
        ],
        censor: '[redacted]',
      },
      serializers: {
        err: pino.stdSerializers.err,
        req: (req: { method?: string; url?: string }) => ({
          method: req.method,
          path: (req.url ?? '').split('?')[0],
        }),
      },
    },
    destination,
  );
}

export type { Logger };
