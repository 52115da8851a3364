import perfHooks from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Metrics } from '../../../src/metrics/metrics.js';

describe('the event loop delay behind nodejs_eventloop_lag_*', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('is sampled every 100 ms, so that an idle Layover is not woken 100 times a second', () => {
    const monitor = vi.spyOn(perfHooks, 'monitorEventLoopDelay');
    const metrics = new Metrics();
    expect(monitor).toHaveBeenCalledTimes(1);
    expect(monitor.mock.calls[0]![0]).toEqual({ resolution: 100 });
    expect(metrics.registry.getSingleMetric('nodejs_eventloop_lag_p99_seconds')).toBeDefined();
  });
});
