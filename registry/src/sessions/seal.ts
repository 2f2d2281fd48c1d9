import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Seals secrets kept at rest in session files (refresh tokens) with AES-256-GCM under a key
 * derived from SECRET_KEY (HKDF-SHA256, its own label), so a copied sessions folder holds no
 * usable token. Format: base64url(iv | tag | ciphertext).
 */
export function createSealer(secretKey: string): { seal(plain: string): string; open(sealed: string): string | undefined } {
  const key = Buffer.from(hkdfSync('sha256', secretKey, 'mcp-gateway', 'session-token-seal v1', 32));
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
    },
    open(sealed) {
      try {
        const raw = Buffer.from(sealed, 'base64url');
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
        decipher.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      } catch {
        return undefined; // tampered, truncated, or sealed under another SECRET_KEY
      }
    },
  };
}
