import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Who a dashboard session belongs to. A tenant session names its API key by prefix and sha256
 * (never the key itself), so every request can check the key is still unrevoked. An operator
 * session holds the sha256 of the internal token it signed in with: a changed token ends it.
 */
export type SessionSubject =
  | { kind: "tenant"; tenantId: string; keyPrefix: string; keyHash: string }
  | { kind: "operator"; tokenHash: string };

export type Session = SessionSubject & {
  /** Random per sign-in: what the session's CSRF token is derived from. */
  sid: string;
  /** Expiry, epoch milliseconds. */
  exp: number;
};

export const SESSION_COOKIE = "wo_session";
/** Before sign-in: a random value whose HMAC is the sign-in form's CSRF token. */
export const PRESESSION_COOKIE = "wo_presession";

/** Signs and checks session cookies and CSRF tokens with one server secret (HMAC-SHA256). */
export class SessionSigner {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = createHash("sha256").update(`webhook-outbox dashboard\0${secret}`).digest();
  }

  private mac(purpose: string, value: string): string {
    return createHmac("sha256", this.key).update(`${purpose}\0${value}`).digest("base64url");
  }

  /** `base64url(json).mac` */
  seal(session: Session): string {
    const body = Buffer.from(JSON.stringify(session)).toString("base64url");
    return `${body}.${this.mac("session", body)}`;
  }

  /** The session a cookie holds, or undefined when it is forged, malformed or expired at `now`. */
  open(cookie: string | undefined, now: number): Session | undefined {
    if (!cookie) return undefined;
    const [body, mac, ...rest] = cookie.split(".");
    if (!body || !mac || rest.length > 0 || !equal(mac, this.mac("session", body))) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    } catch {
      return undefined;
    }
    const session = parsed as Partial<Session>;
    if (typeof session.sid !== "string" || typeof session.exp !== "number" || session.exp <= now) return undefined;
    if (session.kind === "tenant" && typeof session.tenantId === "string" && typeof session.keyHash === "string") {
      return session as Session;
    }
    if (session.kind === "operator" && typeof session.tokenHash === "string") return session as Session;
    return undefined;
  }

  /** The CSRF token of a session (or of a pre-session value, for the sign-in form). */
  csrfToken(sid: string): string {
    return this.mac("csrf", sid);
  }

  csrfValid(sid: string | undefined, presented: unknown): boolean {
    return typeof sid === "string" && sid !== "" && typeof presented === "string" && equal(presented, this.csrfToken(sid));
  }
}

export function newSessionId(): string {
  return randomBytes(18).toString("base64url");
}

function equal(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function sha256Hex(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}
