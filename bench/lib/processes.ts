import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ReceiverCommand, ReceiverMessage } from "../children/receiver.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns a value; throws after `timeoutMs`. */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Every child process this run started, so a failure or a signal can end them all. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export function killAllChildren(): void {
  for (const child of children) child.kill("SIGKILL");
}

/**
 * A TypeScript file of this repository in its own Node process (with an IPC channel); `stdout`
 * "ignore" drops what it prints (a service's log lines), as for the real API and worker processes.
 */
export function forkTs(relativePath: string, env: Record<string, string>, stdout: "inherit" | "ignore" = "inherit"): ChildProcess {
  return track(
    fork(relativePath, [], {
      cwd: ROOT,
      execArgv: ["--import", "tsx"],
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", stdout, "inherit", "ipc"],
    }),
  );
}

export type WorkerRuntime = "tsx" | "dist";

/**
 * The real worker, configured through its environment: `node --import tsx src/cli.ts worker`, or
 * `node dist/cli.js worker` (the published form; tsx's loader adds about 80 MiB of RSS).
 */
export function spawnWorker(env: Record<string, string>, runtime: WorkerRuntime = "tsx"): ChildProcess {
  const args = runtime === "dist" ? ["dist/cli.js", "worker"] : ["--import", "tsx", "src/cli.ts", "worker"];
  return track(
    spawn(process.execPath, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
}

/** Compiles src/ to dist/ (tsconfig.build.json) so the worker can run without tsx. */
export function buildDist(): void {
  const result = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], {
    cwd: ROOT,
    stdio: "inherit",
    timeout: 300_000,
  });
  if (result.status !== 0) throw new Error("npm run build failed; cannot run the worker from dist/");
}

/** SIGTERM, then SIGKILL if the process has not gone within `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** The kernel's peak resident set (VmHWM) of a live process, in MiB; undefined when unreadable. */
export function peakRssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The receiver child process and its IPC. */
export class ReceiverProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** `hosts`: more loopback addresses to answer on (same port); requests to `hang` are never answered. */
  static async start(options: { hosts?: string[]; hang?: string[] } = {}): Promise<ReceiverProcess> {
    const child = forkTs("bench/children/receiver.ts", {
      RECEIVER_HOSTS: (options.hosts ?? []).join(","),
      RECEIVER_HANG: (options.hang ?? []).join(","),
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("receiver did not start within 30 s")), 30_000);
      child.once("exit", (code) => reject(new Error(`receiver exited early (${code})`)));
      child.on("message", (message: ReceiverMessage) => {
        if (message.type === "ready") {
          clearTimeout(timer);
          resolve(message.port);
        }
      });
    });
    return new ReceiverProcess(child, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/webhook`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  track(on: boolean): void {
    this.send({ type: "track", on });
  }

  /** The requests answered since the last report, and the arrivals noted while tracking. */
  report(): Promise<{ count: number; arrivals: Array<[string, number]>; maxOpen: Record<string, number> }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("receiver did not report within 30 s")), 30_000);
      const onMessage = (message: ReceiverMessage) => {
        if (message.type !== "report") return;
        clearTimeout(timer);
        this.child.off("message", onMessage);
        resolve({ count: message.count, arrivals: message.arrivals, maxOpen: message.maxOpen });
      };
      this.child.on("message", onMessage);
      this.send({ type: "report" });
    });
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.send({ type: "stop" });
    await stopProcess(this.child, 3_000);
  }

  private send(command: ReceiverCommand): void {
    this.child.send(command);
  }
}
