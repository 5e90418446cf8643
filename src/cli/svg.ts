// Hand-written SVG and HTML for `cellgate simulate`: a timeline of the
// requests the upstream saw per 100 ms bucket, accepted and rejected stacked.
// No charting dependency; every piece of text is escaped.

/** Escapes text for XML content and attribute values. */
export function esc(value: string | number): string {
  return String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A "nice" step (1, 2 or 5 times a power of ten) giving about `count` ticks up to `max`. */
function niceStep(max: number, count: number): number {
  const raw = Math.max(max, 1) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

const fmt = (n: number): string => String(Math.round(n * 1000) / 1000);

/** One request as the upstream saw it: ms since "go", the pod that sent it, whether it was accepted, how long the pod waited for its limiter (ms). */
export interface SeenRequest {
  t: number;
  pod: number;
  ok: boolean;
  wait?: number | undefined;
}

/** What {@link timelineSvg} draws. */
export interface Timeline {
  /** The chart's title (also the SVG `<title>`). */
  title: string;
  /** Bucket width in ms. */
  bucketMs: number;
  /** Per bucket, in order from t = 0. */
  buckets: { accepted: number; rejected: number }[];
  /** The upstream's sustained rate per bucket (drawn as a dashed line). */
  allowedPerBucket: number;
  /** The run's length (marked on the time axis). */
  seconds: number;
  /** Intervals to shade (e.g. an outage, the holds an upstream announced). */
  shaded?: ShadedBand | ShadedBand[];
  /**
   * Every request by pod: drawn below the bars as one row per pod, a tick per
   * request (green accepted, red rejected).
   */
  pods?: { count: number; requests: SeenRequest[] };
  /**
   * The admission waits of the requests in each bucket (same buckets as
   * `buckets`): drawn under everything else as a panel of p99 bars with the
   * p50 marked, up to `scaleMs` (give two timelines one scale to compare them).
   */
  waits?: { scaleMs: number; buckets: { p50: number; p99: number; count: number }[] };
}

/** An interval of a {@link Timeline} shaded under the bars, its label drawn where the band is wide enough. */
export interface ShadedBand {
  fromMs: number;
  toMs: number;
  label: string;
}

const WAIT_PANEL_H = 190;

/** The timeline, as an SVG document. */
export function timelineSvg({ title, bucketMs, buckets, allowedPerBucket, seconds, shaded, pods, waits }: Timeline): string {
  const width = 960;
  const rowH = 14;
  const podRows = pods === undefined ? 0 : pods.count;
  // The per-pod strip sits under the time axis: 40 px for the axis title, then a row per pod.
  const podTop = 400;
  const chartsH = podRows === 0 ? 400 : podTop + 24 + podRows * rowH + 16;
  const height = chartsH + (waits === undefined ? 0 : WAIT_PANEL_H);
  const m = { left: 64, right: 24, top: 48, bottom: 56 };
  const plotW = width - m.left - m.right;
  // The chart keeps its 400 px whatever the pod strip below adds.
  const plotH = podTop - m.top - m.bottom;
  const n = Math.max(buckets.length, 1);
  const spanMs = n * bucketMs;
  const peak = Math.max(allowedPerBucket, ...buckets.map((b) => b.accepted + b.rejected), 1);
  const yStep = niceStep(peak, 5);
  const yMax = Math.ceil(peak / yStep) * yStep;
  const x = (ms: number) => m.left + (ms / spanMs) * plotW;
  const y = (count: number) => m.top + plotH - (count / yMax) * plotH;
  const barW = plotW / n;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<title>${esc(title)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`);

  // Grid and y ticks.
  out.push('<g class="y-axis" stroke="#e5e5e5">');
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(`<line x1="${m.left}" y1="${fmt(y(v))}" x2="${m.left + plotW}" y2="${fmt(y(v))}"/>`);
  }
  out.push('</g>');
  out.push('<g class="y-ticks" text-anchor="end" fill="#333333">');
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(`<text x="${m.left - 6}" y="${fmt(y(v) + 4)}">${esc(fmt(v))}</text>`);
  }
  out.push('</g>');

  // The shaded intervals, under the bars.
  for (const band of shaded === undefined ? [] : Array.isArray(shaded) ? shaded : [shaded]) {
    const x0 = Math.max(m.left, x(band.fromMs));
    const x1 = Math.min(m.left + plotW, x(band.toMs));
    if (x1 > x0) {
      out.push(`<g class="shaded"><rect x="${fmt(x0)}" y="${m.top}" width="${fmt(x1 - x0)}" height="${plotH}" fill="#ffb300" fill-opacity="0.18"><title>${esc(`${band.label}: ${fmt(band.fromMs / 1000)} s to ${fmt(band.toMs / 1000)} s`)}</title></rect>`);
      // A label wider than its band would run into the next one's.
      if (x1 - x0 >= 8 * band.label.length) out.push(`<text x="${fmt((x0 + x1) / 2)}" y="${m.top + 14}" text-anchor="middle" fill="#8d6e00">${esc(band.label)}</text>`);
      out.push('</g>');
    }
  }

  // Bars: accepted at the bottom, rejected stacked on top.
  out.push('<g class="bars">');
  buckets.forEach((b, i) => {
    const x0 = fmt(m.left + i * barW + barW * 0.1);
    const w = fmt(Math.max(barW * 0.8, 0.5));
    if (b.accepted > 0) {
      out.push(`<rect x="${x0}" y="${fmt(y(b.accepted))}" width="${w}" height="${fmt(y(0) - y(b.accepted))}" fill="#2e7d32"><title>${esc(`${fmt((i * bucketMs) / 1000)} s: ${b.accepted} accepted`)}</title></rect>`);
    }
    if (b.rejected > 0) {
      const top = b.accepted + b.rejected;
      out.push(`<rect x="${x0}" y="${fmt(y(top))}" width="${w}" height="${fmt(y(b.accepted) - y(top))}" fill="#c62828"><title>${esc(`${fmt((i * bucketMs) / 1000)} s: ${b.rejected} rejected (429)`)}</title></rect>`);
    }
  });
  out.push('</g>');

  // The upstream's sustained rate.
  out.push(`<line x1="${m.left}" y1="${fmt(y(allowedPerBucket))}" x2="${m.left + plotW}" y2="${fmt(y(allowedPerBucket))}" stroke="#1565c0" stroke-width="1.5" stroke-dasharray="6 4"/>`);

  // Axes.
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + plotH}" stroke="#000000"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top + plotH}" x2="${m.left + plotW}" y2="${m.top + plotH}" stroke="#000000"/>`);
  const xStep = niceStep(spanMs / 1000, 10);
  out.push('<g class="x-ticks" text-anchor="middle" fill="#333333">');
  for (let s = 0; s <= spanMs / 1000 + 1e-9; s += xStep) {
    const px = fmt(x(s * 1000));
    out.push(`<line x1="${px}" y1="${m.top + plotH}" x2="${px}" y2="${m.top + plotH + 5}" stroke="#000000"/>`);
    out.push(`<text x="${px}" y="${m.top + plotH + 18}">${esc(fmt(s))}</text>`);
  }
  out.push('</g>');
  if (seconds * 1000 < spanMs) {
    const px = fmt(x(seconds * 1000));
    out.push(`<line x1="${px}" y1="${m.top}" x2="${px}" y2="${m.top + plotH}" stroke="#777777" stroke-dasharray="2 3"/>`);
  }
  out.push(`<text x="${m.left + plotW / 2}" y="${podTop - 14}" text-anchor="middle">time since go (s)</text>`);
  out.push(`<text x="16" y="${m.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.top + plotH / 2})">requests per ${esc(bucketMs)} ms</text>`);

  // One row per pod: when each of its requests reached the upstream.
  if (pods !== undefined && podRows > 0) {
    const top = podTop + 24;
    out.push(`<text x="${m.left}" y="${podTop + 12}" font-weight="600">requests per pod (a tick per request: green accepted, red 429)</text>`);
    out.push('<g class="pods">');
    for (let p = 0; p < podRows; p++) {
      const ry = top + p * rowH;
      out.push(`<text x="${m.left - 6}" y="${fmt(ry + rowH - 4)}" text-anchor="end" fill="#333333">pod ${p}</text>`);
      out.push(`<line x1="${m.left}" y1="${fmt(ry + rowH - 1)}" x2="${m.left + plotW}" y2="${fmt(ry + rowH - 1)}" stroke="#eeeeee"/>`);
    }
    for (const r of pods.requests) {
      if (r.pod < 0 || r.pod >= podRows) continue;
      const px = fmt(x(Math.min(r.t, spanMs)));
      const ry = top + r.pod * rowH;
      out.push(`<line x1="${px}" y1="${fmt(ry + 2)}" x2="${px}" y2="${fmt(ry + rowH - 3)}" stroke="${r.ok ? '#2e7d32' : '#c62828'}" stroke-opacity="0.6"/>`);
    }
    out.push('</g>');
  }

  if (waits !== undefined) out.push(...waitPanel(waits, { top: chartsH, left: m.left, width: plotW, barW, bucketMs }));

  // Legend.
  const lx = m.left + plotW - 330;
  out.push(`<g class="legend" transform="translate(${lx} 40)">`);
  out.push('<rect x="0" y="-9" width="10" height="10" fill="#2e7d32"/><text x="14" y="0">accepted (2xx)</text>');
  out.push('<rect x="110" y="-9" width="10" height="10" fill="#c62828"/><text x="124" y="0">rejected (429)</text>');
  out.push('<line x1="218" y1="-4" x2="240" y2="-4" stroke="#1565c0" stroke-width="1.5" stroke-dasharray="6 4"/><text x="244" y="0">upstream rate</text>');
  out.push('</g>');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The wait panel of {@link timelineSvg}: per bucket a bar up to its p99 wait and a dark tick at its p50. */
function waitPanel(waits: NonNullable<Timeline['waits']>, at: { top: number; left: number; width: number; barW: number; bucketMs: number }): string[] {
  const h = WAIT_PANEL_H - 70;
  const top = at.top + 30;
  const step = niceStep(waits.scaleMs, 4);
  const max = Math.max(step, Math.ceil(waits.scaleMs / step) * step);
  const y = (ms: number) => top + h - (Math.min(ms, max) / max) * h;
  const out = [`<text x="${at.left}" y="${at.top + 14}" font-weight="600">admission wait of the requests sent in each ${esc(at.bucketMs)} ms (bar: p99, dark tick: p50)</text>`, '<g class="waits">'];
  for (let v = 0; v <= max + 1e-9; v += step) {
    out.push(`<line x1="${at.left}" y1="${fmt(y(v))}" x2="${at.left + at.width}" y2="${fmt(y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${at.left - 6}" y="${fmt(y(v) + 4)}" text-anchor="end" fill="#333333">${esc(`${fmt(v)} ms`)}</text>`);
  }
  waits.buckets.forEach((b, i) => {
    if (b.count === 0) return;
    const x0 = fmt(at.left + i * at.barW + at.barW * 0.1);
    const w = fmt(Math.max(at.barW * 0.8, 0.5));
    const label = esc(`${fmt((i * at.bucketMs) / 1000)} s: ${b.count} requests, wait p50 ${b.p50.toFixed(1)} ms, p99 ${b.p99.toFixed(1)} ms`);
    // At least 1 px, so that a bucket of near-zero waits still shows it was measured.
    out.push(`<rect x="${x0}" y="${fmt(Math.min(y(b.p99), y(0) - 1))}" width="${w}" height="${fmt(Math.max(y(0) - y(b.p99), 1))}" fill="#7e57c2" fill-opacity="0.55"><title>${label}</title></rect>`);
    out.push(`<line x1="${x0}" y1="${fmt(y(b.p50))}" x2="${fmt(at.left + i * at.barW + at.barW * 0.9)}" y2="${fmt(y(b.p50))}" stroke="#311b92" stroke-width="2"/>`);
  });
  out.push('</g>');
  out.push(`<line x1="${at.left}" y1="${top}" x2="${at.left}" y2="${top + h}" stroke="#000000"/>`);
  out.push(`<line x1="${at.left}" y1="${top + h}" x2="${at.left + at.width}" y2="${top + h}" stroke="#000000"/>`);
  return out;
}

/**
 * SVG documents (each from {@link timelineSvg}) stacked top to bottom in one
 * SVG document, each kept whole as a nested `<svg>`.
 *
 * @example
 * ```ts
 * const both = stackSvg([timelineSvg(first), timelineSvg(second)], 'first and second');
 * ```
 */
export function stackSvg(svgs: string[], title: string): string {
  let y = 0;
  let width = 0;
  const parts = svgs.map((svg) => {
    const root = /^<svg\b[^>]*\bwidth="([\d.]+)" height="([\d.]+)"/.exec(svg);
    if (root === null) throw new Error('stackSvg: not an SVG document with a width and height');
    const part = svg.trim().replace(/^<svg\b/, `<svg y="${y}"`);
    y += Number(root[2]);
    width = Math.max(width, Number(root[1]));
    return part;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" role="img">\n<title>${esc(title)}</title>\n${parts.join('\n')}\n</svg>\n`;
}

/** An HTML page with the SVG inline and the run's figures as a table of rows (a label, then one value or more). */
export function htmlPage({ title, svg, rows }: { title: string; svg: string; rows: string[][] }): string {
  const table = rows.map(([k, ...v]) => `<tr><th>${esc(k ?? '')}</th>${v.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-top: 1rem; }
th, td { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left; }
td { font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
${svg}
<table>
${table}
</table>
</body>
</html>
`;
}
