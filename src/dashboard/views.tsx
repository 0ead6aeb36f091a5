import type { Child, FC, PropsWithChildren } from "hono/jsx";
import type { OutcomeBuckets } from "./queries.js";

export interface Viewer {
  kind: "tenant" | "operator";
  /** The tenant's id, or undefined for the operator. */
  tenantId?: string | undefined;
  /** What the header shows: the key's prefix, or "operator". */
  label: string;
  csrf: string;
}

export type Section = "overview" | "deliveries" | "destinations" | "none";

export const Layout: FC<PropsWithChildren<{ title: string; viewer?: Viewer | undefined; section: Section }>> = (props) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${props.title} · webhook-outbox`}</title>
      <link rel="stylesheet" href="/dashboard/assets/dashboard.css" />
      <script src="/dashboard/assets/dashboard.js" defer></script>
    </head>
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">webhook-outbox</span>
        {props.viewer ? (
          <>
            <nav aria-label="Dashboard">
              <a href="/dashboard" aria-current={props.section === "overview" ? "page" : undefined}>
                Overview
              </a>
              <a href="/dashboard/deliveries" aria-current={props.section === "deliveries" ? "page" : undefined}>
                Deliveries
              </a>
              <a href="/dashboard/destinations" aria-current={props.section === "destinations" ? "page" : undefined}>
                Destinations
              </a>
            </nav>
            <form method="post" action="/dashboard/sign-out" class="sign-out">
              <input type="hidden" name="csrf" value={props.viewer.csrf} />
              <span class="who">
                Signed in as <strong>{props.viewer.label}</strong>
              </span>
              <button type="submit">Sign out</button>
            </form>
          </>
        ) : null}
      </header>
      <main id="main" tabindex={-1}>
        {props.children}
      </main>
    </body>
  </html>
);

/** Status as text and colour: the class picks the colour, the word is always there. */
export const StatusBadge: FC<{ status: string }> = ({ status }) => <span class={`badge badge-${status}`}>{status}</span>;

export const Notice: FC<{ kind: "info" | "error"; children: Child }> = ({ kind, children }) => (
  <p class={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
    {children}
  </p>
);

export function ageText(from: Date, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - from.getTime()) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d`;
}

export function durationText(ms: number | null): string {
  if (ms === null) return "–";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function rateText(succeeded: number, attempts: number): string {
  return attempts === 0 ? "–" : `${((100 * succeeded) / attempts).toFixed(1)}%`;
}

/**
 * A stacked bar per minute (oldest on the left), drawn on the server; colours come from the
 * stylesheet's classes (no inline styles under the CSP). The table beside it is the accessible form.
 */
export const OutcomeChart: FC<{ buckets: OutcomeBuckets; label: string; outcomes: Array<"succeeded" | "retry" | "failed"> }> = ({
  buckets,
  label,
  outcomes,
}) => {
  const width = 600;
  const height = 120;
  const bar = width / buckets.length;
  const max = Math.max(1, ...buckets.map((b) => outcomes.reduce((sum, o) => sum + b[o], 0)));
  const total = (o: "succeeded" | "retry" | "failed") => buckets.reduce((sum, b) => sum + b[o], 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height + 16}`} role="img" aria-label={label} xmlns="http://www.w3.org/2000/svg">
        <line x1="0" y1={height} x2={width} y2={height} class="axis" />
        {buckets.map((b, i) => {
          let y = height;
          return outcomes.map((o) => {
            const h = (b[o] / max) * height;
            y -= h;
            return h > 0 ? (
              <rect x={(i * bar + 0.5).toFixed(1)} y={y.toFixed(1)} width={(bar - 1).toFixed(1)} height={h.toFixed(1)} class={`bar-${o}`}>
                <title>{`${b.minute.toISOString().slice(11, 16)} UTC: ${b[o]} ${o}`}</title>
              </rect>
            ) : null;
          });
        })}
        <text x="0" y={height + 13} class="tick">
          −60 min
        </text>
        <text x={width} y={height + 13} class="tick end">
          now
        </text>
      </svg>
      <figcaption>
        {label}:{" "}
        {outcomes.map((o) => (
          <span class={`legend legend-${o}`}>
            {o} {total(o)}{" "}
          </span>
        ))}
        (peak {max} per minute)
      </figcaption>
    </figure>
  );
};
