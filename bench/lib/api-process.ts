import { spawn, type ChildProcess } from "node:child_process";
import { Pool } from "undici";
import { freePort } from "../../test/support/ports.js";
import { pollUntil, ROOT, stopProcess, type WorkerRuntime } from "./processes.js";

export const BENCH_INTERNAL_TOKEN = "bench-internal-token-0123456789abcdef";

/**
 * The URL of the API's "API listening" line (the service logs it once it listens, with the port
 * the kernel gave PORT=0); undefined for any other line, request lines included.
 */
export function listeningUrl(line: string): string | undefined {
  if (!line.includes("API listening")) return undefined;
  try {
    const { url } = JSON.parse(line) as { url?: unknown };
    return typeof url === "string" ? url : undefined;
  } catch {
    return undefined; // not a JSON line
  }
}

/**
 * The real `api` command (tsx or dist) at the product's defaults but for `env`, on a free port;
 * resolves once its /healthz answers, whatever its LOG_LEVEL. Its output is read and dropped.
 */
export async function startApiProcess(
  env: Record<string, string>,
  runtime: WorkerRuntime,
): Promise<{ child: ChildProcess; url: string; stop: () => Promise<void> }> {
  const args = runtime === "dist" ? ["dist/cli.js", "api"] : ["--import", "tsx", "src/cli.ts", "api"];
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOST: "127.0.0.1",
      INTERNAL_API_TOKEN: BENCH_INTERNAL_TOKEN,
      ...env,
      PORT: String(port),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  child.stdout?.resume();
  let exited: number | null | undefined;
  child.once("exit", (code) => (exited = code));
  try {
    await pollUntil(
      "the api process to answer /healthz",
      async () => {
        if (exited !== undefined) throw new Error(`the api process exited early (${exited})`);
        const response = await fetch(`${url}/healthz`).catch(() => undefined);
        await response?.body?.cancel();
        return response?.ok ? true : undefined;
      },
      60_000,
      50,
    );
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { child, url, stop: () => stopProcess(child) };
}

/**
 * `count` jobs created through POST /api/v1/generate and completed through the internal PATCH,
 * `parallel` at a time over keep-alive connections: each job's webhook is enqueued by the API.
 */
export async function createCompletedJobs(
  apiUrl: string,
  apiKey: string,
  webhookUrl: (index: number) => string,
  count: number,
  parallel = 64,
): Promise<void> {
  const pool = new Pool(apiUrl, { connections: parallel });
  let next = 0;
  const call = async (method: "POST" | "PATCH", path: string, token: string, body: unknown): Promise<Record<string, unknown>> => {
    const response = await pool.request({
      method,
      path,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.body.text();
    if (response.statusCode >= 300) throw new Error(`${method} ${path}: ${response.statusCode} ${text.slice(0, 200)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const lane = async () => {
    for (let index = next++; index < count; index = next++) {
      const job = await call("POST", "/api/v1/generate", apiKey, { prompt: `bench ${index}`, webhookUrl: webhookUrl(index) });
      const jobId = String(job.jobId);
      await call("PATCH", `/internal/v1/jobs/${jobId}/projects/0`, BENCH_INTERNAL_TOKEN, {
        status: "completed",
        videoUrl: `https://cdn.example.com/${jobId}.mp4`,
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, lane));
  } finally {
    await pool.close();
  }
}
