import { describe, expect, it } from "vitest";
import { chainIds, flattenChat, promptBlockHashes } from "./prefix.js";

const text = (seed: string, n: number): string => {
  let s = "";
  for (let i = 0; s.length < n; i++) s += `${seed}-${i} `;
  return s.slice(0, n);
};

describe("prompt block hashes", () => {
  it("are the same for the same prefix and differ from the first changed block on", () => {
    const base = text("a", 256 * 6);
    const a = promptBlockHashes(base);
    const b = promptBlockHashes(base.slice(0, 256 * 3) + text("b", 256 * 3));
    expect(a).toHaveLength(6);
    expect(b.slice(0, 3)).toEqual(a.slice(0, 3));
    for (let i = 3; i < 6; i++) expect(b[i]).not.toBe(a[i]);
  });

  it("chain: an equal block after a different prefix gets a different hash", () => {
    const block = text("same", 256);
    const a = promptBlockHashes(text("x", 256) + block);
    const b = promptBlockHashes(text("y", 256) + block);
    expect(a[1]).not.toBe(b[1]);
  });

  it("hash only full blocks, up to maxBlocks, as safe integers", () => {
    expect(promptBlockHashes(text("a", 255))).toEqual([]);
    expect(promptBlockHashes(text("a", 256 * 2 + 100))).toHaveLength(2);
    const capped = promptBlockHashes(text("a", 256 * 50), { maxBlocks: 7 });
    expect(capped).toHaveLength(7);
    for (const h of capped) expect(Number.isSafeInteger(h) && h >= 0).toBe(true);
    expect(promptBlockHashes(text("a", 100), { blockChars: 10 })).toHaveLength(10);
  });

  it("spread: 10,000 distinct blocks give 10,000 distinct hashes", () => {
    const hashes = new Set<number>();
    for (let i = 0; i < 10_000; i++)
      hashes.add(promptBlockHashes(`${i}`.padEnd(16, "."), { blockChars: 16 })[0] as number);
    expect(hashes.size).toBe(10_000);
  });

  it("chainIds makes a trace's block ids depend on their predecessors", () => {
    const a = chainIds([0, 1, 2]);
    const b = chainIds([0, 5, 2]);
    expect(a[0]).toBe(b[0]);
    expect(a[1]).not.toBe(b[1]);
    expect(a[2]).not.toBe(b[2]);
  });
});

describe("flattenChat", () => {
  it("is deterministic, keeps roles and text parts, and a conversation's prefix stays a prefix", () => {
    const turn1 = [
      { role: "system", content: "You are terse." },
      {
        role: "user",
        content: [
          { type: "text", text: "Hi " },
          { type: "image_url", image_url: {} },
          { type: "text", text: "there" },
        ],
      },
    ];
    const turn2 = [...turn1, { role: "assistant", content: "Hello." }, { role: "user", content: "More?" }];
    const f1 = flattenChat(turn1);
    expect(f1).toBe("system\nYou are terse.\u001euser\nHi there\u001e");
    expect(flattenChat(turn2).startsWith(f1)).toBe(true);
    expect(flattenChat([{ role: "user", content: "x".repeat(100) }], 10)).toHaveLength(10);
    expect(flattenChat([{ role: 3, content: { evil: true } }])).toBe("\n\u001e");
  });
});
