import { createHmac, timingSafeEqual } from "node:crypto";
import { PremiscaleError } from "../config/errors.js";

/**
 * Decides whether `token` may check in as `instanceId`. Must not throw for any input; it is given whatever a
 * client put in the URL (already percent-decoded).
 */
export type TokenVerifier = (instanceId: string, token: string) => boolean;

/** The shortest server secret accepted, in bytes. */
export const MIN_SECRET_BYTES = 32;

// Domain separation: should the secret ever key another HMAC, its outputs can never be confused with these.
const TOKEN_CONTEXT = "premiscale phone-home token v1\n";

/**
 * The check-in token of one instance: HMAC-SHA256 of its instance id under the server secret, base64url without
 * padding (43 characters, safe in a URL path and in cloud-init's `$INSTANCE_ID` templating). The server needs no
 * per-VM state to check it. A token belongs to an instance, not to a request: whoever reads the VM's seed can
 * repeat it for as long as the secret stays the same.
 */
export function instanceToken(secret: Buffer, instanceId: string): string {
  checkSecret(secret);
  return createHmac("sha256", secret).update(TOKEN_CONTEXT).update(instanceId, "utf8").digest("base64url");
}

/**
 * A `TokenVerifier` that accepts exactly `instanceToken(secret, instanceId)`, compared in constant time.
 * `isKnown`, when given, must also accept the instance id (e.g. only instances an apply is waiting for); it is asked
 * after the token check so that an unknown instance and a wrong token take the same time and get the same answer.
 */
export function hmacTokenVerifier(secret: Buffer, options: { isKnown?: (instanceId: string) => boolean } = {}): TokenVerifier {
  checkSecret(secret);
  // A copy, so that a caller who later zeroes or reuses its buffer cannot change what this verifier accepts.
  const key = Buffer.from(secret);
  return (instanceId, token) => {
    const expected = Buffer.from(instanceToken(key, instanceId), "utf8");
    const presented = Buffer.from(token, "utf8");
    // timingSafeEqual needs equal lengths; the expected length is public (always 43), so checking it leaks nothing.
    const matches = presented.length === expected.length && timingSafeEqual(presented, expected);
    return matches && (options.isKnown?.(instanceId) ?? true);
  };
}

function checkSecret(secret: Buffer): void {
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SECRET_BYTES) {
    throw new PremiscaleError(
      `the check-in server secret must be at least ${MIN_SECRET_BYTES} bytes, got ${Buffer.isBuffer(secret) ? secret.length : typeof secret}`,
      "server_secret_invalid",
      `make one with crypto.randomBytes(${MIN_SECRET_BYTES}) and keep it where both apply and serve can read it`,
    );
  }
}
