import { formatBytes } from '../format.js';
import type { StrategyRun } from '../strategy/run-strategy.js';
import { type TimelineData, type TimelineSpan, timelineData } from './timeline-data.js';

export { type TimelineData, type TimelineDevice, type TimelineSpan, timelineData } from './timeline-data.js';

const LANE_HEIGHT = 22;
const GUTTER = 190;
const PLOT_WIDTH = 1000;
const AXIS_HEIGHT = 22;

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const fixed = (value: number, digits = 3): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const percent = (fraction: number): string => `${(fraction * 100).toFixed(1)}%`;

/** A microbatch's colour: hues far apart for neighbours, so adjacent microbatches never look alike. */
export function microbatchColor(microbatch: number | null): string {
  if (microbatch === null) return 'hsl(0 0% 60%)';
  return `hsl(${Math.round((microbatch * 137.508) % 360)} 62% 52%)`;
}

/** A horizontal bar: `fraction` of the width filled, an optional marker (the estimate) at `mark`. */
function bar(fraction: number, label: string, options: { over?: boolean; mark?: number } = {}): string {
  const width = Math.max(0, Math.min(1, fraction)) * 100;
  const mark =
    options.mark === undefined
      ? ''
      : `<span class="wp-mark" style="left:${(Math.max(0, Math.min(1, options.mark)) * 100).toFixed(2)}%"></span>`;
  return (
    `<div class="wp-bar${options.over ? ' wp-over' : ''}"><span class="wp-fill" style="width:${width.toFixed(2)}%"></span>` +
    `${mark}<span class="wp-bar-label">${escapeHtml(label)}</span></div>`
  );
}

function spanRect(span: TimelineSpan, wallMs: number): string {
  const scale = PLOT_WIDTH / Math.max(wallMs, 1e-6);
  const x = span.startMs * scale;
  // A kernel of a few microseconds still gets a visible sliver; zooming in shows its true width.
  const width = Math.max((span.endMs - span.startMs) * scale, 0.4);
  const y = span.lane * LANE_HEIGHT + 3;
  const fill = microbatchColor(span.microbatch);
  const title =
    `${span.label} (${span.element}${span.microbatch === null ? '' : `, microbatch ${span.microbatch}`}): ` +
    `${fixed(span.startMs)}–${fixed(span.endMs)} ms, ${fixed(span.endMs - span.startMs)} ms`;
  const opacity = span.kind === 'wait' ? ' fill-opacity="0.25"' : '';
  return (
    `<rect class="wp-span wp-${span.kind}" data-mb="${span.microbatch ?? ''}" x="${x.toFixed(3)}" y="${y}" ` +
    `width="${width.toFixed(3)}" height="${LANE_HEIGHT - 6}" fill="${fill}"${opacity}><title>${escapeHtml(title)}</title></rect>`
  );
}

/** The timeline as SVG: a lane per device and one for the host's transfers, bars coloured by microbatch. */
export function timelineSvg(data: TimelineData): string {
  const height = data.lanes.length * LANE_HEIGHT + AXIS_HEIGHT;
  const labels = data.lanes
    .map(
      (lane, i) =>
        `<text class="wp-lane" x="${GUTTER - 8}" y="${i * LANE_HEIGHT + LANE_HEIGHT / 2 + 4}" text-anchor="end">${escapeHtml(lane)}</text>` +
        `<line x1="${GUTTER}" x2="${GUTTER + PLOT_WIDTH}" y1="${(i + 1) * LANE_HEIGHT}" y2="${(i + 1) * LANE_HEIGHT}" class="wp-grid"/>`,
    )
    .join('');
  const rects = data.spans.map((s) => spanRect(s, data.wallMs)).join('');
  return (
    `<svg class="wp-timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${GUTTER + PLOT_WIDTH + 10} ${height}" ` +
    `data-wall-ms="${data.wallMs}" data-gutter="${GUTTER}" data-plot-width="${PLOT_WIDTH}" data-lanes-height="${data.lanes.length * LANE_HEIGHT}">` +
    `<defs><clipPath id="wp-plot"><rect x="${GUTTER}" y="0" width="${PLOT_WIDTH}" height="${height}"/></clipPath></defs>` +
    labels +
    `<g clip-path="url(#wp-plot)"><g class="wp-spans" transform="translate(${GUTTER},0)">${rects}</g></g>` +
    `<g class="wp-axis"></g></svg>`
  );
}

function legend(data: TimelineData): string {
  const items = Array.from(
    { length: data.microbatches },
    (_, mb) => `<span class="wp-key"><i style="background:${microbatchColor(mb)}"></i>mb${mb}</span>`,
  );
  return `<div class="wp-legend">${items.join('')}<span class="wp-key"><i class="wp-wait-key"></i>transfer waiting for its sources</span></div>`;
}

