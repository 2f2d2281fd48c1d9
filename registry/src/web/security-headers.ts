import type { NextFunction, Request, Response } from 'express';

/**
 * Headers on every answer of the registry (pages, API, the dev IdP). The policy allows no inline
 * script or style at all: the pages load /static/app.js and /static/app.css, and everything
 * that reaches a page from a server definition, a backend or a user is escaped by EJS.
 * Forms may post to our own origin only, and no page can be framed.
 */
export function securityHeaders(publicUrl: string): (req: Request, res: Response, next: NextFunction) => void {
  const origin = new URL(publicUrl).origin;
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    `form-action 'self' ${origin}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ].join('; ');
  return (_req, res, next) => {
    res.set({
      'Content-Security-Policy': csp,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'same-origin',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
    });
    next();
  };
}
