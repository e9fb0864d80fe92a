import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { barChartSvg, escapeXml, lineChartSvg, niceTicks, shortNumber } from './svg-chart.js';

const numbers = (text: string, attribute: string): number[] => [...text.matchAll(new RegExp(`${attribute}="(-?[\\d.]+)"`, 'g'))].map((match) => Number(match[1]));

describe('svg charts', () => {
  it('picks round ticks that cover the range', () => {
    assert.deepEqual(niceTicks(0, 100), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0, 7), [0, 2, 4, 6]);
    assert.deepEqual(niceTicks(0, 0.5), [0, 0.1, 0.2, 0.3, 0.4, 0.5]);
    assert.deepEqual(niceTicks(3, 3), [3]);
    assert.equal(shortNumber(1500), '1.5k');
    assert.equal(shortNumber(2_000_000), '2M');
    assert.equal(shortNumber(0.25), '0.25');
  });

  it('draws a line chart: one polyline per series, points inside the plot, higher values higher up', () => {
    const svg = lineChartSvg({
      title: 'Latency <by> rate',
      xLabel: 'rate',
      yLabel: 'ms',
      logX: true,
      series: [
        { name: 'p50', points: [[1000, 1], [10_000, 2], [100_000, 4]] },
        { name: 'p99', points: [[1000, 5], [10_000, 9], [100_000, 20]] },
      ],
    });
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.match(svg, /Latency &lt;by&gt; rate/, 'text is escaped');
    const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map((match) => match[1]!.split(' ').map((pair) => pair.split(',').map(Number) as [number, number]));
    assert.equal(lines.length, 2);
    const [p50, p99] = lines as [Array<[number, number]>, Array<[number, number]>];
    // On a log axis 1k, 10k, 100k are evenly spaced.
    assert.ok(Math.abs(p50[1]![0] - p50[0]![0] - (p50[2]![0] - p50[1]![0])) < 0.2);
    for (let index = 0; index < 3; index++) assert.ok(p99[index]![1] < p50[index]![1], 'a larger value is drawn higher (smaller y)');
    for (const [x, y] of [...p50, ...p99]) assert.ok(x >= 70 && x <= 570 && y >= 40 && y <= 350, `(${x}, ${y}) inside the plot area`);
    assert.match(svg, />p99<\/text>/, 'the legend names each series');
  });

  it('draws a bar chart with bar heights proportional to the values', () => {
    const svg = barChartSvg({ title: 'Throughput', yLabel: 'k msg/s', categories: ['100 B', '1 KiB'], series: [{ name: 'k msg/s', values: [200, 100] }] });
    const heights = numbers(svg.split('\n').filter((line) => line.includes('<title>')).join('\n'), 'height');
    assert.equal(heights.length, 2);
    assert.ok(Math.abs(heights[0]! / heights[1]! - 2) < 0.01, `heights ${heights.join(', ')} are in the ratio 2:1`);
  });

  it('says so when there is nothing to draw', () => {
    assert.match(lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [] }), /no data/);
    assert.equal(escapeXml('a & "b"'), 'a &amp; &quot;b&quot;');
  });
});
