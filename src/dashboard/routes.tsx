import { randomBytes, timingSafeEqual } from "node:crypto";
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import type { Database } from "../db/client.js";
import { DELIVERY_STATUSES, DESTINATION_STATES, type DeliveryStatus, type DestinationState } from "../db/schema.js";
import { USER_AGENT } from "../delivery/http-sender.js";
import { AppError } from "../errors.js";
import { decodeCursor, encodeCursor, isStorableInstant, type Cursor } from "../jobs/cursor.js";
import { enableDestination } from "../outbox/destinations.js";
import { DeliveryInFlightError, DeliveryNotFoundError, DestinationNotFoundError } from "../outbox/errors.js";
import { redeliver } from "../outbox/redeliver.js";
import { apiKeyPrefix, hashApiKey, looksLikeApiKey } from "../tenants/credentials.js";
import { isUuid } from "../uuid.js";
import { DASHBOARD_CSS, DASHBOARD_JS } from "./assets.js";
import {
  deliveryDetail,
  destinationStats,
  findDeliveries,
  findDestinations,
  overview,
  tenantOfKeyHash,
  type AttemptDetail,
  type DeliveryDetail,
} from "./queries.js";
import { newSessionId, PRESESSION_COOKIE, SESSION_COOKIE, SessionSigner, sha256Hex, type Session } from "./session.js";
import { ageText, durationText, Layout, Notice, OutcomeChart, rateText, StatusBadge, type Viewer } from "./views.js";

export interface DashboardOptions {
  database: Database;
  /** INTERNAL_API_TOKEN: the operator's credential; undefined: no operator sign-in. */
  internalApiToken: string | undefined;
  /** The HMAC secret of session cookies and CSRF tokens (DASHBOARD_SESSION_SECRET or a per-process one). */
  sessionSecret: string;
  /** DASHBOARD_SESSION_TTL, in milliseconds. */
  sessionTtlMs: number;
  /** WEBHOOK_HEADER_PREFIX: the signature and attempt headers the delivery page shows. */
  webhookHeaderPrefix: string;
  /** @defaultValue Date.now */
  now?: () => number;
}

type DashboardEnv = { Variables: { session: Session; viewer: Viewer } };

export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

const PAGE_SIZE = 25;

