import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signatureHeaders } from "../src/delivery/signing.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { eventually, startHarness, type Harness } from "./support/harness.js";

/**
 * The receivers in examples/ run as real processes, as a reader would run them, against the real
 * service: each must verify the webhooks the service sends and refuse a tampered one.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface RunningReceiver {
  url: string;
  output: string[];
  child: ChildProcess;
}

async function startReceiver(command: string, args: string[], secret: string): Promise<RunningReceiver> {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", WEBHOOK_SECRET: secret, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const collect = (chunk: Buffer) => output.push(...chunk.toString("utf8").split("\n").filter(Boolean));
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const line = await eventually(async () => output.find((candidate) => candidate.startsWith("listening on ")), 20_000, `${args[0]} to listen`);
  return { url: line.slice("listening on ".length).trim(), output, child };
}

async function stopReceiver(receiver: RunningReceiver | undefined): Promise<void> {
  if (!receiver || receiver.child.exitCode !== null) return;
  const exited = new Promise((resolve) => receiver.child.once("exit", resolve));
  receiver.child.kill("SIGTERM");
  await exited;
}

const flaskProbe = spawnSync("python3", ["-c", "import flask"], { stdio: "ignore" });
const flaskMissing = flaskProbe.status === 0 ? undefined : "python3 cannot import flask (pip install flask)";

const EXAMPLES = [
  { name: "receiver-node.mjs (standardwebhooks)", command: process.execPath, args: ["examples/receiver-node.mjs"] },
  { name: "receiver-express.mjs (X-Webhook-Signature)", command: process.execPath, args: ["examples/receiver-express.mjs"] },
  {
    name: flaskMissing ? `receiver_flask.py (skipped: ${flaskMissing})` : "receiver_flask.py (X-Webhook-Signature)",
    command: "python3",
    args: ["examples/receiver_flask.py"],
    skip: flaskMissing !== undefined,
  },
];

let testDb: TestDatabase;
let harness: Harness;

beforeAll(async () => {
  testDb = await createTestDatabase();
  harness = await startHarness(testDb);
});

afterAll(async () => {
  await harness?.stop();
  await testDb?.drop();
});

/** The delivery of a job once it has finished, with its attempts. */
async function finishedDelivery(jobId: string) {
  return eventually(async () => {
    const response = await harness.api.get(`/api/v1/jobs/${jobId}/deliveries`);
    const delivery = response.body.data?.[0];
    return delivery && delivery.status !== "pending" && delivery.status !== "delivering" ? delivery : undefined;
  }, 20_000, `job ${jobId}'s delivery to finish`);
}

for (const example of EXAMPLES) {
  describe.skipIf(example.skip ?? false)(example.name, () => {
    let receiver: RunningReceiver | undefined;

    beforeAll(async () => {
      receiver = await startReceiver(example.command, example.args, harness.tenant.signingSecret);
    });

    afterAll(async () => {
      await stopReceiver(receiver);
    });

    it("verifies a real job.completed webhook from the service and answers 200", async () => {
      const created = await harness.api.post("/api/v1/generate", { prompt: "a lighthouse at dawn", webhookUrl: receiver?.url });
      expect(created.status).toBe(202);
      const jobId = created.body.jobId as string;
      await harness.api.finishJob(jobId, 1, "completed");
      const delivery = await finishedDelivery(jobId);
      expect(delivery.status).toBe("succeeded");
      expect(delivery.attempts[0].responseStatus).toBe(200);
      const verified = new RegExp(`^verified ${delivery.deliveryId} ${jobId} completed`);
      await eventually(async () => receiver?.output.find((line) => verified.test(line)), 5_000, "the receiver's verified line");
    });

    it("verifies a real Veo3 webhook of a failed generation", async () => {
      const created = await harness.api.post("/v1/veo/generate", { prompt: "a cat and a ball", callback_url: receiver?.url });
      expect(created.status).toBe(202);
      const generationId = created.body.generation_id as string;
      await harness.api.finishJob(generationId, 1, "failed");
      const delivery = await finishedDelivery(generationId);
      expect(delivery.status).toBe("succeeded");
      const verified = new RegExp(`^verified ${delivery.deliveryId} ${generationId} failed`);
      await eventually(async () => receiver?.output.find((line) => verified.test(line)), 5_000, "the receiver's verified line");
    });

    it("refuses a tampered body with 401, and accepts the same request untampered", async () => {
      const body = JSON.stringify({ event: "job.completed", jobId: "3b1f6f0e-4c2d-4e8a-9b7c-5d6e7f8a9b0c", status: "completed", projects: [] });
      const headers = signatureHeaders({
        id: "8c0f1e2d-3b4a-4f6e-9d7c-8b9a0f1e2d3c",
        timestamp: Math.floor(Date.now() / 1000),
        body,
        secrets: [harness.tenant.signingSecret],
        attemptNumber: 1,
        headerPrefix: harness.config.WEBHOOK_HEADER_PREFIX,
      });
      const send = (payload: string) =>
        fetch(receiver?.url ?? "", { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: payload });
      const tampered = await send(body.replace('"completed"', '"failed"'));
      expect(tampered.status).toBe(401);
      await eventually(async () => receiver?.output.find((line) => line.startsWith("rejected")), 5_000, "the receiver's rejected line");
      expect((await send(body)).status).toBe(200);
    });
  });
}
