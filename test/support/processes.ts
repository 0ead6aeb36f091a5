import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ServiceProcess {
  child: ChildProcess;
  output: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/** Runs `webhook-outbox <args>` as a real child process with the given environment. */
export function spawnCli(args: string[], env: Record<string, string>): ServiceProcess {
  // node --import tsx, not the tsx binary: one process, so a SIGKILL really kills the worker.
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    output.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    for (const listener of listeners) listener();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output,
    exited,
    waitForLog(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = output.find((candidate) => pattern.test(candidate));
          if (line) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(line);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no log line matching ${pattern} in:\n${output.join("\n")}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}
