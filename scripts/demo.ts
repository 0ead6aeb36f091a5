/**
 * `npm run demo`: the whole product in one minute, with no database and no setup.
 * Starts the service on the embedded PostgreSQL server in a temporary directory (its own, on a free
 * port, stopped and removed at the end), two local receivers
 * that verify every signature with the `standardwebhooks` package (one of them fails at first),
 * creates a tenant and four jobs, drives them to completed, partial, failed and (leaving one
 * unfinished past its JOB_TIMEOUT, for the deadline sweeper) TIMEOUT, and prints
 * the delivery audit from SQL. Exits 0 when every webhook arrived signed and recorded, 1 otherwise.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { configWith } from "../src/config.js";
import { stopEmbeddedPostgres } from "../src/db/embedded.js";
import { createLogger } from "../src/logger.js";
import { startService, type RunningService } from "../src/service.js";
import { createTenant } from "../src/tenants/tenant-service.js";

const JOB_TIMEOUT_MS = 2_000;
const GIVE_UP_MS = 60_000;

interface DemoReceiver {
  name: string;
  url: string;
  received: number;
  verified: number;
  close(): Promise<void>;
}

/** A webhook endpoint on 127.0.0.1 that verifies each request and answers `statuses` in turn (the last repeats). */
async function startReceiver(name: string, secret: string, statuses: number[]): Promise<DemoReceiver> {
  const verifier = new Webhook(secret);
  const state = { received: 0, verified: 0 };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const status = statuses[Math.min(state.received, statuses.length - 1)] ?? 200;
      state.received++;
      try {
        verifier.verify(Buffer.concat(chunks).toString("utf8"), {
          "webhook-id": String(request.headers["webhook-id"]),
          "webhook-timestamp": String(request.headers["webhook-timestamp"]),
          "webhook-signature": String(request.headers["webhook-signature"]),
        });
        state.verified++;
        response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ receiver: name, status }));
      } catch {
        response.writeHead(400).end("bad signature");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    name,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/${name}`,
    get received() {
      return state.received;
    },
    get verified() {
      return state.verified;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

class DemoApi {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly internalToken: string,
  ) {}

  async createJob(prompt: string, projectCount: number, webhookUrl: string): Promise<string> {
    const job = await this.call("POST", "/api/v1/generate", this.apiKey, { prompt, projectCount, webhookUrl });
    return String(job.jobId);
  }

  async job(jobId: string): Promise<Record<string, unknown>> {
    return this.call("GET", `/api/v1/jobs/${jobId}`, this.apiKey);
  }

  /** What the generation backend does as each project finishes. */
  async report(jobId: string, index: number, outcome: "completed" | { failed: string }): Promise<void> {
    const body =
      outcome === "completed"
        ? { status: "completed", videoUrl: `https://cdn.example.com/${jobId}/${index}.mp4`, seed: 42 }
        : { status: "failed", error: { code: outcome.failed, message: outcome.failed.toLowerCase().replace(/_/g, " ") } };
    await this.call("PATCH", `/internal/v1/jobs/${jobId}/projects/${index}`, this.internalToken, body);
  }

  private async call(method: string, path: string, token: string, body?: unknown): Promise<Record<string, unknown>> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await response.json()) as Record<string, unknown>;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  }
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = GIVE_UP_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function printTable(rows: Array<Record<string, unknown>>): void {
  const columns = Object.keys(rows[0] ?? {});
  const cell = (value: unknown) => (value === null || value === undefined ? "" : String(value));
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  console.log(line(columns));
  console.log(line(widths.map((width) => "-".repeat(width))));
  for (const row of rows) console.log(line(columns.map((column) => cell(row[column]))));
}

const step = (text: string) => console.log(`\n▸ ${text}`);

