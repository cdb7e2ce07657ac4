/**
 * The metrics (src/main/metrics.ts, src/main/metrics-registry.ts) without a server: hot-path
 * numbers read on scrape, both expositions passing the strict parsers of test/helpers/exposition.ts
 * (which reject the old `lexicons_connections` / `lexicons_connections_total` clash), weighted
 * histograms, default process metrics, and content negotiation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BucketHistogram, Metrics } from '../../src/main/metrics.js';
import { ServerMetrics, wantsOpenMetrics, type Gauges } from '../../src/main/metrics-registry.js';
import { parseOpenMetrics, parsePrometheusText } from '../helpers/exposition.js';

const OPENMETRICS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

function gauges(): Gauges {
  return {
    connections: 2,
    channels: 1,
    workers: 1,
    queuedUnits: 3,
    inFlightJobs: 1,
    poolQueue: 4,
    store: { commitId: 42, tables: { User: { rows: 7, versions: 9, bytes: 4096 }, 'Odd"Name': { rows: 0, versions: 0, bytes: 0 } } },
    wal: { policy: 'everysec', segment: 1, written: 50, durable: 48, fsyncs: 3, failed: null },
    uptimeSeconds: 5,
  };
}

function value(families: ReturnType<typeof parseOpenMetrics>, family: string, sample: string, labels: Record<string, string> = {}): number | undefined {
  return families.get(family)?.samples.find((s) => s.name === sample && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
}

describe('strict exposition parsers', () => {
  it('reject what the old /metrics served as OpenMetrics: a gauge x next to a counter x_total', () => {
    const clash = '# HELP lexicons_connections Open.\n# TYPE lexicons_connections gauge\nlexicons_connections 2\n# HELP lexicons_connections Admitted.\n# TYPE lexicons_connections counter\nlexicons_connections_total 3\n# EOF\n';
    assert.throws(() => parseOpenMetrics(clash), /clashing name lexicons_connections|second TYPE|metadata after samples/);
    const unknownClash = '# TYPE lexicons_connections gauge\nlexicons_connections 2\nlexicons_connections_total 3\n# TYPE lexicons_connections_total counter\n# EOF\n';
    assert.throws(() => parseOpenMetrics(unknownClash));
  });

  it('reject a missing # EOF, blank lines, bad histograms, negative counters and bad escapes', () => {
    assert.throws(() => parseOpenMetrics('# TYPE a gauge\na 1\n'), /# EOF/);
    assert.throws(() => parseOpenMetrics('# TYPE a gauge\n\na 1\n# EOF\n'), /blank line/);
    assert.throws(() => parseOpenMetrics('# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\n# EOF\n'), /out of order/);
    assert.throws(() => parseOpenMetrics('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="Inf"} 1\nh_count 1\nh_sum 1\n# EOF\n'), /canonical/);
    assert.throws(() => parseOpenMetrics('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 1\nh_sum 1\n# EOF\n'), /_count differs/);
    assert.throws(() => parseOpenMetrics('# TYPE c counter\nc_total -1\n# EOF\n'), /negative/);
    assert.throws(() => parseOpenMetrics('# TYPE g gauge\ng{a="x\\t"} 1\n# EOF\n'), /escape/);
    assert.throws(() => parsePrometheusText('# TYPE a gauge\na 1\n# TYPE a gauge\n'), /second TYPE/);
    assert.throws(() => parsePrometheusText('a 1\na 2\n'), /duplicate series/);
    assert.throws(() => parsePrometheusText('a one\n'), /invalid value/);
  });
});

describe('ServerMetrics', () => {
  it('serves Prometheus text by default and OpenMetrics when asked, both strict, from plain numbers read on scrape', async () => {
    const counters = new Metrics();
    const metrics = new ServerMetrics({ counters, gauges });
    counters.framesTotal = 11;
    counters.connectionsAdmitted = 3;
    counters.recordSignals(90, 3);
    counters.recordBatch(0.002, 5, 5, 0.3, 1.5, 1.8);
    counters.recordBatch(0.02, 1, 0, undefined, undefined);
    counters.fanout.observe(1000);

    const prom = await metrics.render('text/plain');
    assert.equal(prom.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    const p = parsePrometheusText(prom.body);
    assert.equal(p.get('lexicons_connections')?.type, 'gauge');
    assert.equal(p.get('lexicons_connections')?.samples[0]?.value, 2);
    assert.equal(p.get('lexicons_connections_admitted_total')?.samples[0]?.value, 3);
    assert.equal(p.get('lexicons_frames_total')?.type, 'counter');
    assert.equal(p.get('lexicons_signals_total')?.samples[0]?.value, 90);
    assert.equal(p.get('lexicons_pool_queue_depth')?.samples[0]?.value, 7);
    assert.equal(p.get('lexicons_commit_id')?.type, 'gauge');
    assert.ok(!p.has('lexicons_connections_total'), 'renamed to lexicons_connections_admitted_total');
    assert.deepEqual(
      p.get('lexicons_table_rows')?.samples.map((s) => [s.labels.table, s.value]),
      [['User', 7], ['Odd"Name', 0]],
    );

    const om = await metrics.render(OPENMETRICS_ACCEPT);
    assert.equal(om.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    const o = parseOpenMetrics(om.body);
    assert.equal(o.get('lexicons_frames')?.type, 'counter');
    assert.equal(value(o, 'lexicons_frames', 'lexicons_frames_total'), 11);
    assert.equal(value(o, 'lexicons_connections_admitted', 'lexicons_connections_admitted_total'), 3);
    assert.equal(value(o, 'lexicons_connections', 'lexicons_connections'), 2);
    // A batch's latency counts once per call it carried; batches once each.
    assert.equal(value(o, 'lexicons_call_duration_seconds', 'lexicons_call_duration_seconds_count'), 5);
    assert.equal(value(o, 'lexicons_call_duration_seconds', 'lexicons_call_duration_seconds_bucket', { le: '0.001' }), 0);
    assert.equal(value(o, 'lexicons_call_duration_seconds', 'lexicons_call_duration_seconds_bucket', { le: '0.0025' }), 5);
    assert.equal(value(o, 'lexicons_batch_duration_seconds', 'lexicons_batch_duration_seconds_count'), 2);
    assert.equal(value(o, 'lexicons_batch_size', 'lexicons_batch_size_bucket', { le: '4' }), 1);
    assert.equal(value(o, 'lexicons_batch_size', 'lexicons_batch_size_sum'), 6);
    assert.equal(value(o, 'lexicons_commit_duration_seconds', 'lexicons_commit_duration_seconds_count'), 1);
    assert.equal(value(o, 'lexicons_durable_wait_seconds', 'lexicons_durable_wait_seconds_sum'), 0.0015);
    assert.equal(value(o, 'lexicons_batch_run_seconds', 'lexicons_batch_run_seconds_count'), 1, 'only the batch whose worker reported its run time');
    assert.equal(value(o, 'lexicons_batch_run_seconds', 'lexicons_batch_run_seconds_sum'), 0.0018);
    assert.equal(value(o, 'lexicons_publish_fanout', 'lexicons_publish_fanout_bucket', { le: '+Inf' }), 1);
    assert.equal(value(o, 'lexicons_publish_fanout', 'lexicons_publish_fanout_bucket', { le: '256' }), 0);
    // Node's default process metrics.
    for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes', 'process_cpu_user_seconds', 'process_resident_memory_bytes']) {
      assert.ok(o.has(name), name);
    }

    // Read again on the next scrape; the Prometheus format keeps its _total names after an OpenMetrics scrape.
    counters.framesTotal = 12;
    const again = parsePrometheusText((await metrics.render('')).body);
    assert.equal(again.get('lexicons_frames_total')?.samples[0]?.value, 12);
    assert.ok(again.has('process_cpu_user_seconds_total'));
  });

  it('negotiates OpenMetrics from the Accept header', () => {
    assert.equal(wantsOpenMetrics(OPENMETRICS_ACCEPT), true);
    assert.equal(wantsOpenMetrics('application/openmetrics-text'), true);
    assert.equal(wantsOpenMetrics('text/plain;version=0.0.4;q=0.5,*/*;q=0.1'), false);
    assert.equal(wantsOpenMetrics(''), false);
  });

  it('BucketHistogram: cumulative counts with +Inf last, weights', () => {
    const h = new BucketHistogram([1, 10]);
    h.observe(0.5);
    h.observe(5, 3);
    h.observe(50);
    assert.deepEqual(h.cumulative(), [
      { le: 1, count: 1 },
      { le: 10, count: 4 },
      { le: '+Inf', count: 5 },
    ]);
    assert.equal(h.count, 5);
    assert.equal(h.sum, 0.5 + 15 + 50);
  });
});
