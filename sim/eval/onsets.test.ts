import { describe, expect, it } from "vitest";
import { clientOnsets, onsetRecurrence, sameTimeFloor } from "./onsets.js";

const DAY = 144; // 10-minute windows
const DAYS = 14;

/** A client off all day except `rate` req/s in window `at` of each day listed. */
function client(days: number[], at: number, rate: number): Float64Array {
  const series = new Float64Array(DAYS * DAY);
  for (const day of days) series[day * DAY + at] = rate;
  return series;
}

describe("clients switching on (ServeGen's steps from nothing)", () => {
  it("an onset is a window of at least minRate after one under a tenth of it", () => {
    const series = new Float64Array(10);
    series[3] = 100;
    series[4] = 100; // no onset: the window before was as busy
    series[6] = 4; // under minRate
    series[8] = 50;
    series[9] = 600; // 50 is under a tenth of 600
    expect(clientOnsets(new Map([[1, series]]), { minRate: 5, riseFactor: 0.1 })).toEqual([
      { client: 1, window: 3, rate: 100 },
      { client: 1, window: 8, rate: 50 },
      { client: 1, window: 9, rate: 600 },
    ]);
  });

  it("a client that switches on at the same time every day recurs; one new on day 8 does not", () => {
    const everyDay = client([...Array(DAYS).keys()], 60, 300);
    const once = client([8], 90, 100);
    const result = onsetRecurrence(
      new Map([
        [1, everyDay],
        [2, once],
      ]),
    );
    // Days 8-14 score 7 onsets of the daily client (300 each) and 1 of the new one (100).
    expect(result.scoredOnsets).toBe(8);
    expect(result.recurringShare).toBeCloseTo(2100 / 2200, 6);
    expect(result.presentShare).toBeCloseTo(2100 / 2200, 6);
  });

  it("a step a window late on some days still recurs within the tolerance", () => {
    const series = new Float64Array(DAYS * DAY);
    for (let day = 0; day < DAYS; day++) series[day * DAY + 60 + (day % 2)] = 200;
    expect(onsetRecurrence(new Map([[1, series]])).recurringShare).toBe(1);
  });

  it("the same-time floor covers a daily client at no extra capacity, and pays for one that stopped", () => {
    const daily = onsetRecurrence(new Map([[1, client([...Array(DAYS).keys()], 60, 300)]]));
    expect(daily.recurringShare).toBe(1);
    const floorDaily = sameTimeFloor(new Map([[1, client([...Array(DAYS).keys()], 60, 300)]]), 0.5);
    expect(floorDaily.capacityOverDemand).toBe(1);
    expect(floorDaily.onsetDemandCovered).toBe(1);
    // On days 0-9, off from day 10: the median of the 7 days before keeps 300 for days 10-13 with no demand.
    const stopped = sameTimeFloor(new Map([[1, client([...Array(10).keys()], 60, 300)]]), 0.5);
    expect(stopped.capacityOverDemand).toBeCloseTo((3 * 300 + 4 * 300) / (3 * 300), 6);
  });
});
