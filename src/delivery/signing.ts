import { createHmac } from "node:crypto";

export interface SigningInput {
  /** The delivery id, sent as `webhook-id`. */
  id: string;
  /** Unix seconds, sent as `webhook-timestamp`. */
  timestamp: number;
  body: string;
  /** Active `whsec_` secrets, newest first. */
  secrets: string[];
  attemptNumber: number;
  /** Renames the X-Webhook- pair, e.g. "X-Nouvel-". */
  headerPrefix: string;
}

const keyCache = new Map<string, Buffer>();

function secretKey(secret: string): Buffer {
  let key = keyCache.get(secret);
  if (!key) {
    key = Buffer.from(secret.slice("whsec_".length), "base64");
    if (keyCache.size > 10_000) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

/**
 * Both signature schemes over the exact bytes sent:
 * `X-Webhook-Signature: sha256=<hex HMAC(body)>` with the newest secret, and Standard Webhooks'
 * `webhook-signature: v1,<base64 HMAC(id.timestamp.body)>`, one entry per active secret.
 */
export function signatureHeaders(input: SigningInput): Record<string, string> {
  const newest = input.secrets[0];
  if (!newest) throw new Error("no active signing secret");
  const signedContent = `${input.id}.${input.timestamp}.${input.body}`;
  const standard = input.secrets
    .map((secret) => `v1,${createHmac("sha256", secretKey(secret)).update(signedContent).digest("base64")}`)
    .join(" ");
  return {
    [`${input.headerPrefix}Signature`]: `sha256=${createHmac("sha256", secretKey(newest)).update(input.body).digest("hex")}`,
    [`${input.headerPrefix}Attempt`]: String(input.attemptNumber),
    "webhook-id": input.id,
    "webhook-timestamp": String(input.timestamp),
    "webhook-signature": standard,
  };
}
