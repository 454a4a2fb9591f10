import { describe, expect, it } from "vitest";
import { loadGcpRttTable, parseRttMatrix, RttTable } from "./rtt.js";

describe("shared GCP RTT matrix", () => {
  const table = loadGcpRttTable();

  it("tells the two US-MIDA-PJM regions apart (us-east4 first, us-east5 second)", () => {
    expect(table.rttMs("gcp:us-east4", "gcp:us-east4")).toBe(5);
    expect(table.rttMs("gcp:us-east4", "gcp:us-east5")).toBe(18);
    expect(table.rttMs("gcp:us-east5", "gcp:us-east5")).toBe(5);
    // The plain zone key resolves to the first region that carries it.
    expect(table.rttMs("US-MIDA-PJM", "gcp:us-east5")).toBe(18);
    expect(table.rttMs("gcp:us-east5", "zone:TW")).toBe(168);
  });

  it("looks up AWS and Azure regions through their grid zone and legacy zone names through aliases", () => {
    expect(table.rttMs("FI", "azure:westeurope")).toBe(table.rttMs("FI", "gcp:europe-west4"));
    expect(table.rttMs("zone:IN-MH", "aws:ap-south-1")).toBe(
      table.rttMs("gcp:asia-south1", "gcp:asia-south1"),
    );
    expect(table.rttMs("JP-TK", "aws:ap-northeast-1")).toBe(5);
    expect(table.rttMs("JP-TK", "gcp:mars-north1")).toBeUndefined();
    expect(() => table.rttMs("JP-TK", "ibm:us-south")).toThrow(/cloud:region/);
  });
});

describe("RttTable", () => {
  it("answers either direction of a one-way record and undefined for unknown pairs", () => {
    const table = RttTable.fromRecord({ A: { "zone:B": 12 } });
    expect(table.rttMs("A", "B")).toBe(12);
    expect(table.rttMs("B", "A")).toBe(12);
    expect(table.rttMs("A", "C")).toBeUndefined();
  });

  it("parses a matrix with a duplicated zone label using the region map order", () => {
    const csv = "origin,X,X,Y\nX,1,7,30\nX,7,2,31\nY,30,31,3\n";
    const table = parseRttMatrix(csv, { a: "X", b: "X", c: "Y" });
    expect(table.rttMs("gcp:a", "gcp:b")).toBe(7);
    expect(table.rttMs("gcp:b", "gcp:b")).toBe(2);
    expect(table.rttMs("X", "gcp:b")).toBe(7);
    expect(table.rttMs("gcp:b", "Y")).toBe(31);
  });
});
