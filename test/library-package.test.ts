import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

/*
 * The package as another project gets it: built (declarations included), installed by path into
 * a project of its own, imported by its name from JavaScript and from type-checked TypeScript.
 * The build goes to a copy of the checkout (package.json, sources, migrations) whose node_modules is
 * this checkout's, so the checkout's own dist is left alone and no registry is needed.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const APP_SCRIPT = `
import pg from "pg";
import { createOutbox, UnknownTenantError } from "webhook-outbox";

const connectionString = process.env.DATABASE_URL;
const outbox = createOutbox({ connectionString, allowInsecureUrls: true });
await outbox.migrate();
const { tenantId, signingSecret } = await outbox.createTenant("packaged");
const pool = new pg.Pool({ connectionString });
const count = async () => Number((await pool.query("select count(*) from webhook_outbox.webhook_deliveries")).rows[0].count);
const input = { tenantId, url: "http://127.0.0.1:9/hook", eventType: "order.paid", payload: { orderId: 1 } };

const client = await pool.connect();
await client.query("begin");
const rolledBack = await outbox.enqueue(client, input);
await client.query("rollback");
const afterRollback = await count();

await client.query("begin");
const committed = await outbox.enqueue(client, { ...input, idempotencyKey: "order-1-paid" });
await client.query("commit");
const again = await outbox.enqueue(pool, { ...input, idempotencyKey: "order-1-paid" });
const afterCommit = await count();
const unknown = await outbox.enqueue(pool, { ...input, tenantId: "00000000-0000-4000-8000-000000000000" }).catch((error) => error instanceof UnknownTenantError);
client.release();
await pool.end();
await outbox.close();
console.log(JSON.stringify({ secret: signingSecret.startsWith("whsec_"), rolledBack: typeof rolledBack.deliveryId, afterRollback, committed, again, afterCommit, unknown }));
`;

const APP_TYPES = `
import pg from "pg";
import { createOutbox, type EnqueueInput, type Enqueued, type Outbox } from "webhook-outbox";

const outbox: Outbox = createOutbox({ pool: new pg.Pool(), policy: { retryDelaysMs: [0, 1000] } });
const input: EnqueueInput = { tenantId: "t", url: "https://example.com", eventType: "e", payload: {} };
export const enqueued: Promise<Enqueued> = outbox.enqueue(new pg.Pool(), input);
export const id: Promise<string> = enqueued.then((result) => result.deliveryId);
// @ts-expect-error eventType is required: the declarations are real types, not any
export const missing: EnqueueInput = { tenantId: "t", url: "https://example.com", payload: {} };
`;

let workDir: string;
let testDb: TestDatabase;

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), "wo-package-"));
  testDb = await createTestDatabase();
}, 120_000);

afterAll(async () => {
  await testDb?.drop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("the package installed by path into another project", () => {
  it("gives working JavaScript and declarations under the name webhook-outbox", async () => {
    const pkg = join(workDir, "webhook-outbox");
    mkdirSync(pkg);
    for (const file of ["package.json", "migrations", "src", "tsconfig.json", "tsconfig.build.json"]) {
      cpSync(join(ROOT, file), join(pkg, file), { recursive: true });
    }
    symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
    // What the prepare script does; the install below skips scripts, so it is this build that is tested.
    await run(join(ROOT, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], pkg);

    // What a packed tarball holds covers what `exports` and `types` point at.
    const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")) as {
      exports: Record<string, { types: string; default: string } | string>;
      types: string;
    };
    const [packed] = JSON.parse(await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], pkg)) as Array<{ files: Array<{ path: string }> }>;
    const files = new Set(packed?.files.map((file) => file.path));
    const main = manifest.exports["."] as { types: string; default: string };
    for (const target of [main.types, main.default, manifest.types]) expect(files.has(target.replace(/^\.\//, "")), target).toBe(true);
    expect(files.has("migrations/0007_enqueue_function.sql")).toBe(true);

    const app = join(workDir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "shop", version: "1.0.0", private: true, type: "module" }));
    await run(
      "npm",
      ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline", pkg, join(ROOT, "node_modules/pg"), join(ROOT, "node_modules/@types/pg")],
      app,
    );
    writeFileSync(join(app, "enqueue.mjs"), APP_SCRIPT);
    const result = JSON.parse((await run(process.execPath, ["enqueue.mjs"], app, { DATABASE_URL: testDb.url })).trim()) as Record<string, unknown>;
    expect(result).toMatchObject({ secret: true, rolledBack: "string", afterRollback: 0, afterCommit: 1, unknown: true });
    expect(result.again).toEqual({ deliveryId: (result.committed as { deliveryId: string }).deliveryId, created: false });

    writeFileSync(join(app, "types.ts"), APP_TYPES);
    writeFileSync(
      join(app, "tsconfig.json"),
      // skipLibCheck, as drizzle-orm's declarations need (they name optional drivers such as gel and mysql2).
      JSON.stringify({
        compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, types: [] },
        files: ["types.ts"],
      }),
    );
    await run(join(ROOT, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], app);
  }, 120_000);
});
