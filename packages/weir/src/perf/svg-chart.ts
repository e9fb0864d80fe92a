/**
 * Small, dependency-free SVG charts for benchmark results (throughput against message size, latency percentiles
 * against rate, RSS over time): a line chart of numeric series and a grouped bar chart. The output is a complete,
 * standalone SVG document that any browser or Markdown viewer renders.
 */

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [x: number, y: number]>;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Logarithmic x axis (message sizes, rates spanning decades). */
  logX?: boolean;
  width?: number;
  height?: number;
}

export interface BarChart {
  title: string;
  yLabel: string;
  categories: readonly string[];
  /** One value per category in each series; bars of a category stand side by side. */
  series: ReadonlyArray<{ name: string; values: readonly number[] }>;
  width?: number;
  height?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf', '#7f7f7f'];
const MARGIN = { top: 40, right: 150, bottom: 50, left: 70 };

export function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** About `count` round tick values (1, 2 or 5 × 10^k apart) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max === min) return [min];
  const rough = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough) ?? 10 * power;
  const ticks: number[] = [];
  for (let value = Math.ceil(min / step) * step; value <= max + step * 1e-9; value += step) ticks.push(Number(value.toPrecision(12)));
  return ticks;
}

/** Powers of ten inside [min, max] (min > 0), for a logarithmic axis; the ends when there are fewer than two. */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let power = Math.ceil(Math.log10(min)); 10 ** power <= max * (1 + 1e-9); power++) ticks.push(10 ** power);
  if (ticks.length >= 2) return ticks;
  return [...new Set([min, ...ticks, max])];
}

/** 1500 → "1.5k", 2000000 → "2M": short tick labels. */
export function shortNumber(value: number): string {
  const abs = Math.abs(value);
  const trim = (text: string) => text.replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
  if (abs >= 1e9) return `${trim((value / 1e9).toFixed(1))}G`;
  if (abs >= 1e6) return `${trim((value / 1e6).toFixed(1))}M`;
  if (abs >= 1e3) return `${trim((value / 1e3).toFixed(1))}k`;
  return trim(value.toFixed(abs >= 10 || abs === 0 ? 0 : 2));
}

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function legend(names: readonly string[], x: number, y: number): string[] {
  return names.flatMap((name, index) => [
    `<rect x="${x}" y="${y + index * 18 - 9}" width="12" height="12" fill="${COLORS[index % COLORS.length]}"/>`,
    `<text x="${x + 18}" y="${y + index * 18 + 1}">${escapeXml(name)}</text>`,
  ]);
}

function yAxis(ticks: readonly number[], scale: (value: number) => number, plotLeft: number, plotRight: number, label: string, plotTop: number, plotBottom: number): string[] {
  return [
    ...ticks.flatMap((tick) => [
      `<line x1="${plotLeft}" y1="${scale(tick).toFixed(1)}" x2="${plotRight}" y2="${scale(tick).toFixed(1)}" stroke="#e0e0e0"/>`,
      `<text x="${plotLeft - 6}" y="${(scale(tick) + 4).toFixed(1)}" text-anchor="end">${shortNumber(tick)}</text>`,
    ]),
    `<line x1="${plotLeft}" y1="${plotTop}" x2="${plotLeft}" y2="${plotBottom}" stroke="black"/>`,
    `<line x1="${plotLeft}" y1="${plotBottom}" x2="${plotRight}" y2="${plotBottom}" stroke="black"/>`,
    `<text transform="translate(16 ${(plotTop + plotBottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(label)}</text>`,
  ];
}

export function lineChartSvg(chart: LineChart): string {
  const width = chart.width ?? 720;
  const height = chart.height ?? 400;
  const left = MARGIN.left;
  const right = width - MARGIN.right;
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom;
  const points = chart.series.flatMap((series) => series.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!chart.logX || x > 0));
  if (points.length === 0) return frame(width, height, chart.title, [`<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text>`]);
  const xs = points.map(([x]) => x);
  const ys = points.map(([, y]) => y);
  let [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  if (xMin === xMax) [xMin, xMax] = chart.logX ? [xMin / 2, xMax * 2] : [xMin - 1, xMax + 1];
  const yTicks = niceTicks(0, Math.max(...ys) || 1);
  const yMax = Math.max(yTicks.at(-1) ?? 1, Math.max(...ys)) || 1;
  const xPosition = (x: number) => (chart.logX ? (Math.log(x) - Math.log(xMin)) / (Math.log(xMax) - Math.log(xMin)) : (x - xMin) / (xMax - xMin));
  const scaleX = (x: number) => left + xPosition(x) * (right - left);
  const scaleY = (y: number) => bottom - (y / yMax) * (bottom - top);
  const xTicks = chart.logX ? logTicks(xMin, xMax) : niceTicks(xMin, xMax);
  const body = [
    ...yAxis(yTicks, scaleY, left, right, chart.yLabel, top, bottom),
    ...xTicks.map((tick) => `<text x="${scaleX(tick).toFixed(1)}" y="${bottom + 18}" text-anchor="middle">${shortNumber(tick)}</text>`),
    `<text x="${(left + right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`,
  ];
  chart.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length];
    const visible = series.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!chart.logX || x > 0));
    const path = visible.map(([x, y]) => `${scaleX(x).toFixed(1)},${scaleY(y).toFixed(1)}`).join(' ');
    if (visible.length > 1) body.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${path}"/>`);
    if (visible.length <= 60) for (const [x, y] of visible) body.push(`<circle cx="${scaleX(x).toFixed(1)}" cy="${scaleY(y).toFixed(1)}" r="3" fill="${color}"/>`);
  });
  body.push(...legend(chart.series.map((series) => series.name), right + 16, top + 10));
  return frame(width, height, chart.title, body);
}

export function barChartSvg(chart: BarChart): string {
  const width = chart.width ?? 720;
  const height = chart.height ?? 400;
  const left = MARGIN.left;
  const right = width - MARGIN.right;
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom;
  const values = chart.series.flatMap((series) => series.values).filter(Number.isFinite);
  const yTicks = niceTicks(0, Math.max(0, ...values) || 1);
  const yMax = Math.max(yTicks.at(-1) ?? 1, ...values) || 1;
  const scaleY = (y: number) => bottom - (y / yMax) * (bottom - top);
  const groupWidth = (right - left) / Math.max(1, chart.categories.length);
  const barWidth = (groupWidth * 0.8) / Math.max(1, chart.series.length);
  const body = yAxis(yTicks, scaleY, left, right, chart.yLabel, top, bottom);
  chart.categories.forEach((category, categoryIndex) => {
    const groupLeft = left + categoryIndex * groupWidth + groupWidth * 0.1;
    body.push(`<text x="${(groupLeft + groupWidth * 0.4).toFixed(1)}" y="${bottom + 18}" text-anchor="middle">${escapeXml(category)}</text>`);
    chart.series.forEach((series, seriesIndex) => {
      const value = series.values[categoryIndex];
      if (value === undefined || !Number.isFinite(value)) return;
      const x = groupLeft + seriesIndex * barWidth;
      body.push(
        `<rect x="${x.toFixed(1)}" y="${scaleY(value).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${(bottom - scaleY(value)).toFixed(1)}" fill="${COLORS[seriesIndex % COLORS.length]}"><title>${escapeXml(`${series.name}, ${category}: ${value}`)}</title></rect>`,
      );
    });
  });
  body.push(...legend(chart.series.map((series) => series.name), right + 16, top + 10));
  return frame(width, height, chart.title, body);
}
