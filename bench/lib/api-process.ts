import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { Pool } from "undici";
import { ROOT, stopProcess, type WorkerRuntime } from "./processes.js";

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
 * The real `api` command (tsx or dist) at the product's defaults but for `env`, on a port the
 * kernel picks; resolves once it logs "API listening". Its output is read for that line only.
 */
export async function startApiProcess(
  env: Record<string, string>,
  runtime: WorkerRuntime,
): Promise<{ child: ChildProcess; url: string; stop: () => Promise<void> }> {
  const args = runtime === "dist" ? ["dist/cli.js", "api"] : ["--import", "tsx", "src/cli.ts", "api"];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: "0",
      HOST: "127.0.0.1",
      INTERNAL_API_TOKEN: BENCH_INTERNAL_TOKEN,
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the api process did not listen within 60 s")), 60_000);
    child.once("exit", (code) => reject(new Error(`the api process exited early (${code})`)));
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const listening = listeningUrl(line);
      if (listening === undefined) return;
      clearTimeout(timer);
      lines.close();
      resolve(listening);
    });
  });
  child.stdout?.resume();
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
