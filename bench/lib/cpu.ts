import { readdirSync, readFileSync } from "node:fs";

/*
 * Where the CPU went while a scenario ran, from Linux's /proc: the share of all cores busy, and
 * the cores each named group of processes used. Elsewhere the busy share is undefined and no
 * group has a figure.
 */

/** Linux reports process CPU in USER_HZ ticks, 100 a second on every mainstream build. */
const TICKS_PER_SECOND = 100;

/** A group's processes, listed when the reading is taken (Postgres backends come and go). */
export type ProcessGroups = Record<string, () => Array<number | undefined>>;

export interface CpuReading {
  atMs: number;
  /** /proc/stat's first line: busy and total ticks of all cores. */
  machine: { busy: number; total: number } | undefined;
  /** Ticks each group has used so far (user + system). */
  groups: Record<string, number>;
}

export interface CpuUse {
  /** Share of all cores busy, any process (0–1). */
  machineBusy: number | undefined;
  /** Cores each group used on average (1 = one core busy all the time). */
  cores: Record<string, number>;
}

function machineTicks(): CpuReading["machine"] {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    if (fields.length < 8) return undefined;
    // user nice system idle iowait irq softirq steal: idle and iowait are the cores waiting.
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
    return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
  } catch {
    return undefined;
  }
}

function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: count from the last ")"; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Every process named `postgres`: the server's processes, when it runs on this machine. */
export function postgresPids(): number[] {
  try {
    return readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "postgres";
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

export function readCpu(groups: ProcessGroups): CpuReading {
  const ticks: Record<string, number> = {};
  for (const [name, pids] of Object.entries(groups)) {
    ticks[name] = pids().reduce<number>((sum, pid) => sum + (pid === undefined ? 0 : processTicks(pid)), 0);
  }
  return { atMs: performance.now(), machine: machineTicks(), groups: ticks };
}

/** The CPU used between two readings; a group's figure is missing when /proc gave nothing. */
export function cpuBetween(from: CpuReading, to: CpuReading): CpuUse {
  const seconds = (to.atMs - from.atMs) / 1000;
  const cores: Record<string, number> = {};
  for (const [name, ticks] of Object.entries(to.groups)) {
    const used = ticks - (from.groups[name] ?? 0);
    if (seconds > 0 && used > 0) cores[name] = used / TICKS_PER_SECOND / seconds;
  }
  const machineBusy =
    from.machine && to.machine && to.machine.total > from.machine.total
      ? (to.machine.busy - from.machine.busy) / (to.machine.total - from.machine.total)
      : undefined;
  return { machineBusy, cores };
}