/** A port on 127.0.0.1 free a moment ago: the demo's server must not meet the checkout's own (EMBEDDED_PG_PORT). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "webhook-outbox-demo-"));
  // As root the server runs as the postgres OS user, which must reach the directory (mkdtemp makes it 0700).
  chmodSync(dataDir, 0o755);
  const embeddedDir = join(dataDir, "postgres");
  const internalToken = randomBytes(16).toString("hex");
  const config = configWith({
    DATABASE_URL: undefined, // always embedded, whatever the environment says
    EMBEDDED_DATA_DIR: embeddedDir,
    EMBEDDED_PG_PORT: await freePort(),
    PORT: 0,
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    INTERNAL_API_TOKEN: internalToken,
    WEBHOOK_ALLOW_INSECURE_URLS: true, // the receivers are on 127.0.0.1 over http
    WEBHOOK_RETRY_DELAYS: [0, 250, 500],
    WORKER_POLL_INTERVAL_MS: 200,
    JOB_TIMEOUT: JOB_TIMEOUT_MS,
    JOB_SWEEP_INTERVAL_MS: 250,
  });

  step(`starting webhook-outbox on an embedded PostgreSQL in ${embeddedDir} (no DATABASE_URL)`);
  let service: RunningService | undefined;
  const receivers: DemoReceiver[] = [];
  try {
    service = await startService({ config, logger: createLogger(config.LOG_LEVEL), api: true, worker: true, migrate: true });
    console.log(`  API on ${service.url}  (OpenAPI: ${service.url}/openapi.json, docs: ${service.url}/docs)`);

    const tenant = await createTenant(service.database, "demo-tenant");
    console.log(`  tenant ${tenant.tenantId}: API key ${tenant.apiKey.slice(0, 12)}…, signing secret ${tenant.signingSecret.slice(0, 10)}…`);
    const shop = await startReceiver("shop", tenant.signingSecret, [200]);
    const flaky = await startReceiver("flaky", tenant.signingSecret, [503, 503, 200]);
    receivers.push(shop, flaky);
    console.log(`  receivers: ${shop.url} (answers 200), ${flaky.url} (503 twice, then 200)`);
    const api = new DemoApi(String(service.url), tenant.apiKey, internalToken);

    step("creating four jobs and reporting their projects as the generation backend would");
    const completed = await api.createJob("a cat surfing at sunset", 2, shop.url);
    await api.report(completed, 0, "completed");
    await api.report(completed, 1, "completed");
    const partial = await api.createJob("a city in the rain", 2, shop.url);
    await api.report(partial, 0, "completed");
    await api.report(partial, 1, { failed: "UNSAFE_CONTENT" });
    const failed = await api.createJob("something the model refuses", 1, flaky.url);
    await api.report(failed, 0, { failed: "GENERATION_FAILED" });
    const timedOut = await api.createJob("a job nobody finishes", 1, shop.url);
    console.log(`  completed ${completed}\n  partial   ${partial}\n  failed    ${failed}  → the flaky receiver\n  timeout   ${timedOut}  (never reported; JOB_TIMEOUT=${JOB_TIMEOUT_MS}ms)`);

    step(`waiting for the deadline sweeper to fail the unfinished job after its ${JOB_TIMEOUT_MS} ms JOB_TIMEOUT`);
    await until("the deadline sweeper", async () => ((await api.job(timedOut)).status === "failed" ? true : undefined));
    console.log("  failed with TIMEOUT by the sweeper, which enqueued its webhook in the same transaction");

    step("waiting for every webhook to be delivered (the flaky receiver needs three attempts)");
    const jobIds = [completed, partial, failed, timedOut];
    await until("four succeeded deliveries", async () => {
      const [row] = await service!.database.query<{ done: number }>(
        "select count(*)::int as done from webhook_outbox.webhook_deliveries where status = 'succeeded' and job_id = any($1::uuid[])",
        [jobIds],
      );
      return row?.done === 4 ? true : undefined;
    });

    step("the delivery audit, straight from SQL (webhook_delivery_attempts joined to its delivery and job)");
    const audit = await service.database.query<Record<string, unknown>>(
      `select left(j.id::text, 8) as job, j.status as job_status,
              (select string_agg(distinct p.error_code, ',') from webhook_outbox.job_projects p where p.job_id = j.id) as error_codes,
              left(d.id::text, 8) as delivery, d.status as delivery_status, a.attempt_number as attempt,
              a.outcome, a.response_status as http, a.error_kind, a.duration_ms as ms,
              substring(d.url from '/hooks/(.*)$') as receiver
       from webhook_outbox.webhook_delivery_attempts a
       join webhook_outbox.webhook_deliveries d on d.id = a.delivery_id
       join webhook_outbox.jobs j on j.id = d.job_id
       where j.id = any($1::uuid[])
       order by array_position($1::uuid[], j.id), a.attempt_number`,
      [jobIds],
    );
    printTable(audit);

    const jobStatuses = await Promise.all(jobIds.map(async (id) => String((await api.job(id)).status)));
    const timeoutJob = await api.job(timedOut);
    const timeoutCode = (timeoutJob.projects as Array<{ error: { code: string } | null }>)[0]?.error?.code;
    const flakyOutcomes = audit.filter((row) => row.receiver === "flaky").map((row) => row.outcome);
    const problems = [
      JSON.stringify(jobStatuses) === JSON.stringify(["completed", "partial", "failed", "failed"]) ? "" : `job statuses ${jobStatuses}`,
      timeoutCode === "TIMEOUT" ? "" : `the unfinished job's error code is ${timeoutCode}`,
      JSON.stringify(flakyOutcomes) === JSON.stringify(["retry", "retry", "succeeded"]) ? "" : `flaky receiver outcomes ${flakyOutcomes}`,
      ...receivers.map((receiver) =>
        receiver.verified === receiver.received ? "" : `${receiver.name}: ${receiver.received - receiver.verified} requests failed verification`,
      ),
    ].filter(Boolean);

    step("receivers");
    for (const receiver of receivers) {
      console.log(`  ${receiver.name}: ${receiver.received} requests, ${receiver.verified} with a valid Standard Webhooks signature`);
    }
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    step("a few lines of GET /metrics");
    for (const line of metrics.split("\n").filter((candidate) => /^webhook_outbox_(attempts|deliveries)_total/.test(candidate))) {
      console.log(`  ${line}`);
    }

    if (problems.length > 0) throw new Error(`the demo did not go as planned:\n  ${problems.join("\n  ")}`);
    console.log("\n✔ every job's webhook arrived signed, retried where the receiver failed, and is recorded attempt by attempt.");
    console.log("  Next: `npm start` (embedded PostgreSQL, data in ./.data/postgres), or DATABASE_URL=postgres://… npm start for your own server.");
  } finally {
    await service?.stop();
    for (const receiver of receivers) await receiver.close();
    await stopEmbeddedPostgres(embeddedDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`\n✘ ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
