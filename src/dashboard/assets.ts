/** The dashboard's only assets, served by the service itself (no CDN): a stylesheet and a tiny script. */

export const DASHBOARD_CSS = `
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #fff; --panel: #f6f8fa; --focus: #0550ae;
  --ok: #1a7f37; --fail: #cf222e; --warn: #9a6700; --info: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--info); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -9999px; top: 0; background: var(--fg); color: #fff; padding: 8px 12px; z-index: 10; }
.skip:focus { left: 8px; top: 8px; }
.top { display: flex; gap: 24px; align-items: center; padding: 10px 24px; border-bottom: 1px solid var(--line); background: var(--panel); flex-wrap: wrap; }
.brand { font-weight: 700; }
.top nav { display: flex; gap: 16px; }
.top nav a[aria-current="page"] { font-weight: 700; color: var(--fg); text-decoration-thickness: 2px; }
.sign-out { margin-left: auto; display: flex; gap: 8px; align-items: center; }
main { padding: 16px 24px 48px; max-width: 1240px; }
main:focus { outline: none; }
h1 { font-size: 22px; margin: 8px 0 16px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 10px; overflow: auto; max-height: 420px; white-space: pre-wrap; word-break: break-all; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.badge-succeeded, .badge-healthy { color: var(--ok); }
.badge-failed, .badge-disabled { color: var(--fail); }
.badge-retry, .badge-open, .badge-interrupted { color: var(--warn); }
.badge-pending, .badge-delivering { color: var(--info); }
form.filters { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: flex-end; background: var(--panel); padding: 12px; border: 1px solid var(--line); }
form.filters label, form.stack label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
input, select, button { font: inherit; padding: 5px 8px; border: 1px solid #8c959f; border-radius: 4px; background: #fff; color: var(--fg); }
button { cursor: pointer; background: var(--panel); }
button.primary { background: #1f6feb; border-color: #1f6feb; color: #fff; }
form.stack { display: flex; flex-direction: column; gap: 12px; max-width: 420px; }
.notice { padding: 8px 12px; border-left: 4px solid var(--info); background: var(--panel); }
.notice-error { border-color: var(--fail); }
.cards { display: flex; gap: 16px; flex-wrap: wrap; margin: 8px 0; }
.card { border: 1px solid var(--line); padding: 10px 14px; min-width: 160px; }
.card .value { font-size: 22px; font-weight: 700; display: block; }
.timeline { list-style: none; padding: 0; border-left: 3px solid var(--line); margin-left: 8px; }
.timeline li { margin: 0 0 14px 0; padding-left: 14px; }
.actions { display: flex; gap: 12px; align-items: center; margin: 12px 0; flex-wrap: wrap; }
.pager { margin: 12px 0; }
.chart { margin: 8px 0; max-width: 640px; }
.chart svg { width: 100%; height: auto; display: block; }
.chart .axis { stroke: var(--line); }
.chart .tick { font-size: 10px; fill: var(--muted); }
.chart .tick.end { text-anchor: end; }
.bar-succeeded { fill: var(--ok); }
.bar-retry { fill: var(--warn); }
.bar-failed { fill: var(--fail); }
.legend-succeeded { color: var(--ok); } .legend-retry { color: var(--warn); } .legend-failed { color: var(--fail); }
.muted { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
`;

/** "Copy as curl": buttons stay hidden without script; the command is in a <pre> either way. */
export const DASHBOARD_JS = `
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent || "").then(function () {
        var status = document.getElementById(button.getAttribute("data-copy") + "-status");
        if (status) status.textContent = "Copied to the clipboard";
      });
    });
  });
});
`;