/**
 * The run's picture as an HTML fragment: verdict and findings, the output checks, predicted against measured
 * time, each device's utilization and memory against the cap as bars, and the timeline. The page and
 * `run --html` both draw it; TIMELINE_SCRIPT makes the timeline zoom.
 */
export function timelineSection(data: TimelineData): string {
  const verdictClass = data.verdict.startsWith('SOUND') ? 'wp-good' : 'wp-bad';
  const findings = data.findings.length
    ? `<ul class="wp-findings">${data.findings
        .map(
          (f) =>
            `<li class="wp-${escapeHtml(f.severity)}"><b>${escapeHtml(f.severity)}</b> <code>${escapeHtml(f.code)}</code> ${escapeHtml(f.message)}</li>`,
        )
        .join('')}</ul>`
    : '<p>No findings.</p>';
  const checks = data.checks
    .map(
      (c) =>
        `<tr class="${c.passed ? 'wp-good' : 'wp-bad'}"><td>${escapeHtml(c.against)}</td><td>${c.maxAbsError.toExponential(2)}</td>` +
        `<td>${c.tolerance.toExponential(2)}</td><td>${c.passed ? 'passed' : 'FAILED'}</td></tr>`,
    )
    .join('');
  const longest = Math.max(data.wallMs, data.predictedMs, data.sequentialWallMs ?? 0, 1e-9);
  const times = [
    bar(data.wallMs / longest, `measured ${fixed(data.wallMs, 2)} ms`),
    bar(
      data.predictedMs / longest,
      `predicted ${fixed(data.predictedMs, 2)} ms (${fixed(data.predictionErrorPercent, 1)}% off)`,
    ),
    ...(data.sequentialWallMs === null
      ? []
      : [
          bar(
            data.sequentialWallMs / longest,
            `one microbatch at a time ${fixed(data.sequentialWallMs, 2)} ms`,
          ),
        ]),
  ];
  const devices = data.devices
    .map((d) => {
      const used = d.peakBytes / d.capBytes;
      return (
        `<tr class="wp-device"><th>${escapeHtml(d.name)}</th>` +
        `<td>${bar(d.utilization, `${percent(d.utilization)} busy (${fixed(d.busyMs, 2)} ms)`)}</td>` +
        `<td>${bar(used, `${formatBytes(d.peakBytes)} of ${formatBytes(d.capBytes)}`, {
          over: used > 1,
          ...(d.estimatedBytes === null ? {} : { mark: d.estimatedBytes / d.capBytes }),
        })}</td></tr>`
      );
    })
    .join('');
  return (
    `<section class="wp-report">` +
    `<h2 class="wp-verdict ${verdictClass}">Verdict: ${escapeHtml(data.verdict)}</h2>` +
    `<p>${escapeHtml(data.title)} — ${data.devices.length} ${escapeHtml(data.backend)} devices on <code>${escapeHtml(data.adapter)}</code>, ${data.microbatches} microbatches.</p>` +
    `<h3>Findings</h3>${findings}` +
    `<h3>Check against the reference</h3><table class="wp-checks"><tr><th>against</th><th>max |error|</th><th>tolerance</th><th></th></tr>${checks}</table>` +
    `<h3>Predicted and measured time</h3><div class="wp-times">${times.join('')}</div>` +
    `<h3>Devices</h3><table class="wp-devices"><tr><th></th><th>utilization</th><th>memory peak against the cap (mark: estimate)</th></tr>${devices}</table>` +
    `<h3>Timeline</h3><p class="wp-hint">Wheel to zoom, drag to pan, double-click to reset; hover a bar for its kernel.</p>` +
    legend(data) +
    `<div class="wp-timeline-box">${timelineSvg(data)}</div></section>`
  );
}

export const TIMELINE_STYLE = `
.wp-report{font:14px/1.4 system-ui,sans-serif;color:#222;max-width:1240px}
.wp-good{color:#17642b}.wp-bad{color:#a3161c}
.wp-findings li.wp-error{color:#a3161c}.wp-findings li.wp-warning{color:#8a5a00}
.wp-checks td,.wp-checks th,.wp-devices td,.wp-devices th{padding:2px 10px;text-align:left}
.wp-devices td{width:45%}
.wp-bar{position:relative;height:18px;background:#eceff3;border-radius:3px;margin:3px 0;min-width:220px}
.wp-fill{position:absolute;left:0;top:0;bottom:0;background:#4a7fd4;border-radius:3px}
.wp-over .wp-fill{background:#c9323a}
.wp-mark{position:absolute;top:-2px;bottom:-2px;width:2px;background:#222}
.wp-bar-label{position:relative;padding-left:6px;font-size:12px;line-height:18px;color:#111}
.wp-legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;margin:4px 0}
.wp-key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border-radius:2px}
.wp-wait-key{background:#999;opacity:.3}
.wp-timeline-box{border:1px solid #ddd;overflow:hidden;cursor:grab}
.wp-timeline{width:100%;height:auto;display:block;user-select:none}
.wp-timeline text{font:11px system-ui,sans-serif;fill:#333}
.wp-grid{stroke:#eee}.wp-span{stroke:#0003;stroke-width:.5px;vector-effect:non-scaling-stroke}
.wp-hint{font-size:12px;color:#666}
`;

