import { ratio } from "./stats.js";

export interface Row {
  scenario: string;
  figure: number | undefined;
  unit: string;
  /** Our drain ÷ this figure; only for throughput rows. */
  ours?: number | undefined;
  notes?: string;
}

function formatNumber(value: number | undefined, unit: string): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  if (unit === "ms") return value < 10 ? value.toFixed(2) : value.toFixed(1);
  if (unit === "MiB") return value.toFixed(0);
  if (unit === "×") return value.toFixed(2);
  return Math.round(value).toLocaleString("en-US");
}

/** One plain-text table: scenario, figure, unit, ours ÷ it, notes. */
export function renderTable(rows: Row[]): string {
  const cells = rows.map((row) => [
    row.scenario,
    formatNumber(row.figure, row.unit),
    row.unit,
    row.ours === undefined ? "" : Number.isFinite(row.ours) ? `${row.ours.toFixed(2)}×` : "—",
    row.notes ?? "",
  ]);
  const header = ["scenario", "figure", "unit", "ours ÷ it", "notes"];
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => (line[column] ?? "").length)));
  const line = (parts: string[]) =>
    parts.map((part, column) => (column === 1 || column === 3 ? part.padStart(widths[column] ?? 0) : part.padEnd(widths[column] ?? 0))).join("  ").trimEnd();
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...cells.map(line)].join("\n");
}

export const throughputRow = (scenario: string, perSecond: number | undefined, ours: number | undefined, notes?: string): Row => ({
  scenario,
  figure: perSecond,
  unit: "deliveries/s",
  ours: ratio(ours, perSecond),
  ...(notes === undefined ? {} : { notes }),
});