/** Server-rendered pages under /dashboard; see docs/dashboard.md. */
export function dashboardRoutes(options: DashboardOptions) {
  const { database } = options;
  const signer = new SessionSigner(options.sessionSecret);
  const now = options.now ?? Date.now;
  const operatorHash = options.internalApiToken ? sha256Hex(options.internalApiToken) : undefined;
  const app = new Hono<DashboardEnv>();

  app.use("*", async (c, next) => {
    await next();
    c.header("Content-Security-Policy", DASHBOARD_CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "no-referrer");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    if (!c.res.headers.has("cache-control")) c.header("Cache-Control", "no-store");
  });

  app.get("/assets/dashboard.css", (c) => {
    c.header("Cache-Control", "public, max-age=3600");
    return c.body(DASHBOARD_CSS, 200, { "content-type": "text/css; charset=utf-8" });
  });
  app.get("/assets/dashboard.js", (c) => {
    c.header("Cache-Control", "public, max-age=3600");
    return c.body(DASHBOARD_JS, 200, { "content-type": "text/javascript; charset=utf-8" });
  });

  const secure = (c: Context) =>
    new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";

  const cookieOptions = (c: Context, maxAgeSeconds: number) => ({
    path: "/dashboard",
    httpOnly: true,
    sameSite: "Strict" as const,
    secure: secure(c),
    maxAge: maxAgeSeconds,
  });

  const signInPage = (c: Context, status: 200 | 401 | 403, message?: string) => {
    let presession = getCookie(c, PRESESSION_COOKIE);
    if (!presession || presession.length < 16 || presession.length > 64) {
      presession = newSessionId();
      setCookie(c, PRESESSION_COOKIE, presession, cookieOptions(c, 3600));
    }
    const reason = c.req.query("reason");
    return c.html(
      <Layout title="Sign in" section="none">
        <h1>Sign in</h1>
        {message ? <Notice kind="error">{message}</Notice> : null}
        {!message && reason === "expired" ? <Notice kind="info">Your session ended: sign in again.</Notice> : null}
        {!message && reason === "revoked" ? (
          <Notice kind="info">The API key of your session was revoked: sign in with another.</Notice>
        ) : null}
        {!message && reason === "signed-out" ? <Notice kind="info">You are signed out.</Notice> : null}
        <form method="post" action="/dashboard/sign-in" class="stack">
          <input type="hidden" name="csrf" value={signer.csrfToken(presession)} />
          <label for="credential">
            API key (a tenant's <code>wo_…</code>) or the internal token (operator)
            <input id="credential" name="credential" type="password" autocomplete="current-password" required />
          </label>
          <button type="submit" class="primary">
            Sign in
          </button>
        </form>
        <p class="muted">The key is checked and never stored: the session keeps the key's prefix and hash.</p>
      </Layout>,
      status,
    );
  };

  const errorPage = (c: Context, status: 400 | 403 | 404 | 409, title: string, message: string) => {
    const viewer = c.get("viewer") as Viewer | undefined;
    return c.html(
      <Layout title={title} viewer={viewer} section="none">
        <h1>{title}</h1>
        <Notice kind="error">{message}</Notice>
        <p>
          <a href="/dashboard/deliveries">Back to deliveries</a>
        </p>
      </Layout>,
      status,
    );
  };

  app.get("/sign-in", (c) => signInPage(c, 200));

  app.post("/sign-in", async (c) => {
    const form = await c.req.parseBody();
    if (!signer.csrfValid(getCookie(c, PRESESSION_COOKIE), form.csrf)) {
      return signInPage(c, 403, "The form expired or was not sent from this page (CSRF check failed): try again.");
    }
    const credential = typeof form.credential === "string" ? form.credential.trim() : "";
    const sid = newSessionId();
    const exp = now() + options.sessionTtlMs;
    let session: Session | undefined;
    if (looksLikeApiKey(credential)) {
      const keyHash = hashApiKey(credential);
      const tenantId = await tenantOfKeyHash(database, keyHash);
      if (tenantId) session = { kind: "tenant", tenantId, keyPrefix: apiKeyPrefix(credential), keyHash, sid, exp };
    } else if (operatorHash && credential !== "" && equalHex(sha256Hex(credential), operatorHash)) {
      session = { kind: "operator", tokenHash: operatorHash, sid, exp };
    }
    if (!session) return signInPage(c, 401, "That API key or token is not valid (or the key was revoked).");
    deleteCookie(c, PRESESSION_COOKIE, { path: "/dashboard" });
    setCookie(c, SESSION_COOKIE, signer.seal(session), {
      ...cookieOptions(c, Math.floor(options.sessionTtlMs / 1000)),
      expires: new Date(exp),
    });
    return c.redirect("/dashboard", 303);
  });

  // Every other page: a valid, unexpired session whose credential still holds.
  const requireSession: MiddlewareHandler<DashboardEnv> = async (c, next) => {
    const session = signer.open(getCookie(c, SESSION_COOKIE), now());
    let reason = session ? undefined : "expired";
    if (session?.kind === "tenant" && (await tenantOfKeyHash(database, session.keyHash)) !== session.tenantId) {
      reason = "revoked";
    }
    if (session?.kind === "operator" && (!operatorHash || !equalHex(session.tokenHash, operatorHash))) reason = "expired";
    if (!session || reason) {
      deleteCookie(c, SESSION_COOKIE, { path: "/dashboard" });
      if (c.req.method !== "GET") return signInPage(c, 401, "You are not signed in (or your session ended).");
      return c.redirect(`/dashboard/sign-in?reason=${reason ?? "expired"}`, 303);
    }
    c.set("session", session);
    c.set("viewer", {
      kind: session.kind,
      tenantId: session.kind === "tenant" ? session.tenantId : undefined,
      label: session.kind === "tenant" ? `${session.keyPrefix}…` : "operator (all tenants)",
      csrf: signer.csrfToken(session.sid),
    });
    if (c.req.method === "POST") {
      const form = await c.req.parseBody();
      if (!signer.csrfValid(session.sid, form.csrf)) {
        return errorPage(c, 403, "Refused", "This form was not sent from this dashboard (CSRF check failed).");
      }
    }
    await next();
  };
  for (const path of ["/", "/deliveries", "/deliveries/*", "/destinations", "/destinations/*", "/sign-out"]) {
    app.use(path, requireSession);
  }

  app.post("/sign-out", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: "/dashboard" });
    return c.redirect("/dashboard/sign-in?reason=signed-out", 303);
  });

  app.onError((error, c) => {
    if (error instanceof AppError && error.status === 400) return errorPage(c, 400, "Bad request", error.message);
    throw error;
  });

  // Overview
  app.get("/", async (c) => {
    const viewer = c.get("viewer");
    const at = new Date(now());
    const data = await overview(database, viewer.tenantId, at);
    return c.html(
      <Layout title="Overview" viewer={viewer} section="overview">
        <h1>Overview</h1>
        <div class="cards">
          <div class="card">
            Pending <span class="value">{data.queue.pending}</span>
          </div>
          <div class="card">
            Delivering <span class="value">{data.queue.delivering}</span>
          </div>
          <div class="card">
            Oldest due age <span class="value">{data.oldestDueAgeMs === null ? "none due" : durationText(data.oldestDueAgeMs)}</span>
          </div>
        </div>
        <h2>Deliveries finished per minute, last hour</h2>
        <OutcomeChart buckets={data.perMinute} label="Deliveries finished per minute by outcome" outcomes={["succeeded", "failed"]} />
        <h2>Failures by destination, last day</h2>
        {data.failuresByDestination.length === 0 ? (
          <p>No delivery failed in the last day.</p>
        ) : (
          <table>
            <caption class="muted">Deliveries failed for good in the last 24 hours, top 10</caption>
            <thead>
              <tr>
                <th scope="col">Destination</th>
                {viewer.kind === "operator" ? <th scope="col">Tenant</th> : null}
                <th scope="col" class="num">
                  Failed
                </th>
              </tr>
            </thead>
            <tbody>
              {data.failuresByDestination.map((f) => (
                <tr>
                  <td>
                    <a href={`/dashboard/deliveries?${new URLSearchParams({ destination: f.destination_id, status: "failed" })}`}>{f.url}</a>
                  </td>
                  {viewer.kind === "operator" ? <td class="mono">{f.tenant_id}</td> : null}
                  <td class="num">{f.failed}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Layout>,
    );
  });

  // Deliveries
  app.get("/deliveries", async (c) => {
    const viewer = c.get("viewer");
    const q = (name: string) => {
      const value = c.req.query(name)?.trim();
      return value ? value : undefined;
    };
    const status = q("status");
    if (status && !(DELIVERY_STATUSES as readonly string[]).includes(status)) throw new AppError(400, "INVALID_FILTER", "unknown status");
    const uuidFilter = (name: string) => {
      const value = q(name);
      if (value && !isUuid(value)) throw new AppError(400, "INVALID_FILTER", `${name} must be a UUID`);
      return value;
    };
    const jobId = uuidFilter("job");
    const destinationId = uuidFilter("destination");
    const tenantFilter = viewer.kind === "operator" ? uuidFilter("tenant") : undefined;
    const since = instantFilter(q("since"), "since");
    const until = instantFilter(q("until"), "until");
    const eventType = q("event");
    const cursor = q("cursor");
    const after: Cursor | undefined = cursor ? decodeCursor(cursor) : undefined;
    const page = await findDeliveries(database, {
      tenantId: viewer.tenantId ?? tenantFilter,
      status: status as DeliveryStatus | undefined,
      eventType,
      destinationId,
      jobId,
      since,
      until,
      limit: PAGE_SIZE,
      after,
    });
    const at = new Date(now());
    const last = page.deliveries[page.deliveries.length - 1];
    const nextQuery = new URLSearchParams();
    for (const [name, value] of Object.entries({ status, event: eventType, destination: destinationId, job: jobId, tenant: tenantFilter, since: q("since"), until: q("until") })) {
      if (value) nextQuery.set(name, value);
    }
    if (page.hasMore && last) nextQuery.set("cursor", encodeCursor({ createdAt: last.created_at, id: last.id }));
    return c.html(
      <Layout title="Deliveries" viewer={viewer} section="deliveries">
        <h1>Deliveries</h1>
        <form method="get" action="/dashboard/deliveries" class="filters" role="search" aria-label="Filter deliveries">
          <label for="f-status">
            Status
            <select id="f-status" name="status">
              <option value="">any</option>
              {DELIVERY_STATUSES.map((s) => (
                <option value={s} selected={s === status}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label for="f-event">
            Event type
            <input id="f-event" name="event" value={eventType ?? ""} placeholder="job.completed" />
          </label>
          <label for="f-destination">
            Destination id
            <input id="f-destination" name="destination" value={destinationId ?? ""} size={36} />
          </label>
          <label for="f-job">
            Job id
            <input id="f-job" name="job" value={jobId ?? ""} size={36} />
          </label>
          {viewer.kind === "operator" ? (
            <label for="f-tenant">
              Tenant id
              <input id="f-tenant" name="tenant" value={tenantFilter ?? ""} size={36} />
            </label>
          ) : null}
          <label for="f-since">
            Created from (UTC)
            <input id="f-since" name="since" type="datetime-local" step="1" value={q("since") ?? ""} />
          </label>
          <label for="f-until">
            Created before (UTC)
            <input id="f-until" name="until" type="datetime-local" step="1" value={q("until") ?? ""} />
          </label>
          <button type="submit">Filter</button>
          <a href="/dashboard/deliveries">Clear</a>
        </form>
        {page.deliveries.length === 0 ? (
          <p>No delivery matches.</p>
        ) : (
          <table>
            <caption class="muted">Newest first</caption>
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Event</th>
                {viewer.kind === "operator" ? <th scope="col">Tenant</th> : null}
                <th scope="col">Job</th>
                <th scope="col">URL</th>
                <th scope="col" class="num">
                  Attempts
                </th>
                <th scope="col">Last response</th>
                <th scope="col" class="num">
                  Age
                </th>
              </tr>
            </thead>
            <tbody>
              {page.deliveries.map((d) => (
                <tr>
                  <td>
                    <StatusBadge status={d.status} />
                  </td>
                  <td>
                    <a href={`/dashboard/deliveries/${d.id}`} aria-label={`Delivery ${d.id}: ${d.event_type}, ${d.status}`}>
                      {d.event_type}
                    </a>
                  </td>
                  {viewer.kind === "operator" ? <td class="mono">{d.tenant_id.slice(0, 8)}</td> : null}
                  <td class="mono">{d.job_id ?? "–"}</td>
                  <td class="mono">{truncate(d.url, 60)}</td>
                  <td class="num">
                    {d.attempt_count}/{d.max_attempts}
                  </td>
                  <td>{lastResponse(d.last_response_status, d.last_error)}</td>
                  <td class="num">
                    <time datetime={d.created_at.toISOString()}>{ageText(d.created_at, at)}</time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <nav class="pager" aria-label="Pages">
          {after ? <a href="/dashboard/deliveries">Newest</a> : null}{" "}
          {page.hasMore ? <a href={`/dashboard/deliveries?${nextQuery}`}>Older deliveries →</a> : <span class="muted">End of the list</span>}
        </nav>
      </Layout>,
    );
  });

  app.get("/deliveries/:id", async (c) => {
    const viewer = c.get("viewer");
    const id = c.req.param("id");
    const found = isUuid(id) ? await deliveryDetail(database, id, viewer.tenantId) : undefined;
    if (!found) return errorPage(c, 404, "Delivery not found", "There is no such delivery (or it is not yours).");
    const { delivery, attempts } = found;
    const at = new Date(now());
    const notice = c.req.query("notice");
    const curlId = "curl-command";
    return c.html(
      <Layout title={`Delivery ${delivery.id}`} viewer={viewer} section="deliveries">
        <h1>
          Delivery <span class="mono">{delivery.id}</span>
        </h1>
        {notice === "redelivered" ? <Notice kind="info">Queued again: new attempts will appear below.</Notice> : null}
        {notice === "in-flight" ? <Notice kind="error">It is still pending or delivering: redeliver it once it has finished.</Notice> : null}
        <dl class="facts">
          <dt>Status</dt>
          <dd>
            <StatusBadge status={delivery.status} />
          </dd>
          <dt>Event type</dt>
          <dd>{delivery.event_type}</dd>
          <dt>URL</dt>
          <dd class="mono">{delivery.url}</dd>
          <dt>Destination</dt>
          <dd>
            <a class="mono" href={`/dashboard/deliveries?destination=${delivery.destination_id}`}>
              {delivery.destination_id}
            </a>
          </dd>
          <dt>Job</dt>
          <dd class="mono">{delivery.job_id ?? "– (library or SQL API)"}</dd>
          {viewer.kind === "operator" ? (
            <>
              <dt>Tenant</dt>
              <dd class="mono">{delivery.tenant_id}</dd>
            </>
          ) : null}
          <dt>Attempts</dt>
          <dd>
            {delivery.attempt_count} of {delivery.max_attempts}
          </dd>
          <dt>Created</dt>
          <dd>
            <time datetime={delivery.created_at.toISOString()}>{delivery.created_at.toISOString()}</time> ({ageText(delivery.created_at, at)} ago)
          </dd>
          <dt>Next attempt</dt>
          <dd>{nextAttemptText(delivery)}</dd>
        </dl>
        <div class="actions">
          <form method="post" action={`/dashboard/deliveries/${delivery.id}/redeliver`}>
            <input type="hidden" name="csrf" value={viewer.csrf} />
            <button type="submit" class="primary" disabled={delivery.status === "pending" || delivery.status === "delivering"}>
              Redeliver
            </button>
          </form>
          <button type="button" data-copy={curlId} hidden>
            Copy as curl
          </button>
          <span id={`${curlId}-status`} role="status" class="muted"></span>
        </div>
        <h2>Payload</h2>
        <pre>{prettyJson(delivery.body)}</pre>
        <h2>Attempts</h2>
        {attempts.length === 0 ? (
          <p>No attempt yet.</p>
        ) : (
          <ol class="timeline" aria-label="Attempts, oldest first">
            {attempts.map((a) => (
              <li>
                <h3>
                  Attempt {a.attempt_number} <StatusBadge status={a.outcome} />
                </h3>
                <p>
                  <time datetime={a.started_at.toISOString()}>{a.started_at.toISOString()}</time>, {durationText(a.duration_ms)},{" "}
                  {a.response_status === null ? "no response" : `HTTP ${a.response_status}`}
                  {a.error_kind ? `, error kind ${a.error_kind}` : ""}
                  {a.error_message ? `: ${a.error_message}` : ""}
                </p>
                {a.response_body_excerpt ? (
                  <>
                    <h4>Response excerpt</h4>
                    <pre>{a.response_body_excerpt}</pre>
                  </>
                ) : null}
                <details>
                  <summary>Headers sent (signatures masked)</summary>
                  <pre>{sentHeaders(delivery, a, options.webhookHeaderPrefix)}</pre>
                </details>
              </li>
            ))}
          </ol>
        )}
        <h2>Replay with curl</h2>
        <p class="muted">The exact body sent; sign it with your secret to replace the placeholder signatures.</p>
        <pre id={curlId}>{curlCommand(delivery, options.webhookHeaderPrefix)}</pre>
      </Layout>,
    );
  });

  app.post("/deliveries/:id/redeliver", async (c) => {
    const viewer = c.get("viewer");
    const id = c.req.param("id");
    if (!isUuid(id)) return errorPage(c, 404, "Delivery not found", "There is no such delivery (or it is not yours).");
    try {
      await redeliver(database, id, viewer.tenantId);
      return c.redirect(`/dashboard/deliveries/${id}?notice=redelivered`, 303);
    } catch (error) {
      if (error instanceof DeliveryNotFoundError) {
        return errorPage(c, 404, "Delivery not found", "There is no such delivery (or it is not yours).");
      }
      if (error instanceof DeliveryInFlightError) return c.redirect(`/dashboard/deliveries/${id}?notice=in-flight`, 303);
      throw error;
    }
  });

  // Destinations
  app.get("/destinations", async (c) => {
    const viewer = c.get("viewer");
    const state = c.req.query("state") || undefined;
    if (state && !(DESTINATION_STATES as readonly string[]).includes(state)) throw new AppError(400, "INVALID_FILTER", "unknown state");
    const cursor = c.req.query("cursor");
    const page = await findDestinations(database, {
      tenantId: viewer.tenantId,
      state: state as DestinationState | undefined,
      limit: 10,
      after: cursor ? decodeCursor(cursor) : undefined,
    });
    const at = new Date(now());
    const stats = await destinationStats(
      database,
      page.destinations.map((d) => d.id),
      at,
    );
    const last = page.destinations[page.destinations.length - 1];
    const next = new URLSearchParams(state ? { state } : {});
    if (page.hasMore && last) next.set("cursor", encodeCursor({ createdAt: last.created_at, id: last.id }));
    const notice = c.req.query("notice");
    return c.html(
      <Layout title="Destinations" viewer={viewer} section="destinations">
        <h1>Destinations</h1>
        {notice === "enabled" ? <Notice kind="info">Enabled: its waiting deliveries go now.</Notice> : null}
        <form method="get" action="/dashboard/destinations" class="filters" aria-label="Filter destinations">
          <label for="f-state">
            State
            <select id="f-state" name="state">
              <option value="">any</option>
              {DESTINATION_STATES.map((s) => (
                <option value={s} selected={s === state}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        {page.destinations.length === 0 ? <p>No destination yet.</p> : null}
        {page.destinations.map((d) => {
          const s = stats.get(d.id);
          return (
            <section aria-labelledby={`dest-${d.id}`}>
              <h2 id={`dest-${d.id}`}>
                <span class="mono">{d.url}</span> <StatusBadge status={d.state} />
              </h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Window</th>
                    <th scope="col" class="num">
                      Attempts
                    </th>
                    <th scope="col" class="num">
                      Success rate
                    </th>
                    <th scope="col" class="num">
                      p95 latency
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {(["hour", "day"] as const).map((w) => (
                    <tr>
                      <th scope="row">Last {w}</th>
                      <td class="num">{s?.[w].attempts ?? 0}</td>
                      <td class="num">{rateText(s?.[w].succeeded ?? 0, s?.[w].attempts ?? 0)}</td>
                      <td class="num">{durationText(s?.[w].p95Ms ?? null)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <p class="muted">
                {d.consecutive_failures} consecutive failures · last success{" "}
                {d.last_success_at ? `${ageText(d.last_success_at, at)} ago` : "never"}
                {d.disabled_reason ? ` · disabled: ${d.disabled_reason}` : ""}
                {viewer.kind === "operator" ? ` · tenant ${d.tenant_id}` : ""}
              </p>
              {s ? <OutcomeChart buckets={s.perMinute} label={`Attempts per minute to ${d.url}`} outcomes={["succeeded", "retry", "failed"]} /> : null}
              <div class="actions">
                <a href={`/dashboard/deliveries?destination=${d.id}`}>Its deliveries</a>
                {d.state !== "healthy" ? (
                  <form method="post" action={`/dashboard/destinations/${d.id}/enable`}>
                    <input type="hidden" name="csrf" value={viewer.csrf} />
                    <button type="submit" class="primary" aria-label={`Enable ${d.url}`}>
                      Enable
                    </button>
                  </form>
                ) : null}
              </div>
            </section>
          );
        })}
        <nav class="pager" aria-label="Pages">
          {page.hasMore ? <a href={`/dashboard/destinations?${next}`}>More destinations →</a> : null}
        </nav>
      </Layout>,
    );
  });

  app.post("/destinations/:id/enable", async (c) => {
    const viewer = c.get("viewer");
    const id = c.req.param("id");
    try {
      if (!isUuid(id)) throw new DestinationNotFoundError(id);
      await enableDestination(database, id, viewer.tenantId);
      return c.redirect("/dashboard/destinations?notice=enabled", 303);
    } catch (error) {
      if (error instanceof DestinationNotFoundError) {
        return errorPage(c, 404, "Destination not found", "There is no such destination (or it is not yours).");
      }
      throw error;
    }
  });

  return app;
}

function equalHex(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** A datetime-local value (read as UTC) or an ISO instant; anything else is a 400. */
function instantFilter(value: string | undefined, name: string): Date | undefined {
  if (!value) return undefined;
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/.test(value) ? `${value}Z` : value;
  const date = new Date(iso);
  if (!isStorableInstant(date)) throw new AppError(400, "INVALID_FILTER", `${name} must be a date and time`);
  return date;
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function lastResponse(status: number | null, error: string | null): Child {
  if (status !== null) return `HTTP ${status}`;
  if (error) return truncate(error, 60);
  return <span class="muted">–</span>;
}

function nextAttemptText(delivery: DeliveryDetail): string {
  const next = delivery.next_attempt_at;
  if (!next) return "– (finished)";
  if (!Number.isFinite(next.getTime())) return "waiting for its destination's circuit to close";
  return next.toISOString();
}

function prettyJson(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

const MASK = "••••••••";

/** The headers an attempt carried, as the sender builds them (src/delivery/signing.ts), signatures masked. */
function sentHeaders(delivery: DeliveryDetail, attempt: AttemptDetail, prefix: string): string {
  return [
    "content-type: application/json",
    `user-agent: ${USER_AGENT}`,
    `${prefix}Signature: sha256=${MASK}`,
    `${prefix}Attempt: ${attempt.attempt_number}`,
    `webhook-id: ${delivery.id}`,
    `webhook-timestamp: ${Math.floor(attempt.started_at.getTime() / 1000)}`,
    `webhook-signature: v1,${MASK}`,
  ].join("\n");
}

const shellQuote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

/** A curl command that sends the exact body again, with placeholders where the signatures go. */
function curlCommand(delivery: DeliveryDetail, prefix: string): string {
  return [
    `curl -X POST ${shellQuote(delivery.url)}`,
    `  -H 'content-type: application/json'`,
    `  -H ${shellQuote(`webhook-id: ${delivery.id}`)}`,
    `  -H 'webhook-timestamp: <UNIX_SECONDS>'`,
    `  -H 'webhook-signature: v1,<BASE64_HMAC_OF_ID.TIMESTAMP.BODY>'`,
    `  -H ${shellQuote(`${prefix}Signature: sha256=<HEX_HMAC_OF_BODY>`)}`,
    `  --data-binary ${shellQuote(delivery.body)}`,
  ].join(" \\\n");
}

/** A per-process secret when DASHBOARD_SESSION_SECRET is unset. */
export function processSessionSecret(): string {
  return randomBytes(32).toString("base64url");
}