/**
 * Zoom and pan for every `svg.wp-timeline` in the document, and its time axis (drawn here, so one piece of
 * code places the ticks for every zoom). Plain script, no imports: it runs in the page and in `run --html`'s
 * self-contained file alike.
 */
export const TIMELINE_SCRIPT = `(() => {
  const NS = 'http://www.w3.org/2000/svg';
  for (const svg of document.querySelectorAll('svg.wp-timeline')) {
    if (svg.dataset.zoomReady) continue;
    svg.dataset.zoomReady = '1';
    const wall = Number(svg.dataset.wallMs), gutter = Number(svg.dataset.gutter);
    const plot = Number(svg.dataset.plotWidth), top = Number(svg.dataset.lanesHeight);
    const spans = svg.querySelector('.wp-spans'), axis = svg.querySelector('.wp-axis');
    let view = [0, wall];
    const draw = () => {
      const k = wall / (view[1] - view[0]);
      const shift = -(view[0] / wall) * plot * k;
      spans.setAttribute('transform', 'translate(' + (gutter + shift) + ',0) scale(' + k + ',1)');
      axis.replaceChildren();
      const span = view[1] - view[0];
      const raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
      for (let t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) {
        const x = gutter + ((t - view[0]) / span) * plot;
        const line = document.createElementNS(NS, 'line');
        line.setAttribute('x1', x); line.setAttribute('x2', x);
        line.setAttribute('y1', 0); line.setAttribute('y2', top + 4);
        line.setAttribute('stroke', '#0002');
        const text = document.createElementNS(NS, 'text');
        text.setAttribute('x', x); text.setAttribute('y', top + 16); text.setAttribute('text-anchor', 'middle');
        text.textContent = Number(t.toPrecision(6)) + ' ms';
        axis.append(line, text);
      }
    };
    const timeAt = (clientX) => {
      const box = svg.getBoundingClientRect();
      const width = Number(svg.viewBox.baseVal.width);
      const x = ((clientX - box.left) / box.width) * width - gutter;
      return view[0] + Math.min(Math.max(x / plot, 0), 1) * (view[1] - view[0]);
    };
    svg.addEventListener('wheel', (event) => {
      event.preventDefault();
      const at = timeAt(event.clientX), factor = Math.exp(event.deltaY * 0.002);
      const span = Math.min(Math.max((view[1] - view[0]) * factor, wall / 5000), wall);
      const left = Math.min(Math.max(at - ((at - view[0]) / (view[1] - view[0])) * span, 0), wall - span);
      view = [left, left + span];
      draw();
    }, { passive: false });
    let drag = null;
    svg.addEventListener('pointerdown', (event) => { drag = { x: event.clientX, view }; svg.setPointerCapture(event.pointerId); });
    svg.addEventListener('pointermove', (event) => {
      if (!drag) return;
      const box = svg.getBoundingClientRect();
      const perPixel = (drag.view[1] - drag.view[0]) / ((box.width * plot) / Number(svg.viewBox.baseVal.width));
      const span = drag.view[1] - drag.view[0];
      const left = Math.min(Math.max(drag.view[0] - (event.clientX - drag.x) * perPixel, 0), wall - span);
      view = [left, left + span];
      draw();
    });
    svg.addEventListener('pointerup', () => { drag = null; });
    svg.addEventListener('dblclick', () => { view = [0, wall]; draw(); });
    draw();
  }
})();`;

/** A self-contained HTML file of the run's picture (no network, no files beside it). */
export function timelineHtml(data: TimelineData): string {
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(data.title)}</title>` +
    `<style>body{margin:16px}${TIMELINE_STYLE}</style></head><body>${timelineSection(data)}` +
    `<script>${TIMELINE_SCRIPT}</script></body></html>\n`
  );
}

/** `run --html`: the run's self-contained HTML file. */
export function runHtml(run: StrategyRun): string {
  return timelineHtml(timelineData(run));
}
